"""Warnings raised by the losses."""

from __future__ import annotations

__all__ = ["NoValidPairsWarning"]


class NoValidPairsWarning(UserWarning):
    """A contrastive loss saw no row with both a positive and a negative.

    The loss then returns a zero that is still connected to the autograd graph (so
    `backward()` works and gives zero gradients), and warns on every such call: a batch
    without valid pairs usually means the batch sampler does not build the structure the
    loss needs (for `EmotionAwareNCE`: the same content in several emotions).

    Examples:
        >>> import warnings, torch
        >>> from decouple.losses import InfoNCE, NoValidPairsWarning
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     loss = InfoNCE()(torch.randn(3, 4), torch.tensor([0, 1, 2]))
        >>> caught[0].category is NoValidPairsWarning, float(loss)
        (True, 0.0)
    """
