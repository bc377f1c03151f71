"""`ImageSpec`: the channel order, value range, normalisation and size a module expects.

Every image module of `decouple.encoders` declares its input convention once, as an
`ImageSpec`, and checks each input against it. The library's convention for *incoming*
frames is the one `decouple.data` produces: RGB, channels first, `uint8` in [0, 255]
(decoded video) or floating point in [0, 1] (generator outputs, which need gradients). The
spec then says what the network's weights were trained on: channel order, mean and std, and
input size. [prepare][decouple.encoders.spec.ImageSpec.prepare] converts once, in this order:

    frames (b, 3, h, w) RGB, uint8 0..255 or float 0..1
      -> float in [0, 1]
      -> channel order of the weights (flip to BGR if `channels="BGR"`)
      -> resized to `size` (bilinear, antialiased) if the size differs
      -> (x - mean) / std

Why this exists: the released CDRL code trained its content encoder on BGR frames (read with
OpenCV) and used it on RGB frames, and fed CLIP unnormalised images. Declaring the convention
on the module and rejecting inputs that cannot match it (wrong channel count, channels-last
layout, float images in 0..255, images already normalised to [-1, 1]) makes those mistakes
errors instead of silent accuracy losses. Channel *order* cannot be checked from pixel values;
it is fixed by the convention above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ImageSpec", "ImageSpecError"]

_ORDERS = ("RGB", "BGR")


class ImageSpecError(ValueError):
    """An image tensor does not match the `ImageSpec` of the module it was given to.

    Examples:
        >>> issubclass(ImageSpecError, ValueError)
        True
    """


@dataclass(frozen=True)
class ImageSpec:
    """The input convention of an image module, declared once and checked at every call.

    Inputs are always RGB, channels first, either `torch.uint8` in [0, 255] or floating point
    in `value_range` (default [0, 1]); the fields below describe what the network itself sees.

    Args:
        channels: Channel order the network's weights expect: "RGB" or "BGR". Inputs are RGB;
            "BGR" flips them inside `prepare`.
        mean: Per-channel mean subtracted after scaling to [0, 1], in the network's order.
        std: Per-channel std divided by after subtracting the mean.
        size: (height, width) the network needs; inputs of another size are resized inside
            `prepare`. None keeps the input size.
        value_range: Allowed value range of floating-point inputs.
        tolerance: Slack on `value_range` (resampling overshoot, rounding).
        name: The module the spec belongs to (used in error messages).

    Examples:
        >>> import torch
        >>> spec = ImageSpec(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=(4, 4))
        >>> x = spec.prepare(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8))
        >>> tuple(x.shape), float(x.min()), float(x.max())
        ((1, 3, 4, 4), 1.0, 1.0)
        >>> spec.prepare(torch.full((1, 3, 8, 8), 200.0))
        Traceback (most recent call last):
        ...
        decouple.encoders.spec.ImageSpecError: image: frames: float frames must lie in [0, 1] ...
    """

    channels: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: tuple[int, int] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    tolerance: float = 1e-3
    name: str = "image"

    def __post_init__(self) -> None:
        if self.channels not in _ORDERS:
            raise ValueError(f"ImageSpec.channels must be one of {_ORDERS}, got {self.channels!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(
                f"ImageSpec.mean and .std need 3 values, got {self.mean!r} and {self.std!r}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"ImageSpec.std must be > 0, got {self.std!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"ImageSpec.size must be (height, width) >= 1, got {self.size!r}")
        lo, hi = self.value_range
        if not lo < hi:
            raise ValueError(f"ImageSpec.value_range must be (low, high), got {self.value_range!r}")

    def describe(self) -> str:
        """A one-line description of the convention, for docs and error messages.

        Returns:
            E.g. "RGB uint8 0..255 or float [0, 1] -> RGB, mean (0.5, ...), std (...), 112x112".

        Examples:
            >>> ImageSpec(channels="BGR", size=(112, 112)).describe()
            'RGB uint8 0..255 or float [0, 1] -> BGR, mean (0.0, 0.0, 0.0), ..., 112x112'
        """
        lo, hi = self.value_range
        size = "input size" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        return (
            f"RGB uint8 0..255 or float [{lo:g}, {hi:g}] -> {self.channels}, mean {self.mean}, "
            f"std {self.std}, {size}"
        )

    def check(self, frames: Tensor, what: str = "frames") -> None:
        """Raise if `frames` cannot be an input of this convention.

        Args:
            frames: (b, 3, h, w) images.
            what: The argument's name, for the error message.

        Raises:
            ImageSpecError: On a non-tensor, a wrong number of dimensions or channels (with a
                hint for channels-last layouts), an integer dtype other than uint8, float
                values outside `value_range` (with a hint for 0..255 floats and normalised
                inputs) or non-finite values.

        Examples:
            >>> import torch
            >>> ImageSpec(name="IResNet").check(torch.zeros(2, 112, 112, 3))
            Traceback (most recent call last):
            ...
            decouple.encoders.spec.ImageSpecError: IResNet: frames must be (b, 3, h, w) ...
        """
        where = f"{self.name}: {what}"
        if not isinstance(frames, Tensor):
            raise ImageSpecError(f"{where} must be a torch.Tensor, got {type(frames).__name__}")
        shape = tuple(frames.shape)
        if frames.dim() != 4 or shape[1] != 3:
            hint = ""
            if frames.dim() == 4 and shape[-1] == 3:
                hint = " (this looks channels-last: use frames.permute(0, 3, 1, 2))"
            elif frames.dim() == 3 and shape[0] == 3:
                hint = " (a single image: add a batch axis with frames[None])"
            elif frames.dim() == 4 and shape[1] in (1, 4):
                hint = f" ({shape[1]} channels: convert to 3-channel RGB)"
            raise ImageSpecError(
                f"{where} must be (b, 3, h, w) RGB channels-first, got shape {shape}{hint}"
            )
        if frames.dtype == torch.uint8:
            return
        if not frames.is_floating_point():
            raise ImageSpecError(
                f"{where} must be torch.uint8 (0..255) or floating point in "
                f"[{self.value_range[0]:g}, {self.value_range[1]:g}], got {frames.dtype}"
            )
        if frames.numel() == 0:
            return
        lo, hi = self.value_range
        with torch.no_grad():
            fmin, fmax = float(frames.min()), float(frames.max())
        if not (math.isfinite(fmin) and math.isfinite(fmax)):
            raise ImageSpecError(f"{where} holds non-finite values")
        if fmin < lo - self.tolerance or fmax > hi + self.tolerance:
            hint = ""
            if fmax > 1.5 and hi <= 1.0:
                hint = " (values up to 255? pass uint8 frames or divide by 255)"
            elif fmin < -self.tolerance and lo >= 0.0:
                hint = " (negative values: already normalised? pass raw [0, 1] frames)"
            raise ImageSpecError(
                f"{where}: float frames must lie in [{lo:g}, {hi:g}] (RGB, before "
                f"normalisation), got values in [{fmin:.4g}, {fmax:.4g}]{hint}"
            )

    def to_unit(
        self, frames: Tensor, what: str = "frames", *, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Check `frames` and return them as floating point in [0, 1], RGB, at the input size.

        Args:
            frames: (b, 3, h, w) RGB images, uint8 or float in `value_range`.
            what: The argument's name, for error messages.
            dtype: Floating dtype of the result for uint8 input (float input keeps its own).

        Returns:
            (b, 3, h, w) float (`dtype` for uint8 input, the input dtype otherwise).

        Examples:
            >>> import torch
            >>> x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
            >>> ImageSpec().to_unit(x).flatten().mul(100).round().tolist()
            [0.0, 20.0, 100.0]
        """
        self.check(frames, what)
        if frames.dtype == torch.uint8:
            return frames.to(dtype) / 255.0
        lo, hi = self.value_range
        if (lo, hi) == (0.0, 1.0):
            return frames
        return (frames - lo) / (hi - lo)

    def prepare(
        self, frames: Tensor, what: str = "frames", *, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Check `frames` and convert them to the network's input.

        Args:
            frames: (b, 3, h, w) RGB images, uint8 in [0, 255] or float in `value_range`.
            what: The argument's name, for error messages.
            dtype: Floating dtype of the result for uint8 input (float input keeps its own).

        Returns:
            (b, 3, H, W) float: channel order `channels`, size `size`, (x - mean) / std.

        Examples:
            >>> import torch
            >>> red = torch.zeros(1, 3, 2, 2, dtype=torch.uint8); red[:, 0] = 255
            >>> ImageSpec(channels="BGR").prepare(red)[0, :, 0, 0].tolist()  # red is last in BGR
            [0.0, 0.0, 1.0]
        """
        x = self.to_unit(frames, what, dtype=dtype)
        if self.channels == "BGR":
            x = x.flip(1)
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=tuple(self.size), mode="bilinear", align_corners=False,
                              antialias=True)  # fmt: skip
        if self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0):
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x
