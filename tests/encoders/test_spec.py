"""ImageSpec: conversions against hand-computed values, and the input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from decouple.encoders import ImageSpec, ImageSpecError


def test_uint8_and_unit_float_give_the_same_network_input() -> None:
    spec = ImageSpec(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    u8 = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    a = spec.prepare(u8)
    b = spec.prepare(u8.double() / 255)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    torch.testing.assert_close(a, (u8.float() / 255 - mean) / std)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    torch.testing.assert_close(a.double(), b, rtol=1e-6, atol=1e-6)
    assert spec.prepare(u8, dtype=torch.float64).dtype == torch.float64


def test_insightface_normalisation() -> None:
    spec = ImageSpec(mean=(0.5,) * 3, std=(0.5,) * 3)
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    torch.testing.assert_close(spec.prepare(x).flatten(),
                               (torch.tensor([0.0, 51.0, 255.0]) / 255 - 0.5) / 0.5)  # fmt: skip


def test_bgr_flips_and_resize() -> None:
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(ImageSpec(channels="BGR").prepare(x), x[:, [2, 1, 0]])
    y = ImageSpec(size=(4, 2)).prepare(x)
    expected = F.interpolate(x, size=(4, 2), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(y, expected)
    assert ImageSpec(size=(8, 8)).prepare(x) is x  # nothing to do: no copy


def test_other_value_range() -> None:
    spec = ImageSpec(value_range=(-1.0, 1.0))
    torch.testing.assert_close(spec.prepare(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)),
                               torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1))  # fmt: skip


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([1, 2, 3], "must be a torch.Tensor"),
        (torch.rand(3, 8, 8), "add a batch axis"),
        (torch.rand(2, 8, 8, 3), "channels-last"),
        (torch.rand(2, 4, 8, 8), "4 channels"),
        (torch.rand(2, 3, 3, 8, 8), r"\(b, 3, h, w\)"),
        (torch.zeros(1, 3, 2, 2, dtype=torch.int32), "got torch.int32"),
        (torch.full((1, 3, 2, 2), 128.0), "divide by 255"),
        (torch.full((1, 3, 2, 2), -0.5), "already normalised"),
        (torch.full((1, 3, 2, 2), float("nan")), "non-finite"),
    ],
)
def test_checks_raise(frames: object, match: str) -> None:
    with pytest.raises(ImageSpecError, match=f"^Net: frames.*{match}"):
        ImageSpec(name="Net").prepare(frames)  # type: ignore[arg-type]


def test_tolerance_allows_resampling_overshoot() -> None:
    ImageSpec().check(torch.full((1, 3, 2, 2), 1.0005))
    with pytest.raises(ImageSpecError):
        ImageSpec().check(torch.full((1, 3, 2, 2), 1.01))


def test_invalid_specs() -> None:
    with pytest.raises(ValueError, match="channels"):
        ImageSpec(channels="GBR")
    with pytest.raises(ValueError, match="std must be > 0"):
        ImageSpec(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="size"):
        ImageSpec(size=(0, 4))
