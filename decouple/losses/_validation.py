"""Input checks shared by the losses: every error names the argument and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (t > 0.0 and t < float("inf")):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return t


def check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return chunk_size


def check_embeddings(x: Tensor, name: str, allow_empty: bool = False) -> None:
    """A 2-D floating tensor (N x D) with finite values and at least one row.

    `allow_empty` admits N = 0 (a rank whose local batch is empty still takes part in the
    collective operations of a distributed loss, so that the other ranks do not hang).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N x D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if (x.shape[0] == 0 and not allow_empty) or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
    check_finite(x, name)


def check_finite(x: Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def check_labels(labels: Tensor, name: str, n: int, n_name: str) -> Tensor:
    """A 1-D integer tensor of length n; returns it as int64."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integers, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} entries but {n_name} has {n} rows")
    return labels.long()


def check_same_dim(x: Tensor, ref: Tensor, x_name: str, ref_name: str) -> None:
    if ref.shape[1] != x.shape[1]:
        raise ValueError(
            f"{ref_name} has feature dimension {ref.shape[1]} but {x_name} has {x.shape[1]}"
        )


def check_masks(pos_mask: Tensor, neg_mask: Tensor, n: int, m: int) -> tuple[Tensor, Tensor]:
    """Disjoint boolean masks of shape (n, m)."""
    for name, mask in (("pos_mask", pos_mask), ("neg_mask", neg_mask)):
        if not isinstance(mask, Tensor):
            raise TypeError(f"{name} must be a boolean torch.Tensor, got {type(mask).__name__}")
        if mask.dtype != torch.bool:
            raise TypeError(f"{name} must have dtype torch.bool, got {mask.dtype}")
        if tuple(mask.shape) != (n, m):
            raise ValueError(
                f"{name} must have shape (N, M) = ({n}, {m}) (anchors x keys), "
                f"got {tuple(mask.shape)}"
            )
    if bool((pos_mask & neg_mask).any()):
        raise ValueError("pos_mask and neg_mask must be disjoint: some pairs are in both")
    return pos_mask, neg_mask


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """`promote_types(input dtype, float32)`: float64 stays float64, fp16/bf16 become float32."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype
