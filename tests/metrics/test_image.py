"""PSNR and SSIM: closed forms (identical frames, constant errors, constant images) and SSIM
against a naive float64 loop over windows (Wang et al. 2004), boxes, chunking, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from decouple.metrics import image
from decouple.metrics.image import psnr, ssim


def naive_ssim(a: np.ndarray, b: np.ndarray, r: float, window: int = 11, sigma: float = 1.5,
               k1: float = 0.01, k2: float = 0.03) -> float:  # fmt: skip
    """Wang et al. 2004 with explicit loops: every window that fits, Gaussian weights,
    population (co)variances, mean over positions, channels and frames (float64)."""
    offsets = np.arange(window) - (window - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    weights = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    n, c, h, w = a.shape
    values = []
    for f in range(n):
        for ch in range(c):
            for i in range(h - window + 1):
                for j in range(w - window + 1):
                    x = a[f, ch, i : i + window, j : j + window].astype(np.float64)
                    y = b[f, ch, i : i + window, j : j + window].astype(np.float64)
                    mx, my = (weights * x).sum(), (weights * y).sum()
                    vx = (weights * (x - mx) ** 2).sum()
                    vy = (weights * (y - my) ** 2).sum()
                    cxy = (weights * (x - mx) * (y - my)).sum()
                    values.append(((2 * mx * my + c1) * (2 * cxy + c2))
                                  / ((mx**2 + my**2 + c1) * (vx + vy + c2)))  # fmt: skip
    return float(np.mean(values))


def pair(shape: tuple[int, ...], seed: int, noise: float = 0.3
         ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    b = (a + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return a, b


# ----------------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf() -> None:
    a = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    assert psnr(a, a.clone()) == math.inf
    f = torch.rand(3, 3, 8, 8)
    assert psnr(f, f.clone()) == math.inf


def test_psnr_constant_error_closed_form() -> None:
    a = torch.randint(0, 240, (4, 3, 16, 16), dtype=torch.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-12)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 0.5
    assert psnr(x, x + 0.125) == pytest.approx(-20 * math.log10(0.125), rel=1e-12)
    # float frames on 0..255 with their data range
    assert psnr(a.double(), a.double() + 10, data_range=255) == pytest.approx(
        10 * math.log10(255**2 / 100), rel=1e-12
    )
    # an explicit range overrides the uint8 default
    assert psnr(a, a + 10, data_range=100) == pytest.approx(10 * math.log10(100**2 / 100))


def test_psnr_is_the_mean_of_per_frame_values() -> None:
    a = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    b = a.clone()
    b[0] += 0.1
    b[1] += 0.01
    expected = (-20 * math.log10(0.1) - 20 * math.log10(0.01)) / 2  # 30 dB, not PSNR of mean MSE
    assert psnr(a, b) == pytest.approx(expected, rel=1e-9)


def test_psnr_box() -> None:
    a = torch.full((2, 3, 20, 30), 0.5, dtype=torch.float64)
    b = a.clone()
    b[..., :, 20:] += 0.2  # error only in columns 20..29
    assert psnr(a, b, box=(0, 0, 20, 20)) == math.inf
    assert psnr(a, b, box=(20, 5, 30, 15)) == pytest.approx(-20 * math.log10(0.2), rel=1e-9)
    half = psnr(a, b, box=(10, 0, 30, 20))  # half the columns carry the error
    assert half == pytest.approx(10 * math.log10(1 / (0.5 * 0.04)), rel=1e-9)


# ----------------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one() -> None:
    a = torch.rand(3, 3, 16, 16)
    assert ssim(a, a.clone()) == 1.0
    u = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    assert ssim(u, u.clone()) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_ssim_matches_naive_loop_float(seed: int) -> None:
    a, b = pair((2, 3, 14, 17), seed)
    assert ssim(a, b) == pytest.approx(naive_ssim(a.numpy(), b.numpy(), 1.0), abs=1e-9)
    assert ssim(b, a) == pytest.approx(ssim(a, b), abs=1e-15)


def test_ssim_matches_naive_loop_uint8_and_options() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (2, 3, 12, 13), dtype=torch.uint8, generator=g)
    b = (a.int() + torch.randint(-40, 41, a.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    assert ssim(a, b) == pytest.approx(naive_ssim(a.numpy(), b.numpy(), 255.0), abs=1e-9)
    got = ssim(a, b, window=7, sigma=1.0, k1=0.02, k2=0.05)
    ref = naive_ssim(a.numpy(), b.numpy(), 255.0, window=7, sigma=1.0, k1=0.02, k2=0.05)
    assert got == pytest.approx(ref, abs=1e-9)
    # float frames on 0..255 with data_range 255 give the same as uint8
    assert ssim(a.double(), b.double(), data_range=255) == pytest.approx(ssim(a, b), abs=1e-12)


def test_ssim_box_is_the_crop() -> None:
    a, b = pair((2, 3, 24, 30), 4)
    box = (5, 3, 22, 19)  # x0, y0, x1, y1
    cropped = ssim(a[..., 3:19, 5:22], b[..., 3:19, 5:22])
    assert ssim(a, b, box=box) == cropped
    assert ssim(a, b, box=tuple(np.array(box))) == cropped  # numpy ints are fine
    ref = naive_ssim(a[..., 3:19, 5:22].numpy(), b[..., 3:19, 5:22].numpy(), 1.0)
    assert cropped == pytest.approx(ref, abs=1e-9)


def test_ssim_constant_images_closed_form() -> None:
    # zero variances: SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1) at every position
    a = torch.full((1, 3, 11, 11), 0.2, dtype=torch.float64)
    b = torch.full((1, 3, 11, 11), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-9)


def test_ssim_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair((3, 3, 16, 16), 5)
    whole = ssim(a, b)
    monkeypatch.setattr(image, "_SSIM_CHUNK_VALUES", 1)  # one frame-channel per chunk
    assert ssim(a, b) == pytest.approx(whole, abs=1e-15)


# --------------------------------------------------------------------------------- errors


def test_errors() -> None:
    a = torch.rand(4, 3, 64, 64)
    message = "psnr: a and b must have the same shape, got (4, 3, 64, 64) and (4, 3, 32, 32)"
    with pytest.raises(ValueError, match=re.escape(message)):
        psnr(a, torch.rand(4, 3, 32, 32))
    with pytest.raises(TypeError, match=r"both be uint8 .* or both floating point"):
        ssim(a, (a * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] unless data_range"):
        psnr(a * 255, a * 255)
    with pytest.raises(ValueError, match=r"a must be \(n, c, h, w\).*add a batch axis"):
        psnr(a[0], a[0])
    with pytest.raises(ValueError, match=r"box .* must satisfy 0 <= x0 < x1 <= width = 64"):
        psnr(a, a, box=(0, 0, 65, 10))
    with pytest.raises(ValueError, match="box must be 4 ints"):
        ssim(a, a, box=(0, 0, 10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ssim: the box \(8 x 8 pixels\) must be at least"):
        ssim(a, a, box=(0, 0, 8, 8))
    with pytest.raises(ValueError, match="window must be an odd positive int"):
        ssim(a, a, window=10)
    with pytest.raises(ValueError, match="sigma must be"):
        ssim(a, a, sigma=0.0)
    with pytest.raises(ValueError, match="data_range must be a finite number > 0"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="hold no frames"):
        psnr(a[:0], a[:0])
    with pytest.raises(ValueError, match="b holds non-finite"):
        psnr(a, torch.full_like(a, float("nan")))
    with pytest.raises(TypeError, match=r"must be torch\.uint8 or floating point"):
        psnr(a.long(), a.long())
