"""`ContentConsistency`: content supervision of a generator through a frozen content encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.losses import _validation as V

__all__ = ["ContentConsistency"]


class ContentConsistency(nn.Module):
    r"""Mean over the batch of -log(clamp(cos(a_i, b_i), eps, 1)).

    Used by CDRL to keep the speech content of a generated frame: a is the content feature
    of the generated frame and b that of the source frame (both from the frozen content
    encoder). The cosine is taken over all non-batch dimensions flattened, so feature maps
    (B x C x H x W) work as they are. The loss is 0 for identical directions and grows without
    bound as the cosine approaches 0 (clamped at eps; no gradient flows through a clamped
    pair).

    Args:
        eps: Lower clamp of the cosine, 1e-6 by default.

    Examples:
        >>> import torch
        >>> from decouple.losses import ContentConsistency
        >>> a = torch.randn(4, 256, 7, 7, requires_grad=True)
        >>> loss = ContentConsistency()(a, a.detach() + 0.1 * torch.randn_like(a))
        >>> loss.backward()
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            a: Features (B x ...), e.g. of generated frames.
            b: Features of the same shape, e.g. of the source frames.

        Returns:
            A scalar in `promote_types(dtype, float32)`.

        Raises:
            ValueError: On mismatched shapes, 0-D/1-D inputs or non-finite values.
        """
        for name, t in (("a", a), ("b", b)):
            if not isinstance(t, Tensor) or t.dim() < 2:
                raise ValueError(f"{name} must be a tensor of shape (B x ...), at least 2-D")
            V.check_finite(t, name)
        if a.shape != b.shape:
            raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        dtype = V.compute_dtype(a, b)
        with torch.autocast(device_type=a.device.type, enabled=False):
            cos = F.cosine_similarity(a.to(dtype).flatten(1), b.to(dtype).flatten(1), dim=1)
            return -torch.log(cos.clamp(self.eps, 1.0)).mean()
