"""SynthTalk nuisance tracks: blinks, head motion, lighting gain."""

from __future__ import annotations

import numpy as np
import pytest

from decouple.data.synthtalk.nuisance import blink_track, nuisance_tracks, still_nuisance


def blink_runs(b: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) frame ranges where the eyes are at least partly closed."""
    closed = np.concatenate([[False], b > 0, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    return list(zip(edges[::2], edges[1::2], strict=True))


def test_deterministic_and_seed_dependent() -> None:
    a = nuisance_tracks(300, 25.0, seed=3)
    b = nuisance_tracks(300, 25.0, seed=3)
    c = nuisance_tracks(300, 25.0, seed=4)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
        assert a[key].dtype == np.float32


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_blinks_rate_duration_and_full_closure(fps: float) -> None:
    rates, durations = [], []
    for seed in range(12):
        n = int(60 * fps)
        b = nuisance_tracks(n, fps, seed)["blink"]
        assert b.min() == 0.0 and b.max() <= 1.0
        runs = blink_runs(b)
        rates.append(len(runs) / 60.0)
        starts = np.array([start for start, _ in runs])
        assert (np.diff(starts) >= 0.6 * fps - 1).all()  # at least 0.6 s between blinks
        for start, stop in runs:
            assert b[start:stop].max() == 1.0  # every blink shuts the eyes in some frame
            durations.append((stop - start) / fps)
    assert 0.15 <= np.mean(rates) <= 0.55
    # frames with any closure span the ~170 ms blink, give or take a frame at each end
    assert 0.08 <= np.median(durations) <= 0.25


def test_blink_profile_against_its_definition() -> None:
    fps = 100.0
    b = blink_track(np.array([0.5]), 100, fps)
    t = np.arange(100) / fps  # frame k at k / fps
    assert (b[t < 0.5] == 0).all() and (b[t > 0.5 + 0.05 + 0.04 + 0.08] == 0).all()
    assert (b[(t > 0.55) & (t < 0.59)] == 1).all()  # held closed for 40 ms
    u = (0.52 - 0.5) / 0.05  # frame 52 at 0.52 s: 40 % through closing
    assert abs(b[52] - (3 * u * u - 2 * u**3)) < 1e-6


def test_head_motion_is_small_and_smooth_and_gain_is_near_one() -> None:
    for seed in range(5):
        n = nuisance_tracks(500, 25.0, seed)
        pose = n["head_pose"].astype(np.float64)
        assert np.abs(pose[:, :2]).max() < 0.03 and np.abs(pose[:, 2]).max() < 0.08
        assert 0.002 < pose[:, :2].std() < 0.012 and 0.005 < pose[:, 2].std() < 0.04
        step = np.abs(np.diff(pose, axis=0)).max(0)
        # three sinusoids of <= 0.7 Hz, amplitudes a_i with sum a_i^2 = 2 std^2: the slope is
        # at most std * 2 pi 0.7 * sqrt(6) per second
        bound = np.array([0.006, 0.006, 0.02]) * 2 * np.pi * 0.7 * np.sqrt(6) / 25.0
        assert (step <= bound).all()
        assert (step > 0.1 * bound).all()
        assert 0.94 <= n["gain"].min() and n["gain"].max() <= 1.06
        assert n["gain"].std() > 0.003


def test_still_nuisance_and_errors() -> None:
    s = still_nuisance(4)
    assert set(s) == {"blink", "head_pose", "gain"}
    assert s["head_pose"].shape == (4, 3) and (s["gain"] == 1).all()
    with pytest.raises(ValueError, match="num_frames"):
        nuisance_tracks(0, 25.0, 0)
    with pytest.raises(ValueError, match="fps"):
        nuisance_tracks(10, 0.0, 0)
    with pytest.raises(ValueError, match="seed"):
        nuisance_tracks(10, 25.0, -2)
