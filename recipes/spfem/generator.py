"""The SPFEM generator: one network for all identities, conditioned on a target emotion code.

    source frames (n, 3, h, w) RGB in [0, 1]        emotion code z (n, d), unit norm
            |                                              |
       encoder: conv stages, /2 each                 MLP -> per-stage (gamma, beta)
       (c, 2c, 4c, 4c channels)                            |
            |  skip connections                            |
       decoder: upsample + conv, FiLM(gamma, beta) <-------+
            |
       a residual d = tanh(.) (n, 3, h, w) and a soft edit mask m (n, 1, h, w)
            |
    output = clamp(source + m * d, 0, 1)

The output is a residual edit of the source: the head starts near zero, so an untrained
generator copies the source (to about 1e-3), and training moves away from copy-the-source only where
a loss asks for it. The mask lets the network change only where an emotion acts (brows, lids,
cheeks, lip corners) and copy the rest (identity, background, the mouth's speech movement).
(An earlier form blended toward a painted image, (1 - m) * source + m * rgb: it started
from a gray blur of every frame, was worse than copying the source on held-out speakers
after the demo's training and let the emotion loss paint stripes; see docs/recipes/spfem.md.)
Frames are edited one by one (a window of t frames is folded into the batch: b t -> (b t)), so
the model runs on clips of any length.

Intensity: the edit toward a target code z_t from the source's own code z_s uses
z = normalize((1 - a) z_s + a z_t) with a in [0, 1] (a = 0 reproduces the source's emotion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["Generator", "mix_codes"]


def mix_codes(source: Tensor, target: Tensor, intensity: float | Tensor) -> Tensor:
    """Interpolate in emotion space and renormalise: the code of an edit of strength a.

    Args:
        source: Codes of the source's own emotion (n, d).
        target: Target codes (n, d).
        intensity: a in [0, 1] (scalar or (n,)).

    Returns:
        Unit-norm codes (n, d).
    """
    a = torch.as_tensor(intensity, dtype=source.dtype, device=source.device)
    if a.dim() == 1:
        a = a[:, None]
    return F.normalize((1 - a) * source + a * target, dim=-1)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, 1, 1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
    )


class _UpFiLM(nn.Module):
    def __init__(self, c_in: int, c_skip: int, c_out: int, code_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in + c_skip, c_out, 3, 1, 1)
        self.norm1 = nn.GroupNorm(min(8, c_out), c_out, affine=False)
        self.film = nn.Linear(code_dim, 2 * c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, skip: Tensor, code: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        x = self.norm1(self.conv1(torch.cat([x, skip], dim=1)))
        gamma, beta = self.film(code).chunk(2, dim=1)
        x = F.silu(x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return F.silu(self.norm2(self.conv2(x)))


class Generator(nn.Module):
    """Edit face frames toward an emotion code (FiLM-conditioned U-Net with a soft edit mask).

    Args:
        code_dim: Dimension d of the emotion codes.
        channels: Channels of the first stage (doubled once, then x4 at the bottom).
        stages: Downsampling stages (frames must be divisible by 2**stages).

    Examples:
        >>> g = Generator(code_dim=16, channels=8)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> out = g(x, torch.nn.functional.normalize(torch.randn(2, 16), dim=1))
        >>> tuple(out.shape), bool(((out >= 0) & (out <= 1)).all())
        ((2, 3, 32, 32), True)
    """

    def __init__(self, code_dim: int, channels: int = 32, stages: int = 3) -> None:
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        self.code_dim = int(code_dim)
        self.stages = int(stages)
        widths = [channels * min(2**i, 4) for i in range(stages + 1)]
        self.stem = _block(3, widths[0], 1)
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1], 2) for i in range(stages))
        self.code = nn.Sequential(nn.Linear(code_dim, 4 * code_dim), nn.SiLU(),
                                  nn.Linear(4 * code_dim, 4 * code_dim))  # fmt: skip
        self.up = nn.ModuleList(
            _UpFiLM(widths[i + 1], widths[i], widths[i], 4 * code_dim)
            for i in reversed(range(stages))
        )
        self.head = nn.Conv2d(widths[0], 4, 3, 1, 1)
        # d ~ 0: the untrained generator copies the source (to about 1e-3). Not exactly 0:
        # with the FiLM layers also at 0, a zero head would be a saddle where codes that ask
        # for opposite edits cancel each other's gradients.
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        # channels-last weights and activations: on the CPU the convolutions' backward is
        # about 10x faster for these small channel counts (measured: 0.64 -> 0.06 s for a
        # forward + backward of 8 frames at 64 px); the values are the same.
        self.to(memory_format=torch.channels_last)

    def forward(self, frames: Tensor, code: Tensor, *, return_mask: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
        """Edit frames.

        Args:
            frames: (n, 3, h, w) or (b, t, 3, h, w), RGB float in [0, 1].
            code: (n, d) or (b, d) emotion codes (one per clip when frames are (b, t, ...)).
            return_mask: Also return the edit mask (same leading shape, 1 channel).

        Returns:
            Edited frames of the input's shape (and the mask).
        """
        video = frames.dim() == 5
        if video:
            b, t = frames.shape[:2]
            frames = rearrange(frames, "b t c h w -> (b t) c h w")
            code = code.repeat_interleave(t, dim=0)
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (n, 3, h, w) or (b, t, 3, h, w), got "
                             f"{tuple(frames.shape)}")
        if code.shape != (frames.shape[0], self.code_dim):
            raise ValueError(f"code must be ({frames.shape[0]}, {self.code_dim}), got "
                             f"{tuple(code.shape)}")
        h, w = frames.shape[-2:]
        if h % 2**self.stages or w % 2**self.stages:
            raise ValueError(f"frame size {h}x{w} must be divisible by {2**self.stages}")
        c = self.code(code)
        frames = frames.contiguous(memory_format=torch.channels_last)
        x = self.stem(frames * 2 - 1)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.up:
            x = up(x, skips.pop(), c)
        delta, mask = self.head(x).split([3, 1], dim=1)
        mask = torch.sigmoid(mask - 2.0)  # starts small (m ~ 0.12), the residual at 0
        out = (frames + mask * torch.tanh(delta)).clamp(0, 1)
        if video:
            out = rearrange(out, "(b t) c h w -> b t c h w", b=b)
            mask = rearrange(mask, "(b t) c h w -> b t c h w", b=b)
        return (out, mask) if return_mask else out
