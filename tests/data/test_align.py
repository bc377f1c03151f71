"""DTW: known time warps recovered, optimal against a naive loop, valid paths, speed, errors."""

from __future__ import annotations

import itertools
import math
import random
import time

import numpy as np
import pytest
import torch

from decouple.data.align import align_audio, check_path, dtw, path_to_index

# ----------------------------------------------------------------------------- references


def naive_cost_matrix(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Frame distances with plain loops (float64)."""
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            if metric == "cosine":
                na, nb = np.linalg.norm(a[i]), np.linalg.norm(b[j])
                out[i, j] = 1.0 - float(a[i] @ b[j]) / (na * nb)
            else:
                d = float(np.sqrt(((a[i] - b[j]) ** 2).sum()))
                out[i, j] = d * d if metric == "sqeuclidean" else d
    return out


def naive_dtw_cost(cost: np.ndarray) -> float:
    """Minimal summed cost of a monotone path, by the textbook row-by-row recursion."""
    ta, tb = cost.shape
    acc = np.full((ta, tb), math.inf)
    for i in range(ta):
        for j in range(tb):
            if i == 0 and j == 0:
                acc[i, j] = cost[0, 0]
                continue
            prev = min(
                acc[i - 1, j] if i > 0 else math.inf,
                acc[i, j - 1] if j > 0 else math.inf,
                acc[i - 1, j - 1] if i > 0 and j > 0 else math.inf,
            )
            acc[i, j] = cost[i, j] + prev
    return float(acc[-1, -1])


def assert_valid_path(path: torch.Tensor, ta: int, tb: int) -> None:
    """Path properties, checked independently of check_path."""
    assert path.dtype == torch.long and path.ndim == 2 and path.shape[1] == 2
    rows = path.tolist()
    assert rows[0] == [0, 0]
    assert rows[-1] == [ta - 1, tb - 1]
    for (i0, j0), (i1, j1) in itertools.pairwise(rows):
        assert (i1 - i0, j1 - j0) in {(1, 0), (0, 1), (1, 1)}
    assert max(ta, tb) <= len(rows) <= ta + tb - 1
    # every frame of both sequences is visited
    assert {i for i, _ in rows} == set(range(ta))
    assert {j for _, j in rows} == set(range(tb))


def assert_near_true_warp(path: torch.Tensor, true_a, max_err: float = 1.0) -> None:
    """Every pair of the path is within `max_err` frames of the true warp curve, measured along
    either axis.

    `true_a(x)` is the (fractional) frame of a that shows what b shows at (fractional) frame
    x; it is monotone. Where one clip is locally several times denser than the other, a pair
    is necessarily several of its frames from the curve along its own axis, but still within
    a frame along the other one: that is the best any frame-to-frame path can do.
    """
    tb = int(path[:, 1].max()) + 1
    grid = np.linspace(0, tb - 1, 20 * tb)
    curve = np.asarray(true_a(torch.from_numpy(grid)))
    i = path[:, 0].double().numpy()
    j = path[:, 1].double().numpy()
    err_a = np.abs(i - np.asarray(true_a(torch.from_numpy(j))))  # in frames of a
    err_b = np.abs(j - np.interp(i, curve, grid))  # in frames of b
    err = np.minimum(err_a, err_b)
    assert err.max() <= max_err, (
        f"pair {path[int(err.argmax())].tolist()} is {err.max():.2f} frames off the true warp"
    )


def path_cost(path: torch.Tensor, cost: np.ndarray) -> float:
    return float(sum(cost[i, j] for i, j in path.tolist()))


def smooth_signal(u: torch.Tensor, dims: int = 12, seed: int = 0) -> torch.Tensor:
    """A smooth multi-dimensional signal of the content position u in [0, 1]: (len(u), dims)."""
    gen = torch.Generator().manual_seed(seed)
    freqs = 0.5 + 3.0 * torch.rand(dims, generator=gen, dtype=torch.float64)
    phases = 2 * math.pi * torch.rand(dims, generator=gen, dtype=torch.float64)
    return torch.sin(2 * math.pi * u[:, None] * freqs + phases) + 0.1 * u[:, None]


def warp(v: torch.Tensor) -> torch.Tensor:
    """A monotone warp of [0, 1] onto itself (derivative >= 1 - 0.12 * 1.5 * pi > 0)."""
    return v + 0.12 * torch.sin(math.pi * v) * torch.cos(0.5 * math.pi * v)


# ----------------------------------------------------------------------------- dtw


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "sqeuclidean"])
@pytest.mark.parametrize(("ta", "tb"), [(120, 150), (150, 110), (90, 90)])
def test_known_time_warp_is_recovered_within_a_frame(metric: str, ta: int, tb: int) -> None:
    # a samples the signal uniformly; b samples the same signal at warped times.
    ua = torch.arange(ta, dtype=torch.float64) / (ta - 1)
    ub = warp(torch.arange(tb, dtype=torch.float64) / (tb - 1))
    a, b = smooth_signal(ua), smooth_signal(ub)

    def true_a(x: torch.Tensor) -> torch.Tensor:  # the frame of a that b's frame x shows
        return warp(x / (tb - 1)) * (ta - 1)

    # The warp is far from a uniform stretch, so recovering it is not trivial.
    frames_b = torch.arange(tb, dtype=torch.float64)
    assert float((frames_b * (ta - 1) / (tb - 1) - true_a(frames_b)).abs().max()) > 5

    path = dtw(a.float(), b.float(), metric=metric)
    assert_valid_path(path, ta, tb)
    assert_near_true_warp(path, true_a)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "sqeuclidean"])
@pytest.mark.parametrize("band", [None, 0.05, 1.0])
def test_identical_sequences_give_the_diagonal(metric: str, band: float | None) -> None:
    x = torch.randn(60, 8)
    path = dtw(x, x.clone(), metric=metric, band=band)
    assert torch.equal(path, torch.stack([torch.arange(60), torch.arange(60)], dim=1))


@pytest.mark.parametrize("trial", range(30))
def test_path_is_valid_and_optimal_against_a_naive_loop(trial: int) -> None:
    rng = random.Random(trial)
    ta, tb, f = rng.randint(1, 14), rng.randint(1, 14), rng.randint(1, 5)
    metric = ["cosine", "euclidean", "sqeuclidean"][trial % 3]
    gen = torch.Generator().manual_seed(trial)
    a = torch.randn(ta, f, generator=gen, dtype=torch.float64)
    b = torch.randn(tb, f, generator=gen, dtype=torch.float64)
    path = dtw(a, b, metric=metric)
    assert_valid_path(path, ta, tb)
    cost = naive_cost_matrix(a.numpy(), b.numpy(), metric)
    assert path_cost(path, cost) == pytest.approx(naive_dtw_cost(cost), rel=1e-9, abs=1e-9)


def test_a_costlier_path_is_not_returned() -> None:
    # b repeats a's middle frame: the optimal path pairs both copies with it (cost 0),
    # where the diagonal-then-last alternative costs more.
    a = torch.tensor([[0.0], [5.0], [9.0]])
    b = torch.tensor([[0.0], [5.0], [5.0], [9.0]])
    assert dtw(a, b, metric="euclidean").tolist() == [[0, 0], [1, 1], [1, 2], [2, 3]]
    assert dtw(b, a, metric="euclidean").tolist() == [[0, 0], [1, 1], [2, 1], [3, 2]]


@pytest.mark.parametrize(("ta", "tb"), [(1, 1), (1, 7), (7, 1)])
def test_degenerate_lengths(ta: int, tb: int) -> None:
    path = dtw(torch.randn(ta, 3), torch.randn(tb, 3), band=0.1)
    assert_valid_path(path, ta, tb)
    assert len(path) == max(ta, tb)


@pytest.mark.parametrize(("ta", "tb", "band"), [(80, 80, 0.1), (40, 100, 0.05), (100, 30, 0.05),
                                                (10, 60, 0.01), (60, 10, 0.01)])
def test_band_keeps_the_path_near_the_diagonal(ta: int, tb: int, band: float) -> None:
    a, b = torch.randn(ta, 4), torch.randn(tb, 4)
    path = dtw(a, b, band=band)
    assert_valid_path(path, ta, tb)
    slope = (tb - 1) / (ta - 1)
    radius = max(band * (tb - 1), slope, 1.0)
    dev = (path[:, 1].double() - path[:, 0].double() * slope).abs()
    assert float(dev.max()) <= radius + 1e-9
    if band * (tb - 1) >= max(slope, 1.0):  # not widened: relative positions within `band`
        rel = (path[:, 0].double() / (ta - 1) - path[:, 1].double() / (tb - 1)).abs()
        assert float(rel.max()) <= band + 1e-9
    # unconstrained random sequences wander further than the band
    free = dtw(a, b)
    assert float((free[:, 1].double() - free[:, 0].double() * slope).abs().max()) > radius


def test_full_band_equals_no_band() -> None:
    a, b = torch.randn(50, 6), torch.randn(70, 6)
    assert torch.equal(dtw(a, b, band=1.0), dtw(a, b))


def test_banded_cost_is_optimal_within_the_band() -> None:
    ta, tb, band = 12, 9, 0.1
    a, b = torch.randn(ta, 3, dtype=torch.float64), torch.randn(tb, 3, dtype=torch.float64)
    cost = naive_cost_matrix(a.numpy(), b.numpy(), "euclidean")
    slope = (tb - 1) / (ta - 1)
    radius = max(band * (tb - 1), slope, 1.0)
    banded = cost.copy()
    for i in range(ta):
        for j in range(tb):
            if abs(j - i * slope) > radius:
                banded[i, j] = math.inf
    path = dtw(a, b, metric="euclidean", band=band)
    assert path_cost(path, cost) == pytest.approx(naive_dtw_cost(banded), rel=1e-9)


def test_500_by_500_is_fast() -> None:
    a, b = torch.randn(500, 80), torch.randn(500, 80)
    start = time.perf_counter()
    path = dtw(a, b)
    elapsed = time.perf_counter() - start
    assert_valid_path(path, 500, 500)
    assert elapsed < 1.0, f"dtw 500 x 500 took {elapsed:.3f} s"


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (torch.randn(5), torch.randn(5, 2), {}, r"a must have shape \(t, f\)"),
        (torch.randn(0, 2), torch.randn(5, 2), {}, "at least one frame"),
        (torch.randn(4, 2), torch.randn(5, 3), {}, "same feature size"),
        (torch.randn(4, 2), torch.full((5, 2), float("nan")), {}, "b holds NaN"),
        (torch.randn(4, 2), torch.randn(5, 2), {"metric": "manhattan"}, "unknown metric"),
        (torch.randn(4, 2), torch.randn(5, 2), {"band": 0.0}, "band must be in"),
        (torch.randn(4, 2), torch.randn(5, 2), {"band": 1.5}, "band must be in"),
        ([[1.0]], torch.randn(5, 1), {}, "a must be a torch.Tensor"),
    ],
)
def test_dtw_errors(a, b, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        dtw(a, b, **kwargs)


# ----------------------------------------------------------------------------- paths


def test_path_to_index_known_answer() -> None:
    path = torch.tensor([[0, 0], [1, 1], [1, 2], [2, 2], [3, 3], [3, 4], [3, 5]])
    assert path_to_index(path, 4).tolist() == [0, 1, 2, 3]
    # numpy int32 (as stored in align.npy) works too
    assert path_to_index(path.numpy().astype(np.int32), 4).tolist() == [0, 1, 2, 3]
    # a frame of a matched with several of b takes the first
    path = torch.tensor([[0, 0], [0, 1], [0, 2], [1, 3]])
    assert path_to_index(path, 2).tolist() == [0, 3]


def test_path_to_index_inverts_a_recovered_warp() -> None:
    ta, tb = 100, 130
    ua = torch.arange(ta, dtype=torch.float64) / (ta - 1)
    ub = warp(torch.arange(tb, dtype=torch.float64) / (tb - 1))
    path = dtw(smooth_signal(ua), smooth_signal(ub), metric="euclidean")
    index = path_to_index(path, ta)
    assert index.shape == (ta,)
    assert bool((index[1:] >= index[:-1]).all())
    # b's frame j shows a's frame ub[j] * (ta - 1): the matched frames agree within a frame
    shown = ub[index] * (ta - 1)
    assert float((shown - torch.arange(ta)).abs().max()) <= 1.5


@pytest.mark.parametrize(
    ("path", "length", "match"),
    [
        (torch.tensor([[0, 0], [2, 1]]), 3, "visit every frame"),
        (torch.tensor([[0, 0], [1, 1]]), 3, "visit every frame"),
        (torch.tensor([[1, 0], [0, 1]]), 2, "sorted"),
        (torch.tensor([0, 1]), 2, r"shape \(l, 2\)"),
        (torch.tensor([[0.0, 0.0]]), 1, "integers"),
    ],
)
def test_path_to_index_errors(path, length, match) -> None:
    with pytest.raises(ValueError, match=match):
        path_to_index(path, length)


def test_check_path_accepts_valid_paths() -> None:
    for trial in range(10):
        a, b = torch.randn(5 + trial, 3), torch.randn(12 - trial, 3)
        check_path(dtw(a, b), len(a), len(b))
        check_path(dtw(a, b).numpy().astype(np.int32), len(a), len(b))


@pytest.mark.parametrize(
    ("path", "la", "lb", "match"),
    [
        ([[0, 0], [1, 1], [2, 2]], 3, 4, r"must end at \(2, 3\)"),
        ([[1, 0], [2, 1]], 3, 2, r"must start at \(0, 0\)"),
        ([[0, 0], [0, 2], [1, 3]], 2, 4, r"step 1 goes from \(0, 0\) to \(0, 2\)"),
        ([[0, 0], [1, 1], [0, 2], [1, 3]], 2, 4, "step 2"),
        ([[0, 0], [1, 1], [1, 1], [2, 2]], 3, 3, "step 2"),
        ([[0, 0], [1, 1], [2, 2], [3, 3]], 3, 3, r"must end at \(2, 2\)"),
        (np.zeros((0, 2), dtype=np.int32), 1, 1, "non-empty"),
        (np.zeros((3,), dtype=np.int32), 1, 1, r"\(l, 2\)"),
        (np.array([[0.0, 0.0]]), 1, 1, "integer dtype"),
        ([[0, 0]], 0, 1, "lengths must be >= 1"),
    ],
)
def test_check_path_rejects(path, la, lb, match) -> None:
    with pytest.raises(ValueError, match=match):
        check_path(np.asarray(path) if isinstance(path, list) else path, la, lb)


# ----------------------------------------------------------------------------- audio

SR, FPS = 16000, 25.0


def synth_speechlike(u: torch.Tensor) -> torch.Tensor:
    """A waveform whose spectrum changes continuously with the content position u (per sample):
    a rising glide with vibrato, a second wandering partial, and a syllable-like envelope.
    The pitch at a given u does not depend on how fast u advances (phases are integrated)."""
    f1 = 300 + 2400 * u + 150 * torch.sin(2 * math.pi * 5 * u)
    f2 = 1600 + 900 * torch.sin(2 * math.pi * (2.3 * u + 0.1))
    env = 0.25 + 0.75 * torch.sin(math.pi * 7 * u) ** 2
    ph1 = 2 * math.pi * torch.cumsum(f1, 0) / SR
    ph2 = 2 * math.pi * torch.cumsum(f2, 0) / SR
    return (env * (0.5 * torch.sin(ph1) + 0.3 * torch.sin(ph2))).float()


@pytest.mark.parametrize(("dur_a", "dur_b"), [(2.0, 2.6), (2.4, 1.8)])
def test_align_audio_recovers_a_known_time_warp(dur_a: float, dur_b: float) -> None:
    from decouple.data.io import Audio

    na, nb = round(dur_a * FPS), round(dur_b * FPS)
    t_a = torch.arange(round(dur_a * SR), dtype=torch.float64) / SR
    t_b = torch.arange(round(dur_b * SR), dtype=torch.float64) / SR
    a = Audio(synth_speechlike(t_a / dur_a), SR)
    b = Audio(synth_speechlike(warp(t_b / dur_b)), SR)  # the same content, warped in time
    path = align_audio(a, b, na, nb, FPS)
    assert_valid_path(path, na, nb)

    def true_a(x: torch.Tensor) -> torch.Tensor:
        # frame x of b (time x / fps) shows content warp(x / fps / dur_b): a's frame
        return warp(x / FPS / dur_b) * dur_a * FPS

    frames_b = torch.arange(nb, dtype=torch.float64)
    uniform = frames_b * (na - 1) / (nb - 1)
    assert float((uniform - true_a(frames_b)).abs().max()) > 3  # a uniform stretch is wrong
    assert_near_true_warp(path, true_a)


def test_align_audio_resamples_to_the_feature_rate() -> None:
    from decouple.data.io import Audio, resample_audio

    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    wave = synth_speechlike(t / 2.0)
    ref = align_audio(Audio(wave, SR), Audio(wave, SR), 50, 50, FPS)
    assert torch.equal(ref, torch.stack([torch.arange(50)] * 2, dim=1))
    other = Audio(resample_audio(wave, SR, 22050), 22050)
    path = align_audio(Audio(wave, SR), other, 50, 50, FPS)
    assert float((path[:, 0] - path[:, 1]).abs().max()) <= 1


def test_align_audio_errors() -> None:
    from decouple.data.io import Audio

    a = Audio(torch.zeros(1600), SR)
    with pytest.raises(ValueError, match="frame counts"):
        align_audio(a, a, 0, 4, FPS)
    with pytest.raises(ValueError, match="fps"):
        align_audio(a, a, 4, 4, 0.0)
