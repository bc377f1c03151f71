"""`IResNet`: the ArcFace IResNet of insightface (`arcface_torch`), optionally truncated.

The module tree and parameter names follow insightface's `arcface_torch/backbones/iresnet.py`
exactly, so an insightface state dict (for example `ms1mv3_arcface_r50_fp16/backbone.pth`, an
IResNet-50 trained on MS1MV3) loads key for key:

    conv1 (3 -> 64, 3x3, stride 1), bn1, prelu
    layer1..layer4: IBasicBlock x [3, 4, 14, 3] (IResNet-50), 64 / 128 / 256 / 512 channels,
        the first block of each layer with stride 2 and a `downsample` (1x1 conv + BN);
        a block is bn1 -> conv1 -> bn2 -> prelu -> conv2 (stride) -> bn3, plus the identity
    bn2, dropout, fc (512 * 7 * 7 -> 512), features (BatchNorm1d, weight fixed at 1)

For a 112 x 112 input the maps are 64 x 56 x 56 (layer1), 128 x 28 x 28 (layer2), 256 x 14 x
14 (layer3) and 512 x 7 x 7 (layer4); the embedding is 512-d. CDRL cuts the network after
layer 3 (256 x 28 x 28 for its 224 crops). A truncated network does not build the cut-away
parts, and loading a full checkpoint into it drops their keys explicitly.

Input (the `spec`): RGB, channels first, uint8 in [0, 255] or float in [0, 1]; inside, resized
to 112 x 112 and normalised as insightface does, (x / 255 - 0.5) / 0.5, to [-1, 1]. insightface
trains on RGB (its MXNet record reader decodes RGB; its inference script converts OpenCV's BGR
to RGB). The released CDRL code fed it BGR frames during training and RGB frames at use; here
the channel order is declared once and the same at both times.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.checkpoint import load_weights
from decouple.encoders.spec import ImageSpec

__all__ = ["STAGES", "IBasicBlock", "IResNet", "iresnet50"]

STAGES: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4", "embedding")
"""Where an `IResNet` can stop: after a layer (a feature map) or at the 512-d embedding."""

_WIDTHS = (64, 128, 256, 512)
_HEAD = ("bn2", "dropout", "fc", "features")


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """The improved residual block of ArcFace: BN-conv-BN-PReLU-conv(stride)-BN + identity.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the second conv (and of the downsample).
        downsample: 1x1 conv + BN on the identity path, or None.

    Examples:
        >>> import torch
        >>> block = IBasicBlock(64, 64)
        >>> tuple(block(torch.randn(1, 64, 8, 8)).shape)
        (1, 64, 8, 8)
    """

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: (b, inplanes, h, w).

        Returns:
            (b, planes, h / stride, w / stride).
        """
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """ArcFace IResNet with insightface's key layout, built up to a chosen stage.

    Args:
        layers: Blocks per layer; (3, 4, 14, 3) is IResNet-50, (3, 13, 30, 3) IResNet-100.
        stop_at: One of `STAGES`: "layer1".."layer4" return that layer's feature map,
            "embedding" the full network's 512-d (`num_features`) embedding.
        num_features: Embedding size (insightface: 512).
        dropout: Dropout before `fc` (insightface: 0).
        size: Input size frames are resized to; (112, 112) as insightface. None keeps the
            input size (allowed only for truncated networks: `fc` needs a 7 x 7 map).

    Attributes:
        spec: The input convention (RGB, [-1, 1] normalisation, 112 x 112).
        out_channels: Channels of the output map (or `num_features` for "embedding").
        ignored_prefixes: Key prefixes of the parts not built (dropped when loading).

    Examples:
        >>> import torch
        >>> net = IResNet((1, 1, 1, 1), stop_at="layer3")  # a tiny IResNet for the example
        >>> tuple(net(torch.rand(2, 3, 112, 112)).shape)
        (2, 256, 14, 14)
        >>> net.ignored_prefixes
        ('layer4.', 'bn2.', 'dropout.', 'fc.', 'features.')
    """

    fc_scale = 7 * 7

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 14, 3),
        *,
        stop_at: str = "layer3",
        num_features: int = 512,
        dropout: float = 0.0,
        size: tuple[int, int] | None = (112, 112),
    ) -> None:
        super().__init__()
        if stop_at not in STAGES:
            raise ValueError(f"stop_at must be one of {STAGES}, got {stop_at!r}")
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 positive block counts, got {tuple(layers)}")
        if stop_at == "embedding" and tuple(size or ()) != (112, 112):
            raise ValueError(
                f"stop_at='embedding' needs size=(112, 112) (fc expects a 7 x 7 map), got {size}"
            )
        self.layers = tuple(int(n) for n in layers)
        self.stop_at = stop_at
        self.num_features = int(num_features)
        self.spec = ImageSpec(
            channels="RGB", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=size, name="IResNet"
        )
        n_layers = 4 if stop_at == "embedding" else int(stop_at[-1])
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i in range(n_layers):
            planes = _WIDTHS[i]
            self.add_module(f"layer{i + 1}", self._make_layer(inplanes, planes, self.layers[i]))
            inplanes = planes
        ignored = [f"layer{i + 1}." for i in range(n_layers, 4)]
        if stop_at == "embedding":
            self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
            self.dropout = nn.Dropout(p=dropout, inplace=True)
            self.fc = nn.Linear(512 * self.fc_scale, self.num_features)
            self.features = nn.BatchNorm1d(self.num_features, eps=1e-05)
            self.out_channels = self.num_features
        else:
            ignored += [f"{name}." for name in _HEAD]
            self.out_channels = _WIDTHS[n_layers - 1]
        self.ignored_prefixes = tuple(ignored)
        self._n_layers = n_layers
        for m in self.modules():  # insightface's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if stop_at == "embedding":
            nn.init.constant_(self.features.weight, 1.0)
            self.features.weight.requires_grad = False

    @staticmethod
    def _make_layer(inplanes: int, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=2, bias=False),
            nn.BatchNorm2d(planes, eps=1e-05),
        )
        out = [IBasicBlock(inplanes, planes, 2, downsample)]
        out += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def output_shape(self, height: int = 112, width: int = 112) -> tuple[int, ...]:
        """The output shape (without the batch axis) for an input of height x width.

        Args:
            height: Input height (before resizing to `spec.size`).
            width: Input width.

        Returns:
            (c, h', w') for a truncated network, (num_features,) for "embedding".

        Examples:
            >>> IResNet((1, 1, 1, 1), stop_at="layer2").output_shape()
            (128, 28, 28)
        """
        if self.stop_at == "embedding":
            return (self.num_features,)
        if self.spec.size is not None:
            height, width = self.spec.size
        for _ in range(self._n_layers):
            height, width = (height + 1) // 2, (width + 1) // 2
        return self.out_channels, height, width

    def load_insightface(self, source: str | os.PathLike | Mapping[str, Tensor]) -> IResNet:
        """Load an insightface `arcface_torch` state dict (e.g. `backbone.pth`).

        Keys of the parts this network does not build (`ignored_prefixes`) are dropped; any
        other missing, unexpected or wrongly shaped key raises, named. BatchNorm's
        `num_batches_tracked` may be absent.

        Args:
            source: A local file (`torch.load(weights_only=True)` or `.safetensors`), or a
                state dict.

        Returns:
            self, loaded.

        Raises:
            FileNotFoundError: If the file does not exist.
            decouple.checkpoint.CheckpointError: If the keys do not fit.

        Examples:
            >>> full = IResNet((1, 1, 1, 1), stop_at="embedding")
            >>> cut = IResNet((1, 1, 1, 1), stop_at="layer3").load_insightface(full.state_dict())
            >>> bool(torch.equal(cut.layer3[0].conv1.weight, full.layer3[0].conv1.weight))
            True
        """
        load_weights(self, source, ignore_prefixes=self.ignored_prefixes)
        return self

    def forward(self, frames: Tensor) -> Tensor:
        """Check and normalise the frames, then run the network up to `stop_at`.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, c, h', w') for a truncated network; (b, num_features) for "embedding".
        """
        x = self.spec.prepare(frames, dtype=self.conv1.weight.dtype)
        x = self.prelu(self.bn1(self.conv1(x)))
        for i in range(self._n_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        if self.stop_at != "embedding":
            return x
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    def embed(self, frames: Tensor, *, normalize: bool = False) -> Tensor:
        """The ArcFace identity embedding (for identity similarity and FAD-style statistics).

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1] (resized to 112 x 112).
            normalize: L2-normalise the rows (cosine similarity is then a dot product).

        Returns:
            (b, num_features).

        Raises:
            RuntimeError: If the network is truncated (`stop_at` is not "embedding").

        Examples:
            >>> import torch
            >>> net = IResNet((1, 1, 1, 1), stop_at="embedding").eval()
            >>> tuple(net.embed(torch.rand(2, 3, 96, 96), normalize=True).shape)
            (2, 512)
        """
        if self.stop_at != "embedding":
            raise RuntimeError(
                f"IResNet.embed needs the full network (stop_at='embedding'); this one stops "
                f"at {self.stop_at!r}"
            )
        z = self(frames)
        return F.normalize(z, dim=1) if normalize else z


def iresnet50(
    weights: str | os.PathLike | None = None, *, stop_at: str = "layer3", **kwargs: object
) -> IResNet:
    """IResNet-50 ([3, 4, 14, 3] blocks), optionally loaded from an insightface weight file.

    Args:
        weights: Local insightface state dict, e.g. `ms1mv3_arcface_r50_fp16/backbone.pth`
            (never downloaded); None for random initialisation.
        stop_at: One of `STAGES` ("layer3" as CDRL; "embedding" for identity features).
        **kwargs: Passed to `IResNet` (`size`, `dropout`, `num_features`).

    Returns:
        The network, in eval mode when `weights` is given.

    Examples:
        >>> net = iresnet50(stop_at="layer3")
        >>> net.output_shape(), len(net.layer3)
        ((256, 14, 14), 14)
    """
    net = IResNet((3, 4, 14, 3), stop_at=stop_at, **kwargs)  # type: ignore[arg-type]
    if weights is not None:
        net.load_insightface(weights)
        net.eval()
    return net
