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
  about 1/8 of the dense similarity matrix. With `chunk_size`, the blocks are split into
  chunks of rows and recomputed in backward, as in the chunked path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from decouple.losses._pairs import Block, PairRule

# The grouped path is used when it computes less than this fraction of the dense N x M entries
# (an entry of the padded per-target positive blocks counts PAIR_COST: small batched matmuls
# run far below the speed of one large matmul).
GROUPED_MAX_FRACTION = 0.5
PAIR_COST = 8


def masked_nce_rows(
    x: Tensor, y: Tensor, tau: Tensor, rule: PairRule, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """Per-row losses (N,) and counted rows (N,) bool. `x` may be the very tensor `y`."""
    n = x.shape[0]
    if n > 0 and rule.grouped_applicable():
        plan = _grouped_plan(rule, chunk_size)
        if plan is not None:
            return _GroupedNCE.apply(x, y, tau, plan)
    return _DenseNCE.apply(x, y, tau, rule, chunk_size)


def _exclude(s: Tensor, block: Block) -> Tensor:
    """Set the non-candidates of a logits block to -inf, in place."""
    if block.excluded is not None:
        s.masked_fill_(block.excluded, float("-inf"))
    elif block.excluded_idx is not None:
        s.index_put_(block.excluded_idx, s.new_tensor(float("-inf")))
    return s


def _block_forward(s: Tensor, block: Block) -> tuple:
    """Row statistics of one logits block (k x M); turns `s` into Q in place.

    Returns (loss, counted, lse, inv_npos); afterwards `s` holds
    Q = softmax over the candidates - pos/|P|, zero on rows that do not count.
    """
    pos_r, pos_c = block.pos
    npos = torch.bincount(pos_r, minlength=s.shape[0])
    counted = (npos > 0) & block.has_neg
    pos_sum = torch.zeros_like(s[:, 0]).index_add_(0, pos_r, s[pos_r, pos_c])
    _exclude(s, block)
    # logsumexp fused with the softmax that Q needs: max, exp in place, row sums.
    mx = s.amax(dim=1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))  # rows with no candidate
    s.sub_(mx[:, None]).exp_()
    z = s.sum(1)
    lse = torch.where(z > 0, z.log() + mx, torch.zeros_like(mx))
    inv_npos = torch.where(counted, 1.0 / npos.clamp(min=1).to(s.dtype), torch.zeros_like(mx))
    loss = torch.where(counted, lse - pos_sum * inv_npos, torch.zeros_like(mx))
    s.mul_(torch.where(counted, 1.0 / z.clamp(min=torch.finfo(s.dtype).tiny), 0.0)[:, None])
    s.index_put_(block.pos, -inv_npos[pos_r], accumulate=True)
    return loss, counted, lse, inv_npos


def _block_q(
    s: Tensor, block: Block, lse: Tensor, inv_npos: Tensor, counted: Tensor
) -> Tensor:
    """Recompute Q in place from the logits block and the saved row statistics."""
    _exclude(s, block).sub_(lse[:, None]).exp_()
    if not bool(counted.all()):
        s.mul_(counted[:, None])
    return s.index_put_(block.pos, -inv_npos[block.pos[0]], accumulate=True)


class _DenseNCE(torch.autograd.Function):
    """Plain (one block, Q kept) and chunked (blocks recomputed in backward) paths."""

    @staticmethod
    def forward(ctx, x, y, tau, rule, chunk_size):  # type: ignore[override]
        n = x.shape[0]
        k = max(1, n if chunk_size is None else min(chunk_size, n))
        keep_q = k >= n
        inv_tau = 1.0 / tau
        xs = x * inv_tau  # fold 1/tau into the anchors: one N x D pass, not N x M
        loss = x.new_zeros(n)
        counted = torch.zeros(n, dtype=torch.bool, device=x.device)
        lse = x.new_zeros(n)
        inv_npos = x.new_zeros(n)
        q = None
        for start in range(0, n, k):
            stop = min(start + k, n)
            s = torch.mm(xs[start:stop], y.t())
            lb, cb, lseb, ib = _block_forward(s, rule.block(start, stop))
            loss[start:stop], counted[start:stop] = lb, cb
            lse[start:stop], inv_npos[start:stop] = lseb, ib
            if keep_q:
                q = s
        ctx.save_for_backward(x, y, tau, lse, inv_npos, counted)
        ctx.q, ctx.rule, ctx.k = q, rule, k
        ctx.self_mode = x is y
        ctx.mark_non_differentiable(counted)
        return loss, counted

    @staticmethod
    def backward(ctx, grad_loss, _grad_counted):  # type: ignore[override]
        x, y, tau, lse, inv_npos, counted = ctx.saved_tensors
        with torch.autocast(device_type=x.device.type, enabled=False):
            inv_tau = 1.0 / tau
            w = grad_loss.to(x.dtype)
            if ctx.q is not None and ctx.self_mode:
                return _self_mode_grads(ctx, x, w, inv_tau)
            n = x.shape[0]
            gy = torch.empty_like(x)  # Q y, rows scaled by w
            gtx = torch.zeros_like(y)  # Q^T (w x)
            xw = x * w[:, None]
            for start in range(0, n, ctx.k):
                stop = min(start + ctx.k, n)
                q = ctx.q
                if q is None:
                    q = torch.mm(x[start:stop] * inv_tau, y.t())
                    sl = slice(start, stop)
                    q = _block_q(q, ctx.rule.block(start, stop), lse[sl], inv_npos[sl], counted[sl])
                gy[start:stop] = torch.mm(q, y).mul_(w[start:stop, None])
                gtx.addmm_(q.t(), xw[start:stop])
            ctx.q = None
            return _input_grads(ctx, x, gy, gtx, inv_tau) + (None, None)


def _self_mode_grads(ctx, x: Tensor, w: Tensor, inv_tau: Tensor) -> tuple:
    """Keys are the anchors and Q is kept: one matmul instead of two.

    With G = diag(w) Q, dL/dx = (G + G^T) x / tau, and since x x^T is symmetric,
    sum_ij G_ij x_i.x_j = (1/2) sum_ij (G + G^T)_ij x_i.x_j.
    """
    g = ctx.q.mul_(w[:, None])
    ctx.q = None
    # A contiguous transpose then an add is ~3x faster than adding a transposed view.
    gx = torch.mm(g.t().contiguous().add_(g), x)
    dx = gx * inv_tau if ctx.needs_input_grad[0] or ctx.needs_input_grad[1] else None
    dtau = -0.5 * (x * gx).sum() * inv_tau * inv_tau if ctx.needs_input_grad[2] else None
    # x and y are the same tensor: autograd adds the two gradients, so give it once.
    return dx, None, dtau, None, None


def _input_grads(ctx, x: Tensor, gy: Tensor, gtx: Tensor, inv_tau: Tensor) -> tuple:
    """dL/dx = Q y / tau, dL/dy = Q^T x / tau, dL/dtau = -sum_ij G_ij (x_i . y_j) / tau^2."""
    dx = gy * inv_tau if ctx.needs_input_grad[0] else None
    dy = gtx * inv_tau if ctx.needs_input_grad[1] else None
    dtau = -(x * gy).sum() * inv_tau * inv_tau if ctx.needs_input_grad[2] else None
    return dx, dy, dtau


@dataclass
class _Plan:
    """Index plan of the grouped path.

    Negatives: anchors and keys sorted by nuisance (`perm_a`, `perm_k`); `blocks` holds, per
    nuisance group present on both sides (split into chunks of rows when chunking), the row
    range and the key range; `same_t` gives the non-negatives (same target) of a block.
    Positives: per target group, anchors and keys scattered into padded slots
    (T groups x `ga` anchors, T x `gk` keys) so that all same-target similarities are one
    batched matmul; `pos` (T x ga x gk) marks the pairs with another nuisance.
    """

    perm_a: Tensor
    perm_k: Tensor
    t_a_sorted: Tensor  # targets in nuisance-sorted order
    t_k_sorted: Tensor
    blocks: list[tuple[int, int, int, int]]
    chunked: bool  # blocks have at most chunk_size rows and are recomputed in backward
    rows_a: Tensor  # anchor index of every filled anchor slot
    slot_a: Tensor  # its slot in T * ga
    rows_k: Tensor
    slot_k: Tensor
    pos: Tensor  # (T, ga, gk) bool


def _same_t(plan: _Plan, a0: int, a1: int, k0: int, k1: int) -> Tensor:
    """Pairs of a same-nuisance block that share the target: neither positive nor negative."""
    return plan.t_a_sorted[a0:a1, None] == plan.t_k_sorted[None, k0:k1]


def _grouped_plan(rule: PairRule, chunk_size: int | None = None) -> _Plan | None:
    """Index plan for negatives = same nuisance; None when it would not save work."""
    t_a, t_k, n_a, n_k = rule.t_anchor, rule.t_key, rule.n_anchor, rule.n_key
    assert t_a is not None and t_k is not None and n_a is not None and n_k is not None
    n, m = t_a.shape[0], t_k.shape[0]
    budget = GROUPED_MAX_FRACTION * n * m
    dev = t_a.device
    # Positives: same target. Pad every target group of the anchors to `ga` slots and the
    # matching keys to `gk` slots.
    ta_sorted, oa = torch.sort(t_a)
    tk_sorted, ok = torch.sort(t_k)
    ua, ca = torch.unique_consecutive(ta_sorted, return_counts=True)
    lo = torch.searchsorted(tk_sorted, ua, right=False)
    ck = torch.searchsorted(tk_sorted, ua, right=True) - lo
    n_groups, ga, gk = ua.shape[0], int(ca.max()), int(ck.max())
    cost = PAIR_COST * n_groups * ga * gk
    if cost > budget:
        return None
    group_a = torch.repeat_interleave(torch.arange(n_groups, device=dev), ca)
    start_a = torch.cumsum(ca, 0) - ca
    slot_a = group_a * ga + torch.arange(n, device=dev) - start_a[group_a]
    group_k = torch.repeat_interleave(torch.arange(n_groups, device=dev), ck)
    start_k = torch.cumsum(ck, 0) - ck
    within_k = torch.arange(group_k.shape[0], device=dev) - start_k[group_k]
    rows_k = ok[lo[group_k] + within_k]
    slot_k = group_k * gk + within_k
    nuis_a = torch.full((n_groups * ga,), -1, dtype=torch.long, device=dev)
    nuis_k = torch.full((n_groups * gk,), -1, dtype=torch.long, device=dev)
    valid_a = torch.zeros(n_groups * ga, dtype=torch.bool, device=dev)
    valid_k = torch.zeros(n_groups * gk, dtype=torch.bool, device=dev)
    nuis_a[slot_a], valid_a[slot_a] = n_a[oa], True
    nuis_k[slot_k], valid_k[slot_k] = n_k[rows_k], True
    nuis_a, nuis_k = nuis_a.view(n_groups, ga, 1), nuis_k.view(n_groups, 1, gk)
    pos = (nuis_a != nuis_k) & valid_a.view(n_groups, ga, 1) & valid_k.view(n_groups, 1, gk)
    # Negatives: same-nuisance blocks in nuisance-sorted order.
    na_sorted, perm_a = torch.sort(n_a)
    nk_sorted, perm_k = torch.sort(n_k)
    va, cna = torch.unique_consecutive(na_sorted, return_counts=True)
    klo = torch.searchsorted(nk_sorted, va, right=False)
    cnk = torch.searchsorted(nk_sorted, va, right=True) - klo
    blocks = []
    step = n if chunk_size is None else chunk_size
    a0 = 0
    for a_count, k_start, k_count in zip(cna.tolist(), klo.tolist(), cnk.tolist(), strict=True):
        a1 = a0 + a_count
        if k_count > 0:
            cost += a_count * k_count
            if cost > budget:
                return None
            for r0 in range(a0, a1, step):
                blocks.append((r0, min(r0 + step, a1), k_start, k_start + k_count))
        a0 = a1
    chunked = chunk_size is not None and chunk_size < n
    return _Plan(
        perm_a, perm_k, t_a[perm_a], t_k[perm_k], blocks, chunked, oa, slot_a, rows_k, slot_k, pos
    )


def _neg_logits(
    plan: _Plan, xs: Tensor, ys: Tensor, inv_tau: Tensor, a0: int, a1: int, k0: int, k1: int
) -> Tensor:
    """Logits of a same-nuisance block with the non-negatives (same target) at -inf."""
    s = torch.mm(xs[a0:a1], ys[k0:k1].t()).mul_(inv_tau)
    return s.masked_fill_(_same_t(plan, a0, a1, k0, k1), float("-inf"))


def _to_slots(values: Tensor, rows: Tensor, slots: Tensor, n_slots: int) -> Tensor:
    """Scatter `values[rows]` into a zero tensor of `n_slots` rows at `slots`."""
    out = values.new_zeros((n_slots, *values.shape[1:]))
    return out.index_copy_(0, slots, values.index_select(0, rows))


class _GroupedNCE(torch.autograd.Function):
    """Negatives only inside same-nuisance blocks; positives as batched target groups."""

    @staticmethod
    def forward(ctx, x, y, tau, plan):  # type: ignore[override]
        n, d = x.shape
        inv_tau = 1.0 / tau
        neg_inf = float("-inf")
        n_groups, ga, gk = plan.pos.shape
        # Negatives, in nuisance-sorted coordinates.
        xs, ys = x.index_select(0, plan.perm_a), y.index_select(0, plan.perm_k)
        mx_neg = x.new_zeros(n)
        z_neg = x.new_zeros(n)
        exps = []
        for a0, a1, k0, k1 in plan.blocks:
            s = _neg_logits(plan, xs, ys, inv_tau, a0, a1, k0, k1)
            mx = s.amax(dim=1)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            s.sub_(mx[:, None]).exp_()
            mx_neg[a0:a1], z_neg[a0:a1] = mx, s.sum(1)
            if not plan.chunked:
                exps.append(s)  # exp(s - mx); rescaled to the softmax below
        # Positives, in padded target-group slots.
        xa = _to_slots(x, plan.rows_a, plan.slot_a, n_groups * ga).view(n_groups, ga, d)
        yk = _to_slots(y, plan.rows_k, plan.slot_k, n_groups * gk).view(n_groups, gk, d)
        sp = torch.bmm(xa, yk.transpose(1, 2)).mul_(inv_tau)
        pos_sum = torch.where(plan.pos, sp, 0.0).sum(2).view(-1)
        npos = plan.pos.sum(2).view(-1)
        lse_pos = torch.logsumexp(sp.masked_fill_(~plan.pos, neg_inf), dim=2).view(-1)
        # Row statistics in the caller's order.
        perm_a, rows_a, slot_a = plan.perm_a, plan.rows_a, plan.slot_a
        lse_neg = torch.where(z_neg > 0, z_neg.log() + mx_neg, neg_inf)
        lse_neg = torch.empty_like(lse_neg).index_copy_(0, perm_a, lse_neg)
        lse_pos = x.new_full((n,), neg_inf).index_copy_(0, rows_a, lse_pos[slot_a])
        npos = torch.zeros(n, dtype=torch.long, device=x.device).index_copy_(
            0, rows_a, npos[slot_a]
        )
        pos_sum = x.new_zeros(n).index_copy_(0, rows_a, pos_sum[slot_a])
        lse = torch.logaddexp(lse_neg, lse_pos)
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        counted = (npos > 0) & torch.isfinite(lse_neg)
        cf = counted.to(x.dtype)
        inv_npos = cf / npos.clamp(min=1).to(x.dtype)
        loss = (lse - pos_sum * inv_npos) * cf
        # Q blocks: negatives exp(s - lse) = exp(s - mx) * exp(mx - lse).
        lse_sorted, cf_sorted = lse.index_select(0, perm_a), cf.index_select(0, perm_a)
        if plan.chunked:
            ctx.lse_sorted, ctx.cf_sorted = lse_sorted, cf_sorted
        else:
            scale = torch.exp(mx_neg - lse_sorted) * cf_sorted
            for (a0, a1, *_), e in zip(plan.blocks, exps, strict=True):
                e.mul_(scale[a0:a1, None])
        n_slots = n_groups * ga
        lse_s = _to_slots(lse, rows_a, slot_a, n_slots).view(n_groups, ga, 1)
        inv_s = _to_slots(inv_npos, rows_a, slot_a, n_slots).view(n_groups, ga, 1)
        cf_s = _to_slots(cf, rows_a, slot_a, n_slots).view(n_groups, ga, 1)
        q_pos = sp.sub_(lse_s).exp_().mul_(cf_s).sub_(plan.pos * inv_s)
        ctx.exps, ctx.q_pos, ctx.plan = exps, q_pos, plan
        ctx.save_for_backward(x, y, tau, xs, ys, xa, yk)
        ctx.mark_non_differentiable(counted)
        return loss, counted

    @staticmethod
    def backward(ctx, grad_loss, _grad_counted):  # type: ignore[override]
        x, _y, tau, xs, ys, xa, yk = ctx.saved_tensors
        plan = ctx.plan
        with torch.autocast(device_type=x.device.type, enabled=False):
            inv_tau = 1.0 / tau
            w = grad_loss.to(x.dtype)
            ws = w.index_select(0, plan.perm_a)
            xsw = xs * ws[:, None]
            gys = torch.zeros_like(xs)
            gtxs = torch.zeros_like(ys)
            for i, (a0, a1, k0, k1) in enumerate(plan.blocks):
                if plan.chunked:  # recompute this block's softmax from the saved statistics
                    q = _neg_logits(plan, xs, ys, inv_tau, a0, a1, k0, k1)
                    q.sub_(ctx.lse_sorted[a0:a1, None]).exp_().mul_(ctx.cf_sorted[a0:a1, None])
                else:
                    q = ctx.exps[i]
                gys[a0:a1] = torch.mm(q, ys[k0:k1]).mul_(ws[a0:a1, None])
                gtxs[k0:k1].addmm_(q.t(), xsw[a0:a1])
            gy = torch.empty_like(gys).index_copy_(0, plan.perm_a, gys)
            gtx = torch.empty_like(gtxs).index_copy_(0, plan.perm_k, gtxs)
            n_groups, ga, gk = plan.pos.shape
            w_s = _to_slots(w, plan.rows_a, plan.slot_a, n_groups * ga).view(n_groups, ga, 1)
            qw = ctx.q_pos * w_s
            gy_pos = torch.bmm(qw, yk).view(n_groups * ga, -1)
            gtx_pos = torch.bmm(qw.transpose(1, 2), xa).view(n_groups * gk, -1)
            gy.index_add_(0, plan.rows_a, gy_pos.index_select(0, plan.slot_a))
            gtx.index_add_(0, plan.rows_k, gtx_pos.index_select(0, plan.slot_k))
            ctx.exps = ctx.q_pos = None
            return _input_grads(ctx, x, gy, gtx, inv_tau) + (None,)
