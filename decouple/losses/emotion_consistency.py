"""`EmotionConsistency`: emotion supervision of a generator, weighted by the emotion prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.losses import _validation as V

__all__ = ["EmotionConsistency"]


class EmotionConsistency(nn.Module):
    r"""Mean of 1 - cos(r * T, g * T): emotion features of generated vs reference frames.

    Used by CDRL to make a generated frame show the reference's emotion: r and g are the
    emotion features (from the frozen emotion encoder) of the reference and generated frames,
    and T the emotion prior of the target emotion (* is element-wise): the prior re-weights
    the feature dimensions that matter for that emotion. The cosine is over the last
    dimension and the mean over all others.

    `prior` is either broadcastable to the inputs (... x D, e.g. (D,) or (B x D)), or a (K x D)
    table of per-emotion anchors indexed by `emotion_labels` (shape (B,), or any shape that
    matches the leading dimensions of the inputs).

    Examples:
        >>> import torch
        >>> from decouple.losses import EmotionConsistency
        >>> r, g = torch.randn(4, 512), torch.randn(4, 512, requires_grad=True)
        >>> table = torch.randn(7, 512)  # one prior row per emotion
        >>> loss = EmotionConsistency()(r, g, table, emotion_labels=torch.tensor([1, 3, 3, 6]))
        >>> loss.backward()
    """

    def forward(
        self,
        reference: Tensor,
        generated: Tensor,
        prior: Tensor,
        emotion_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss.

        Args:
            reference: Emotion features of the reference (... x D).
            generated: Emotion features of the generated frames, same shape.
            prior: Broadcastable weights (... x D), or a (K x D) table with `emotion_labels`.
            emotion_labels: Integer ids into the rows of a (K x D) `prior`, or None.

        Returns:
            A scalar in `promote_types(dtype, float32)`.

        Raises:
            ValueError: On mismatched shapes, labels outside [0, K) or non-finite values.
        """
        for name, t in (("reference", reference), ("generated", generated), ("prior", prior)):
            if not isinstance(t, Tensor) or t.dim() < 1:
                raise ValueError(f"{name} must be a tensor with a last feature dimension")
            V.check_finite(t, name)
        if reference.shape != generated.shape:
            raise ValueError(
                f"reference and generated must have the same shape, got "
                f"{tuple(reference.shape)} and {tuple(generated.shape)}"
            )
        d = reference.shape[-1]
        if prior.shape[-1] != d:
            raise ValueError(f"prior has feature dimension {prior.shape[-1]}, inputs have {d}")
        if emotion_labels is not None:
            prior = self._select(prior, emotion_labels, reference)
        dtype = V.compute_dtype(reference, generated, prior)
        with torch.autocast(device_type=reference.device.type, enabled=False):
            t = prior.to(reference.device, dtype)
            r, g = reference.to(dtype) * t, generated.to(dtype) * t
            try:
                cos = F.cosine_similarity(r, g, dim=-1)
            except RuntimeError as err:
                raise ValueError(
                    f"prior of shape {tuple(prior.shape)} does not broadcast to the inputs of "
                    f"shape {tuple(reference.shape)}"
                ) from err
            return (1.0 - cos).mean()

    @staticmethod
    def _select(prior: Tensor, labels: Tensor, reference: Tensor) -> Tensor:
        """Rows of a (K x D) table for each label, shaped to broadcast over the inputs."""
        if prior.dim() != 2:
            raise ValueError(
                f"with emotion_labels, prior must be a (K x D) table, got {tuple(prior.shape)}"
            )
        if labels.dtype == torch.bool or labels.is_floating_point():
            raise TypeError(f"emotion_labels must be an integer tensor, got {labels.dtype}")
        k = prior.shape[0]
        labels = labels.to(prior.device).long()
        if bool(((labels < 0) | (labels >= k)).any()):
            raise ValueError(f"emotion_labels must lie in [0, K) = [0, {k}) to index the prior")
        lead = reference.shape[:-1]
        if labels.shape != lead[: labels.dim()]:
            raise ValueError(
                f"emotion_labels of shape {tuple(labels.shape)} must match the leading "
                f"dimensions of the inputs {tuple(lead)}"
            )
        rows = prior[labels]  # labels.shape + (D,)
        return rows.reshape(*labels.shape, *([1] * (len(lead) - labels.dim())), prior.shape[1])
