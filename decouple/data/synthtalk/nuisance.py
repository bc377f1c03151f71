"""Nuisance tracks of a SynthTalk clip: blinks, small head motion and a slight lighting change.

They are what changes from frame to frame besides speech and emotion, all from one seed, so a
counterfactual can keep them (same seed) or redraw them (another seed: the ground truth's own
noise floor). Frame `k` is sampled at its presentation time `k / fps`, the project's frame-time
convention (as the mouth track and the audio features).

- Blinks: a Poisson process with a rate drawn in 0.2-0.5 Hz (at least 0.6 s between blinks, the
  first blink at least 0.2 s into the clip). One blink closes in 50 ms, stays closed for
  `max(40 ms, 1 / fps)` (so at least one frame sees the eyes fully shut), and opens in 80 ms
  (about 150-170 ms in all); the closing and opening are smoothstep ramps.
- Head pose (t, 3): `dx`, `dy` (translation in frame fractions, standard deviation about 0.006)
  and `roll` (radians, standard deviation about 0.02, about 1 degree), each a sum of three
  sinusoids with random frequencies in 0.1-0.7 Hz and random phases: smooth, zero-mean-ish motion.
- Lighting gain (t,): 1 + two slow sinusoids (standard deviation 0.02), within [0.94, 1.06].
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NUISANCE_KEYS", "blink_track", "nuisance_tracks", "still_nuisance"]

NUISANCE_KEYS: tuple[str, ...] = ("blink", "head_pose", "gain")
"""Keys of a nuisance dict: `blink` (t,), `head_pose` (t, 3) as (dx, dy, roll), `gain` (t,)."""

_CLOSE_S = 0.05
_OPEN_S = 0.08
_HOLD_S = 0.04


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def blink_track(starts: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Eye closure per frame for blinks starting at the given times.

    Args:
        starts: Blink start times in seconds (k,).
        num_frames: Number of frames t.
        fps: Frame rate.

    Returns:
        (t,) float32 in [0, 1], 1 = eyes fully closed.

    Examples:
        >>> b = blink_track(np.array([0.1]), 10, 25.0)
        >>> float(b.max()), int(b.argmax()), float(b[0]), float(b[-1])
        (1.0, 4, 0.0, 0.0)
    """
    t = np.arange(num_frames, dtype=np.float64) / fps
    hold = max(_HOLD_S, 1.0 / fps)
    out = np.zeros(num_frames, dtype=np.float64)
    for s in np.asarray(starts, dtype=np.float64):
        u = t - s
        closing = _smoothstep(u / _CLOSE_S)
        opening = 1.0 - _smoothstep((u - _CLOSE_S - hold) / _OPEN_S)
        out = np.maximum(out, np.minimum(closing, opening))
    return out.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, n: int, std: float) -> np.ndarray:
    freqs = rng.uniform(0.1, 0.7, n)
    phases = rng.uniform(0.0, 2.0 * math.pi, n)
    weights = rng.uniform(0.5, 1.0, n)
    weights = weights / np.sqrt((weights**2).sum() / 2.0)  # sum of sinusoids has variance std^2
    waves = np.sin(2 * math.pi * freqs[:, None] * t + phases[:, None])
    return std * (weights[:, None] * waves).sum(0)


def nuisance_tracks(num_frames: int, fps: float, seed: int) -> dict[str, np.ndarray]:
    """Blinks, head pose and lighting gain for a clip, from a seed.

    Args:
        num_frames: Number of frames t (at least 1).
        fps: Frame rate (positive).
        seed: Non-negative int seed.

    Returns:
        `{"blink": (t,) float32 in [0, 1], "head_pose": (t, 3) float32 (dx, dy, roll),
        "gain": (t,) float32 near 1}`.

    Raises:
        ValueError: Non-positive `num_frames` or `fps`, or a negative seed.

    Examples:
        >>> n = nuisance_tracks(250, 25.0, seed=1)
        >>> n["blink"].shape, n["head_pose"].shape, n["gain"].shape
        ((250,), (250, 3), (250,))
        >>> bool(n["blink"].max() == 1.0), bool(abs(n["gain"] - 1).max() < 0.06)
        (True, True)
    """
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"nuisance_tracks: num_frames must be an int >= 1, got {num_frames!r}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"nuisance_tracks: fps must be a positive number, got {fps!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"nuisance_tracks: seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng([int(seed), 7])
    duration = num_frames / fps
    rate = rng.uniform(0.2, 0.5)
    starts = []
    time = 0.2 + rng.exponential(1.0 / rate) * rng.uniform(0.0, 1.0)
    while time < duration:
        starts.append(time)
        time += 0.6 + rng.exponential(max(1.0 / rate - 0.6, 0.1))
    t = np.arange(num_frames, dtype=np.float64) / fps
    pose = np.stack(
        [_smooth_noise(rng, t, 3, 0.006), _smooth_noise(rng, t, 3, 0.006),
         _smooth_noise(rng, t, 3, 0.02)], axis=1
    )
    gain = np.clip(1.0 + _smooth_noise(rng, t, 2, 0.02), 0.94, 1.06)
    return {
        "blink": blink_track(np.asarray(starts), num_frames, fps),
        "head_pose": pose.astype(np.float32),
        "gain": gain.astype(np.float32),
    }


def still_nuisance(num_frames: int) -> dict[str, np.ndarray]:
    """No blink, no head motion, gain 1: the nuisance of a still, evenly lit face.

    Args:
        num_frames: Number of frames t.

    Returns:
        A nuisance dict like [nuisance_tracks][decouple.data.synthtalk.nuisance.nuisance_tracks].

    Examples:
        >>> n = still_nuisance(3)
        >>> float(n["blink"].sum()), float(n["head_pose"].sum()), n["gain"].tolist()
        (0.0, 0.0, [1.0, 1.0, 1.0])
    """
    return {
        "blink": np.zeros(num_frames, dtype=np.float32),
        "head_pose": np.zeros((num_frames, 3), dtype=np.float32),
        "gain": np.ones(num_frames, dtype=np.float32),
    }
