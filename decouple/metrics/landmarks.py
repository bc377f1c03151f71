"""Landmark distances between paired frames: LMD, M-LMD (mouth) and F-LMD (face), float64.

For predicted and true landmarks `(t, k, 2)` (frames, points, x y in pixels) and a set P of
point indices,

    LMD = 1 / (t |P|) * sum_i sum_{p in P} || pred[i, p] - true[i, p] ||_2

the mean Euclidean distance over frames and points, in the landmarks' units (pixels at the
resolution they were detected at). `align="center"` first subtracts, in each frame and for
each of the two sets, the mean of the chosen points, so a translation of the whole set (head
motion, a crop offset) does not count; scale and rotation are not normalised.

[MOUTH][decouple.metrics.landmarks.MOUTH] and [FACE][decouple.metrics.landmarks.FACE] are
index sets of the 68-point iBUG 300-W layout (the one of dlib's `shape_predictor_68` and of
SynthTalk's landmarks): the mouth is points 48-67 (outer lip 48-59, inner lip 60-67), the
whole face all 68 points.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FACE",
    "MOUTH",
    "face_landmark_distance",
    "landmark_distance",
    "mouth_landmark_distance",
]

MOUTH: tuple[int, ...] = tuple(range(48, 68))
"""The 20 mouth points of the 68-point layout: outer lip 48-59, inner lip 60-67."""

FACE: tuple[int, ...] = tuple(range(68))
"""All 68 points: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67."""

_ALIGNS = ("none", "center")


def _as_landmarks(x: Tensor | np.ndarray, where: str, name: str) -> Tensor:
    if isinstance(x, Tensor):
        t = x.detach().to("cpu", torch.float64)
    elif isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"{where}: {name} must hold numbers, got dtype {x.dtype}")
        t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    else:
        raise TypeError(f"{where}: {name} must be a (t, k, 2) tensor or array, got "
                        f"{type(x).__name__}")  # fmt: skip
    if t.dim() != 3 or t.shape[-1] not in (2, 3):
        hint = " (one frame: add a frame axis with x[None])" if t.dim() == 2 else ""
        raise ValueError(f"{where}: {name} must be (t, k, 2) landmarks (frames, points, x y), "
                         f"got shape {tuple(t.shape)}{hint}")  # fmt: skip
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{where}: {name} holds no landmarks (shape {tuple(t.shape)})")
    bad = ~torch.isfinite(t).flatten(1).all(dim=1)
    if bool(bad.any()):
        frames = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, frames[:5])) + (", ..." if len(frames) > 5 else "")
        raise ValueError(f"{where}: {name} holds non-finite values in {len(frames)} frame(s) "
                         f"({shown}); drop frames where detection failed")  # fmt: skip
    return t


def _indices(points: Sequence[int] | None, k: int, where: str) -> list[int] | None:
    if points is None:
        return None
    try:
        if isinstance(points, (str, bytes)):
            raise TypeError
        idx = [operator.index(p) for p in points]  # ints, numpy ints, integer tensors
    except TypeError:
        raise TypeError(f"{where}: points must be a sequence of point indices (ints), got "
                        f"{points!r}") from None  # fmt: skip
    if not idx:
        raise ValueError(f"{where}: points is empty")
    out_of_range = [p for p in idx if not 0 <= p < k]
    if out_of_range:
        raise ValueError(f"{where}: points {out_of_range[:5]} are out of range for {k} "
                         f"landmarks per frame (0..{k - 1})")  # fmt: skip
    if len(set(idx)) != len(idx):
        raise ValueError(f"{where}: points repeats indices (each point must count once)")
    return idx


def landmark_distance(
    pred: Tensor | np.ndarray,
    true: Tensor | np.ndarray,
    *,
    points: Sequence[int] | None = None,
    align: str = "none",
) -> float:
    """Mean Euclidean distance between paired landmarks, over frames and chosen points.

    Args:
        pred: (t, k, 2) landmarks of the generated frames (x, y; (t, k, 3) also works).
        true: (t, k, 2) landmarks of the paired real frames, the same shape.
        points: Indices of the points to use (e.g. `MOUTH`); None for all k.
        align: "none", or "center": subtract each frame's mean of the chosen points from
            each set first (translation-invariant).

    Returns:
        The mean distance, in the landmarks' units.

    Raises:
        ValueError: If the shapes are not (t, k, 2) or differ, a value is not finite (frames
            named), `points` is empty, repeats or is out of range, or `align` is unknown.
        TypeError: If an input is not a tensor or array.

    Examples:
        >>> import torch
        >>> true = torch.rand(5, 68, 2, dtype=torch.float64) * 100
        >>> round(landmark_distance(true + torch.tensor([3.0, 4.0]), true), 9)
        5.0
        >>> landmark_distance(true + torch.tensor([3.0, 4.0]), true, align="center") < 1e-9
        True
    """
    where = "landmark_distance"
    if align not in _ALIGNS:
        raise ValueError(f"{where}: align must be one of {_ALIGNS}, got {align!r}")
    p = _as_landmarks(pred, where, "pred")
    q = _as_landmarks(true, where, "true")
    if p.shape != q.shape:
        raise ValueError(f"{where}: pred and true must have the same shape (frames, points, "
                         f"coordinates), got {tuple(p.shape)} and {tuple(q.shape)}")  # fmt: skip
    idx = _indices(points, p.shape[1], where)
    if idx is not None:
        p, q = p[:, idx], q[:, idx]
    if align == "center":
        p = p - p.mean(dim=1, keepdim=True)
        q = q - q.mean(dim=1, keepdim=True)
    return float((p - q).norm(dim=-1).mean())


def _fixed(name: str, pred: Tensor | np.ndarray, true: Tensor | np.ndarray,
           points: tuple[int, ...], align: str) -> float:  # fmt: skip
    for arg, x in (("pred", pred), ("true", true)):
        shape = tuple(x.shape) if isinstance(x, (Tensor, np.ndarray)) else None
        if shape is not None and len(shape) == 3 and shape[1] != 68:
            raise ValueError(f"{name}: needs the 68-point (iBUG 300-W / dlib) layout, {arg} "
                             f"has {shape[1]} points per frame")  # fmt: skip
    return landmark_distance(pred, true, points=points, align=align)


def mouth_landmark_distance(
    pred: Tensor | np.ndarray, true: Tensor | np.ndarray, *, align: str = "none"
) -> float:
    """M-LMD: `landmark_distance` over the 20 mouth points `MOUTH` (48-67) of 68.

    Args:
        pred: (t, 68, 2) landmarks of the generated frames.
        true: (t, 68, 2) landmarks of the paired real frames.
        align: "none" or "center" (subtract each frame's mean mouth point first).

    Returns:
        The mean mouth-point distance.

    Raises:
        ValueError: If the landmarks are not in the 68-point layout, or as
            `landmark_distance`.

    Examples:
        >>> import torch
        >>> true = torch.rand(4, 68, 2, dtype=torch.float64) * 64
        >>> pred = true.clone(); pred[:, 48:68, 1] += 2.0  # the mouth 2 px lower
        >>> round(mouth_landmark_distance(pred, true), 9)
        2.0
        >>> round(face_landmark_distance(pred, true), 9)  # 20 of 68 points moved by 2
        0.588235294
    """
    return _fixed("mouth_landmark_distance", pred, true, MOUTH, align)


def face_landmark_distance(
    pred: Tensor | np.ndarray, true: Tensor | np.ndarray, *, align: str = "none"
) -> float:
    """F-LMD: `landmark_distance` over all 68 points `FACE`.

    Args:
        pred: (t, 68, 2) landmarks of the generated frames.
        true: (t, 68, 2) landmarks of the paired real frames.
        align: "none" or "center" (subtract each frame's mean point first).

    Returns:
        The mean distance over all points.

    Raises:
        ValueError: If the landmarks are not in the 68-point layout, or as
            `landmark_distance`.

    Examples:
        >>> import torch
        >>> true = torch.rand(4, 68, 2, dtype=torch.float64) * 64
        >>> round(face_landmark_distance(true + 1.0, true), 9)  # sqrt(2)
        1.414213562
    """
    return _fixed("face_landmark_distance", pred, true, FACE, align)
