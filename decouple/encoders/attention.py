"""`AudioQueriedAttention`: the CCRL block, an audio feature querying a visual feature map.

One audio-prior feature per frame (b, d_a) becomes a query (per head) that attends over the
h * w positions of the frame's visual feature map (b, c, h, w):

    q = W_q a                                   (b, heads, d_head)
    k_p = W_k x_p + W_pos P_p                   (b, heads, h*w, d_head), P: 2-D sin-cos code
    v_p = W_v x_p                               (b, heads, h*w, d_head)
    alpha_p = softmax_p( q . k_p / sqrt(d_head) )
    out = W_o concat_heads( sum_p alpha_p v_p ) (b, d)

The scale is 1 / sqrt(d_head), fixed, and the block has one code path: the same scale is used
when the encoder is trained (CCRL) and when it supervises a generator. (The released CDRL code
scales its scores by 1 / sqrt(h * w) and attends over channels rather than positions; its
training and supervision copies of the block differ: see the docs page.) The positional code
enters the keys only, so *where* to look can depend on position while *what* is read (the
values) is the visual feature itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["AudioQueriedAttention", "sincos_2d"]


def sincos_2d(height: int, width: int, dim: int, *, device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:  # fmt: skip
    """A fixed 2-D sine-cosine positional code of the positions of an h x w map.

    Coordinates are pixel centres normalised to (0, 1) (`(i + 0.5) / h`), so the code of a
    relative position does not depend on the map's resolution. With n = dim / 4 frequencies
    omega_k = pi * 32^(k / (n - 1)) (geometric from pi to 32 pi), row p = (i, j) is

        [sin(omega y_i), cos(omega y_i), sin(omega x_j), cos(omega x_j)]

    Args:
        height: h.
        width: w.
        dim: Code dimension, a positive multiple of 4.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        (h * w, dim), rows in row-major order (p = i * w + j).

    Examples:
        >>> code = sincos_2d(2, 3, 8)
        >>> tuple(code.shape)
        (6, 8)
        >>> bool(torch.allclose(code[:, 0] ** 2 + code[:, 2] ** 2, torch.ones(6)))
        True
    """
    if dim < 4 or dim % 4:
        raise ValueError(f"positional code dimension must be a positive multiple of 4, got {dim}")
    n = dim // 4
    k = torch.arange(n, device=device, dtype=torch.float64)
    omega = math.pi * 32.0 ** (k / max(n - 1, 1))
    y = (torch.arange(height, device=device, dtype=torch.float64) + 0.5) / height
    x = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) / width
    ay = y[:, None] * omega[None, :]  # (h, n)
    ax = x[:, None] * omega[None, :]  # (w, n)
    code_y = torch.cat([ay.sin(), ay.cos()], dim=1)[:, None, :].expand(height, width, 2 * n)
    code_x = torch.cat([ax.sin(), ax.cos()], dim=1)[None, :, :].expand(height, width, 2 * n)
    return torch.cat([code_y, code_x], dim=2).reshape(height * width, dim).to(dtype)


class AudioQueriedAttention(nn.Module):
    """Audio-queried cross attention over a visual feature map (the CCRL block).

    Args:
        visual_channels: c, channels of the visual feature map.
        audio_dim: d_a, dimension of the per-frame audio feature.
        dim: d, output dimension.
        heads: Number of attention heads.
        head_dim: d_head per head; default `dim // heads` (then `dim` must divide evenly).
        pos_dim: Dimension of the 2-D sin-cos positional code added (through a learned
            projection) to the keys; 0 disables it.

    Attributes:
        scale: 1 / sqrt(d_head), the one attention scale of the block.

    Examples:
        >>> import torch
        >>> block = AudioQueriedAttention(visual_channels=256, audio_dim=512, dim=128, heads=4)
        >>> out, attn = block(torch.randn(2, 256, 14, 14), torch.randn(2, 512),
        ...                   return_attention=True)
        >>> tuple(out.shape), tuple(attn.shape)
        ((2, 128), (2, 4, 14, 14))
        >>> bool(torch.allclose(attn.sum(dim=(2, 3)), torch.ones(2, 4)))
        True
    """

    def __init__(
        self,
        visual_channels: int,
        audio_dim: int,
        dim: int,
        *,
        heads: int = 1,
        head_dim: int | None = None,
        pos_dim: int = 32,
    ) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        if head_dim is None:
            if dim % heads:
                raise ValueError(
                    f"dim ({dim}) must be divisible by heads ({heads}), or give head_dim"
                )
            head_dim = dim // heads
        if pos_dim < 0 or pos_dim % 4:
            raise ValueError(f"pos_dim must be 0 or a positive multiple of 4, got {pos_dim}")
        self.visual_channels = int(visual_channels)
        self.audio_dim = int(audio_dim)
        self.dim = int(dim)
        self.heads = int(heads)
        self.head_dim = int(head_dim)
        self.pos_dim = int(pos_dim)
        inner = self.heads * self.head_dim
        self.to_q = nn.Linear(self.audio_dim, inner)
        self.to_k = nn.Linear(self.visual_channels, inner)
        self.to_v = nn.Linear(self.visual_channels, inner)
        self.pos_k = nn.Linear(self.pos_dim, inner, bias=False) if self.pos_dim else None
        self.to_out = nn.Linear(inner, self.dim)

    @property
    def scale(self) -> float:
        """1 / sqrt(d_head): the attention scale, the same in training and supervision."""
        return self.head_dim ** -0.5

    def extra_repr(self) -> str:
        return (
            f"visual_channels={self.visual_channels}, audio_dim={self.audio_dim}, "
            f"dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}, "
            f"pos_dim={self.pos_dim}, scale=1/sqrt({self.head_dim})"
        )

    def forward(
        self, feature_map: Tensor, audio: Tensor, *, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend over the map with the audio query.

        Args:
            feature_map: (b, c, h, w) visual features.
            audio: (b, d_a) audio-prior features of the same frames.
            return_attention: Also return the attention weights.

        Returns:
            (b, d) features; with `return_attention`, also the weights (b, heads, h, w), each
            map summing to 1.

        Raises:
            ValueError: On shapes that do not match the block.
        """
        if feature_map.dim() != 4 or feature_map.shape[1] != self.visual_channels:
            raise ValueError(
                f"AudioQueriedAttention: feature_map must be (b, {self.visual_channels}, h, w), "
                f"got {tuple(feature_map.shape)}"
            )
        if audio.dim() != 2 or audio.shape[1] != self.audio_dim:
            raise ValueError(
                f"AudioQueriedAttention: audio must be (b, {self.audio_dim}), got "
                f"{tuple(audio.shape)}"
            )
        if audio.shape[0] != feature_map.shape[0]:
            raise ValueError(
                f"AudioQueriedAttention: batch sizes differ: feature_map {feature_map.shape[0]}, "
                f"audio {audio.shape[0]}"
            )
        b, _, h, w = feature_map.shape
        tokens = rearrange(feature_map, "b c h w -> b (h w) c")
        keys = self.to_k(tokens)
        if self.pos_k is not None:
            code = sincos_2d(h, w, self.pos_dim, device=tokens.device, dtype=tokens.dtype)
            keys = keys + self.pos_k(code)[None]
        k = rearrange(keys, "b p (n e) -> b n p e", n=self.heads)
        v = rearrange(self.to_v(tokens), "b p (n e) -> b n p e", n=self.heads)
        q = rearrange(self.to_q(audio), "b (n e) -> b n e", n=self.heads)
        scores = torch.einsum("bne,bnpe->bnp", q, k) * self.scale
        attn = F.softmax(scores, dim=-1)
        read = torch.einsum("bnp,bnpe->bne", attn, v)
        out = self.to_out(rearrange(read, "b n e -> b (n e)"))
        if return_attention:
            return out, attn.view(b, self.heads, h, w)
        return out
