"""Edit the emotion of a talking-head video with a trained run; the source's speech is kept.

    python recipes/spfem/generate.py --run RUN_DIR --source VIDEO
        [--reference VIDEO_OR_IMAGE | --emotion NAME | --text "..."] [--intensity 0..1]
        [--out OUT.mp4] [--device cpu|cuda] [--batch N] [--no-face-detect | --face-detect]

    source video (t frames, fps, audio)
      decode (decouple.data.io.read_av: frames and the source's own audio track)
      faces: the frames as they are when they already are model-size face crops, else
             detect + track + square crop (decouple.data.faces.crop_faces, Haar by default)
             and resize to the model's size (--no-face-detect: the centre square)
      target code z_t: --reference (emotion encoder, mean over up to 64 of its frames),
             --emotion (the prompt prior's row), --text (the prior's text encoder)
      --intensity a < 1: z = mix_codes(z_s, z_t, a) with z_s the source's own code (the
             emotion encoder on up to 64 source crops)
      edit in batches: G(crops, z)
      paste back: frame += feather_mask * resize(G(crop) - crop) over the crop box
      encode (decouple.data.io.write_av: H.264 + the source audio as AAC; no audio: video only)

The face rule: with neither flag, a video whose frames are square and exactly the model's
size (SynthTalk clips, or crops made by the data converters) is used as it is; any other size
goes through face detection. `--face-detect` forces detection; `--no-face-detect` skips it and
edits the centre square of each frame (the whole frame when it is square).

Pasting adds the edit (the generator's output minus its input crop), resized to the crop box
and faded out towards the box's border by a feathered mask, to the full-resolution frame:
pixels the generator leaves alone keep their original detail (no down- and up-sampling blur),
and there is no seam at the box's border.

The output has the source's frame count, frame rate and frame size, and the source's audio
(re-encoded as AAC). Errors (a missing file, no face, an unknown emotion, a run whose weights
do not fit its config or whose `spfem` stage has not finished) stop with exit code 2 and a
message that names the file; a source without audio gives a warning and a video-only output.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RECIPE = Path(__file__).resolve().parent
if str(_RECIPE) not in sys.path:  # imported from elsewhere (tests, bench)
    sys.path.insert(0, str(_RECIPE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from config import STAGES  # noqa: E402
from configlib import ConfigError  # noqa: E402
from generator import mix_codes  # noqa: E402
from model import (  # noqa: E402
    DONE,
    Models,
    emotion_code,
    load_models,
    read_run_info,
    stage_dir,
)
from torch import Tensor  # noqa: E402

from decouple.checkpoint import CheckpointError  # noqa: E402
from decouple.data.faces import crop_boxes, crop_faces, detect_faces, fixed_box  # noqa: E402
from decouple.data.io import MediaError, read_av, read_video, write_av, write_video  # noqa: E402

__all__ = [
    "FACE_CHECK_FRAMES",
    "Faces",
    "GenerateError",
    "NoAudioWarning",
    "Result",
    "edit_crops",
    "face_crops",
    "feather_mask",
    "generate",
    "load_run",
    "main",
    "output_path",
    "parser",
    "paste_edits",
    "read_frames",
    "sample_frames",
    "target_code",
    "to_uint8",
]

FACE_CHECK_FRAMES = 50
"""Frames at the start of a video searched for a face (every `DETECT_EVERY`-th) before the
whole video is tracked; no face there is an error."""
DETECT_EVERY = 5
"""Detection interval of the face tracker (`crop_faces(every=...)`)."""
CODE_FRAMES = 64
"""At most this many frames (evenly spaced) are averaged for a reference's or the source's
emotion code."""
FEATHER = 0.12
"""Width of the paste mask's fade, as a fraction of the crop box side (inside the crop's
margin: the face box covers the middle 1 / 1.5 of a crop with margin 0.25)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
"""Reference files read as a single image (with OpenCV); everything else is a video."""
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
"""Output containers."""


class GenerateError(RuntimeError):
    """A user-facing error: the message names the file and what was expected (exit 2)."""


class NoAudioWarning(UserWarning):
    """The source has no audio stream: the output is video only."""


# ------------------------------------------------------------------------------------ inputs


def read_frames(path: str | Path) -> Tensor:
    """Frames of a reference: a video's frames, or an image as one frame.

    Args:
        path: A video, or an image (`IMAGE_SUFFIXES`, read with OpenCV).

    Returns:
        Frames (n, 3, h, w), uint8 RGB.

    Raises:
        GenerateError: The file is missing or cannot be decoded.

    Examples:
        >>> read_frames("/nonexistent/ref.png")
        Traceback (most recent call last):
        ...
        generate.GenerateError: /nonexistent/ref.png: no such file (--reference)
    """
    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"{path}: no such file (--reference)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        import cv2

        image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise GenerateError(f"{path}: OpenCV cannot decode this image (--reference)")
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    try:
        return read_video(path).frames
    except MediaError as err:
        raise GenerateError(f"{err} (--reference: expected a video or an image "
                            f"{'/'.join(IMAGE_SUFFIXES)})") from err  # fmt: skip


def sample_frames(frames: Tensor, limit: int = CODE_FRAMES) -> Tensor:
    """At most `limit` evenly spaced frames (first and last included).

    Args:
        frames: (n, ...).
        limit: Most frames kept.

    Returns:
        (min(n, limit), ...).

    Examples:
        >>> sample_frames(torch.arange(10), 4).tolist()
        [0, 3, 6, 9]
    """
    n = len(frames)
    if n <= limit:
        return frames
    return frames[torch.linspace(0, n - 1, limit).round().long()]


# ------------------------------------------------------------------------------------- faces


@dataclass
class Faces:
    """What the generator sees of a clip.

    Attributes:
        crops: Face crops (t, 3, s, s), uint8 RGB, s = the model's size.
        boxes: Crop boxes (t, 4) `(x0, y0, x1, y1)` in frame pixels, or None when the frames
            themselves are the crops (nothing to paste back).
        mode: How they were made: `as is`, `centre square` or the detector's name.
    """

    crops: Tensor
    boxes: Tensor | None
    mode: str


def face_crops(
    frames: Tensor,
    size: int,
    *,
    detect: bool | None = None,
    detector: str = "haar",
    margin: float = 0.25,
    name: str = "video",
) -> Faces:
    """Model-size face crops of a clip (see the face rule in the module docstring).

    Args:
        frames: Frames (t, 3, h, w), uint8 RGB.
        size: The model's frame side.
        detect: True: detect faces; False: the centre square; None: the frames as they are
            when they are `size x size`, else detect.
        detector: `haar` or `dlib` (decouple.data.faces).
        margin: Crop margin around the face box (`square_boxes`).
        name: The file, for messages.

    Returns:
        The [Faces][generate.Faces].

    Raises:
        GenerateError: No face in any of the first `FACE_CHECK_FRAMES` frames.

    Examples:
        >>> faces = face_crops(torch.zeros(3, 3, 64, 64, dtype=torch.uint8), 64)
        >>> faces.mode, faces.boxes is None
        ('as is', True)
        >>> face_crops(torch.zeros(3, 3, 48, 80, dtype=torch.uint8), 32, detect=False).mode
        'centre square'
    """
    t, _, h, w = frames.shape
    if detect is None:
        detect = not (h == w == size)
    if not detect:
        if h == w == size:
            return Faces(frames, None, "as is")
        boxes = fixed_box(h, w).expand(t, 4).clone()
        return Faces(crop_boxes(frames, boxes, size), boxes, "centre square")
    checked = range(0, min(t, FACE_CHECK_FRAMES), DETECT_EVERY)
    if not any(len(detect_faces(frames[k], detector=detector)) for k in checked):
        raise GenerateError(
            f"{name}: no face found in any of the first {min(t, FACE_CHECK_FRAMES)} frames "
            f"(detector {detector!r}, every {DETECT_EVERY}th frame checked, {w}x{h}); for a "
            "video that is already a face crop, pass --no-face-detect"
        )
    crops, boxes = crop_faces(frames, size, detector=detector, margin=margin, every=DETECT_EVERY)
    return Faces(crops, boxes, detector)


@functools.lru_cache(maxsize=64)
def feather_mask(side: int, feather: float = FEATHER) -> np.ndarray:
    """The paste mask of a square box: 1 inside, a smooth fade to 0 at the border.

    Along each axis, r(i) = smoothstep(clip(d(i) / (feather * side), 0, 1)) with d the
    distance of pixel centre i from the nearer edge; the mask is r(y) r(x).

    Args:
        side: Box side in pixels.
        feather: Fade width as a fraction of the side.

    Returns:
        (side, side) float32 in [0, 1] (do not modify: cached).

    Examples:
        >>> m = feather_mask(20, 0.25)
        >>> float(m[10, 10]), round(float(m[0, 10]), 3), bool((m == m.T).all())
        (1.0, 0.028, True)
    """
    i = np.arange(side, dtype=np.float64) + 0.5
    d = np.minimum(i, side - i) / max(feather * side, 1e-6)
    r = np.clip(d, 0.0, 1.0)
    r = r * r * (3 - 2 * r)
    mask = np.outer(r, r).astype(np.float32)
    mask.setflags(write=False)
    return mask


def paste_edits(frames: Tensor, boxes: Tensor, delta: Tensor, feather: float = FEATHER
                ) -> Tensor:  # fmt: skip
    """Add resized, feathered crop edits to full frames.

    Each edit (the generator's output minus its input crop) is resized to its box side
    (bilinear up, area down), multiplied by [feather_mask][generate.feather_mask] and added
    to the frame over the box (the box is placed as `decouple.data.faces.crop_boxes` cut it;
    parts outside the frame are dropped).

    Args:
        frames: Frames (n, 3, h, w), uint8 RGB.
        boxes: Crop boxes (n, 4) `(x0, y0, x1, y1)`.
        delta: Edits (n, 3, s, s), float, in units of [0, 1] intensities.
        feather: Fade width of the mask.

    Returns:
        New frames (n, 3, h, w), uint8.

    Examples:
        >>> frames = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        >>> out = paste_edits(frames, torch.tensor([[2.0, 2.0, 6.0, 6.0]]),
        ...                   torch.full((1, 3, 4, 4), 0.5), feather=0.01)
        >>> out[0, 0].sum().item() == 16 * 128, out[0, 0, 2:6, 2:6].unique().tolist()
        (True, [128])
    """
    import cv2

    _, _, h, w = frames.shape
    out = frames.permute(0, 2, 3, 1).numpy().astype(np.float32)  # n h w c
    d = (delta.detach().float().cpu() * 255.0).permute(0, 2, 3, 1).numpy()
    s = d.shape[1]
    for i, (x0, y0, x1, _) in enumerate(boxes.to(torch.float64).tolist()):
        side = max(1, round(x1 - x0))
        left = min(max(round(x0), 1 - side), w - 1)  # the placement crop_boxes used
        top = min(max(round(y0), 1 - side), h - 1)
        interp = cv2.INTER_AREA if side < s else cv2.INTER_LINEAR
        patch = cv2.resize(np.ascontiguousarray(d[i]), (side, side), interpolation=interp)
        patch *= feather_mask(side, feather)[:, :, None]
        ix0, iy0 = max(left, 0), max(top, 0)
        ix1, iy1 = min(left + side, w), min(top + side, h)
        out[i, iy0:iy1, ix0:ix1] += patch[iy0 - top : iy1 - top, ix0 - left : ix1 - left]
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return torch.from_numpy(out.astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


# -------------------------------------------------------------------------------------- run


def _stage_named_in(message: str, run_dir: Path) -> str:
    for stage in STAGES:
        if str(stage_dir(run_dir, stage)) + "/" in message or f"/{stage}/" in message:
            return stage
    return "?"


def load_run(run_dir: str | Path) -> Models:
    """The run's trained models, with errors that name the run folder and the stage.

    Args:
        run_dir: The run folder.

    Returns:
        The [Models][model.Models] (generator included).

    Raises:
        GenerateError: Not a run folder, a stage not finished, weights that do not fit the
            run's config.

    Examples:
        >>> load_run("/nonexistent/run")
        Traceback (most recent call last):
        ...
        generate.GenerateError: /nonexistent/run: no such run folder (--run)
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GenerateError(f"{run_dir}: no such run folder (--run)")
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise GenerateError(f"{config}: missing; --run must be a run folder written by "
                            "recipes/spfem/train.py")  # fmt: skip
    try:
        models = load_models(run_dir)
    except (CheckpointError, ValueError) as err:
        stage = _stage_named_in(str(err), run_dir)
        raise GenerateError(
            f"{run_dir}: the weights of stage {stage!r} do not fit the run's config "
            f"({config}): was this checkpoint trained with another config? {err}"
        ) from err
    except ConfigError as err:
        raise GenerateError(f"{config}: {err}") from err
    except FileNotFoundError as err:
        raise GenerateError(str(err)) from err
    if models.generator is None:
        raise GenerateError(
            f"{run_dir}: stage 'spfem' has not finished (no {stage_dir(run_dir, 'spfem') / DONE}"
            f"), so the run has no trained generator; train it with `accelerate launch "
            f"recipes/spfem/train.py --config {config} --stages spfem`"
        )
    return models


def target_code(
    models: Models,
    *,
    reference: Tensor | None = None,
    emotion: str | None = None,
    text: str | None = None,
) -> Tensor:
    """The target emotion code (1, D) from a reference's face crops, a label or a text.

    Args:
        models: The run's models (on their device).
        reference: Reference face crops (n, 3, s, s), uint8 (averaged over up to
            `CODE_FRAMES` of them).
        emotion: An emotion name of the run.
        text: A free-text description.

    Returns:
        A unit-norm code (1, D).

    Raises:
        GenerateError: An unknown emotion (the message lists the run's emotions), a text
            longer than the text encoder's context.
    """
    device = next(models.generator.parameters()).device  # type: ignore[union-attr]
    if reference is not None:
        return emotion_code(models, reference=sample_frames(reference).to(device))
    if emotion is not None:
        if emotion not in models.emotion_names:
            raise GenerateError(f"unknown emotion {emotion!r} (--emotion); this run knows "
                                f"{', '.join(models.emotion_names)}")  # fmt: skip
        return emotion_code(models, label=emotion)
    if text is None:
        raise GenerateError("give one of --reference, --emotion, --text")
    try:
        return emotion_code(models, text=text)
    except ValueError as err:
        raise GenerateError(f"--text: {err}") from err


def output_path(run_dir: str | Path, source: str | Path, *, emotion: str | None = None,
                reference: str | Path | None = None, text: str | None = None,
                intensity: float = 1.0) -> Path:  # fmt: skip
    """The default output: `<run_dir>/generated/<source stem>-<target>[-i<a>].mp4`.

    Args:
        run_dir: The run folder.
        source: The source video.
        emotion: The target emotion (if any).
        reference: The reference file (if any).
        text: The text (if any): its first words.
        intensity: The edit intensity (added when below 1).

    Returns:
        The path.

    Examples:
        >>> output_path("runs/demo", "in/clip.mp4", emotion="happy").as_posix()
        'runs/demo/generated/clip-happy.mp4'
        >>> output_path("r", "a.mp4", text="A broad, happy smile!", intensity=0.5).name
        'a-text-a-broad-happy-smile-i0.5.mp4'
    """
    if emotion is not None:
        tag = emotion
    elif reference is not None:
        tag = f"ref-{Path(reference).stem}"
    else:
        words = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
        tag = "text-" + "-".join(words.split("-")[:5])
    if intensity < 1:
        tag += f"-i{intensity:g}"
    return Path(run_dir) / "generated" / f"{Path(source).stem}-{tag}.mp4"


def to_uint8(frames: Tensor) -> Tensor:
    """Float frames in [0, 1] (clamped) as uint8 on the CPU.

    Args:
        frames: Float frames (any shape).

    Returns:
        `round(255 * clamp(frames, 0, 1))` as uint8 on the CPU.

    Examples:
        >>> to_uint8(torch.tensor([-0.1, 0.5, 1.2])).tolist()
        [0, 128, 255]
    """
    return frames.float().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()


def edit_crops(generator: torch.nn.Module, crops: Tensor, code: Tensor,
               emit: Callable[[int, int, Tensor, Tensor], None], *, batch: int = 16,
               autocast: Any = None) -> None:  # fmt: skip
    """Run the generator over model-size face crops in batches: the one edit loop.

    For each batch of frames [i, j): `x = crops[i:j] / 255` on the generator's device,
    `y = G(x, code)` (float32), then `emit(i, j, x, y)` (the caller keeps, pastes or scores
    them). Inference mode, under `autocast` when given. Used by `generate` and by the
    evaluation recipe's `edit_frames`.

    Args:
        generator: G.
        crops: (t, 3, s, s) uint8 crops.
        code: (1, D) target code (moved to the generator's device).
        emit: Called per batch with (i, j, x, y).
        batch: Frames per generator call.
        autocast: A context manager (e.g. `torch.autocast(...)`), or None.

    Examples:
        >>> from generator import Generator
        >>> g, out = Generator(code_dim=4, channels=8), []
        >>> code = torch.nn.functional.normalize(torch.ones(1, 4), dim=1)
        >>> edit_crops(g, torch.zeros(5, 3, 16, 16, dtype=torch.uint8), code,
        ...            lambda i, j, x, y: out.append((i, j, tuple(y.shape))), batch=2)
        >>> out
        [(0, 2, (2, 3, 16, 16)), (2, 4, (2, 3, 16, 16)), (4, 5, (1, 3, 16, 16))]
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = next(generator.parameters()).device
    code = code.to(device)
    with torch.inference_mode(), (autocast if autocast is not None else nullcontext()):
        for i in range(0, len(crops), batch):
            j = min(i + batch, len(crops))
            x = crops[i:j].to(device, non_blocking=True).float().div_(255.0)
            emit(i, j, x, generator(x, code.expand(j - i, -1)).float())


def _bf16_cpu() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: torch.device, amp: bool) -> tuple[Any, str]:
    """The generator's autocast context and its precision name."""
    if not amp:
        return nullcontext(), "float32"
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "cpu" and _bf16_cpu():
        dtype = torch.bfloat16
    else:
        warnings.warn(f"--amp: no native bfloat16 on {device}; running in float32",
                      stacklevel=3)  # fmt: skip
        return nullcontext(), "float32"
    return torch.autocast(device.type, dtype=dtype), str(dtype).removeprefix("torch.")


@dataclass
class Result:
    """What [generate][generate.generate] wrote.

    Attributes:
        path: The output file.
        frames: Frames written (= the source's).
        fps: Frame rate (= the source's).
        width: Frame width.
        height: Frame height.
        audio: Whether the output has an audio track.
        faces: How faces were cropped (`as is`, `centre square`, `haar`, `dlib`).
        precision: The generator's compute precision (`float32`, `bfloat16`, `float16`).
        seconds: Wall time per step: `decode`, `faces`, `code`, `edit`, `encode`.
    """

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    audio: bool
    faces: str
    precision: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Frames over the time of decode + faces + code + edit + encode (loading excluded).

        Returns:
            Frames per second.
        """
        return self.frames / max(sum(self.seconds.values()), 1e-9)


def generate(
    models: Models,
    source: str | Path,
    out: str | Path,
    *,
    reference: str | Path | None = None,
    emotion: str | None = None,
    text: str | None = None,
    intensity: float = 1.0,
    batch: int = 16,
    face_detect: bool | None = None,
    detector: str = "haar",
    margin: float = 0.25,
    amp: bool = False,
    crf: int = 18,
    preset: str | None = "veryfast",
    progress: bool = True,
) -> Result:
    """Edit a source video toward a target emotion and write it with the source's audio.

    Args:
        models: The run's models ([load_run][generate.load_run]), on the device to use.
        source: The source video (with audio).
        out: The output file (`.mp4`, `.m4v`, `.mov` or `.mkv`).
        reference: A reference video or image (its face's emotion).
        emotion: An emotion name of the run.
        text: A free-text description of the expression.
        intensity: a in [0, 1]: the code is `mix_codes(source code, target code, a)`.
        batch: Frames per generator call.
        face_detect: True / False / None (auto): see [face_crops][generate.face_crops].
        detector: Face detector (`haar`, `dlib`).
        margin: Crop margin.
        amp: Run the generator under autocast: bfloat16 on a CPU with native bf16 (AVX512-BF16
            or AMX; about 2x faster here, edits within a few levels of float32: mean 0.3,
            max 4 of 255 on strong random edits), bfloat16 or float16 on CUDA. Without
            native support: float32 and a warning.
        crf: H.264 constant rate factor of the output.
        preset: x264 preset of the output.
        progress: Show a tqdm progress bar.

    Returns:
        The [Result][generate.Result].

    Raises:
        GenerateError: Missing files, no face, unknown emotion, bad arguments.
    """
    from tqdm import tqdm

    if sum(x is not None for x in (reference, emotion, text)) != 1:
        raise GenerateError("give exactly one of --reference, --emotion, --text")
    if not 0.0 <= intensity <= 1.0:
        raise GenerateError(f"--intensity: expected a number in [0, 1], got {intensity}")
    if batch < 1:
        raise GenerateError(f"--batch: expected an integer >= 1, got {batch}")
    source, out = Path(source), Path(out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise GenerateError(f"{out}: expected an output file ending in "
                            f"{', '.join(VIDEO_SUFFIXES)} (--out)")  # fmt: skip
    if out.resolve() == source.resolve():
        raise GenerateError(f"{out}: the output would overwrite the source (--out)")
    if not source.is_file():
        raise GenerateError(f"{source}: no such file (--source)")
    if emotion is not None and emotion not in models.emotion_names:
        raise GenerateError(f"unknown emotion {emotion!r} (--emotion); this run knows "
                            f"{', '.join(models.emotion_names)}")  # fmt: skip
    gen = models.generator
    assert gen is not None
    device = next(gen.parameters()).device
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    try:
        video, audio = read_av(source, sample_rate=None, mono=False)
    except MediaError as err:
        raise GenerateError(f"{err} (--source)") from err
    frames = video.frames
    t, _, h, w = frames.shape
    if audio is None:
        warnings.warn(f"{source}: no audio stream; the output is video only", NoAudioWarning,
                      stacklevel=2)  # fmt: skip
    seconds["decode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    faces = face_crops(frames, models.size, detect=face_detect, detector=detector,
                       margin=margin, name=str(source))  # fmt: skip
    ref_crops = None
    if reference is not None:
        ref_frames = read_frames(reference)
        ref_crops = face_crops(ref_frames, models.size, detect=face_detect, detector=detector,
                               margin=margin, name=str(reference)).crops  # fmt: skip
    seconds["faces"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    code = target_code(models, reference=ref_crops, emotion=emotion, text=text)
    if intensity < 1.0:
        own = emotion_code(models, reference=sample_frames(faces.crops).to(device))
        code = mix_codes(own, code, intensity)
    code = code.to(device)
    seconds["code"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    autocast, precision = _autocast(device, amp)
    edited = torch.empty_like(frames)
    bar = tqdm(total=t, unit="frame", desc=f"editing {source.name}", disable=not progress,
               leave=False)  # fmt: skip

    def emit(i: int, j: int, x: Tensor, y: Tensor) -> None:
        if faces.boxes is None:
            edited[i:j] = to_uint8(y)
        else:
            edited[i:j] = paste_edits(frames[i:j], faces.boxes[i:j], (y - x).cpu())
        bar.update(j - i)

    edit_crops(gen, faces.crops, code, emit, batch=batch, autocast=autocast)
    bar.close()
    seconds["edit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    if audio is not None:
        wave = audio.waveform
        if wave.dim() == 2 and wave.shape[0] > 2:  # AAC through PyAV: mono or stereo
            wave = wave.mean(0)
        write_av(out, edited, video.fps, wave, audio.sample_rate, crf=crf, preset=preset)
    else:
        write_video(out, edited, video.fps, crf=crf, preset=preset)
    seconds["encode"] = time.perf_counter() - t0
    return Result(out, t, float(video.fps), w, h, audio is not None, faces.mode, precision,
                  seconds)


# ---------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    """The command line.

    Returns:
        The parser.

    Examples:
        >>> a = parser().parse_args(["--run", "r", "--source", "s.mp4", "--emotion", "happy"])
        >>> a.intensity, a.batch, a.face_detect
        (1.0, 16, None)
    """
    p = argparse.ArgumentParser(
        prog="generate.py",
        description="Edit the emotion of a talking-head video with a trained SPFEM run; "
                    "the source's lip movement and audio are kept.",
    )  # fmt: skip
    p.add_argument("--run", required=True, help="run folder (written by train.py)")
    p.add_argument("--source", required=True, help="source video (with audio)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--reference", help="reference video or image: its face's emotion")
    target.add_argument("--emotion", help="an emotion name of the run (e.g. happy)")
    target.add_argument("--text", help='a description, e.g. "a broad smile"')
    p.add_argument("--intensity", type=float, default=1.0,
                   help="edit strength in [0, 1] (0 = the source's own emotion)")
    p.add_argument("--out", help="output .mp4 (default: RUN/generated/<source>-<target>.mp4)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--batch", type=int, default=16, help="frames per generator call")
    faces = p.add_mutually_exclusive_group()
    faces.add_argument("--no-face-detect", dest="face_detect", action="store_false",
                       default=None,
                       help="no detection: edit the centre square of each frame")
    faces.add_argument("--face-detect", dest="face_detect", action="store_true",
                       help="detect faces even in frames of the model's size")
    p.add_argument("--detector", choices=("haar", "dlib"), default="haar")
    p.add_argument("--margin", type=float, default=0.25, help="crop margin around the face box")
    p.add_argument("--amp", action="store_true",
                   help="autocast the generator (bf16 on CPUs with native bf16, GPU bf16/fp16)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1; 0 = torch's default, every core); see the "
                        "README: one thread was fastest on a shared 2-core machine")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (0 lossless, 18 default)")
    p.add_argument("--preset", default="veryfast", help="x264 preset of the output")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(face_detect=None)
    return p


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:  # fmt: skip
    print(f"generate.py: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (None: `sys.argv[1:]`).

    Returns:
        0, or 2 after an error (printed to stderr).
    """
    args = parser().parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise GenerateError(f"--device {args.device}: CUDA is not available here")
        if args.emotion is not None:  # before loading anything: the names are in info.json
            try:
                names = read_run_info(args.run)["emotion_names"]
            except (FileNotFoundError, OSError, ValueError):
                names = None
            if names is not None and args.emotion not in names:
                raise GenerateError(f"unknown emotion {args.emotion!r} (--emotion); the run "
                                    f"{args.run} knows {', '.join(names)}")  # fmt: skip
        if not Path(args.source).is_file():
            raise GenerateError(f"{args.source}: no such file (--source)")
        t0 = time.perf_counter()
        models = load_run(args.run).to(device)
        loading = time.perf_counter() - t0
        out = Path(args.out) if args.out else output_path(
            args.run, args.source, emotion=args.emotion, reference=args.reference,
            text=args.text, intensity=args.intensity)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("always", NoAudioWarning)
            warnings.showwarning = _show_warning
            result = generate(
                models, args.source, out, reference=args.reference, emotion=args.emotion,
                text=args.text, intensity=args.intensity, batch=args.batch,
                face_detect=args.face_detect, detector=args.detector, margin=args.margin,
                amp=args.amp, crf=args.crf, preset=args.preset, progress=args.progress,
            )  # fmt: skip
    except GenerateError as err:
        print(f"generate.py: error: {err}", file=sys.stderr)
        return 2
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items())
    print(f"wrote {result.path}: {result.frames} frames at {result.fps:g} fps, "
          f"{result.width}x{result.height}, audio: "
          f"{'the source audio' if result.audio else 'none (video only)'}; faces: "
          f"{result.faces}; {result.precision}; {result.frames_per_second:.1f} frames/s "
          f"({steps}; models loaded in {loading:.2f} s, {device})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
