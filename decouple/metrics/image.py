"""Pixel-level image quality: PSNR and SSIM between paired frames (float64).

Both take two frame tensors of the same shape `(n, c, h, w)` (the project's frames are RGB,
c = 3; any channel count works), both `uint8` (data range R = 255) or both floating point
(R = 1.0 unless `data_range` says otherwise), and an optional pixel `box = (x0, y0, x1, y1)`
(columns x0..x1-1, rows y0..y1-1; the mouth region, say) that both frames are cropped to
first. The result is the mean over frames of the per-frame score.

- [psnr][decouple.metrics.image.psnr]: `10 log10(R^2 / MSE)` per frame, MSE over the frame's
  pixels and channels; a frame without error gives `inf`, and so does the mean.
- [ssim][decouple.metrics.image.ssim]: Wang, Bovik, Sheikh & Simoncelli (IEEE TIP 2004) with
  an 11 x 11 Gaussian window (sigma 1.5), population (co)variances, K1 = 0.01, K2 = 0.03,
  per channel, over the *valid* region (windows that fit inside the image, no padding); the
  mean over pixels, channels and frames. With the defaults this is scikit-image's
  `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=R, channel_axis=0)` per frame.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor

__all__ = ["psnr", "ssim"]

# Float frames without data_range must lie in [0, 1]; this much overshoot is rounding.
_UNIT_TOLERANCE = 1e-3
# SSIM works on chunks of frame-channels of about this many float64 values (memory bound).
_SSIM_CHUNK_VALUES = 1 << 23


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _prepare(
    a: Tensor,
    b: Tensor,
    data_range: float | None,
    box: tuple[int, int, int, int] | None,
    where: str,
) -> tuple[Tensor, Tensor, float]:
    """Check a pair of frame tensors; crop to the box; float64 copies and the data range."""
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            hint = " (a single image: add a batch axis with x[None])" if t.dim() == 3 else ""
            raise ValueError(f"{where}: {name} must be (n, c, h, w) frames, got shape "
                             f"{_shape(t)}{hint}")  # fmt: skip
        if t.dtype != torch.uint8 and not t.is_floating_point():
            raise TypeError(f"{where}: {name} must be torch.uint8 or floating point, got "
                            f"{t.dtype}")  # fmt: skip
    if a.shape != b.shape:
        raise ValueError(
            f"{where}: a and b must have the same shape, got {_shape(a)} and {_shape(b)}"
        )
    if (a.dtype == torch.uint8) != (b.dtype == torch.uint8):
        raise TypeError(
            f"{where}: a and b must both be uint8 (0..255) or both floating point, got "
            f"{a.dtype} and {b.dtype}; convert one (x.float() / 255 or (x * 255).round())"
        )
    if a.shape[0] == 0:
        raise ValueError(f"{where}: a and b hold no frames (shape {_shape(a)})")
    if data_range is None:
        value_range = 255.0 if a.dtype == torch.uint8 else 1.0
    else:
        if isinstance(data_range, bool) or not (
            isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0
        ):
            raise ValueError(f"{where}: data_range must be a finite number > 0, got "
                             f"{data_range!r}")  # fmt: skip
        value_range = float(data_range)
    device = a.device if a.device.type != "mps" else torch.device("cpu")  # no float64 on MPS
    x = a.detach().to(device, torch.float64)
    y = b.detach().to(device, torch.float64)
    for name, t in (("a", x), ("b", y)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: {name} holds non-finite values")
    if data_range is None and a.is_floating_point():
        lo, hi = float(torch.minimum(x.min(), y.min())), float(torch.maximum(x.max(), y.max()))
        if lo < -_UNIT_TOLERANCE or hi > 1.0 + _UNIT_TOLERANCE:
            raise ValueError(
                f"{where}: float frames must lie in [0, 1] unless data_range is given, got "
                f"values in [{lo:.4g}, {hi:.4g}] (0..255 floats: pass data_range=255)"
            )
    if box is not None:
        x, y = _crop(x, box, where), _crop(y, box, where)
    return x, y, value_range


def _crop(x: Tensor, box: tuple[int, int, int, int], where: str) -> Tensor:
    try:
        x0, y0, x1, y1 = (operator.index(v) for v in box)  # ints, numpy ints, 0-d int tensors
    except (TypeError, ValueError):
        raise ValueError(f"{where}: box must be 4 ints (x0, y0, x1, y1), got {box!r}") from None
    h, w = x.shape[-2:]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(
            f"{where}: box (x0, y0, x1, y1) = {(x0, y0, x1, y1)} must satisfy 0 <= x0 < x1 <= "
            f"width = {w} and 0 <= y0 < y1 <= height = {h}"
        )
    return x[..., y0:y1, x0:x1]


def psnr(
    a: Tensor,
    b: Tensor,
    *,
    data_range: float | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> float:
    """Peak signal-to-noise ratio, the mean over frames of `10 log10(R^2 / MSE)` (in dB).

    The MSE of a frame is the mean squared difference over its channels and pixels (inside
    `box`); a frame without error has PSNR `inf`, and then so has the mean. Computed in
    float64 on the frames' device.

    Args:
        a: (n, c, h, w) frames, uint8 or floating point.
        b: Frames of the same shape and kind.
        data_range: R, the peak value; default 255 for uint8 and 1.0 for float frames
            (which must then lie in [0, 1]).
        box: Optional pixel region (x0, y0, x1, y1), x1 and y1 exclusive.

    Returns:
        The mean PSNR in dB (`inf` if any frame is identical).

    Raises:
        ValueError: If the shapes differ or are not (n, c, h, w), there are no frames, a
            value is not finite, float frames leave [0, 1] without `data_range`, or the box
            does not fit.
        TypeError: If a and b are not tensors of the same kind (uint8 / floating point).

    Examples:
        >>> import torch
        >>> a = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
        >>> round(psnr(a, a + 0.1), 6)  # 10 log10(1 / 0.01)
        20.0
        >>> psnr(a, a)
        inf
    """
    x, y, value_range = _prepare(a, b, data_range, box, "psnr")
    mse = (x - y).square().flatten(1).mean(dim=1)
    per_frame = 10.0 * torch.log10(value_range**2 / mse)  # mse = 0 -> inf
    return float(per_frame.mean())


def _gaussian_window(window: int, sigma: float, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian of `window` taps, centred (float64)."""
    offsets = torch.arange(window, dtype=torch.float64, device=device) - (window - 1) / 2
    g = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return g / g.sum()


def _band(g: Tensor, n: int) -> Tensor:
    """(n - k + 1, n) matrix whose row i holds the k taps of g at columns i..i+k-1."""
    k = g.numel()
    rows = torch.arange(n - k + 1, device=g.device)
    band = torch.zeros(n - k + 1, n, dtype=g.dtype, device=g.device)
    band[rows[:, None], rows[:, None] + torch.arange(k, device=g.device)] = g
    return band


def _ssim_map_mean(x: Tensor, y: Tensor, g: Tensor, c1: float, c2: float) -> Tensor:
    """Per-row mean SSIM of x, y (m, 1, h, w) float64, valid region."""
    bh, bw = _band(g, x.shape[-2]), _band(g, x.shape[-1])

    # The separable Gaussian over the valid positions as two banded matmuls on the five maps
    # at once: several times faster than float64 conv2d on CPU (no optimised double kernels).
    x, y = x[:, 0], y[:, 0]
    mu_x, mu_y, xx, yy, xy = bh @ torch.stack([x, y, x * x, y * y, x * y]) @ bw.T
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(dim=1)


def ssim(
    a: Tensor,
    b: Tensor,
    *,
    data_range: float | None = None,
    box: tuple[int, int, int, int] | None = None,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian window, mean over frames.

    For each channel of each frame and each window position that fits inside the image
    (or the `box`), with Gaussian-weighted means mu, population variances s^2 and
    covariance s_xy:

        SSIM = ((2 mu_x mu_y + C1) (2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1) (s_x^2 + s_y^2 + C2))

    with C1 = (k1 R)^2 and C2 = (k2 R)^2; the result is the mean over positions, channels
    and frames. With the default window this equals scikit-image's
    `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=R)` per frame (it filters the whole image and crops `(window - 1) / 2` pixels
    from each side, which leaves exactly these valid positions). Unlike Wang's MATLAB
    `ssim.m`, the images are not converted to grey or downsampled first. Float64 on the
    frames' device.

    Args:
        a: (n, c, h, w) frames, uint8 or floating point.
        b: Frames of the same shape and kind.
        data_range: R; default 255 for uint8 and 1.0 for float frames (in [0, 1]).
        box: Optional pixel region (x0, y0, x1, y1), x1 and y1 exclusive; at least
            `window` pixels wide and high.
        window: Window side, odd (11 as Wang et al.).
        sigma: Standard deviation of the Gaussian window in pixels.
        k1: Luminance constant.
        k2: Contrast constant.

    Returns:
        The mean SSIM (1.0 for identical frames).

    Raises:
        ValueError: As `psnr`, or if the (cropped) frames are smaller than the window, or
            `window`, `sigma`, `k1`, `k2` are invalid.
        TypeError: If a and b are not tensors of the same kind (uint8 / floating point).

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.rand(2, 3, 32, 32, generator=g)
        >>> ssim(a, a)
        1.0
        >>> noisy = (a + 0.2 * torch.rand(2, 3, 32, 32, generator=g)).clamp(0, 1)
        >>> round(ssim(a, noisy), 4), round(ssim(a, a.flip(-1)), 4)  # unrelated: near 0
        (0.9636, 0.0068)
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"ssim: window must be an odd positive int, got {window!r}")
    for name, value in (("sigma", sigma), ("k1", k1), ("k2", k2)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"ssim: {name} must be a finite number > 0, got {value!r}")
    x, y, value_range = _prepare(a, b, data_range, box, "ssim")
    n, c, h, w = x.shape
    if h < window or w < window:
        where = "the box" if box is not None else "the frames"
        raise ValueError(
            f"ssim: {where} ({h} x {w} pixels) must be at least window = {window} pixels "
            f"high and wide"
        )
    c1, c2 = (k1 * value_range) ** 2, (k2 * value_range) ** 2
    g = _gaussian_window(window, float(sigma), x.device)
    rows_x, rows_y = x.reshape(n * c, 1, h, w), y.reshape(n * c, 1, h, w)
    chunk = max(1, _SSIM_CHUNK_VALUES // (h * w))
    with torch.no_grad():
        means = torch.cat([
            _ssim_map_mean(rows_x[i : i + chunk], rows_y[i : i + chunk], g, c1, c2)
            for i in range(0, n * c, chunk)
        ])  # fmt: skip
    return float(means.mean())
