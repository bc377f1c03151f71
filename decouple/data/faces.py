"""Face detection and square face crops for talking-head clips, offline.

The one home of face detection and cropping in `decouple`. Detectors:

- `haar` (default): OpenCV's bundled frontal-face Haar cascade
  (`haarcascade_frontalface_default.xml` from `cv2.data.haarcascades`; wheel
  `opencv-python-headless>=4.8,<5`, in the `data` extra). No download, a few ms per frame.
- `dlib`: dlib's HOG frontal-face detector, used only when dlib is installed
  (`pip install dlib-bin`); it is not part of any extra.
- `fixed`: no detection; the centred square of side `min(h, w)`. Also the fallback, with a
  [NoFaceWarning][decouple.data.faces.NoFaceWarning], when a detector finds no face in a clip.

[crop_faces][decouple.data.faces.crop_faces] detects every few frames, interpolates and
smooths the boxes over time (a steady crop, no jitter), makes them square with a margin and
resizes the crops to one size.

Boxes are `(x0, y0, x1, y1)` in pixels of the input frames (x to the right, y down; `x1`
and `y1` exclusive), float32.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DETECTORS",
    "NoFaceWarning",
    "crop_boxes",
    "crop_faces",
    "detect_faces",
    "fixed_box",
    "square_boxes",
]

DETECTORS = ("haar", "dlib", "fixed")
"""Detector names accepted by [detect_faces][decouple.data.faces.detect_faces] and
[crop_faces][decouple.data.faces.crop_faces]."""

# Haar detection runs on a copy whose longer side is at most this many pixels: faces in
# talking-head video are large, and the cascade's cost grows with the pixel count.
_DETECT_MAX_SIDE = 480


class NoFaceWarning(UserWarning):
    """No face was found, so the fixed centre crop is used instead."""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "face detection and cropping need OpenCV: pip install 'decouple[data]' "
            "(opencv-python-headless>=4.8,<5)"
        ) from err
    return cv2


@functools.lru_cache(maxsize=1)
def _haar() -> Any:
    cv2 = _cv2()
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - a broken OpenCV install
        raise RuntimeError(f"{path}: OpenCV could not load its bundled Haar cascade")
    return cascade


@functools.lru_cache(maxsize=1)
def _dlib_detector() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise ImportError(
            "detector='dlib' needs the optional dlib package (pip install dlib-bin); it is in "
            "no extra of decouple. Use detector='haar' (OpenCV, in the 'data' extra) or "
            "'fixed' instead."
        ) from err
    return dlib.get_frontal_face_detector()


def _check_frames(frames: Tensor, what: str = "frames") -> None:
    if (not isinstance(frames, Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4
            or frames.shape[1] != 3):
        got = (f"shape {tuple(frames.shape)} and dtype {frames.dtype}"
               if isinstance(frames, Tensor) else type(frames).__name__)
        raise ValueError(f"{what} must be a uint8 tensor (t, 3, h, w), got {got}")
    if frames.shape[0] == 0 or frames.shape[2] == 0 or frames.shape[3] == 0:
        raise ValueError(f"{what} is empty: shape {tuple(frames.shape)}")


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")


def fixed_box(height: int, width: int) -> Tensor:
    """The fixed crop: the centred square of side `min(height, width)`.

    Args:
        height: Frame height h.
        width: Frame width w.

    Returns:
        Box (4,) `(x0, y0, x1, y1)`, float32.

    Examples:
        >>> fixed_box(1080, 1920).tolist()
        [420.0, 0.0, 1500.0, 1080.0]
    """
    side = min(height, width)
    x0 = (width - side) / 2
    y0 = (height - side) / 2
    return torch.tensor([x0, y0, x0 + side, y0 + side], dtype=torch.float32)


def _detect_haar(image: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    h, w = image.shape[:2]
    scale = min(1.0, _DETECT_MAX_SIDE / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    # No histogram equalisation: the cascade normalises the contrast of every window itself,
    # and equalising a flat, low-detail frame only amplifies noise.
    min_side = max(24, min(gray.shape) // 8)
    found = _haar().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                     minSize=(min_side, min_side))
    if len(found) == 0:
        return np.zeros((0, 4), np.float32)
    xywh = np.asarray(found, np.float64) / scale
    return np.stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]],
                    axis=1).astype(np.float32)


def _detect_dlib(image: np.ndarray) -> np.ndarray:
    rects = _dlib_detector()(np.ascontiguousarray(image), 0)
    boxes = [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _detect(image: np.ndarray, detector: str) -> np.ndarray:
    """Boxes (n, 4) for an (h, w, 3) uint8 RGB image, largest first."""
    if detector == "fixed":
        return fixed_box(*image.shape[:2]).numpy()[None]
    boxes = _detect_haar(image) if detector == "haar" else _detect_dlib(image)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.argsort(-area, kind="stable")]


def detect_faces(image: Tensor, *, detector: str = "haar") -> Tensor:
    """Detect the faces in one image.

    Args:
        image: Image (3, h, w), uint8 RGB.
        detector: `haar`, `dlib` or `fixed` (which returns the fixed centre box).

    Returns:
        Boxes (n, 4) `(x0, y0, x1, y1)` in pixels, float32, largest first; (0, 4) when no
        face is found.

    Raises:
        ImportError: `detector='dlib'` without dlib installed (the message says what to
            install).

    Examples:
        >>> detect_faces(torch.zeros(3, 64, 64, dtype=torch.uint8)).shape  # nothing to find
        torch.Size([0, 4])
        >>> detect_faces(torch.zeros(3, 60, 80, dtype=torch.uint8), detector="fixed")
        tensor([[10.,  0., 70., 60.]])
    """
    _check_detector(detector)
    if not isinstance(image, Tensor) or image.ndim != 3:
        raise ValueError(
            "image must be a uint8 tensor (3, h, w), got "
            + (f"shape {tuple(image.shape)}" if isinstance(image, Tensor)
               else type(image).__name__)
        )
    _check_frames(image[None], "image")
    array = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
    return torch.from_numpy(_detect(array, detector))


def square_boxes(boxes: Tensor, margin: float = 0.25) -> Tensor:
    """Square boxes around the same centres, enlarged by a margin on every side.

    The side is `max(box width, box height) * (1 + 2 * margin)`: with the default 0.25, a
    quarter of the face box is added on each side, which takes a Haar box (brows to mouth)
    to the whole head.

    Args:
        boxes: Boxes (..., 4) `(x0, y0, x1, y1)`.
        margin: Fraction of the box side added on each side (>= 0).

    Returns:
        Square boxes (..., 4), float32.

    Examples:
        >>> square_boxes(torch.tensor([10.0, 20.0, 30.0, 60.0]), margin=0.25).tolist()
        [-10.0, 10.0, 50.0, 70.0]
    """
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a number >= 0, got {margin!r}")
    boxes = boxes.to(torch.float32)
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
    half = side * (1 + 2 * margin) / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1)


def crop_boxes(frames: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Cut a square box out of each frame and resize it to `size x size`.

    Parts of a box outside the frame repeat the nearest edge pixels. Downscaling uses area
    averaging (no aliasing), upscaling bilinear interpolation.

    Args:
        frames: Frames (t, 3, h, w), uint8 RGB.
        boxes: Boxes (t, 4) `(x0, y0, x1, y1)`, one per frame (rounded to whole pixels;
            the width is used as the side of the square).
        size: Output side in pixels.

    Returns:
        Crops (t, 3, size, size), uint8 RGB.

    Examples:
        >>> frames = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
        >>> crop_boxes(frames, torch.tensor([[1.0, 1.0, 3.0, 3.0]]), size=2)[0, 0]
        tensor([[ 5,  6],
                [ 9, 10]], dtype=torch.uint8)
    """
    cv2 = _cv2()
    _check_frames(frames)
    t, _, h, w = frames.shape
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if not isinstance(boxes, Tensor) or tuple(boxes.shape) != (t, 4):
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a tensor ({t}, 4) (one box per frame), got {got}")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("boxes hold NaN or infinite coordinates")
    images = frames.permute(0, 2, 3, 1).cpu().numpy()  # t h w c
    out = np.empty((t, size, size, 3), np.uint8)
    for i, (x0, y0, x1, _) in enumerate(boxes.to(torch.float64).tolist()):
        side = max(1, round(x1 - x0))
        left = min(max(round(x0), 1 - side), w - 1)  # keep at least one pixel inside
        top = min(max(round(y0), 1 - side), h - 1)
        ix0, iy0 = max(left, 0), max(top, 0)
        ix1, iy1 = min(left + side, w), min(top + side, h)
        patch = images[i, iy0:iy1, ix0:ix1]
        pads = (iy0 - top, top + side - iy1, ix0 - left, left + side - ix1)
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_REPLICATE)
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(patch, (size, size), interpolation=interp)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _pick(candidates: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The largest face, or the one nearest the previously chosen face (tracking)."""
    if previous is None or len(candidates) == 1:
        return candidates[0]
    centre = (candidates[:, :2] + candidates[:, 2:]) / 2
    prev_centre = (previous[:2] + previous[2:]) / 2
    return candidates[np.argmin(((centre - prev_centre) ** 2).sum(axis=1))]


def _smooth(boxes: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time (t, 4).

    The ends are padded by point reflection (`2 * b[0] - b[k]`), so a box moving at a steady
    speed is left unchanged up to the first and last frame (edge replication would drag the
    ends towards the middle).
    """
    half = min(width // 2, len(boxes) - 1)
    if half < 1:
        return boxes
    width = 2 * half + 1
    head = 2 * boxes[:1] - boxes[half:0:-1]
    tail = 2 * boxes[-1:] - boxes[-2 : -half - 2 : -1]
    padded = np.concatenate([head, boxes, tail])
    kernel = np.ones(width) / width
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(4)], axis=1)


def crop_faces(
    frames: Tensor,
    size: int,
    *,
    detector: str = "haar",
    margin: float = 0.25,
    every: int = 5,
) -> tuple[Tensor, Tensor]:
    """Square face crops of a clip, steady over time.

    1. Detect faces on frames 0, `every`, `2 * every`, ... and the last frame; keep the
       largest face first, then the face nearest the previous one.
    2. Interpolate the boxes linearly to every frame (constant before the first and after
       the last detection), then smooth them with a centred moving average over
       `2 * every + 1` frames (ends padded by point reflection, so steady motion is kept).
    3. Square them with `margin` ([square_boxes][decouple.data.faces.square_boxes]) and crop
       and resize ([crop_boxes][decouple.data.faces.crop_boxes]).

    When no face is found on any detection frame, every frame gets the fixed centre crop
    ([fixed_box][decouple.data.faces.fixed_box], no margin) and a
    [NoFaceWarning][decouple.data.faces.NoFaceWarning] is issued.

    Args:
        frames: Frames (t, 3, h, w), uint8 RGB.
        size: Side of the output crops in pixels (use an even size for yuv420p video).
        detector: `haar` (OpenCV's bundled cascade), `dlib` (if installed) or `fixed`.
        margin: Fraction of the face box side added on each side.
        every: Detect on every `every`-th frame (1 = every frame).

    Returns:
        Crops (t, 3, size, size) uint8 RGB, and the crop boxes (t, 4) `(x0, y0, x1, y1)` in
        input pixels (float32; they may reach outside the frame, where edge pixels are
        repeated).

    Raises:
        ImportError: `detector='dlib'` without dlib installed.

    Examples:
        >>> frames = torch.zeros(4, 3, 48, 64, dtype=torch.uint8)
        >>> crops, boxes = crop_faces(frames, 32, detector="fixed")
        >>> tuple(crops.shape), boxes[0].tolist()
        ((4, 3, 32, 32), [8.0, 0.0, 56.0, 48.0])
    """
    _check_frames(frames)
    _check_detector(detector)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a number >= 0, got {margin!r}")
    t, _, h, w = frames.shape
    if detector == "fixed":
        boxes = fixed_box(h, w).expand(t, 4).clone()
        return crop_boxes(frames, boxes, size), boxes

    keys = sorted(set(range(0, t, every)) | {t - 1})
    found_at: list[int] = []
    found: list[np.ndarray] = []
    previous = None
    for k in keys:
        image = np.ascontiguousarray(frames[k].permute(1, 2, 0).cpu().numpy())
        candidates = _detect(image, detector)
        if len(candidates):
            previous = _pick(candidates, previous)
            found_at.append(k)
            found.append(previous)
    if not found:
        warnings.warn(
            f"no face found by detector '{detector}' on any of {len(keys)} frames checked "
            f"(of {t} frames, {h}x{w}); using the fixed centre crop",
            NoFaceWarning,
            stacklevel=2,
        )
        boxes = fixed_box(h, w).expand(t, 4).clone()
        return crop_boxes(frames, boxes, size), boxes

    anchors = np.stack(found).astype(np.float64)  # (k, 4)
    grid = np.arange(t)
    track = np.stack([np.interp(grid, found_at, anchors[:, c]) for c in range(4)], axis=1)
    track = _smooth(track, 2 * every + 1)
    boxes = square_boxes(torch.from_numpy(track), margin)
    return crop_boxes(frames, boxes, size), boxes
