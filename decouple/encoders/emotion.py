"""`EmotionEncoder`: an image tower + a head, the CERL encoder Ee.

    frames (b, 3, h, w) RGB --tower--> (b, D_t)   (or a map (b, c, h', w'), averaged to (b, c))
                            --head (MLP, optionally residual)--> (b, d)
                            --L2 normalisation--> emotion (b, d)

The tower is either a module (a [ConvBackbone][decouple.encoders.ConvBackbone] trained from
scratch, a frozen pretrained network) or any callable, typically the emotion prior's CLIP image
path `EmotionPromptPrior.encode_image`, so that the emotion embedding lives in the space of the
prior's emotion anchors (d = the prior's D).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from decouple.encoders._freeze import freeze
from decouple.encoders.spec import ImageSpec

__all__ = ["EmotionEncoder"]


class EmotionEncoder(nn.Module):
    """The emotion encoder Ee: image tower + head, L2-normalised.

    Input convention: a tower that declares a `spec` (an `ImageSpec`, as `ConvBackbone` and
    `IResNet` do) checks and normalises its frames itself. For any other tower the encoder
    applies `spec` (given here; default: RGB float in [0, 1], no normalisation, input size)
    before calling it, so a CLIP path that applies CLIP's own normalisation receives raw
    [0, 1] RGB frames and normalisation happens exactly once.

    Args:
        tower: A module or a callable mapping frames (b, 3, h, w) to (b, tower_dim) or to a map
            (b, tower_dim, h', w') (averaged over positions). A callable that is not a module
            (e.g. a bound method `prior.encode_image`) is not registered: its parameters stay
            with their owner and out of this encoder's state dict.
        tower_dim: D_t, the tower's output dimension.
        dim: d, the emotion embedding dimension (the prior's D when used with a prior).
        hidden: Hidden width of a 2-layer MLP head; None for a single Linear.
        residual: Add the tower feature to the head's output (needs tower_dim == dim; the
            head's last layer starts at zero, so the encoder starts as the tower itself).
        spec: The input convention for a tower without its own `spec`.
        freeze_tower: Freeze a module tower (no gradients, eval mode).

    Attributes:
        spec: The input convention of the frames.

    Examples:
        >>> import torch
        >>> from decouple.encoders import ConvBackbone, EmotionEncoder
        >>> enc = EmotionEncoder(ConvBackbone(), tower_dim=128, dim=32, hidden=64)
        >>> z = enc(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
        >>> tuple(z.shape)
        (4, 32)
        >>> clip_like = lambda x: x.mean(dim=(2, 3)).repeat(1, 4)  # any callable (b, 12)
        >>> tuple(EmotionEncoder(clip_like, tower_dim=12, dim=12, residual=True)(
        ...     torch.rand(2, 3, 8, 8)).shape)
        (2, 12)
    """

    def __init__(
        self,
        tower: nn.Module | Callable[[Tensor], Tensor],
        tower_dim: int,
        dim: int,
        *,
        hidden: int | None = None,
        residual: bool = False,
        spec: ImageSpec | None = None,
        freeze_tower: bool = False,
    ) -> None:
        super().__init__()
        if not callable(tower):
            raise TypeError(f"tower must be a module or a callable, got {type(tower).__name__}")
        if residual and tower_dim != dim:
            raise ValueError(f"residual=True needs tower_dim == dim, got {tower_dim} and {dim}")
        own_spec = getattr(tower, "spec", None)
        self._tower_checks = isinstance(own_spec, ImageSpec)
        if self._tower_checks and spec is not None and spec != own_spec:
            raise ValueError(
                f"tower {type(tower).__name__} declares its own spec ({own_spec.describe()}); "
                f"do not pass another one ({spec.describe()})"
            )
        self._spec = own_spec if self._tower_checks else (spec or ImageSpec(name="EmotionEncoder"))
        if isinstance(tower, nn.Module):
            self.tower: nn.Module | None = tower
            self._tower_fn: Callable[[Tensor], Tensor] | None = None
        else:
            if freeze_tower:
                raise ValueError(
                    "freeze_tower applies to module towers; a callable's parameters belong to "
                    "its owner (EmotionPromptPrior freezes its CLIP towers itself)"
                )
            self.tower = None
            self._tower_fn = tower
        self.freeze_tower = bool(freeze_tower)
        if self.freeze_tower and self.tower is not None:
            freeze(self.tower)
        if hidden is None:
            self.head: nn.Module = nn.Linear(tower_dim, dim)
        else:
            self.head = nn.Sequential(
                nn.Linear(tower_dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
            )
        self.residual = bool(residual)
        if self.residual:
            last = self.head if isinstance(self.head, nn.Linear) else self.head[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.tower_dim = int(tower_dim)
        self.dim = int(dim)

    @property
    def spec(self) -> ImageSpec:
        """The input convention of the frames."""
        return self._spec

    def train(self, mode: bool = True) -> EmotionEncoder:
        """Set training mode; a frozen tower stays in eval mode.

        Args:
            mode: Training (True) or evaluation (False).

        Returns:
            self.
        """
        super().train(mode)
        if self.freeze_tower and self.tower is not None:
            self.tower.eval()
        return self

    def tower_features(self, frames: Tensor) -> Tensor:
        """The tower's feature of each frame (before the head).

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1].

        Returns:
            (b, tower_dim).

        Raises:
            ValueError: If the tower's output does not have `tower_dim` features.
        """
        x = frames if self._tower_checks else self._spec.prepare(frames)
        fn = self.tower if self.tower is not None else self._tower_fn
        assert fn is not None
        feats = fn(x)
        if feats.dim() == 4:
            feats = feats.mean(dim=(2, 3))
        if feats.dim() != 2 or feats.shape[1] != self.tower_dim:
            raise ValueError(
                f"EmotionEncoder: the tower returned shape {tuple(feats.shape)}, expected "
                f"(b, {self.tower_dim}) or (b, {self.tower_dim}, h, w)"
            )
        return feats

    def forward(self, frames: Tensor) -> Tensor:
        """Encode the emotion of each frame.

        Args:
            frames: (b, 3, h, w) RGB, uint8 or float in [0, 1] (see `spec`).

        Returns:
            (b, d) L2-normalised emotion embeddings.
        """
        feats = self.tower_features(frames)
        out = self.head(feats.to(next(self.head.parameters()).dtype))
        if self.residual:
            out = out + feats.to(out.dtype)
        return F.normalize(out, dim=1)
