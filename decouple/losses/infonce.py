"""`InfoNCE`: the masked multi-positive InfoNCE core that every contrastive loss here uses."""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple import distributed as dist_utils
from decouple.losses import _validation as V
from decouple.losses._engine import masked_nce_rows
from decouple.losses._pairs import PairRule
from decouple.losses.exceptions import NoValidPairsWarning

__all__ = ["InfoNCE"]

TEMPERATURE_MIN = 0.01
TEMPERATURE_MAX = 1.0


@dataclass
class _Contrast:
    """What one contrastive evaluation produced, for reductions and extra terms."""

    rows: Tensor  # (N,) per-row loss, 0 where not counted
    counted: Tensor  # (N,) bool
    anchors: Tensor  # (N, D) normalised local anchors, compute dtype
    keys: Tensor  # (M, D) normalised keys (gathered over ranks when distributed)
    tau: Tensor  # 0-dim temperature in compute dtype
    world_size: int  # 1 unless the loss gathers over ranks


class _ContrastiveLoss(nn.Module):
    """Shared machinery: temperature, normalisation, precision, gathering, reduction."""

    def __init__(
        self,
        *,
        temperature: float = 0.07,
        learn_temperature: bool = False,
        reduction: str = "mean",
        chunk_size: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        temperature = V.check_temperature(temperature)
        self.reduction = V.check_reduction(reduction)
        self.chunk_size = V.check_chunk_size(chunk_size)
        self.gather_distributed = bool(gather_distributed)
        self.learn_temperature = bool(learn_temperature)
        if self.learn_temperature:
            # float64 so that tau is exact; it is a scalar, so this costs nothing.
            self.log_temperature = nn.Parameter(
                torch.tensor(math.log(temperature), dtype=torch.float64)
            )
        else:
            self._temperature = temperature

    @property
    def temperature(self) -> float:
        """The temperature tau in use (after clamping when it is learned)."""
        if self.learn_temperature:
            tau = self.log_temperature.detach().exp()
            return float(tau.clamp(TEMPERATURE_MIN, TEMPERATURE_MAX))
        return self._temperature

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature:.4g}, learn_temperature={self.learn_temperature}, "
            f"reduction={self.reduction!r}, chunk_size={self.chunk_size}, "
            f"gather_distributed={self.gather_distributed}"
        )

    def _tau(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        if self.learn_temperature:
            return self.log_temperature.to(dtype).exp().clamp(TEMPERATURE_MIN, TEMPERATURE_MAX)
        return torch.tensor(self._temperature, dtype=dtype, device=device)

    def _world_size(self) -> int:
        return dist_utils.get_world_size() if self.gather_distributed else 1

    def _contrast(
        self,
        embeddings: Tensor,
        ref_emb: Tensor | None,
        make_rule: Callable[[int, int, int | None, Callable[[Tensor], Tensor]], PairRule],
    ) -> _Contrast:
        """Normalise, gather keys if asked, and run the core on the rule `make_rule` builds.

        `make_rule(n, m, self_offset, gather)` receives the anchor count, the (global) key
        count, the self-pair offset (None when keys are `ref_emb`) and a function that gathers
        key-side label vectors over ranks.
        """
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return self._contrast_fp(embeddings, ref_emb, make_rule)

    def _contrast_fp(
        self,
        embeddings: Tensor,
        ref_emb: Tensor | None,
        make_rule: Callable[[int, int, int | None, Callable[[Tensor], Tensor]], PairRule],
    ) -> _Contrast:
        """`_contrast` with autocast off: computes in promote_types(dtype, float32)."""
        dtype = V.compute_dtype(embeddings, *(() if ref_emb is None else (ref_emb,)))
        device = embeddings.device
        world = self._world_size()
        x = F.normalize(embeddings.to(dtype), dim=1)
        local_keys = x if ref_emb is None else F.normalize(ref_emb.to(device, dtype), dim=1)
        if world > 1:
            sizes = dist_utils.all_gather_sizes(x.shape[0], device)
            keys = dist_utils.all_gather_with_grad(local_keys)
            offset = sum(sizes[: dist_utils.get_rank()]) if ref_emb is None else None
            gather = dist_utils.all_gather_no_grad
        else:
            keys = local_keys
            offset = 0 if ref_emb is None else None
            gather = _identity
        rule = make_rule(x.shape[0], keys.shape[0], offset, gather)
        tau = self._tau(dtype, device)
        rows, counted = masked_nce_rows(x, keys, tau, rule, self.chunk_size)
        return _Contrast(rows, counted, x, keys, tau, world)

    def _reduce(self, c: _Contrast) -> Tensor:
        """Apply the reduction; warn when no row counts (over all ranks when gathering)."""
        n_counted = c.counted.sum()
        if c.world_size > 1:
            n_counted = dist_utils.all_reduce_sum(n_counted)
        n_counted = int(n_counted)
        if n_counted == 0:
            warnings.warn(
                NoValidPairsWarning(
                    f"{type(self).__name__}: no anchor has both a positive and a negative in "
                    "this batch; the loss is 0. Check that the batch holds the pair structure "
                    "the loss needs."
                ),
                stacklevel=_caller_stacklevel(),
            )
        if self.reduction == "none":
            return c.rows
        total = c.rows.sum() * c.world_size
        if self.reduction == "sum":
            return total
        return total / max(n_counted, 1)


def _identity(t: Tensor) -> Tensor:
    return t


_INTERNAL_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # decouple/
    os.path.dirname(os.path.abspath(nn.Module.__call__.__code__.co_filename)),  # torch.nn
)


def _caller_stacklevel() -> int:
    """`stacklevel` for `warnings.warn` that points at the user's call of the loss."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame, level = frame.f_back, level + 1
    return level


class InfoNCE(_ContrastiveLoss):
    r"""Masked multi-positive InfoNCE: the general core of every contrastive loss here.

    With anchors x (N x D), keys y = `ref_emb` (M x D) or x itself, and
    s_ij = cos(x_i, y_j) / tau, each anchor i has a set of positives P_i and negatives N_i:

        loss_i = -(1/|P_i|) * sum_{p in P_i} [ s_ip - log sum_{a in P_i u N_i} exp(s_ia) ]

    A row counts when P_i and N_i are both non-empty. The sets come either from explicit
    disjoint boolean masks (`pos_mask`, `neg_mask`, N x M), or from labels (SupCon case:
    positives share the anchor's label, negatives do not). Without `ref_emb`, the pair (i, i)
    is excluded; with `ref_emb` nothing is excluded, even when it is the same tensor.

    With labels it equals pytorch-metric-learning's `SupConLoss` whenever every row has a
    negative. It differs when a row has positives but no negative: PML counts that row, this
    loss does not (its log-ratio carries no contrast).

    Args:
        temperature: tau, 0.07 by default.
        learn_temperature: Learn tau, stored as `log_temperature` and clamped to
            [0.01, 1.0] when used.
        reduction: "mean" (over counted rows), "sum" or "none" (length-N vector, 0 at rows
            that do not count).
        chunk_size: Process anchors in blocks of this many rows, recomputing each block in
            backward: memory O(chunk_size * M + (N + M) * D) instead of O(N * M).
        gather_distributed: Contrast local anchors against keys gathered from all ranks
            with gradient (see the distributed docs). A no-op without a process group.

    Examples:
        >>> import torch
        >>> from decouple.losses import InfoNCE
        >>> x = torch.randn(8, 16, requires_grad=True)
        >>> loss = InfoNCE()(x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
        >>> loss.backward()
        >>> # audio-visual pairing: frame i of the video matches frame i of the audio
        >>> v, a = torch.randn(6, 16), torch.randn(6, 16)
        >>> eye = torch.eye(6, dtype=torch.bool)
        >>> InfoNCE()(v, pos_mask=eye, neg_mask=~eye, ref_emb=a).shape
        torch.Size([])
    """

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        *,
        pos_mask: Tensor | None = None,
        neg_mask: Tensor | None = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss.

        Args:
            embeddings: Anchors x, (N x D).
            labels: Integer labels (N) for the SupCon form; omit when giving masks.
            pos_mask: Boolean (N x M) positives; with `gather_distributed`, M counts the keys
                of all ranks concatenated in rank order.
            neg_mask: Boolean (N x M) negatives, disjoint from `pos_mask`.
            ref_emb: Keys y (M x D); defaults to the anchors themselves.
            ref_labels: Labels of `ref_emb` (M); required with `labels` and `ref_emb`.

        Returns:
            A scalar for "mean"/"sum", a length-N vector for "none"; dtype
            `promote_types(embeddings.dtype, float32)`.

        Raises:
            ValueError: On inconsistent shapes, missing labels, non-finite embeddings or
                overlapping masks.
            TypeError: On non-integer labels or non-boolean masks.
        """
        V.check_embeddings(embeddings, "embeddings", self.gather_distributed)
        if ref_emb is not None:
            V.check_embeddings(ref_emb, "ref_emb", self.gather_distributed)
            V.check_same_dim(embeddings, ref_emb, "embeddings", "ref_emb")
        n = embeddings.shape[0]
        m_local = n if ref_emb is None else ref_emb.shape[0]
        if pos_mask is not None or neg_mask is not None:
            if pos_mask is None or neg_mask is None:
                raise ValueError("give both pos_mask and neg_mask, or neither (and labels)")
            if labels is not None or ref_labels is not None:
                raise ValueError("give either labels/ref_labels or pos_mask/neg_mask, not both")

            def mask_rule(n_: int, m: int, offset: int | None, _gather) -> PairRule:
                pos, neg = V.check_masks(pos_mask, neg_mask, n_, m)
                dev = embeddings.device
                return PairRule(n_, m, pos.to(dev), neg.to(dev), self_offset=offset)

            return self._reduce(self._contrast(embeddings, ref_emb, mask_rule))

        if labels is None:
            raise ValueError("labels is required unless pos_mask and neg_mask are given")
        t = V.check_labels(labels, "labels", n, "embeddings").to(embeddings.device)
        if ref_emb is None:
            if ref_labels is not None:
                raise ValueError("ref_labels was given without ref_emb")
            t_key = t
        else:
            if ref_labels is None:
                raise ValueError("ref_labels is required when ref_emb is given")
            t_key = V.check_labels(ref_labels, "ref_labels", m_local, "ref_emb")
            t_key = t_key.to(embeddings.device)

        def label_rule(n_: int, m: int, offset: int | None, gather) -> PairRule:
            return PairRule(n_, m, t_anchor=t, t_key=gather(t_key), self_offset=offset)

        return self._reduce(self._contrast(embeddings, ref_emb, label_rule))
