"""`CosineContrast`: the triplet cosine form of the released CDRL code."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.losses import _validation as V

__all__ = ["CosineContrast"]


class CosineContrast(nn.Module):
    r"""(1 - mean clamp(cos(x, y), 0, 1)) + mean clamp(cos(x, z), 0, 1) per triplet.

    The form the authors' released CDRL code trains with: pull the anchor x toward one
    positive y, push it from one negative z. Unlike the InfoNCE family it has no temperature
    and no softmax over candidates: each negative acts alone (one per anchor), the loss is
    bounded in [0, 2], and clamping at 0 removes any gradient once a negative is orthogonal or
    a positive is anti-aligned. Kept for reproducing the released code; prefer
    `EmotionAwareNCE` for training.

    Cosines are over the last dimension; means over all other dimensions.

    Examples:
        >>> import torch
        >>> from decouple.losses import CosineContrast
        >>> x = torch.randn(8, 64, dtype=torch.float64)
        >>> round(float(CosineContrast()(x, x, -x)), 12)  # perfect triplets give 0
        0.0
    """

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            anchor: x (... x D).
            positive: y, same shape.
            negative: z, same shape.

        Returns:
            A scalar in `promote_types(dtype, float32)`.

        Raises:
            ValueError: On mismatched shapes or non-finite values.
        """
        for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            if not isinstance(t, Tensor) or t.dim() < 1:
                raise ValueError(f"{name} must be a tensor with a last feature dimension")
            V.check_finite(t, name)
            if t.shape != anchor.shape:
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)} but anchor has {tuple(anchor.shape)}"
                )
        dtype = V.compute_dtype(anchor, positive, negative)
        with torch.autocast(device_type=anchor.device.type, enabled=False):
            x, y, z = anchor.to(dtype), positive.to(dtype), negative.to(dtype)
            pos = F.cosine_similarity(x, y, dim=-1).clamp(0.0, 1.0)
            neg = F.cosine_similarity(x, z, dim=-1).clamp(0.0, 1.0)
            return (1.0 - pos.mean()) + neg.mean()
