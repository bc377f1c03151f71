"""Rank helpers and a differentiable all-gather for contrastive losses.

A contrastive loss computed on one process only sees that process's batch. To contrast against
the *global* batch, every rank gathers the keys of all ranks. `accelerator.gather` and
`torch.distributed.all_gather` carry no gradient, so the keys gathered from other ranks would
be constants and the loss gradient would be wrong. `all_gather_with_grad` returns the
concatenation of every rank's tensor (ranks may hold different numbers of rows) and, in
backward, sums the gradient that every rank computed for each row and hands each rank the
rows it owns. With local anchors against gathered keys, the gradients averaged by DDP then equal
the gradients of the single-process loss on the concatenated batch (see `docs/distributed.md`).

Every function is a no-op (or returns the trivial answer) when no process group is initialised
or the world has one process, so the same code runs on one CPU, one GPU or many.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_no_grad",
    "all_gather_sizes",
    "all_gather_with_grad",
    "all_reduce_sum",
    "get_rank",
    "get_world_size",
    "is_distributed",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised.

    Returns:
        True when `torch.distributed` is available, initialised and its world size is > 1.

    Examples:
        >>> from decouple.distributed import is_distributed
        >>> is_distributed()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """The rank of this process, 0 when not distributed.

    Returns:
        The global rank.

    Examples:
        >>> from decouple.distributed import get_rank
        >>> get_rank()
        0
    """
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes, 1 when not distributed.

    Returns:
        The world size.

    Examples:
        >>> from decouple.distributed import get_world_size
        >>> get_world_size()
        1
    """
    return dist.get_world_size() if is_distributed() else 1


def all_gather_sizes(n: int, device: torch.device) -> list[int]:
    """Gather one integer (typically a local batch size) from every rank.

    Args:
        n: This rank's value.
        device: Device of the communication tensor (a CUDA device for NCCL).

    Returns:
        The values of all ranks, in rank order (`[n]` when not distributed).

    Examples:
        >>> from decouple.distributed import all_gather_sizes
        >>> all_gather_sizes(5, torch.device("cpu"))
        [5]
    """
    if not is_distributed():
        return [int(n)]
    local = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [int(t.item()) for t in out]


def _gather_padded(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All-gather rows of possibly different counts; returns the unpadded concatenation."""
    max_n = max(sizes)
    padded = tensor.new_zeros((max_n, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(out, sizes, strict=True)], dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's rows; backward sums the gradients of all ranks per row."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sizes = all_gather_sizes(tensor.shape[0], tensor.device)
        rank = dist.get_rank()
        ctx.sizes = sizes
        ctx.offset = sum(sizes[:rank])
        ctx.n = tensor.shape[0]
        return _gather_padded(tensor.detach(), sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every rank holds d(its loss)/d(all rows); the gradient of the sum of all ranks'
        # losses with respect to this rank's rows is the sum over ranks of its slice.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.offset : ctx.offset + ctx.n]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, keeping the autograd graph.

    Ranks may hold different numbers of rows (the tensors are padded for communication and
    the padding is removed). In backward, the gradient of each row is the sum of the gradients
    that all ranks computed for it, so `sum over ranks of loss_r` is differentiated exactly.

    Args:
        tensor: Local rows, shape (n_r, ...). Trailing dimensions must match across ranks.

    Returns:
        Shape (sum_r n_r, ...), rank 0's rows first. The input itself when not distributed.

    Examples:
        >>> import torch
        >>> from decouple.distributed import all_gather_with_grad
        >>> x = torch.randn(4, 8, requires_grad=True)
        >>> all_gather_with_grad(x).shape  # one process: the input itself
        torch.Size([4, 8])
    """
    if not is_distributed():
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (e.g. labels) from every rank along dim 0, without gradient.

    Args:
        tensor: Local rows, shape (n_r, ...); ranks may hold different n_r.

    Returns:
        Shape (sum_r n_r, ...), rank 0's rows first. The input itself when not distributed.

    Examples:
        >>> import torch
        >>> from decouple.distributed import all_gather_no_grad
        >>> all_gather_no_grad(torch.tensor([1, 2, 3]))
        tensor([1, 2, 3])
    """
    if not is_distributed():
        return tensor
    sizes = all_gather_sizes(tensor.shape[0], tensor.device)
    return _gather_padded(tensor.detach(), sizes)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks, without gradient (e.g. a count of valid rows).

    Args:
        tensor: Any tensor; it is not modified.

    Returns:
        The sum over ranks (a copy), or the input itself when not distributed.

    Examples:
        >>> import torch
        >>> from decouple.distributed import all_reduce_sum
        >>> all_reduce_sum(torch.tensor(3))
        tensor(3)
    """
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
