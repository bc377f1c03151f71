"""`VisualContentEncoder`: backbone + audio-queried attention (+ projection), the CCRL encoder Ec.

    frames (b, 3, h, w) RGB  --backbone-->  map (b, c, h', w')
    audio  (b, d_a)          [--audio projection (Linear d_a -> p), optional-->  (b, p)]
                             --AudioQueriedAttention(map, audio)-->  (b, d)
                             --projection (LayerNorm + Linear)-->   (b, d)
                             --L2 normalisation-->                  content (b, d)

The audio feature of a frame (from an audio prior: wav2vec 2.0, log-mel, or a phoneme-trained
encoder) says what is being said; the attention reads the visual evidence of it from the map.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from decouple.encoders._freeze import freeze
from decouple.encoders.attention import AudioQueriedAttention
from decouple.encoders.spec import ImageSpec

__all__ = ["VisualContentEncoder"]


def _backbone_channels(backbone: nn.Module) -> int:
    """`backbone.out_channels`, with an error naming what a backbone must provide."""
    c = getattr(backbone, "out_channels", None)
    if not isinstance(c, int):
        raise TypeError(
            f"backbone {type(backbone).__name__} must have an int attribute `out_channels` "
            "(channels of its output map) and a `spec` (ImageSpec); ConvBackbone and IResNet do"
        )
    return c


class VisualContentEncoder(nn.Module):
    """The content encoder Ec: a visual backbone read by an audio query, L2-normalised.

    Args:
        backbone: A module mapping frames (b, 3, h, w) to a map (b, c, h', w'), with
            `out_channels` (c) and `spec` (its `ImageSpec`, checked at input):
            [ConvBackbone][decouple.encoders.ConvBackbone] or a truncated
            [IResNet][decouple.encoders.IResNet].
        audio_dim: d_a, the audio-prior feature dimension (the prior's `.dim`).
        dim: d, the content embedding dimension.
        heads: Attention heads.
        pos_dim: Dimension of the positional code of the attention keys (0: none).
        projection: Apply LayerNorm + Linear after the attention.
        freeze_backbone: Freeze the backbone (no gradients, eval mode), as CDRL does with its
            pretrained ArcFace trunk. Leave False for a backbone trained from scratch.
        audio_proj: p > 0: a trained per-frame Linear d_a -> p applied to the audio feature
            before the attention (CDRL projects wav2vec 2.0's 1024-d layer-20 features to
            512); 0: the attention reads the prior's features directly.

    Attributes:
        spec: The backbone's input convention.

    Examples:
        >>> import torch
        >>> from decouple.encoders import ConvBackbone, VisualContentEncoder
        >>> enc = VisualContentEncoder(ConvBackbone(), audio_dim=80, dim=64, heads=2)
        >>> frames = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> z = enc(frames, torch.randn(4, 80))
        >>> tuple(z.shape), bool(torch.allclose(z.norm(dim=1), torch.ones(4)))
        ((4, 64), True)
        >>> enc = VisualContentEncoder(ConvBackbone(), audio_dim=1024, dim=64, audio_proj=512)
        >>> tuple(enc(frames, torch.randn(4, 1024)).shape), enc.attention.audio_dim
        ((4, 64), 512)
    """

    def __init__(
        self,
        backbone: nn.Module,
        audio_dim: int,
        dim: int = 512,
        *,
        heads: int = 4,
        pos_dim: int = 32,
        projection: bool = True,
        freeze_backbone: bool = False,
        audio_proj: int = 0,
    ) -> None:
        super().__init__()
        channels = _backbone_channels(backbone)
        spec = getattr(backbone, "spec", None)
        if not isinstance(spec, ImageSpec):
            raise TypeError(
                f"backbone {type(backbone).__name__} must declare its input convention as "
                "`spec` (an ImageSpec)"
            )
        if audio_proj < 0:
            raise ValueError(f"audio_proj must be >= 0 (0: no projection), got {audio_proj}")
        self.backbone = backbone
        self.audio_projection = nn.Linear(audio_dim, audio_proj) if audio_proj else None
        self.attention = AudioQueriedAttention(
            channels, audio_proj or audio_dim, dim, heads=heads, pos_dim=pos_dim
        )
        self.projection = (
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) if projection else nn.Identity()
        )
        self.audio_dim = int(audio_dim)
        self.dim = int(dim)
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            freeze(self.backbone)

    @property
    def spec(self) -> ImageSpec:
        """The input convention of the frames (the backbone's)."""
        return self.backbone.spec

    def train(self, mode: bool = True) -> VisualContentEncoder:
        """Set training mode; a frozen backbone stays in eval mode.

        Args:
            mode: Training (True) or evaluation (False).

        Returns:
            self.
        """
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(
        self, frames: Tensor, audio_feat: Tensor, *, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Encode the content of each frame under the query of its audio feature.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1] (see `spec`).
            audio_feat: (b, d_a) audio-prior features of the same frames.
            return_attention: Also return the attention weights (b, heads, h', w').

        Returns:
            (b, d) L2-normalised content embeddings (and the attention weights).
        """
        feature_map = self.backbone(frames)
        if self.audio_projection is not None:
            if audio_feat.dim() != 2 or audio_feat.shape[1] != self.audio_dim:
                raise ValueError(
                    f"VisualContentEncoder: audio_feat must be (b, {self.audio_dim}), got "
                    f"{tuple(audio_feat.shape)}"
                )
            audio_feat = self.audio_projection(audio_feat)
        out, attn = self.attention(feature_map, audio_feat, return_attention=True)
        z = F.normalize(self.projection(out), dim=1)
        return (z, attn) if return_attention else z
