"""`DlibFaceEmbedder`: dlib's 128-d face-recognition embedding, offline.

dlib's face-recognition network (`dlib_face_recognition_resnet_model_v1.dat`, a ResNet-34-like
network trained on about 3 million faces; 99.38% on LFW, two faces of one person are usually
less than 0.6 apart in Euclidean distance) embeds a face chip that dlib cuts out and aligns
with its 5-point shape predictor (`shape_predictor_5_face_landmarks.dat`). Both files ship in
the PyPI package `face_recognition_models`, and dlib itself in the prebuilt wheel `dlib-bin`:
nothing is downloaded at run time. This is the offline identity embedder of the metrics
(identity similarity, `decouple.metrics.similarity.identity_similarity`), an alternative to
an ArcFace [IResNet][decouple.encoders.IResNet] whose weights must be fetched by hand.

    pip install 'decouple[identity]'    # dlib-bin + face_recognition_models: about 4 MB + 100 MB

Per frame: the face box (dlib's HOG frontal-face detector through
`decouple.data.faces.detect_faces`, on the frame enlarged `2 ** upsample` times;
or the whole frame for frames that are already face crops) -> 5 landmarks -> aligned 150 x 150
chip (with `padding` around the face) -> 128-d descriptor.

`face_recognition_models` is located without being imported: its `__init__` imports
`pkg_resources`, which setuptools no longer ships (setuptools >= 81).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.encoders.spec import ImageSpec

__all__ = ["DLIB_MODEL_FILES", "DlibFaceEmbedder"]

DLIB_MODEL_FILES: dict[str, str] = {
    "shape_predictor": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}
"""The two dlib model files the embedder reads, by role (as named in
`face_recognition_models/models/` and on dlib.net)."""

_INSTALL = (
    "pip install 'decouple[identity]' (or: pip install dlib-bin face_recognition_models; "
    "dlib's prebuilt wheel, about 4 MB, and its model files, about 100 MB)"
)
_BOXES = ("detect", "frame")
_ON_MISSING = ("warn", "raise")


# The helpers below are shared with decouple.encoders.dlib_landmarks (`who` names the caller).


def _import_dlib(who: str = "DlibFaceEmbedder") -> Any:
    try:
        import dlib
    except ImportError as err:
        raise ImportError(f"{who} needs dlib: {_INSTALL}") from err
    return dlib


def _default_models_dir(
    who: str = "DlibFaceEmbedder", files: tuple[str, ...] = tuple(DLIB_MODEL_FILES.values())
) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{who} needs the dlib model files of face_recognition_models: {_INSTALL}; "
            "or pass models_dir=<folder with " + " and ".join(files) + ">"
        )  # fmt: skip
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _model_path(folder: str | os.PathLike, role: str, name: str) -> Path:
    """`folder / name`, or FileNotFoundError naming the dlib model file of that role."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (the dlib {role.replace('_', ' ')} model {name}; "
            f"{_INSTALL}, or download it from dlib.net and bunzip2 it)"
        )  # fmt: skip
    return path


@functools.lru_cache(maxsize=4)
def _load_models(folder: str) -> tuple[Any, Any]:
    """(shape predictor, recognition model) from `folder`, loaded once per process."""
    dlib = _import_dlib()
    paths = {role: _model_path(folder, role, name) for role, name in DLIB_MODEL_FILES.items()}
    return (dlib.shape_predictor(str(paths["shape_predictor"])),
            dlib.face_recognition_model_v1(str(paths["recognition"])))  # fmt: skip


def _uint8_hwc(frames: Tensor, spec: ImageSpec) -> np.ndarray:
    """(b, 3, h, w) uint8 / float [0, 1] (checked against `spec`) -> (b, h, w, 3) uint8 numpy."""
    spec.check(frames)
    if frames.dtype != torch.uint8:
        frames = (spec.to_unit(frames.detach()) * 255).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(frames.cpu().permute(0, 2, 3, 1).numpy())


def _detect_boxes(images: np.ndarray, upsample: int) -> tuple[np.ndarray, list[int]]:
    """dlib's HOG face box of each (h, w, 3) uint8 image (the largest face), found on the image
    enlarged `2 ** upsample` times (bilinear) and scaled back.

    Returns:
        (b, 4) float32 `(x0, y0, x1, y1)` pixels (x1, y1 exclusive), NaN rows where no face
        was found, and the indices of those frames.
    """
    from decouple.data.faces import detect_faces

    boxes = np.full((len(images), 4), np.nan, np.float32)
    scale = 2**upsample
    missing = []
    for i, image in enumerate(images):
        frame = torch.from_numpy(image).permute(2, 0, 1)
        if scale > 1:
            frame = F.interpolate(frame[None].float(), scale_factor=scale, mode="bilinear",
                                  align_corners=False)[0]  # fmt: skip
            frame = frame.round().clamp(0, 255).to(torch.uint8)
        found = detect_faces(frame, detector="dlib")  # largest first
        if len(found) == 0:
            missing.append(i)
        else:
            boxes[i] = found[0].numpy() / scale
    return boxes, missing


def _no_face_message(missing: list[int], b: int, h: int, w: int, upsample: int) -> str:
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    return (f"dlib's detector found no face in {len(missing)} of {b} frames ({h}x{w}; "
            f"frames {shown}) with upsample={upsample}")  # fmt: skip


class DlibFaceEmbedder(nn.Module):
    """dlib's 128-d face-recognition embedding of each frame (offline; no parameters).

    Args:
        box: How each frame's face box is found: "detect" (dlib's HOG detector; the largest
            face) or "frame" (the whole frame is the face box: for frames that are already
            face crops, such as generator outputs).
        upsample: For "detect": the frame is enlarged `2 ** upsample` times (bilinear) before
            detection, as dlib's own `detector(image, upsample)` does, so that faces smaller
            than the detector's 80 x 80 window are found (1: dlib's and face_recognition's
            usual default).
        on_missing: For "detect", a frame without a detected face: "warn" (a
            `decouple.data.faces.NoFaceWarning`, and the whole frame is used as the box) or
            "raise" (ValueError naming the frames).
        num_jitters: dlib's `num_jitters`: > 0 averages the descriptors of that many randomly
            jittered copies of the chip (slower; 0 as dlib's default).
        padding: dlib's chip padding around the face (0.25 as dlib's default).
        models_dir: Folder with the two files of `DLIB_MODEL_FILES`; None: the installed
            `face_recognition_models` package.

    Attributes:
        spec: The input convention (RGB, uint8 or float in [0, 1], any size).
        dim: 128, the embedding size.

    Raises:
        ImportError: If dlib or the model files are not installed (the message says what
            to install).
        FileNotFoundError: If `models_dir` lacks a model file.

    Examples:
        >>> import importlib.util, torch
        >>> if importlib.util.find_spec("dlib") is None:  # optional: not in any extra
        ...     print((2, 128))
        ... else:
        ...     embed = DlibFaceEmbedder(box="frame")  # frames that are face crops
        ...     print(tuple(embed(torch.full((2, 3, 96, 96), 128, dtype=torch.uint8)).shape))
        (2, 128)
    """

    dim = 128

    def __init__(
        self,
        *,
        box: str = "detect",
        upsample: int = 1,
        on_missing: str = "warn",
        num_jitters: int = 0,
        padding: float = 0.25,
        models_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if box not in _BOXES:
            raise ValueError(f"box must be one of {_BOXES}, got {box!r}")
        if on_missing not in _ON_MISSING:
            raise ValueError(f"on_missing must be one of {_ON_MISSING}, got {on_missing!r}")
        if not (isinstance(upsample, int) and 0 <= upsample <= 3):
            raise ValueError(f"upsample must be an int in 0..3, got {upsample!r}")
        if num_jitters < 0 or padding < 0:
            raise ValueError(f"num_jitters and padding must be >= 0, got {num_jitters}, {padding}")
        self._dlib = _import_dlib()
        folder = Path(models_dir) if models_dir is not None else _default_models_dir()
        self.models_dir = folder
        self._shape_predictor, self._recognition = _load_models(str(folder.resolve()))
        self.box = box
        self.upsample = upsample
        self.on_missing = on_missing
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self.spec = ImageSpec(name="DlibFaceEmbedder")

    def face_boxes(self, frames: Tensor) -> Tensor:
        """The face box of each frame, as used by `forward`.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, 4) `(x0, y0, x1, y1)` in pixels (x1, y1 exclusive), float32; the whole frame
            for `box="frame"` and for frames without a detected face (`on_missing="warn"`).

        Raises:
            ValueError: With `on_missing="raise"`, naming the frames without a face.

        Examples:
            >>> import importlib.util, torch
            >>> if importlib.util.find_spec("dlib") is not None:
            ...     embed = DlibFaceEmbedder(box="frame")
            ...     print(embed.face_boxes(torch.zeros(1, 3, 40, 60, dtype=torch.uint8)).tolist())
            ... else:
            ...     print([[0.0, 0.0, 60.0, 40.0]])
            [[0.0, 0.0, 60.0, 40.0]]
        """
        return torch.from_numpy(self._boxes(_uint8_hwc(frames, self.spec), stacklevel=3))

    def _boxes(self, images: np.ndarray, stacklevel: int) -> np.ndarray:
        b, h, w = images.shape[:3]
        whole = np.array([0, 0, w, h], np.float32)
        if self.box == "frame" or b == 0:
            return np.tile(whole, (b, 1))
        from decouple.data.faces import NoFaceWarning

        boxes, missing = _detect_boxes(images, self.upsample)
        if missing:
            boxes[missing] = whole
            what = _no_face_message(missing, b, h, w, self.upsample)
            if self.on_missing == "raise":
                raise ValueError(f"DlibFaceEmbedder: {what}; pass box='frame' for face crops or "
                                 "a larger upsample for small faces")  # fmt: skip
            warnings.warn(f"{what}; using the whole frame as their face box", NoFaceWarning,
                          stacklevel=stacklevel)  # fmt: skip
        return boxes

    def forward(self, frames: Tensor) -> Tensor:
        """The 128-d dlib face descriptor of each frame.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, 128) float32, on the device of `frames` (computed by dlib on the CPU; no
            gradient).

        Raises:
            decouple.encoders.ImageSpecError: If the frames do not follow the convention.
            ValueError: With `on_missing="raise"` and a frame without a face.
        """
        images = _uint8_hwc(frames, self.spec)
        out = np.zeros((len(images), self.dim), np.float64)
        dlib = self._dlib
        boxes = self._boxes(images, stacklevel=5)  # warn at the caller of module(frames)
        for i, (image, (x0, y0, x1, y1)) in enumerate(zip(images, boxes, strict=True)):
            left, top, right, bottom = (round(float(v)) for v in (x0, y0, x1, y1))
            rect = dlib.rectangle(left, top, right - 1, bottom - 1)  # dlib: inclusive corners
            shape = self._shape_predictor(image, rect)
            out[i] = np.asarray(self._recognition.compute_face_descriptor(
                image, shape, self.num_jitters, self.padding))  # fmt: skip
        return torch.from_numpy(out).to(device=frames.device, dtype=torch.float32)

    def extra_repr(self) -> str:
        return (f"box={self.box!r}, upsample={self.upsample}, on_missing={self.on_missing!r}, "
                f"num_jitters={self.num_jitters}, padding={self.padding}")  # fmt: skip
