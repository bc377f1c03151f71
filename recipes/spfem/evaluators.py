"""The SynthTalk evaluator models: four small networks, trained once and frozen, that judge SPFEM.

The SynthTalk benchmark scores an edit of a held-out speaker's clip with models that know
nothing of the CDRL encoders (other architectures: residual nets with BatchNorm and a
max-pool stem, not the conv-BN-ReLU tower of `decouple.encoders.ConvBackbone`; other seeds)
and that never saw a held-out speaker:

| model | input | output | scores |
|---|---|---|---|
| `emotion` ([EmotionClassifier][evaluators.EmotionClassifier]) | frames | logits over the corpus's emotions | target-emotion accuracy |
| `mouth` ([MouthRegressor][evaluators.MouthRegressor]) | frames | the 4 mouth parameters `MOUTH_PARAMS` | mean abs(R(output) - m_true) against the counterfactual mouth track |
| `sync` ([LipSyncNet][evaluators.LipSyncNet]) | 5-frame windows, 13 x 20 MFCC windows | embeddings | LSE-D / LSE-C (`decouple.metrics.sync.lip_sync`) |
| `embed` ([IdentityEmbedder][evaluators.IdentityEmbedder]) | frames | unit-norm identity embeddings | Frechet distances, identity similarity |

All four take frames (b, 3, h, w) RGB, uint8 or float in [0, 1], resize them to 64 x 64
(bilinear, antialiased; a no-op for the 64 px benchmark) and normalise them inside. The mouth
regressor and the sync model look at the lower face only: rows 32-55 and columns 16-47 of the
64 px frame ([lower_face][evaluators.lower_face], where SynthTalk draws the mouth of every
speaker).

[train_evaluators][evaluators.train_evaluators] trains them on the corpus's **train** split
(every emotion and level of the training speakers), measures them on the **test** split (the
held-out speakers) and writes `<out_dir>/{emotion,mouth,sync,embed}.safetensors` and
`evaluators.json` (format, settings, corpus fingerprint, seed, summary; written last, so its
presence marks a complete set). [load_evaluators][evaluators.load_evaluators] reads them back
frozen.

This is recipe code: scripts import it from their folder (`sys.path` holds the script's
folder when it runs).
"""  # noqa: E501

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.checkpoint import load_weights, save_weights
from decouple.encoders import freeze
from decouple.encoders.spec import ImageSpec

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "MODELS",
    "VERSION",
    "WEIGHT_FILES",
    "WORK_SIZE",
    "EmotionClassifier",
    "Evaluators",
    "IdentityEmbedder",
    "LipSyncNet",
    "MouthRegressor",
    "TrainSettings",
    "corpus_fingerprint",
    "load_evaluators",
    "lower_face",
    "train_evaluators",
]

FORMAT = "spfem-evaluators"
"""The `format` field of `evaluators.json`."""
VERSION = 1
"""Version of the folder's layout (the `version` field of `evaluators.json`)."""
CONFIG_FILE = "evaluators.json"
"""Settings, corpus fingerprint, seed and summary; written last."""
MODELS: tuple[str, ...] = ("emotion", "mouth", "sync", "embed")
"""The four evaluator models, in training order."""
WEIGHT_FILES: Mapping[str, str] = {name: f"{name}.safetensors" for name in MODELS}
"""Weight file of each model in the folder."""
WORK_SIZE = 64
"""Side (pixels) every evaluator resizes its input frames to."""

_LOWER_FACE = (32, 56, 16, 48)  # rows [32, 56), columns [16, 48) of the 64 px frame
_FACE = (8, 56, 8, 56)  # rows and columns [8, 56): the face without most of the background
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.25, 0.25, 0.25)
_SYNC_FPS = 25  # decouple.metrics.sync.SYNC_FPS
_SYNC_RATE = 16000  # decouple.metrics.sync.SYNC_SAMPLE_RATE
_SAMPLES_PER_FRAME = _SYNC_RATE // _SYNC_FPS  # 640
_MFCC_TAIL = 240  # samples past the last frame that the last window's 20th MFCC column reads
_SEED_OFFSETS = {"emotion": 101, "mouth": 202, "sync": 303, "embed": 404}

_log = logging.getLogger("spfem.evaluators")


def lower_face(frames: Tensor) -> Tensor:
    """The lower-face region of 64 px frames: rows 32-55, columns 16-47 (24 x 32 pixels).

    SynthTalk draws every speaker's mouth (closed or fully open, any expression, with its
    small head motion) inside this box; the mouth regressor and the sync model see only it.

    Args:
        frames: (..., h, w) with h = w = 64 (any leading axes, any dtype).

    Returns:
        (..., 24, 32), a view.

    Raises:
        ValueError: If the frames are not 64 x 64.

    Examples:
        >>> lower_face(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 3, 24, 32])
    """
    if tuple(frames.shape[-2:]) != (WORK_SIZE, WORK_SIZE):
        raise ValueError(f"lower_face: frames must be {WORK_SIZE} x {WORK_SIZE}, got "
                         f"{tuple(frames.shape[-2:])}")  # fmt: skip
    r0, r1, c0, c1 = _LOWER_FACE
    return frames[..., r0:r1, c0:c1]


def _spec(name: str, size: int | None = WORK_SIZE) -> ImageSpec:
    return ImageSpec(mean=_MEAN, std=_STD, size=None if size is None else (size, size),
                     name=name)  # fmt: skip


# ============================================================================ architectures


class _Block(nn.Module):
    """Basic residual block: conv3x3-BN-ReLU-conv3x3-BN plus a (projected) shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class _ResNet(nn.Module):
    """Stem (conv-BN-ReLU, optional 2x2 max-pool), one residual block per width (the first at
    stride 1, the others 2), global average pooling: (b, c, h, w) -> (b, widths[-1])."""

    def __init__(self, in_channels: int, widths: Sequence[int], *, stem_stride: int,
                 stem_pool: bool) -> None:  # fmt: skip
        super().__init__()
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        ]  # fmt: skip
        if stem_pool:
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, 1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.out_features = int(c)
        # channels-last: about 1.5-3x faster convolution backward on CPU (measured); built in,
        # so a trained and a loaded model compute with the same layout (the same bits)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.blocks(self.stem(x)).mean((2, 3))


def _param_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


class EmotionClassifier(nn.Module):
    """Emotion classifier: a residual net on the face (the central 48 x 48 of the 64 px
    frame: rows and columns 8-55) -> logits.

    Leaving out most of the background and the shoulders raised the held-out level-3
    accuracy and cut the cost (measured on the benchmark corpus, 2 seeds each: 95.9 / 97.4 %
    against 96.1 / 95.2 % for the whole frame).

    Args:
        num_classes: Emotions (the corpus's, in id order).
        widths: Channels of the residual stages (12 x 12, 6 x 6 and 3 x 3 maps).

    Attributes:
        spec: Input convention: RGB uint8 / float [0, 1], resized to 64 x 64.

    Examples:
        >>> net = EmotionClassifier(8).eval()
        >>> tuple(net(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape)
        (2, 8)
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        self.spec = _spec("EmotionClassifier")
        self.body = _ResNet(3, widths, stem_stride=2, stem_pool=True)
        self.head = nn.Linear(self.body.out_features, int(num_classes))

    def forward(self, frames: Tensor) -> Tensor:
        """Logits of the frames.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, num_classes) logits.
        """
        r0, r1, c0, c1 = _FACE
        x = self.spec.prepare(frames, dtype=_param_dtype(self))[..., r0:r1, c0:c1]
        return self.head(self.body(x))


class MouthRegressor(nn.Module):
    """Mouth regressor R: the lower face of one frame -> the 4 SynthTalk mouth parameters.

    Outputs are in the units of `decouple.data.synthtalk.visemes.MOUTH_PARAMS` (`open`,
    `width`, `round`, `lip_shape`): the network predicts standardised values and
    `mean + std * z` is returned (`mean`, `std`: buffers, the training set's statistics).

    Args:
        widths: Channels of the residual stages (12 x 16, 6 x 8, 3 x 4 maps).

    Attributes:
        spec: Input convention: RGB uint8 / float [0, 1], resized to 64 x 64, then
            [lower_face][evaluators.lower_face].

    Examples:
        >>> net = MouthRegressor().eval()
        >>> tuple(net(torch.zeros(2, 3, 64, 64)).shape)
        (2, 4)
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        self.spec = _spec("MouthRegressor")
        self.crop_spec = _spec("MouthRegressor", None)
        self.body = _ResNet(3, widths, stem_stride=2, stem_pool=False)
        self.head = nn.Linear(self.body.out_features, 4)
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("std", torch.ones(4))

    def forward(self, frames: Tensor) -> Tensor:
        """Mouth parameters of the frames.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, 4), columns `MOUTH_PARAMS`.
        """
        x = lower_face(self.spec.prepare(frames, dtype=_param_dtype(self)))
        return self.mean + self.std * self.head(self.body(x))

    def standardised(self, crops: Tensor) -> Tensor:
        """Standardised predictions from lower-face crops (what training fits).

        Args:
            crops: (b, 3, 24, 32) lower-face crops, uint8 or float in [0, 1].

        Returns:
            (b, 4) standardised mouth parameters.
        """
        return self.head(self.body(self.crop_spec.prepare(crops, dtype=_param_dtype(self))))


class LipSyncNet(nn.Module):
    """A SyncNet-style two-tower lip-sync model (implements `decouple.metrics.sync.SyncModel`).

    Video tower: each of the 5 frames' lower face ([lower_face][evaluators.lower_face])
    through a per-frame residual net (`frame`, the architecture of
    [MouthRegressor][evaluators.MouthRegressor]'s body), the 5 feature vectors in time order
    through a two-layer MLP (`temporal`). Audio tower: 13 x 20 MFCC windows
    (`decouple.metrics.sync.sync_mfcc` columns 4i..4i+19), BatchNorm over the 13
    coefficients, 1-D convolutions over time, a linear layer. Embeddings are not normalised:
    as SyncNet's, they are compared by Euclidean distance.

    Training ([train_evaluators][evaluators.train_evaluators]) is SyncNet v2's multi-way
    objective: for a video window, the aligned audio window among the same clip's windows
    shifted by -N..N frames, logits = -distance, cross-entropy. The per-frame net starts from
    the trained mouth regressor's body and stays frozen (learning the mouth's appearance from
    the sync objective alone did not start within a CPU budget: window accuracy at chance
    after 300 steps, measured; from the mouth features it learns at once).

    Args:
        dim: Embedding size.
        widths: Channels of the per-frame net's residual stages.

    Attributes:
        spec: Input convention of a window's frames: RGB uint8 / float [0, 1], resized to
            64 x 64.

    Examples:
        >>> net = LipSyncNet().eval()
        >>> v = net.embed_video(torch.zeros(2, 5, 3, 64, 64, dtype=torch.uint8))
        >>> a = net.embed_audio(torch.zeros(2, 13, 20))
        >>> tuple(v.shape), tuple(a.shape)
        ((2, 64), (2, 64))
    """

    def __init__(self, dim: int = 64, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        self.spec = _spec("LipSyncNet")
        self.crop_spec = _spec("LipSyncNet", None)
        self.frame = _ResNet(3, widths, stem_stride=2, stem_pool=False)
        c = self.frame.out_features
        self.temporal = nn.Sequential(nn.Flatten(), nn.Linear(5 * c, 256), nn.BatchNorm1d(256),
                                      nn.ReLU(inplace=True), nn.Linear(256, dim))  # fmt: skip

        def conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm1d(c_out),
                    nn.ReLU(inplace=True)]  # fmt: skip

        self.audio = nn.Sequential(
            nn.BatchNorm1d(13), *conv(13, 48, 1), *conv(48, 64, 2), *conv(64, 96, 2),
            nn.Flatten(), nn.Linear(96 * 5, dim),
        )  # fmt: skip
        self.dim = int(dim)

    def embed_video(self, windows: Tensor) -> Tensor:
        """Embed 5-frame windows.

        Args:
            windows: (b, 5, 3, h, w) RGB face frames at 25 fps, uint8 or float in [0, 1].

        Returns:
            (b, dim).

        Raises:
            ValueError: If `windows` is not (b, 5, 3, h, w).
        """
        if windows.dim() != 5 or windows.shape[1] != 5:
            raise ValueError(f"LipSyncNet.embed_video: windows must be (b, 5, 3, h, w), got "
                             f"{tuple(windows.shape)}")  # fmt: skip
        b = windows.shape[0]
        x = self.spec.prepare(windows.flatten(0, 1), "windows", dtype=_param_dtype(self))
        return self.embed_features(self.frame(lower_face(x)).reshape(b, 5, -1))

    def frame_features(self, crops: Tensor) -> Tensor:
        """Per-frame features of lower-face crops (what training precomputes).

        Args:
            crops: (n, 3, 24, 32) lower-face crops, uint8 or float in [0, 1].

        Returns:
            (n, c).
        """
        return self.frame(self.crop_spec.prepare(crops, "crops", dtype=_param_dtype(self)))

    def embed_features(self, features: Tensor) -> Tensor:
        """Embed windows of per-frame features.

        Args:
            features: (b, 5, c) `frame_features` of 5 consecutive frames.

        Returns:
            (b, dim).
        """
        return self.temporal(features)

    def embed_audio(self, windows: Tensor) -> Tensor:
        """Embed MFCC windows.

        Args:
            windows: (b, 13, 20) float, columns of `decouple.metrics.sync.sync_mfcc`.

        Returns:
            (b, dim).

        Raises:
            ValueError: If `windows` is not (b, 13, 20).
        """
        if windows.dim() != 3 or tuple(windows.shape[1:]) != (13, 20):
            raise ValueError(f"LipSyncNet.embed_audio: windows must be (b, 13, 20) MFCC, got "
                             f"{tuple(windows.shape)}")  # fmt: skip
        return self.audio(windows.to(_param_dtype(self)))


class IdentityEmbedder(nn.Module):
    """Identity embedding: a residual net on the whole face -> unit-norm features.

    Trained as a speaker classifier with a normalised-softmax head (CosFace: logits
    `scale * (cos - margin [target])` between unit features and unit class weights); the
    embedding is the unit-norm penultimate feature, so identity similarity is its dot
    product.

    Args:
        num_speakers: Training speakers (the head's classes).
        dim: Embedding size.
        widths: Channels of the residual stages.

    Attributes:
        spec: Input convention: RGB uint8 / float [0, 1], resized to 64 x 64.

    Examples:
        >>> net = IdentityEmbedder(4).eval()
        >>> z = net(torch.rand(3, 3, 64, 64))
        >>> tuple(z.shape), [round(n, 4) for n in z.detach().norm(dim=1).tolist()]
        ((3, 128), [1.0, 1.0, 1.0])
    """

    def __init__(self, num_speakers: int, dim: int = 128,
                 widths: Sequence[int] = (16, 32, 64)) -> None:  # fmt: skip
        super().__init__()
        self.spec = _spec("IdentityEmbedder")
        self.body = _ResNet(3, widths, stem_stride=2, stem_pool=True)
        self.proj = nn.Linear(self.body.out_features, dim)
        self.classes = nn.Parameter(torch.randn(int(num_speakers), dim) / math.sqrt(dim))

    def forward(self, frames: Tensor) -> Tensor:
        """Unit-norm identity embeddings.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, dim), each row of norm 1.
        """
        x = self.spec.prepare(frames, dtype=_param_dtype(self))
        return F.normalize(self.proj(self.body(x)), dim=1)

    def cosine_logits(self, frames: Tensor) -> Tensor:
        """Cosine similarity of each frame's embedding to each training speaker's weight.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, num_speakers) cosines in [-1, 1].
        """
        return self(frames) @ F.normalize(self.classes, dim=1).T


# ============================================================================ settings


@dataclass(frozen=True)
class TrainSettings:
    """What [train_evaluators][evaluators.train_evaluators] does (stored in `evaluators.json`).

    The step budgets are those of `scale=1`; `train_evaluators` multiplies them by its
    `scale` (at least 1 step each).

    Attributes:
        emotion_steps: Steps of the emotion classifier.
        mouth_steps: Steps of the mouth regressor.
        sync_steps: Steps of the sync model.
        embed_steps: Steps of the identity embedder.
        batch_size: Frames per step (emotion, mouth, embed).
        sync_batch_size: Segments per sync step.
        sync_segment: Consecutive video windows per segment (each scored against the
            2 x max_offset + 1 audio windows around it).
        sync_train_clips: Train clips the sync model learns from (evenly spread; all if
            fewer).
        emotion_lr: Peak AdamW learning rate of the emotion classifier (every model: 5 %
            linear warm-up, cosine decay, weight decay 1e-4).
        mouth_lr: The mouth regressor's.
        sync_lr: The sync model's.
        embed_lr: The identity embedder's.
        frames_per_clip: Training frames kept per train clip for the emotion and identity
            models (the mouth and sync models use every frame's lower face).
        test_frames_per_clip: Frames per test clip in the held-out checks.
        sync_test_clips: Test clips scored with `lip_sync` (evenly spread; all if fewer).
        max_offset: Audio offsets +-N of the sync objective and of the held-out check.
        shift: Artificial audio shift (frames) the held-out check must recover.
        cos_scale: CosFace scale of the identity head.
        cos_margin: CosFace margin.
        augment: Augmentation of the image models' inputs: gain, 3x3 blur, noise, shifts
            of up to 2 px (1 px for lower-face crops), per-channel gain +-20 % for the
            emotion classifier.

    Examples:
        >>> TrainSettings().scaled(0.01).emotion_steps
        12
    """

    emotion_steps: int = 1200
    mouth_steps: int = 800
    sync_steps: int = 500
    embed_steps: int = 300
    emotion_lr: float = 1e-2
    mouth_lr: float = 3e-3
    sync_lr: float = 3e-3
    embed_lr: float = 1e-2
    batch_size: int = 64
    sync_batch_size: int = 16
    sync_segment: int = 8
    sync_train_clips: int = 1024
    frames_per_clip: int = 8
    test_frames_per_clip: int = 4
    sync_test_clips: int = 96
    max_offset: int = 10
    shift: int = 2
    cos_scale: float = 16.0
    cos_margin: float = 0.2
    augment: bool = True

    def scaled(self, scale: float) -> TrainSettings:
        """The settings with every step budget multiplied by `scale` (at least 1).

        Args:
            scale: Factor (> 0).

        Returns:
            New settings.

        Raises:
            ValueError: If `scale` is not a positive finite number.
        """
        if isinstance(scale, bool) or not isinstance(scale, int | float) \
                or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"train_evaluators: scale must be a positive number, got {scale!r}")
        steps = {f.name: max(1, round(getattr(self, f.name) * scale))
                 for f in fields(self) if f.name.endswith("_steps")}  # fmt: skip
        return replace(self, **steps)


# ============================================================================ the bundle


@dataclass
class Evaluators:
    """The four frozen evaluator models of a corpus and what they were checked to do.

    Attributes:
        emotion_names: The corpus's emotion names in id order (the emotion logits' columns).
        size: Frame side of the corpus they were trained on (inputs of any size are resized
            to 64 px inside).
        fps: Frame rate of the corpus.
        emotion: frames (b, 3, s, s) -> logits (b, len(emotion_names)).
        mouth: frames -> (b, 4) mouth parameters, columns `MOUTH_PARAMS`.
        sync: a `decouple.metrics.sync.SyncModel` (embed_video, embed_audio), at 25 fps.
        embed: frames -> (b, d) unit-norm identity embeddings.
        summary: The held-out-speaker checks measured when they were trained.

    Examples:
        >>> ev = Evaluators(("neutral", "happy"), 64, 25.0, EmotionClassifier(2),
        ...                 MouthRegressor(), LipSyncNet(), IdentityEmbedder(3), {})
        >>> ev.to("cpu").emotion_names
        ('neutral', 'happy')
    """

    emotion_names: tuple[str, ...]
    size: int
    fps: float
    emotion: nn.Module
    mouth: nn.Module
    sync: nn.Module
    embed: nn.Module
    summary: dict[str, Any] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> Evaluators:
        """Move the four models to a device.

        Args:
            device: Target device.

        Returns:
            This object.
        """
        for name in MODELS:
            getattr(self, name).to(device)
        return self


# ============================================================================ corpus reading


def corpus_fingerprint(root: str | Path) -> str:
    """SHA-256 of a corpus's index files (and SynthTalk config): what a trained set is for.

    The index lists every shard with its byte size, sample count and frame counts, so a
    regenerated corpus with other settings or other content gets another fingerprint.

    Args:
        root: The corpus directory (with `train-index.json`).

    Returns:
        Hex digest.

    Raises:
        FileNotFoundError: No `train-index.json` in `root`.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "train-index.json").write_text("{}")
        >>> len(corpus_fingerprint(d))
        64
    """
    root = Path(root)
    if not (root / "train-index.json").is_file():
        raise FileNotFoundError(f"{root}: no train-index.json (not a shard corpus; generate "
                                "SynthTalk with python -m decouple.data.synthtalk)")  # fmt: skip
    h = hashlib.sha256()
    for name in ("train-index.json", "test-index.json", "synthtalk-config.json"):
        path = root / name
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()


@dataclass
class _Split:
    """What training and the checks keep of one split (uint8 images, float labels)."""

    frames: Tensor  # (n, 3, 64, 64) uint8: frames_per_clip frames of every clip
    emotion: Tensor  # (n,) long
    level: Tensor  # (n,) long
    speaker: Tensor  # (n,) long (index into speakers)
    clip: Tensor  # (n,) long (index of the clip)
    mouth: Tensor  # (n, 4) float32 of those frames
    crops: list[Tensor]  # per clip (t25, 3, 24, 32) uint8 lower faces at 25 fps (or none)
    crop_mouth: list[Tensor]  # per clip (t25, 4) float32 (or none)
    mfcc: list[Tensor | None]  # per clip (13, 4 t25) float32 sync_mfcc columns, or None
    clips: list[dict[str, Any]]  # key, speaker, emotion, level
    speakers: list[str]
    fps: float
    size: int
    full: dict[int, tuple[Tensor, Tensor, int]] = field(default_factory=dict)  # for lip_sync


def _to_work(frames: Tensor) -> Tensor:
    """uint8 frames at 64 px (resized like the models' spec, then rounded back to uint8)."""
    if tuple(frames.shape[-2:]) == (WORK_SIZE, WORK_SIZE):
        return frames
    x = ImageSpec(size=(WORK_SIZE, WORK_SIZE)).prepare(frames)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def _spread(total: int, count: int) -> set[int]:
    """`count` indices evenly spread over range(total) (all when count >= total)."""
    if count <= 0 or total <= 0:
        return set()
    return set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())


def _read_split(root: Path, split: str, emotion_names: tuple[str, ...], frames_per_clip: int,
                seed: int, *, crops: bool, mfcc_clips: int = 0, full_clips: int = 0,
                progress: bool) -> _Split:  # fmt: skip
    """Decode a split: sampled frames and labels; with `crops` every frame's lower face at
    25 fps; the sync MFCCs of `mfcc_clips` clips and the whole video and audio of
    `full_clips` clips (evenly spread)."""
    from decouple.data.io import resample_audio, resample_indices
    from decouple.data.pipeline import decode_clip
    from decouple.data.shards import read_index
    from decouple.data.synthtalk.corpus import iter_clips
    from decouple.metrics.sync import sync_mfcc

    index = read_index(root, split)
    total = index.num_samples
    keep_full, keep_mfcc = _spread(total, full_clips), _spread(total, mfcc_clips)
    rng = np.random.default_rng([seed, 7, zlib.crc32(split.encode())])
    bar = _bar(total, f"evaluators: reading {split}", progress, unit="clip")
    speakers: list[str] = []
    out: dict[str, list[Any]] = {k: [] for k in ("frames", "emotion", "level", "speaker",
                                                 "clip", "mouth")}  # fmt: skip
    lower: list[Tensor] = []
    crop_mouth: list[Tensor] = []
    mfccs: list[Tensor | None] = []
    clips: list[dict[str, Any]] = []
    full: dict[int, tuple[Tensor, Tensor, int]] = {}
    size = 0
    for i, clip in enumerate(iter_clips(root, split)):
        where = f"{root}/{split}:{clip.key}"
        if "mouth" not in clip.arrays:
            raise ValueError(f"{where}: no 'mouth' array (the evaluators are trained on "
                             "SynthTalk, whose clips carry their mouth parameters)")  # fmt: skip
        d = decode_clip(clip, features=None)
        video, audio = d["video"], d["audio"]
        size = size or int(video.shape[-1])
        mouth = torch.from_numpy(np.asarray(clip.arrays["mouth"], dtype=np.float32))
        t = min(video.shape[0], mouth.shape[0])
        video, mouth = video[:t], mouth[:t]
        meta = clip.meta
        if meta.emotion not in emotion_names:
            raise ValueError(f"{where}: emotion {meta.emotion!r} is not one of the index's "
                             f"{emotion_names}")  # fmt: skip
        if meta.speaker not in speakers:
            speakers.append(meta.speaker)
        work = _to_work(video)
        pick = np.sort(rng.choice(t, size=min(frames_per_clip, t), replace=False))
        idx = torch.from_numpy(pick)
        out["frames"].append(work[idx])
        out["mouth"].append(mouth[idx])
        for name, value in (("emotion", emotion_names.index(meta.emotion)),
                            ("level", int(meta.intensity)),
                            ("speaker", speakers.index(meta.speaker)), ("clip", i)):
            out[name].append(torch.full((len(pick),), value, dtype=torch.long))
        # sync: frames at 25 fps, audio at 16 kHz, as decouple.metrics.sync.lip_sync cuts them
        fps = float(meta.fps)
        if fps != _SYNC_FPS:
            sel = resample_indices(np.arange(t) / fps, _SYNC_FPS, src_fps=fps)
        else:
            sel = torch.arange(t)
        wave = resample_audio(audio.float(), int(meta.sample_rate), _SYNC_RATE)
        n = min(len(sel), wave.shape[0] // _SAMPLES_PER_FRAME)
        sel = sel[:n]
        if crops:
            lower.append(lower_face(work[sel]).contiguous())
            crop_mouth.append(mouth[sel])
        if i in keep_mfcc:
            length = n * _SAMPLES_PER_FRAME + _MFCC_TAIL
            wave16 = F.pad(wave[:length], (0, max(0, length - wave.shape[0])))
            mfccs.append(sync_mfcc(wave16, _SYNC_RATE).to(torch.float32))
        else:
            mfccs.append(None)
        clips.append({"key": clip.key, "speaker": meta.speaker, "emotion": meta.emotion,
                      "level": int(meta.intensity), "frames": n})  # fmt: skip
        if i in keep_full:
            full[i] = (video, audio.float(), int(meta.sample_rate))
        bar.update(1)
    bar.close()
    if not clips:
        raise ValueError(f"{root}: split {split!r} has no clips")
    cat = {k: torch.cat(v) for k, v in out.items()}
    return _Split(cat["frames"], cat["emotion"], cat["level"], cat["speaker"], cat["clip"],
                  cat["mouth"], lower, crop_mouth, mfccs, clips, speakers, float(index.fps),
                  size, full)  # fmt: skip


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, progress: bool, unit: str = "step") -> Any:
    if not progress:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)


# ============================================================================ training


def _augment(x: Tensor, gen: torch.Generator, *, shift: int, colour: float = 0.0) -> Tensor:
    """Photometric augmentation (gain, per-channel gain of +-`colour`, 3x3 blur with
    p = 0.3, noise) and a random shift of up to `shift` pixels; x: (b, 3, h, w) float in
    [0, 1]."""
    b, c, h, w = x.shape
    if shift > 0:  # one slice per distinct (dy, dx): at most (2 shift + 1)^2
        padded = F.pad(x, (shift,) * 4, mode="replicate")
        side = 2 * shift + 1
        code = torch.randint(0, side * side, (b,), generator=gen)
        x = torch.empty_like(x)
        for k in code.unique().tolist():
            sel = (code == k).nonzero()[:, 0]
            dy, dx = divmod(k, side)
            x[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    x = x * (0.85 + 0.3 * torch.rand(b, 1, 1, 1, generator=gen))
    if colour > 0:  # skin, hair and background colours say nothing of the emotion
        x = x * (1 - colour + 2 * colour * torch.rand(b, c, 1, 1, generator=gen))
    blur = torch.rand(b, generator=gen) < 0.3
    if bool(blur.any()):
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).expand(c, 1, 3, 3).contiguous()
        sel = blur.nonzero()[:, 0]
        x[sel] = F.conv2d(F.pad(x[sel], (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    x = x + 0.01 * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def _as_unit(x: Tensor) -> Tensor:
    return x.float() / 255.0


class _Trainer:
    """AdamW with warm-up + cosine decay, a tqdm bar and a loss log."""

    def __init__(self, model: nn.Module, steps: int, lr: float, desc: str,
                 progress: bool) -> None:  # fmt: skip
        self.model = model
        self.steps = steps
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        warm = max(1, steps // 20)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)
        self.bar = _bar(steps, desc, progress)
        self.losses: list[float] = []

    def step(self, loss: Tensor) -> None:
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"evaluators: non-finite loss at step {len(self.losses)}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.losses.append(float(loss.detach()))
        self.bar.update(1)
        if len(self.losses) % 20 == 0:
            self.bar.set_postfix_str(f"loss {np.mean(self.losses[-20:]):.3f}")

    def close(self) -> dict[str, Any]:
        self.bar.close()
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return {"steps": self.steps, "final_loss": round(float(np.mean(tail)), 4)}


def _seeded(name: str, seed: int) -> tuple[np.random.Generator, torch.Generator]:
    s = seed * 1000 + _SEED_OFFSETS[name]
    torch.manual_seed(s)
    return np.random.default_rng(s), torch.Generator().manual_seed(s)


def _train_images(name: str, model: nn.Module, data: _Split, targets: Tensor,
                  settings: TrainSettings, steps: int, lr: float, seed: int,
                  device: torch.device, progress: bool, loss_fn: Any, *,
                  colour: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Train an image model on whole frames: loss_fn(model, x, y) -> loss."""
    rng, gen = _seeded(name, seed)
    model.to(device).train()
    trainer = _Trainer(model, steps, lr, f"evaluators: {name}", progress)
    n = data.frames.shape[0]
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, n, settings.batch_size))
        x = _as_unit(data.frames[idx])
        if settings.augment:
            x = _augment(x, gen, shift=2, colour=colour)
        trainer.step(loss_fn(model, x.to(device), targets[idx].to(device)))
    return trainer.close()


def _train_mouth(model: MouthRegressor, data: _Split, settings: TrainSettings, steps: int,
                 seed: int, device: torch.device, progress: bool) -> dict[str, Any]:  # fmt: skip
    rng, gen = _seeded("mouth", seed)
    crops = torch.cat(data.crops)
    targets = torch.cat(data.crop_mouth)
    mean, std = targets.mean(0), targets.std(0).clamp_min(1e-3)
    model.mean.copy_(mean)
    model.std.copy_(std)
    z = (targets - mean) / std
    model.to(device).train()
    trainer = _Trainer(model, steps, settings.mouth_lr, "evaluators: mouth", progress)
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, crops.shape[0], settings.batch_size))
        x = _as_unit(crops[idx])
        if settings.augment:
            x = _augment(x, gen, shift=1)
        pred = model.standardised(x.to(device))
        trainer.step(F.smooth_l1_loss(pred, z[idx].to(device), beta=0.5))
    return trainer.close()


def _train_sync(model: LipSyncNet, mouth: MouthRegressor, data: _Split,
                settings: TrainSettings, steps: int, seed: int, device: torch.device,
                progress: bool) -> dict[str, Any]:  # fmt: skip
    """SyncNet v2's multi-way objective on segments of `sync_segment` consecutive windows.

    The per-frame net is the mouth regressor's body, frozen; its features of every frame of
    `sync_train_clips` train clips are computed once. A step takes `sync_batch_size`
    segments (a random clip, a random start); every video window i of a segment is scored
    against the audio windows i + k, k = -N..N, of its clip that exist (logits = -Euclidean
    distance), the aligned one (k = 0) being the answer.
    """
    rng, _ = _seeded("sync", seed)
    model.frame.load_state_dict(mouth.body.state_dict())
    for p in model.frame.parameters():
        p.requires_grad_(False)
    model.to(device)
    n_off, seg = settings.max_offset, settings.sync_segment
    usable = [c for c in range(len(data.crops))
              if data.mfcc[c] is not None and data.crops[c].shape[0] >= 5]  # fmt: skip
    if not usable:
        raise ValueError("evaluators: no train clip has the 5 frames a sync window needs")
    mfccs = [m for m in (data.mfcc[c] for c in usable) if m is not None]
    model.frame.eval()
    with torch.no_grad():
        feats = [torch.cat([model.frame_features(data.crops[c][i:i + 512].to(device))
                            for i in range(0, data.crops[c].shape[0], 512)])
                 for c in usable]  # fmt: skip
    windows = np.array([f.shape[0] - 4 for f in feats], dtype=np.float64)
    weights = windows / windows.sum()
    model.train()
    model.frame.eval()
    trainer = _Trainer(model, steps, settings.sync_lr, "evaluators: sync", progress)
    five, cols20 = torch.arange(5), torch.arange(20)
    span = torch.arange(seg + 2 * n_off)
    for _ in range(steps):
        chosen = rng.choice(len(usable), size=settings.sync_batch_size, p=weights)
        video, audio, valid_v, valid_a = [], [], [], []
        for c in chosen:
            f, mfcc = feats[c], mfccs[c]
            w = f.shape[0] - 4
            i0 = int(rng.integers(0, max(1, w - seg + 1)))
            starts = i0 + torch.arange(seg)
            valid_v.append(starts < w)
            video.append(f[(starts.clamp(max=w - 1)[:, None] + five).to(f.device)])
            a_idx = i0 - n_off + span
            valid_a.append((a_idx >= 0) & (a_idx < w))
            cols = 4 * a_idx.clamp(0, w - 1)[:, None] + cols20  # (seg + 2N, 20)
            audio.append(mfcc[:, cols].permute(1, 0, 2))
        b = len(chosen)
        v = model.embed_features(torch.stack(video).flatten(0, 1)).reshape(b, seg, -1)
        a = model.embed_audio(torch.cat(audio).to(device)).reshape(b, seg + 2 * n_off, -1)
        cand = a.unfold(1, 2 * n_off + 1, 1).permute(0, 1, 3, 2)  # (b, seg, 2N + 1, d)
        ok = torch.stack(valid_a).unfold(1, 2 * n_off + 1, 1).to(device)  # (b, seg, 2N + 1)
        dist = (v[:, :, None, :] - cand).square().sum(-1).clamp_min(1e-8).sqrt()
        logits = (-dist).masked_fill(~ok, float("-inf"))[torch.stack(valid_v).to(device)]
        target = torch.full((logits.shape[0],), n_off, dtype=torch.long, device=device)
        trainer.step(F.cross_entropy(logits, target))
    return {**trainer.close(), "train_clips": len(usable)}


# ============================================================================ held-out checks


def _predict(model: nn.Module, frames: Tensor, device: torch.device, batch: int = 256
             ) -> Tensor:  # fmt: skip
    with torch.no_grad():
        return torch.cat([model(frames[i:i + batch].to(device)).float().cpu()
                          for i in range(0, frames.shape[0], batch)])  # fmt: skip


def _auc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    if pos.size == 0 or neg.size == 0:
        return None
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < scores.size:  # average ranks of ties
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def _check_emotion(model: nn.Module, test: _Split, names: tuple[str, ...],
                   device: torch.device) -> dict[str, Any]:  # fmt: skip
    pred = _predict(model, test.frames, device).argmax(1)
    right = (pred == test.emotion).numpy()
    levels = test.level.numpy()
    by_level = {str(lv): _r(right[levels == lv].mean()) for lv in sorted(set(levels.tolist()))}
    emotions = test.emotion.numpy()
    neutral = names.index("neutral") if "neutral" in names else -1
    return {
        "accuracy": _r(right.mean()),
        "accuracy_level3": _r(right[levels == 3].mean()) if (levels == 3).any() else None,
        "accuracy_neutral": _r(right[emotions == neutral].mean())
        if (emotions == neutral).any() else None,
        "accuracy_by_emotion": {names[e]: _r(right[emotions == e].mean())
                                for e in sorted(set(emotions.tolist()))},
        "accuracy_by_level": by_level,
        "chance": _r(np.bincount(test.emotion.numpy()).max() / len(right)),
        "frames": len(right),
    }


def _check_mouth(model: nn.Module, train: _Split, test: _Split, device: torch.device
                 ) -> dict[str, Any]:  # fmt: skip
    from decouple.data.synthtalk.visemes import MOUTH_PARAMS

    pred = _predict(model, test.frames, device)
    err = (pred - test.mouth).abs().mean(0).numpy()
    base = (torch.cat(train.crop_mouth).mean(0) - test.mouth).abs().mean(0).numpy()
    return {
        "mae": _r(err.mean()),
        "baseline_mae": _r(base.mean()),
        "mae_by_param": {p: _r(e) for p, e in zip(MOUTH_PARAMS, err, strict=True)},
        "baseline_by_param": {p: _r(e) for p, e in zip(MOUTH_PARAMS, base, strict=True)},
        "frames": int(test.frames.shape[0]),
    }


def _check_sync(model: LipSyncNet, test: _Split, settings: TrainSettings) -> dict[str, Any]:
    from decouple.metrics.sync import lip_sync

    n_max, shift = settings.max_offset, settings.shift
    found: dict[str, list[int]] = {"0": [], f"+{shift}": [], f"-{shift}": []}
    lse_d, lse_c, skipped = [], [], 0
    for i in sorted(test.full):
        video, wave, rate = test.full[i]
        fps = test.fps
        lag = round(shift * rate / _SYNC_FPS)
        variants = {
            "0": wave,
            f"+{shift}": F.pad(wave, (lag, 0)),  # audio delayed: video i matches audio i + shift
            f"-{shift}": F.pad(wave[lag:], (0, lag)),  # audio advanced: offset -shift
        }  # fmt: skip
        try:
            scores = {k: lip_sync(model, video, w, fps=fps, sample_rate=rate, max_offset=n_max)
                      for k, w in variants.items()}  # fmt: skip
        except ValueError:  # a clip too short for max_offset
            skipped += 1
            continue
        for k, s in scores.items():
            found[k].append(s.offset)
        lse_d.append(scores["0"].lse_d)
        lse_c.append(scores["0"].lse_c)
    if not lse_d:
        return {"clips": 0, "skipped": skipped}
    return {
        "clips": len(lse_d),
        "skipped": skipped,
        "max_offset": n_max,
        "offset0_rate": _r(np.mean([o == 0 for o in found["0"]])),
        f"shift_plus{shift}_rate": _r(np.mean([o == shift for o in found[f"+{shift}"]])),
        f"shift_minus{shift}_rate": _r(np.mean([o == -shift for o in found[f"-{shift}"]])),
        "lse_d": _r(np.mean(lse_d)),
        "lse_c": _r(np.mean(lse_c)),
    }


def _check_embed(model: nn.Module, test: _Split, device: torch.device) -> dict[str, Any]:
    z = _predict(model, test.frames, device).double()
    sim = (z @ z.T).numpy()
    spk = test.speaker.numpy()
    clip = test.clip.numpy()
    iu = np.triu_indices(len(spk), k=1)
    other_clip = clip[iu[0]] != clip[iu[1]]
    same = (spk[iu[0]] == spk[iu[1]])[other_clip]
    s = sim[iu][other_clip]
    pos, neg = s[same], s[~same]
    auc = _auc(pos, neg)
    acc = None
    if pos.size and neg.size:  # balanced accuracy at the best threshold (an upper bound)
        thr = np.sort(np.concatenate([pos, neg]))
        tpr = 1 - np.searchsorted(np.sort(pos), thr, side="left") / pos.size
        tnr = np.searchsorted(np.sort(neg), thr, side="left") / neg.size
        acc = float(np.max(0.5 * (tpr + tnr)))
    return {
        "speakers": len(set(spk.tolist())),
        "auc": _r(auc),
        "best_threshold_accuracy": _r(acc),
        "same_speaker_cos": _r(pos.mean()) if pos.size else None,
        "same_speaker_cos_p01": _r(np.percentile(pos, 1)) if pos.size else None,
        "other_speaker_cos": _r(neg.mean()) if neg.size else None,
        "other_speaker_cos_p99": _r(np.percentile(neg, 99)) if neg.size else None,
        "pairs": int(s.size),
    }


# ============================================================================ the folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete the folder's "
                         f"{CONFIG_FILE} to retrain") from None  # fmt: skip
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


def _stale(record: Mapping[str, Any], out: Path, fingerprint: str, seed: int,
           settings: TrainSettings) -> str:  # fmt: skip
    """Why an existing set cannot be reused ('' when it can)."""
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        return (f"{CONFIG_FILE} is format {record.get('format')!r} version "
                f"{record.get('version')!r}, this code writes {FORMAT!r} version {VERSION}")
    if record.get("corpus", {}).get("fingerprint") != fingerprint:
        return "the corpus changed (another fingerprint of its index files)"
    if record.get("seed") != seed:
        return f"seed {record.get('seed')!r} was used, {seed} is asked for"
    if record.get("settings") != asdict(settings):
        return "other training settings (step budgets / scale)"
    files = record.get("files", {})
    for name in MODELS:
        path = out / WEIGHT_FILES[name]
        if not path.is_file():
            return f"{path.name} is missing"
        if files.get(name) != _sha256(path):
            return f"{path.name} is not the file {CONFIG_FILE} describes"
    return ""


def _build(record: Mapping[str, Any]) -> dict[str, nn.Module]:
    arch = record["architecture"]
    return {
        "emotion": EmotionClassifier(len(record["emotion_names"]), arch["emotion_widths"]),
        "mouth": MouthRegressor(arch["mouth_widths"]),
        "sync": LipSyncNet(arch["sync_dim"], arch["sync_widths"]),
        "embed": IdentityEmbedder(arch["num_speakers"], arch["embed_dim"],
                                  arch["embed_widths"]),
    }  # fmt: skip


_ARCHITECTURE = {"emotion_widths": [16, 32, 64], "mouth_widths": [16, 32, 64],
                 "sync_dim": 64, "sync_widths": [16, 32, 64], "embed_dim": 128,
                 "embed_widths": [16, 32, 64]}  # fmt: skip


def _bundle(record: Mapping[str, Any], models: Mapping[str, nn.Module]) -> Evaluators:
    for m in models.values():
        freeze(m)
    return Evaluators(
        emotion_names=tuple(record["emotion_names"]), size=int(record["size"]),
        fps=float(record["fps"]), summary=dict(record.get("summary", {})), **models,
    )  # fmt: skip


def load_evaluators(out_dir: str | Path) -> Evaluators:
    """Load a trained evaluator set, frozen (eval mode, no gradients), on the CPU.

    Args:
        out_dir: The folder [train_evaluators][evaluators.train_evaluators] wrote.

    Returns:
        The [Evaluators][evaluators.Evaluators].

    Raises:
        FileNotFoundError: The folder, its `evaluators.json` or a weight file is missing
            (an incomplete set: train again).
        ValueError: `evaluators.json` is not valid, of another format or version, or a
            weight file is not the one it describes.
        decouple.checkpoint.CheckpointError: A weight file does not fit its model.

    Examples:
        >>> load_evaluators("/nonexistent")
        Traceback (most recent call last):
        ...
        FileNotFoundError: /nonexistent: no such folder (train the evaluators first: ...
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder (train the evaluators first: "
                                "evaluators.train_evaluators(root, out_dir))")  # fmt: skip
    path = out / CONFIG_FILE
    record = _read_json(path)
    if record is None:
        present = sorted(p.name for p in out.iterdir())
        raise FileNotFoundError(
            f"{path}: missing, so {out} is not a complete evaluator set (it holds "
            f"{present or 'nothing'}); train_evaluators writes {CONFIG_FILE} last"
        )
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        raise ValueError(f"{path}: format {record.get('format')!r} version "
                         f"{record.get('version')!r}; expected {FORMAT!r} version {VERSION}")
    for key in ("emotion_names", "size", "fps", "architecture", "files"):
        if key not in record:
            raise ValueError(f"{path}: field {key!r} missing")
    models = _build(record)
    for name in MODELS:
        weights = out / WEIGHT_FILES[name]
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: missing; {out} is an incomplete evaluator "
                                    "set (train again)")  # fmt: skip
        if record["files"].get(name) != _sha256(weights):
            raise ValueError(f"{weights}: not the file {path} describes (its SHA-256 "
                             "differs); train again")  # fmt: skip
        load_weights(models[name], weights)
    return _bundle(record, models)


def train_evaluators(root: str | Path, out_dir: str | Path, *, seed: int = 1234,
                     scale: float = 1.0, device: str | torch.device = "cpu",
                     progress: bool = True) -> Evaluators:  # fmt: skip
    """Train the four evaluator models on a SynthTalk corpus's train split, check them on its
    test split, and write them to `out_dir` (or load them if they are there already).

    Reuse: when `out_dir` holds a complete set (`evaluators.json` and the four weight files
    it describes) for the same corpus (its [fingerprint][evaluators.corpus_fingerprint]),
    seed and settings, it is loaded instead (logged at INFO on the `spfem.evaluators`
    logger); anything else is retrained, with a WARNING saying why. `evaluators.json` is
    removed before and written after the weights (each written atomically: temporary name +
    rename), so an interrupted run never looks complete.

    Training (CPU-deterministic for a given seed; each model has its own seed derived from
    `seed`): the emotion classifier and the identity embedder on `frames_per_clip` frames of
    every train clip (all emotions and levels), the mouth regressor on every frame's lower
    face, the sync model on 5-frame windows of every train clip at 25 fps with its 16 kHz
    audio (see [LipSyncNet][evaluators.LipSyncNet]). The held-out checks on the test
    speakers go into `summary` (and `evaluators.json`):

    - `emotion`: accuracy over all test frames, at level 3, neutral, by level and emotion;
      `chance` = the majority rate;
    - `mouth`: MAE of each mouth parameter and their mean, and the same for predicting the
      training mean (`baseline_*`);
    - `sync`: over `sync_test_clips` test clips, `decouple.metrics.sync.lip_sync` with
      `max_offset`: the rate of offset 0 on the real clip, of offset +shift with the audio
      delayed by `shift` frames and of -shift with it advanced; mean LSE-D and LSE-C of the
      real clips;
    - `embed`: same-vs-other-speaker verification over frame pairs of different clips: AUC,
      balanced accuracy at the best threshold, mean cosines and their 1st / 99th
      percentiles;
    - `seconds`: wall time of reading, of each model and in total.

    Args:
        root: The corpus directory (SynthTalk shards with `train` and `test` splits).
        out_dir: Where the set is written (created).
        seed: Base seed (the CDRL stages use the run's seed, 0 by default; keep them apart).
        scale: Multiplies every step budget of [TrainSettings][evaluators.TrainSettings]
            (tests use a small scale).
        device: Where to train.
        progress: Show progress bars (tqdm).

    Returns:
        The trained (or loaded) [Evaluators][evaluators.Evaluators], frozen, on `device`.

    Raises:
        FileNotFoundError: `root` has no train split.
        ValueError: A bad `seed` / `scale`, or clips without SynthTalk's mouth parameters.
    """
    t_start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"train_evaluators: seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    settings = TrainSettings().scaled(scale)
    root, out = Path(root), Path(out_dir)
    fingerprint = corpus_fingerprint(root)
    device = torch.device(device)
    record = _read_json(out / CONFIG_FILE)
    if record is not None:
        why = _stale(record, out, fingerprint, seed, settings)
        if not why:
            _log.info("%s: complete evaluator set for this corpus and seed %d: loaded, not "
                      "retrained", out, seed)  # fmt: skip
            return load_evaluators(out).to(device)
        _log.warning("%s: retraining the evaluators: %s", out, why)
    elif out.is_dir() and any((out / f).exists() for f in WEIGHT_FILES.values()):
        _log.warning("%s: retraining the evaluators: no %s (an incomplete set)", out,
                     CONFIG_FILE)  # fmt: skip
    from decouple.data.shards import index_path, read_index

    names = tuple(read_index(root, "train").emotion_set.names)
    if not index_path(root, "test").is_file():
        raise FileNotFoundError(f"{root}: no test split (test-index.json); the evaluators "
                                "are checked on held-out speakers")  # fmt: skip
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train = _read_split(root, "train", names, settings.frames_per_clip, seed, crops=True,
                        mfcc_clips=settings.sync_train_clips, progress=progress)  # fmt: skip
    test = _read_split(root, "test", names, settings.test_frames_per_clip, seed, crops=False,
                       full_clips=settings.sync_test_clips, progress=progress)  # fmt: skip
    seconds["read"] = time.perf_counter() - t0
    arch = {**_ARCHITECTURE, "num_speakers": len(train.speakers)}
    record = {"emotion_names": list(names), "architecture": arch}
    torch.manual_seed(seed)
    models = _build(record)
    for m in models.values():
        m.to(device)
    log: dict[str, Any] = {}
    summary: dict[str, Any] = {}

    def timed(name: str, fn: Any) -> None:
        t = time.perf_counter()
        log[name] = fn()
        seconds[name] = time.perf_counter() - t

    def emotion_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x), y)

    def embed_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        cos = model.cosine_logits(x)
        margin = settings.cos_margin * F.one_hot(y, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(settings.cos_scale * (cos - margin), y)

    timed("emotion", lambda: _train_images(
        "emotion", models["emotion"], train, train.emotion, settings, settings.emotion_steps,
        settings.emotion_lr, seed, device, progress, emotion_loss, colour=0.2))  # fmt: skip
    timed("mouth", lambda: _train_mouth(models["mouth"], train, settings,
                                        settings.mouth_steps, seed, device, progress))
    timed("sync", lambda: _train_sync(models["sync"], models["mouth"], train, settings,
                                      settings.sync_steps, seed, device, progress))
    timed("embed", lambda: _train_images(
        "embed", models["embed"], train, train.speaker, settings, settings.embed_steps,
        settings.embed_lr, seed, device, progress, embed_loss))  # fmt: skip
    for m in models.values():
        freeze(m)
    t0 = time.perf_counter()
    summary["emotion"] = {**_check_emotion(models["emotion"], test, names, device),
                          **log["emotion"]}  # fmt: skip
    summary["mouth"] = {**_check_mouth(models["mouth"], train, test, device), **log["mouth"]}
    summary["sync"] = {**_check_sync(models["sync"].cpu(), test, settings), **log["sync"]}
    models["sync"].to(device)
    summary["embed"] = {**_check_embed(models["embed"], test, device), **log["embed"]}
    seconds["checks"] = time.perf_counter() - t0
    summary["data"] = {
        "train_speakers": train.speakers, "test_speakers": test.speakers,
        "train_clips": len(train.clips), "test_clips": len(test.clips),
        "train_frames": int(sum(c.shape[0] for c in train.crops)),
    }  # fmt: skip
    seconds["total"] = time.perf_counter() - t_start
    summary["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    summary["threads"] = torch.get_num_threads()

    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).unlink(missing_ok=True)
    files = {}
    for name in MODELS:
        path = save_weights(models[name], out / WEIGHT_FILES[name],
                            meta={"format": FORMAT, "model": name, "seed": seed,
                                  "corpus": fingerprint})  # fmt: skip
        files[name] = _sha256(path)
    record = {
        "format": FORMAT, "version": VERSION,
        "corpus": {"root": str(root.resolve()), "fingerprint": fingerprint},
        "seed": seed, "scale": scale, "settings": asdict(settings),
        "emotion_names": list(names), "size": train.size, "fps": train.fps,
        "architecture": arch, "files": files, "summary": summary,
    }  # fmt: skip
    from decouple.data.io import atomic_write_bytes

    text = json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(out / CONFIG_FILE, text.encode("utf-8") + b"\n")
    _log.info("%s: evaluators trained in %.1f s", out, seconds["total"])
    return _bundle(record, models)
