"""`EfficientFace`: the facial-expression network of Zhao, Liu and Zhou (AAAI 2021).

"Robust Lightweight Facial Expression Recognition Network with Label Distribution Training";
the authors' code is `zengqunzhao/EfficientFace` (`models/EfficientFace.py`,
`models/modulator.py`). The SPFEM papers take the 1024-d penultimate features of the model
trained on AffectNet-7 as the emotion features of their "CSIM" metric
(`decouple.metrics.similarity.emotion_feature_similarity`).

The module tree and parameter names follow the authors' code exactly, so the published
checkpoint `EfficientFace_Trained_on_AffectNet7.pth.tar` loads key for key (after the
`module.` prefix of `DataParallel` is removed). For a 224 x 224 input:

    conv1     Conv 3x3/2 (3 -> 29) + BN + ReLU                          29 x 112 x 112
    maxpool   3x3/2                                                     29 x 56 x 56
    stage2    ShuffleNetV2 units: 1 strided (29 -> 116) + 3             116 x 28 x 28
      + modulator (channel x spatial attention on stage2's output)
      + local   4 depthwise branches, one per 28 x 28 quadrant of the   116 x 28 x 28
                56 x 56 map (stride 2), the outputs tiled back together
    stage3    1 strided (116 -> 232) + 7 units                          232 x 14 x 14
    stage4    1 strided (232 -> 464) + 3 units                          464 x 7 x 7
    conv5     Conv 1x1 (464 -> 1024) + BN + ReLU, mean over positions   1024  (`features`)
    fc        Linear 1024 -> 7                                          7     (`forward`)

A ShuffleNetV2 unit (`InvertedResidual`) keeps half of its channels and transforms the
other half (stride 1), or transforms the whole input twice (stride 2: `branch1` depthwise +
pointwise, `branch2` pointwise + depthwise + pointwise), concatenates and shuffles the
channels in two groups. The local branch needs the 56 x 56 map of a 224 x 224 input, so
every input is brought to 224 x 224 (see
[EfficientFace][decouple.encoders.efficientface.EfficientFace]).

Class order of the AffectNet-7 checkpoint: AffectNet's own label ids 0..6, which the authors
also use for RAF-DB ("0: Neutral; 1: Happiness; 2: Sadness; 3: Surprise; 4: Fear;
5: Disgust; 6: Anger" in their README), here as canonical names
([AFFECTNET7_EMOTIONS][decouple.encoders.efficientface.AFFECTNET7_EMOTIONS]); the AffectNet-8
checkpoint adds contempt (id 7).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.checkpoint import check_state, read_weights
from decouple.encoders.spec import ImageSpec

__all__ = [
    "AFFECTNET7_EMOTIONS",
    "AFFECTNET8_EMOTIONS",
    "RAFDB_MEAN",
    "RAFDB_STD",
    "EfficientFace",
    "efficientface",
]

AFFECTNET7_EMOTIONS: tuple[str, ...] = (
    "neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry",
)  # fmt: skip
"""Class order of `EfficientFace_Trained_on_AffectNet7.pth.tar` (AffectNet ids 0..6:
Neutral, Happiness, Sadness, Surprise, Fear, Disgust, Anger), as canonical names of
`decouple.data.registry`."""

AFFECTNET8_EMOTIONS: tuple[str, ...] = (*AFFECTNET7_EMOTIONS, "contempt")
"""Class order of the AffectNet-8 checkpoint (AffectNet ids 0..7: the seven above, then
Contempt)."""

RAFDB_MEAN: tuple[float, float, float] = (0.57535914, 0.44928582, 0.40079932)
"""Per-channel RGB mean of the normalisation the EfficientFace training script (`main.py`,
"RAF-DB") and the SPFEM group's CSIM script use."""

RAFDB_STD: tuple[float, float, float] = (0.20735591, 0.18981615, 0.18132027)
"""Per-channel RGB std that goes with [RAFDB_MEAN][decouple.encoders.efficientface.RAFDB_MEAN]."""

INPUT_SIZE = 224
"""The network's input side: the local branch cuts the 56 x 56 map of a 224 x 224 input into
four 28 x 28 quadrants."""

_REPEATS = (4, 8, 4)
_CHANNELS = (29, 116, 232, 464, 1024)


def _depthwise(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    """3x3 conv with `groups=c_in` (the authors' `depthwise_conv`; c_out may be a multiple)."""
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False, groups=c_in)


def _pointwise(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)


def _channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """(b, g * c, h, w) -> channels reordered c-major: [g0c0, g1c0, g0c1, g1c1, ...]."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _InvertedResidual(nn.Module):
    """ShuffleNetV2 unit (`InvertedResidual` of the authors' code, same keys)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        if stride == 1 and c_in != 2 * half:
            raise ValueError(f"a stride-1 unit needs c_in == c_out, got {c_in} -> {c_out}")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(c_in, c_in, stride), nn.BatchNorm2d(c_in),
                _pointwise(c_in, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            )  # fmt: skip
        self.branch2 = nn.Sequential(
            _pointwise(c_in if stride > 1 else half, half), nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            _depthwise(half, half, stride), nn.BatchNorm2d(half),
            _pointwise(half, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            kept, moved = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(moved)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return _channel_shuffle(out, 2)


class _LocalFeatureExtractor(nn.Module):
    """Four depthwise branches, one per quadrant (`LocalFeatureExtractor`, same keys).

    Branch 1 sees the top-left quadrant, 2 the bottom-left, 3 the top-right, 4 the
    bottom-right (the authors' patch_11, patch_21, patch_12, patch_22); each is conv (stride
    2) + BN + ReLU + conv + BN + ReLU, and the four outputs are tiled in the same places.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        for i in range(1, 5):
            self.add_module(f"conv{i}_1", _depthwise(c_in, c_out, 2))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(c_out))
            self.add_module(f"conv{i}_2", _depthwise(c_out, c_out, 1))
            self.add_module(f"bn{i}_2", nn.BatchNorm2d(c_out))

    def _branch(self, i: int, x: Tensor) -> Tensor:
        x = self.relu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(x)))
        return self.relu(getattr(self, f"bn{i}_2")(getattr(self, f"conv{i}_2")(x)))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2  # 28 x 28 quadrants of the 56 x 56 map
        left = torch.cat([self._branch(1, x[..., :h, :w]), self._branch(2, x[..., h:, :w])], 2)
        right = torch.cat([self._branch(3, x[..., :h, w:]), self._branch(4, x[..., h:, w:])], 2)
        return torch.cat([left, right], dim=3)


class _ChannelGate(nn.Module):
    """Channel attention of the modulator (`Channel`, same keys): pooled MLP, (b, c, 1, 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        mid = channels // reduction
        self.gate_c = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("gate_c_fc_0", nn.Linear(channels, mid)),
            ("gate_c_bn_1", nn.BatchNorm1d(mid)),
            ("gate_c_relu_1", nn.ReLU()),
            ("gate_c_fc_final", nn.Linear(mid, channels)),
        ]))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        # the authors pool with avg_pool2d(kernel = height), the global mean of a square map
        return self.gate_c(x.mean(dim=(2, 3)))[:, :, None, None]


class _SpatialGate(nn.Module):
    """Spatial attention of the modulator (`Spatial`, same keys): (b, 1, h, w)."""

    def __init__(self, channels: int, reduction: int = 16, n_dilated: int = 2,
                 dilation: int = 4) -> None:  # fmt: skip
        super().__init__()
        mid = channels // reduction
        layers: list[tuple[str, nn.Module]] = [
            ("gate_s_conv_reduce0", nn.Conv2d(channels, mid, kernel_size=1)),
            ("gate_s_bn_reduce0", nn.BatchNorm2d(mid)),
            ("gate_s_relu_reduce0", nn.ReLU()),
        ]
        for i in range(n_dilated):
            layers += [
                (f"gate_s_conv_di_{i}",
                 nn.Conv2d(mid, mid, kernel_size=3, padding=dilation, dilation=dilation)),
                (f"gate_s_bn_di_{i}", nn.BatchNorm2d(mid)),
                (f"gate_s_relu_di_{i}", nn.ReLU()),
            ]  # fmt: skip
        layers.append(("gate_s_conv_final", nn.Conv2d(mid, 1, kernel_size=1)))
        self.gate_s = nn.Sequential(OrderedDict(layers))

    def forward(self, x: Tensor) -> Tensor:
        return self.gate_s(x)


class _Modulator(nn.Module):
    """The channel-spatial modulator: x * sigmoid(channel(x) * spatial(x)) (`Modulator`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channel_att = _ChannelGate(channels)
        self.spatial_att = _SpatialGate(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.channel_att(x) * self.spatial_att(x)) * x


class EfficientFace(nn.Module):
    """EfficientFace with the authors' key layout: 1024-d expression features and logits.

    Input (the protocol of the SPFEM group's CSIM script): RGB frames, channels first,
    uint8 in [0, 255] or float in [0, 1]; the shorter side is resized to `resize` (256;
    bilinear, antialiased), the centre 224 x 224 is cut out (torchvision's `Resize(256)` +
    `CenterCrop(224)`), and each channel is normalised with `mean` and `std` (RAF-DB's
    statistics, as the authors' training script and the group's script). `resize=None`
    resizes straight to 224 x 224 (the authors' evaluation transform, `Resize((224, 224))`).

    Args:
        emotion_names: Class names in logit order; their number sets the size of `fc`.
            [AFFECTNET7_EMOTIONS][decouple.encoders.efficientface.AFFECTNET7_EMOTIONS] for the
            AffectNet-7 checkpoint, `AFFECTNET8_EMOTIONS` for the AffectNet-8 one.
        resize: Shorter side before the centre crop; None: resize to 224 x 224, no crop.
        mean: Per-channel RGB mean subtracted after scaling to [0, 1].
        std: Per-channel RGB std.

    Attributes:
        emotion_names: The class names in logit order.
        spec: The input convention (range check, RGB, normalisation; the resize and crop are
            done by [prepare][decouple.encoders.efficientface.EfficientFace.prepare]).
        feature_dim: 1024, the size of `features`.

    Examples:
        >>> import torch
        >>> net = EfficientFace().eval()
        >>> frames = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
        >>> tuple(net.features(frames).shape), tuple(net(frames).shape)
        ((2, 1024), (2, 7))
        >>> net.emotion_names[:3]
        ('neutral', 'happy', 'sad')
    """

    feature_dim = 1024

    def __init__(
        self,
        emotion_names: Sequence[str] = AFFECTNET7_EMOTIONS,
        *,
        resize: int | None = 256,
        mean: tuple[float, float, float] = RAFDB_MEAN,
        std: tuple[float, float, float] = RAFDB_STD,
    ) -> None:
        super().__init__()
        names = tuple(emotion_names)
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"emotion_names must be unique strings, at least one, got {names!r}")
        if resize is not None and resize < INPUT_SIZE:
            raise ValueError(f"resize must be >= {INPUT_SIZE} (the crop) or None, got {resize}")
        self.emotion_names = names
        self.resize = resize
        self.spec = ImageSpec(channels="RGB", mean=tuple(mean), std=tuple(std), size=None,
                              name="EfficientFace")  # type: ignore[arg-type]  # fmt: skip
        c = _CHANNELS
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, c[0], 3, 2, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in = c[0]
        for name, repeats, c_out in zip(("stage2", "stage3", "stage4"), _REPEATS, c[1:4],
                                        strict=True):  # fmt: skip
            units = [_InvertedResidual(c_in, c_out, 2)]
            units += [_InvertedResidual(c_out, c_out, 1) for _ in range(repeats - 1)]
            self.add_module(name, nn.Sequential(*units))
            c_in = c_out
        self.local = _LocalFeatureExtractor(c[0], c[1])
        self.modulator = _Modulator(c[1])
        self.conv5 = nn.Sequential(
            _pointwise(c[3], c[4]), nn.BatchNorm2d(c[4]), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(c[4], len(names))

    def prepare(self, frames: Tensor) -> Tensor:
        """Check the frames and turn them into the network's input.

        The per-channel normalisation is applied first, at the input size (it commutes with
        the resize, whose weights sum to 1, and with the crop).

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, 3, 224, 224), normalised, in the dtype of the weights.

        Raises:
            decouple.encoders.ImageSpecError: If the frames do not follow the convention.

        Examples:
            >>> import torch
            >>> net = EfficientFace()
            >>> tuple(net.prepare(torch.rand(1, 3, 300, 256)).shape)  # 256 x 300 -> 224 x 224
            (1, 3, 224, 224)
        """
        x = self.spec.prepare(frames, dtype=self.fc.weight.dtype)
        h, w = x.shape[-2:]
        if self.resize is None:
            if (h, w) != (INPUT_SIZE, INPUT_SIZE):
                x = _resize(x, (INPUT_SIZE, INPUT_SIZE))
            return x
        short, long = min(h, w), max(h, w)
        if short != self.resize:  # torchvision Resize(int): shorter side, longer truncated
            other = int(self.resize * long / short)
            x = _resize(x, (self.resize, other) if h <= w else (other, self.resize))
        h, w = x.shape[-2:]
        top = round((h - INPUT_SIZE) / 2.0)  # torchvision CenterCrop's rounding
        left = round((w - INPUT_SIZE) / 2.0)
        return x[..., top : top + INPUT_SIZE, left : left + INPUT_SIZE]

    def _trunk(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.modulator(self.stage2(x)) + self.local(x)
        return self.conv5(self.stage4(self.stage3(x)))

    def features(self, frames: Tensor) -> Tensor:
        """The 1024-d penultimate features (conv5, averaged over positions): CSIM's features.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, 1024).

        Examples:
            >>> import torch
            >>> net = EfficientFace().eval()
            >>> tuple(net.features(torch.rand(3, 3, 224, 224)).shape)
            (3, 1024)
        """
        return self._trunk(self.prepare(frames)).mean(dim=(2, 3))

    def forward(self, frames: Tensor) -> Tensor:
        """Expression logits.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, len(emotion_names)) logits, in the order of `emotion_names`.
        """
        return self.fc(self.features(frames))

    def load_checkpoint(self, path: str | os.PathLike) -> EfficientFace:
        """Load the authors' checkpoint file (or any state-dict file of this layout).

        The file is read by [read_weights][decouple.checkpoint.read_weights] with
        `torch.load(weights_only=True)`: its `state_dict` entry is taken and the `module.`
        prefix removed; the other entries (`epoch`, `best_acc`, `optimizer`, ...) are
        dropped. The authors' training script also pickles a `RecorderMeter` (an object of
        its `main` module holding numpy arrays of the learning curves); for that entry
        alone, a do-nothing stand-in class and numpy's array and scalar reconstructors are
        allowed while reading (`torch.serialization.safe_globals`; nothing else is).

        Every key is checked: missing, unexpected or wrongly shaped keys raise, named.

        Args:
            path: A local file, e.g. `EfficientFace_Trained_on_AffectNet7.pth.tar`.

        Returns:
            self, loaded.

        Raises:
            FileNotFoundError: If there is no file at `path`.
            decouple.checkpoint.CheckpointError: If the file cannot be read safely or its
                keys do not fit (with a hint for the MS-Celeb-1M pre-training file and for a
                checkpoint with another number of classes).

        Examples:
            >>> import tempfile, torch
            >>> from pathlib import Path
            >>> src = EfficientFace()
            >>> with tempfile.TemporaryDirectory() as d:
            ...     torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in
            ...                 src.state_dict().items()}}, Path(d) / "ef.pth.tar")
            ...     net = EfficientFace().load_checkpoint(Path(d) / "ef.pth.tar")
            >>> bool(torch.equal(net.fc.weight, src.fc.weight))
            True
        """
        with _bookkeeping_allowed():
            state, _ = read_weights(path, what="an EfficientFace checkpoint")
        expected = self.state_dict()
        check_state(expected, state, source=str(path), target="EfficientFace",
                    optional_suffixes=("num_batches_tracked",),
                    hint=self._hint(state))  # fmt: skip
        self.load_state_dict(state, strict=False)
        return self

    def _hint(self, state: dict[str, Tensor]) -> str:
        fc = state.get("fc.weight")
        if fc is None or fc.ndim != 2 or fc.shape[0] == len(self.emotion_names):
            return (". Expected the state dict of zengqunzhao/EfficientFace's EfficientFace "
                    "(e.g. EfficientFace_Trained_on_AffectNet7.pth.tar)")  # fmt: skip
        n = int(fc.shape[0])
        if n == 12666:
            return (". fc has 12666 outputs: this is the MS-Celeb-1M pre-training file "
                    "(Pretrained_EfficientFace.tar), not a facial-expression checkpoint; use "
                    "EfficientFace_Trained_on_AffectNet7.pth.tar")  # fmt: skip
        extra = " (AFFECTNET8_EMOTIONS for the AffectNet-8 file)" if n == 8 else ""
        return (f". fc has {n} outputs in the file and {len(self.emotion_names)} here: pass "
                f"emotion_names with {n} names{extra}")  # fmt: skip


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class _RecorderMeter:
    """Stand-in for the `RecorderMeter` the EfficientFace training script pickles (its
    learning curves): read as a plain object, never used."""


@contextlib.contextmanager
def _bookkeeping_allowed() -> Iterator[None]:
    """Allow, while reading a checkpoint with weights_only=True, the training bookkeeping of
    the authors' files: the RecorderMeter stand-in and numpy arrays / scalars."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: plain weights_only loading
        yield
        return
    import numpy as np

    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    if multiarray is None:  # numpy < 2
        multiarray = np.core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32,
                                            np.int64, np.uint8, np.bool_)]  # fmt: skip
    for module in ("__main__", "main"):
        allowed.append((_RecorderMeter, f"{module}.RecorderMeter"))
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
        allowed.append((multiarray.scalar, f"{module}.scalar"))
    with safe_globals(allowed):
        yield


def efficientface(
    weights: str | os.PathLike | None = None,
    *,
    emotion_names: Sequence[str] = AFFECTNET7_EMOTIONS,
    **kwargs: Any,
) -> EfficientFace:
    """EfficientFace, optionally loaded from a local checkpoint file (never downloaded).

    Args:
        weights: `EfficientFace_Trained_on_AffectNet7.pth.tar` (or another file of this
            layout, see
            [load_checkpoint][decouple.encoders.efficientface.EfficientFace.load_checkpoint]);
            None for random initialisation.
        emotion_names: Class names in logit order (AffectNet-7 by default).
        **kwargs: Passed to `EfficientFace` (`resize`, `mean`, `std`).

    Returns:
        The network, in eval mode when `weights` is given.

    Raises:
        FileNotFoundError: If `weights` names no file.
        decouple.checkpoint.CheckpointError: If the file does not fit (keys named).

    Examples:
        >>> net = efficientface()
        >>> sum(p.numel() for p in net.parameters())
        1275293
    """
    net = EfficientFace(emotion_names, **kwargs)
    if weights is not None:
        net.load_checkpoint(weights)
        net.eval()
    return net
