"""Landmark distances: a translated set gives |shift| (align none) and 0 (align center), point
subsets, a naive float64 loop reference, M-LMD / F-LMD index sets, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from decouple.metrics.landmarks import (
    FACE,
    MOUTH,
    face_landmark_distance,
    landmark_distance,
    mouth_landmark_distance,
)


def naive_lmd(pred: np.ndarray, true: np.ndarray, points: list[int], center: bool) -> float:
    total, count = 0.0, 0
    for i in range(pred.shape[0]):
        p = [pred[i, k].astype(np.float64) for k in points]
        q = [true[i, k].astype(np.float64) for k in points]
        if center:
            mp, mq = sum(p) / len(p), sum(q) / len(q)
            p, q = [v - mp for v in p], [v - mq for v in q]
        for a, b in zip(p, q, strict=True):
            total += math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
            count += 1
    return total / count


def landmarks(t: int = 6, k: int = 68, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, k, 2, generator=g, dtype=torch.float64) * 128


def test_index_sets() -> None:
    assert MOUTH == tuple(range(48, 68)) and len(MOUTH) == 20
    assert FACE == tuple(range(68))


@pytest.mark.parametrize("points", [None, MOUTH, [0, 5, 67], range(17)])
def test_translated_set(points: object) -> None:
    true = landmarks()
    shift = torch.tensor([3.0, -4.0], dtype=torch.float64)
    pred = true + shift
    assert landmark_distance(pred, true, points=points) == pytest.approx(5.0, rel=1e-12)
    assert landmark_distance(pred, true, points=points, align="center") < 1e-12


def test_per_frame_translations_and_center() -> None:
    true = landmarks(t=4)
    shifts = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    pred = true + shifts[:, None, :]
    assert landmark_distance(pred, true) == pytest.approx((1 + 2 + 5 + 0) / 4, rel=1e-12)
    assert landmark_distance(pred, true, align="center") < 1e-12


def test_subset_counts_only_its_points() -> None:
    true = landmarks()
    pred = true.clone()
    pred[:, 50] += torch.tensor([6.0, 8.0], dtype=torch.float64)  # one mouth point, 10 px
    assert mouth_landmark_distance(pred, true) == pytest.approx(10 / 20, rel=1e-12)
    assert face_landmark_distance(pred, true) == pytest.approx(10 / 68, rel=1e-12)
    assert landmark_distance(pred, true, points=[50]) == pytest.approx(10.0, rel=1e-12)
    assert landmark_distance(pred, true, points=list(range(48))) == 0.0


@pytest.mark.parametrize("center", [False, True])
def test_against_naive_loop(center: bool) -> None:
    g = torch.Generator().manual_seed(1)
    true = landmarks(t=5, seed=2)
    pred = true + 3 * torch.randn(true.shape, generator=g, dtype=torch.float64)
    align = "center" if center else "none"
    for points in (list(range(68)), list(MOUTH), [3, 1, 60]):
        ref = naive_lmd(pred.numpy(), true.numpy(), points, center)
        got = landmark_distance(pred, true, points=points, align=align)
        assert got == pytest.approx(ref, rel=1e-12)
    assert mouth_landmark_distance(pred, true, align=align) == pytest.approx(
        naive_lmd(pred.numpy(), true.numpy(), list(MOUTH), center), rel=1e-12)
    assert face_landmark_distance(pred, true, align=align) == pytest.approx(
        naive_lmd(pred.numpy(), true.numpy(), list(FACE), center), rel=1e-12)


def test_center_uses_the_chosen_points_mean() -> None:
    """Centring on the mouth removes a mouth shift even if the rest of the face moved."""
    true = landmarks()
    pred = true.clone()
    pred[:, 48:68] += torch.tensor([2.0, 1.0], dtype=torch.float64)
    pred[:, :48] += torch.tensor([-5.0, 7.0], dtype=torch.float64)
    assert mouth_landmark_distance(pred, true, align="center") < 1e-12
    assert face_landmark_distance(pred, true, align="center") > 1.0


def test_numpy_float32_and_3d_inputs() -> None:
    true = landmarks().numpy().astype(np.float32)
    assert landmark_distance(true + np.float32(2.0), true) == pytest.approx(2 * math.sqrt(2),
                                                                            rel=1e-6)  # fmt: skip
    xyz = torch.zeros(2, 5, 3, dtype=torch.float64)
    assert landmark_distance(xyz + torch.tensor([1.0, 2.0, 2.0]), xyz) == pytest.approx(3.0)
    ints = np.zeros((2, 68, 2), dtype=np.int64)
    assert mouth_landmark_distance(ints + 1, ints) == pytest.approx(math.sqrt(2))


def test_errors() -> None:
    true = landmarks()
    with pytest.raises(ValueError, match=r"same shape .* got \(6, 68, 2\) and \(5, 68, 2\)"):
        landmark_distance(true, true[:5])
    with pytest.raises(ValueError, match=r"pred must be \(t, k, 2\).*add a frame axis"):
        landmark_distance(true[0], true[0])
    with pytest.raises(ValueError, match="align must be one of"):
        landmark_distance(true, true, align="procrustes")
    with pytest.raises(ValueError, match=r"points \[68\] are out of range for 68"):
        landmark_distance(true, true, points=[0, 68])
    with pytest.raises(ValueError, match="points is empty"):
        landmark_distance(true, true, points=[])
    with pytest.raises(ValueError, match="repeats"):
        landmark_distance(true, true, points=[1, 1])
    with pytest.raises(TypeError, match="points must be a sequence"):
        landmark_distance(true, true, points="48")  # type: ignore[arg-type]
    bad = true.clone()
    bad[2, 10] = float("nan")
    bad[4, 0, 1] = float("inf")
    with pytest.raises(ValueError, match=r"true holds non-finite values in 2 frame\(s\) \(2, 4\)"):
        landmark_distance(true, bad)
    with pytest.raises(ValueError, match=r"68-point .* pred has 98 points"):
        mouth_landmark_distance(torch.zeros(2, 98, 2), torch.zeros(2, 98, 2))
    with pytest.raises(TypeError, match="must be a"):
        landmark_distance(true.tolist(), true)  # type: ignore[arg-type]
