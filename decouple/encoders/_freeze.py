"""`freeze`: fix a pretrained part (no parameter gradients, eval mode)."""

from __future__ import annotations

from torch import nn

__all__ = ["freeze"]


def freeze(module: nn.Module) -> nn.Module:
    """Freeze a module: no parameter gradients, eval mode (BatchNorm statistics fixed).

    Gradients still flow *through* the module to its inputs (needed when a frozen encoder
    supervises a generator). Encoders that own a frozen part keep it in eval mode when
    `.train()` is called on them.

    Args:
        module: The module to freeze.

    Returns:
        The same module.

    Examples:
        >>> import torch
        >>> net = freeze(torch.nn.BatchNorm1d(3))
        >>> net.training, net.weight.requires_grad
        (False, False)
    """
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
