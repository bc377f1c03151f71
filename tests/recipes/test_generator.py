"""The SPFEM generator: shapes, range, the edit mask and code interpolation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "spfem"))

from generator import Generator, mix_codes


def test_video_and_frame_shapes_agree() -> None:
    torch.manual_seed(0)
    g = Generator(code_dim=8, channels=8, stages=2)
    x = torch.rand(2, 3, 3, 16, 16)
    z = F.normalize(torch.randn(2, 8), dim=1)
    out, mask = g(x, z, return_mask=True)
    assert out.shape == x.shape and mask.shape == (2, 3, 1, 16, 16)
    flat = g(x.flatten(0, 1), z.repeat_interleave(3, dim=0))
    torch.testing.assert_close(out.flatten(0, 1), flat)
    # output = (1 - m) x + m rgb with rgb in (0, 1): within [0, 1]
    assert out.min() >= 0 and out.max() <= 1


def test_starts_close_to_copying_the_source() -> None:
    torch.manual_seed(0)
    g = Generator(code_dim=8, channels=8, stages=2)
    x = torch.rand(4, 3, 16, 16)
    _, mask = g(x, F.normalize(torch.randn(4, 8), dim=1), return_mask=True)
    assert mask.mean() < 0.2


def test_code_changes_the_output_after_training_the_film() -> None:
    torch.manual_seed(0)
    g = Generator(code_dim=4, channels=8, stages=2)
    x = torch.rand(4, 3, 16, 16)
    za, zb = torch.eye(4)[:1].expand(4, 4), torch.eye(4)[1:2].expand(4, 4)
    # FiLM starts at zero (identity); a few steps on two different targets must make the
    # code matter.
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    for _ in range(30):
        loss = (g(x, za) - 0.0).abs().mean() + (g(x, zb) - 1.0).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (g(x, zb) - g(x, za)).mean() > 0.2


def test_mix_codes() -> None:
    s = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(mix_codes(s, t, 0.0), s)
    torch.testing.assert_close(mix_codes(s, t, 1.0), t)
    half = mix_codes(s, t, 0.5)
    torch.testing.assert_close(half, torch.full((2, 2), 2**-0.5))
    torch.testing.assert_close(mix_codes(s, t, torch.tensor([0.0, 1.0])), torch.stack([s[0], t[1]]))


@pytest.mark.parametrize(
    ("frames", "code", "message"),
    [
        (torch.rand(2, 1, 16, 16), torch.zeros(2, 8), "frames must be"),
        (torch.rand(2, 3, 16, 16), torch.zeros(3, 8), "code must be"),
        (torch.rand(2, 3, 18, 18), torch.zeros(2, 8), "divisible by 4"),
    ],
)
def test_errors(frames: torch.Tensor, code: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Generator(code_dim=8, channels=8, stages=2)(frames, code)
