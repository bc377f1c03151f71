"""`ConvBackbone`: a small conv-BN-ReLU feature extractor for 64-128 px face crops (CPU demos)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from decouple.encoders.spec import ImageSpec

__all__ = ["ConvBackbone"]


class ConvBackbone(nn.Module):
    """A few conv-BN-ReLU stages returning a feature map; trainable from scratch on CPU.

    Each stage is a stride-2 3x3 conv-BN-ReLU followed by `depth - 1` stride-1 3x3
    conv-BN-ReLU layers, so S stages map (b, 3, h, w) to (b, channels[-1], h / 2^S, w / 2^S)
    (for h, w divisible by 2^S). The default (32, 64, 128) turns a 64 x 64 crop into
    128 x 8 x 8 and a 112 x 112 crop into 128 x 14 x 14.

    Input (declared in `spec`): RGB, channels first, uint8 in [0, 255] or float in [0, 1],
    normalised inside with mean 0.5 and std 0.5 per channel (to [-1, 1], the ArcFace
    convention), resized to `size` when given.

    Args:
        channels: Output channels of each stage.
        depth: Conv-BN-ReLU layers per stage (the first has stride 2).
        size: Input size (h, w) the frames are resized to; None keeps their size.

    Attributes:
        out_channels: Channels of the output map.
        stride: Total downsampling factor, 2^S.
        spec: The input convention.

    Examples:
        >>> import torch
        >>> net = ConvBackbone()
        >>> tuple(net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)).shape)
        (2, 128, 8, 8)
        >>> net.output_shape(112, 112)
        (128, 14, 14)
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128),
        *,
        depth: int = 2,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.spec = ImageSpec(
            channels="RGB", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=size,
            name="ConvBackbone",
        )  # fmt: skip
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            for i in range(depth):
                layers += [
                    nn.Conv2d(c_in, c_out, 3, stride=2 if i == 0 else 1, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
                c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out_channels = int(channels[-1])
        self.stride = 2 ** len(channels)
        self.channels = tuple(int(c) for c in channels)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(c, h', w') of the map for an input of height x width (after resizing to `size`).

        Args:
            height: Input height.
            width: Input width.

        Returns:
            (out_channels, h', w').

        Examples:
            >>> ConvBackbone(channels=(8, 16)).output_shape(64, 48)
            (16, 16, 12)
        """
        if self.spec.size is not None:
            height, width = self.spec.size
        for _ in self.channels:
            height, width = (height + 1) // 2, (width + 1) // 2
        return self.out_channels, height, width

    def forward(self, frames: Tensor) -> Tensor:
        """Check, normalise and encode the frames.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, out_channels, h', w') feature map.
        """
        return self.body(self.spec.prepare(frames, dtype=self.body[0].weight.dtype))
