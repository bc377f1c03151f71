"""The one implementation of masked multi-positive InfoNCE, with a fused backward.

Given normalised anchors x (N x D), normalised keys y (M x D), a temperature tau and a
[PairRule][decouple.losses._pairs.PairRule], it returns the per-row losses

    loss_i = -(1/|P_i|) sum_{p in P_i} s_ip + log sum_{a in P_i u N_i} exp(s_ia),   s = x y^T / tau

(0 where a row does not count) and the boolean vector of counted rows. Reductions happen
outside, with plain autograd.

The gradient with respect to the similarity logits is known in closed form:
dloss_i/ds_ij = softmax_{A_i}(s_i)_j - [j in P_i]/|P_i|  (a row of Q), so backward is two
matmuls (Q y and Q^T x) instead of autograd's chain through every masked intermediate. Three
execution paths compute exactly the same numbers:

* plain: one block of N rows; Q is computed in forward and kept for backward.
* chunked (`chunk_size=k`): blocks of k anchor rows, masks built per block from the label
  vectors, nothing N x M kept; backward recomputes each block. Memory O(k M + (N + M) D).
* grouped (negatives restricted to the same nuisance group): only the same-nuisance
  similarity blocks and the positive pairs are computed. With 8 emotions in a batch this is
  about 1/8 of the dense similarity matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from decouple.losses._pairs import PairRule

# The grouped path is used when it computes less than this fraction of the dense N x M entries
# (a positive pair counts as PAIR_COST entries: it is a gathered, memory-bound dot product).
GROUPED_MAX_FRACTION = 0.5
PAIR_COST = 8


def masked_nce_rows(
    x: Tensor, y: Tensor, tau: Tensor, rule: PairRule, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """Per-row losses (N,) and counted rows (N,) bool. `x` may be the very tensor `y`."""
    if rule.grouped_applicable() and (chunk_size is None or chunk_size >= x.shape[0]):
        plan = _grouped_plan(rule)
        if plan is not None:
            return _GroupedNCE.apply(x, y, tau, plan)
    return _DenseNCE.apply(x, y, tau, rule, chunk_size)


def _block_forward(s: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, ...]:
    """Row statistics of one logits block; turns `s` into Q in place.

    Returns (loss, counted, lse, inv_npos); `s` holds Q = softmax over candidates minus
    pos/|P| afterwards, zero on rows that do not count.
    """
    npos = pos.sum(1)
    counted = (npos > 0) & neg.any(1)
    pos_f = pos.to(s.dtype)
    pos_sum = (s * pos_f).sum(1)
    s.masked_fill_(~(pos | neg), float("-inf"))
    lse = torch.logsumexp(s, dim=1)
    lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    inv_npos = torch.where(counted, 1.0 / npos.clamp(min=1).to(s.dtype), torch.zeros_like(lse))
    loss = torch.where(counted, lse - pos_sum * inv_npos, torch.zeros_like(lse))
    _to_q(s, lse, pos_f, inv_npos, counted)
    return loss, counted, lse, inv_npos


def _to_q(s: Tensor, lse: Tensor, pos_f: Tensor, inv_npos: Tensor, counted: Tensor) -> None:
    """In place: masked logits -> softmax over candidates - pos/|P|, zeroed on uncounted rows."""
    s.sub_(lse[:, None]).exp_()
    s.sub_(pos_f.mul_(inv_npos[:, None]))
    if not bool(counted.all()):
        s.mul_(counted[:, None].to(s.dtype))


class _DenseNCE(torch.autograd.Function):
    """Plain (one block, Q kept) and chunked (blocks recomputed in backward) paths."""

    @staticmethod
    def forward(ctx, x, y, tau, rule, chunk_size):  # type: ignore[override]
        n = x.shape[0]
        k = n if chunk_size is None else min(chunk_size, n)
        keep_q = k >= n
        inv_tau = 1.0 / tau
        loss = x.new_zeros(n)
        counted = torch.zeros(n, dtype=torch.bool, device=x.device)
        lse = x.new_zeros(n)
        inv_npos = x.new_zeros(n)
        q = None
        for start in range(0, n, k):
            stop = min(start + k, n)
            pos, neg = rule.block(start, stop)
            s = torch.mm(x[start:stop], y.t()).mul_(inv_tau)
            lb, cb, lseb, ib = _block_forward(s, pos, neg)
            loss[start:stop], counted[start:stop] = lb, cb
            lse[start:stop], inv_npos[start:stop] = lseb, ib
            if keep_q:
                q = s
        ctx.save_for_backward(x, y, tau, lse, inv_npos, counted)
        ctx.q, ctx.rule, ctx.k = q, rule, k
        ctx.mark_non_differentiable(counted)
        return loss, counted

    @staticmethod
    def backward(ctx, grad_loss, _grad_counted):  # type: ignore[override]
        x, y, tau, lse, inv_npos, counted = ctx.saved_tensors
        with torch.autocast(device_type=x.device.type, enabled=False):
            inv_tau = 1.0 / tau
            w = grad_loss.to(x.dtype)
            n = x.shape[0]
            gy = torch.empty_like(x)  # Q y, rows scaled by w
            gtx = torch.zeros_like(y)  # Q^T (w x)
            xw = x * w[:, None]
            for start in range(0, n, ctx.k):
                stop = min(start + ctx.k, n)
                q = ctx.q
                if q is None:
                    pos, neg = ctx.rule.block(start, stop)
                    q = torch.mm(x[start:stop], y.t()).mul_(inv_tau)
                    q.masked_fill_(~(pos | neg), float("-inf"))
                    _to_q(
                        q, lse[start:stop], pos.to(q.dtype), inv_npos[start:stop],
                        counted[start:stop],
                    )
                gy[start:stop] = torch.mm(q, y).mul_(w[start:stop, None])
                gtx.addmm_(q.t(), xw[start:stop])
            ctx.q = None
            return _input_grads(ctx, x, gy, gtx, inv_tau) + (None, None)


def _input_grads(ctx, x: Tensor, gy: Tensor, gtx: Tensor, inv_tau: Tensor) -> tuple:
    """dL/dx = Q y / tau, dL/dy = Q^T x / tau, dL/dtau = -sum_ij G_ij (x_i . y_j) / tau^2."""
    dx = gy * inv_tau if ctx.needs_input_grad[0] else None
    dy = gtx * inv_tau if ctx.needs_input_grad[1] else None
    dtau = -(x * gy).sum() * inv_tau * inv_tau if ctx.needs_input_grad[2] else None
    return dx, dy, dtau


@dataclass
class _Plan:
    """Same-nuisance blocks (anchor rows, key rows, negatives mask) and the positive pairs."""

    blocks: list[tuple[Tensor, Tensor, Tensor]]
    pair_i: Tensor
    pair_j: Tensor


def _grouped_plan(rule: PairRule) -> _Plan | None:
    """Index plan for negatives = same nuisance; None when it would not save work."""
    t_a, t_k, n_a, n_k = rule.t_anchor, rule.t_key, rule.n_anchor, rule.n_key
    assert t_a is not None and t_k is not None and n_a is not None and n_k is not None
    n, m = t_a.shape[0], t_k.shape[0]
    budget = GROUPED_MAX_FRACTION * n * m
    # Positive candidates: same target. Sort keys by target, find each anchor's range.
    t_sorted, order = torch.sort(t_k)
    lo = torch.searchsorted(t_sorted, t_a, right=False)
    cnt = torch.searchsorted(t_sorted, t_a, right=True) - lo
    total_pairs = int(cnt.sum())
    if PAIR_COST * total_pairs > budget:
        return None
    # Same-nuisance blocks.
    na_sorted, na_order = torch.sort(n_a)
    nk_sorted, nk_order = torch.sort(n_k)
    ua, ca = torch.unique_consecutive(na_sorted, return_counts=True)
    uk, ck = torch.unique_consecutive(nk_sorted, return_counts=True)
    key_groups = dict(zip(uk.tolist(), nk_order.split(ck.tolist()), strict=True))
    blocks = []
    cost = PAIR_COST * total_pairs
    for value, rows in zip(ua.tolist(), na_order.split(ca.tolist()), strict=True):
        keys = key_groups.get(value)
        if keys is None:
            continue
        cost += rows.numel() * keys.numel()
        if cost > budget:
            return None
        blocks.append((rows, keys, t_a[rows, None] != t_k[None, keys]))
    pair_i = torch.repeat_interleave(torch.arange(n, device=t_a.device), cnt)
    first = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt)
    pair_j = order[first + torch.arange(total_pairs, device=t_a.device)]
    keep = n_a[pair_i] != n_k[pair_j]
    return _Plan(blocks, pair_i[keep], pair_j[keep])


class _GroupedNCE(torch.autograd.Function):
    """Negatives only inside same-nuisance blocks; positives as an explicit pair list."""

    @staticmethod
    def forward(ctx, x, y, tau, plan):  # type: ignore[override]
        n = x.shape[0]
        inv_tau = 1.0 / tau
        neg_inf = float("-inf")
        lse_neg = x.new_full((n,), neg_inf)
        has_neg = torch.zeros(n, dtype=torch.bool, device=x.device)
        qs = []
        for rows, keys, negm in plan.blocks:
            s = torch.mm(x[rows], y[keys].t()).mul_(inv_tau).masked_fill_(~negm, neg_inf)
            lse_neg[rows] = torch.logsumexp(s, dim=1)
            has_neg[rows] = negm.any(1)
            qs.append(s)
        pi, pj = plan.pair_i, plan.pair_j
        sp = (x[pi] * y[pj]).sum(1).mul_(inv_tau)
        npos = torch.bincount(pi, minlength=n)
        pos_sum = x.new_zeros(n).index_add_(0, pi, sp)
        mx = x.new_full((n,), neg_inf).scatter_reduce_(0, pi, sp, "amax")
        mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        lse_pos = x.new_zeros(n).index_add_(0, pi, torch.exp(sp - mx[pi])).log_().add_(mx)
        lse = torch.logaddexp(lse_neg, lse_pos)
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        counted = (npos > 0) & has_neg
        cf = counted.to(x.dtype)
        inv_npos = cf / npos.clamp(min=1).to(x.dtype)
        loss = (lse - pos_sum * inv_npos) * cf
        for (rows, _keys, _negm), s in zip(plan.blocks, qs, strict=True):
            s.sub_(lse[rows, None]).exp_().mul_(cf[rows, None])
        ctx.qs, ctx.plan = qs, plan
        ctx.pair_coef = (torch.exp(sp - lse[pi]) - inv_npos[pi]) * cf[pi]
        ctx.save_for_backward(x, y, tau)
        ctx.mark_non_differentiable(counted)
        return loss, counted

    @staticmethod
    def backward(ctx, grad_loss, _grad_counted):  # type: ignore[override]
        x, y, tau = ctx.saved_tensors
        with torch.autocast(device_type=x.device.type, enabled=False):
            inv_tau = 1.0 / tau
            w = grad_loss.to(x.dtype)
            xw = x * w[:, None]
            gy = torch.zeros_like(x)
            gtx = torch.zeros_like(y)
            for (rows, keys, _negm), q in zip(ctx.plan.blocks, ctx.qs, strict=True):
                gy.index_add_(0, rows, torch.mm(q, y[keys]).mul_(w[rows, None]))
                gtx.index_add_(0, keys, torch.mm(q.t(), xw[rows]))
            pi, pj = ctx.plan.pair_i, ctx.plan.pair_j
            coef = ctx.pair_coef
            gy.index_add_(0, pi, y[pj] * (coef * w[pi])[:, None])
            gtx.index_add_(0, pj, xw[pi] * coef[:, None])
            ctx.qs = None
            return _input_grads(ctx, x, gy, gtx, inv_tau) + (None,)
