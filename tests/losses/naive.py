"""Independent, deliberately naive float64 reference for `decouple.losses`.

Everything here is written from the specification (issue 2) with plain Python loops over rows and
pairs, operating on 0-d torch scalars so that autograd yields reference gradients. It never imports
`decouple`. Sizes in the tests are small (N, M <= 24), so speed does not matter; clarity does.

Notation (from the spec): anchors x (N x D); keys y = ref_emb (M x D) when given, else y = x and
only the pair (i, i) is excluded. s_ij = cos(x_i, y_j) / tau, rows normalised like `F.normalize`.
P_i = {j : t_j == t_i and n_j != n_i}; N_i = {j : t_j != t_i} ("all") or
{j : t_j != t_i and n_j == n_i} ("same_nuisance"); without nuisance labels every anchor and every
key is its own nuisance group.
loss_i = -(1/|P_i|) sum_{p in P_i} [s_ip - log sum_{a in P_i u N_i} exp(s_ia)].
A row counts when P_i and N_i are both non-empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

NORMALIZE_EPS = 1e-12  # F.normalize's default eps
TAU_MIN, TAU_MAX = 0.01, 1.0

Tau = float | Tensor
Mask = list[list[bool]]


# --------------------------------------------------------------------------------------------------
# Small building blocks
# --------------------------------------------------------------------------------------------------


def zero() -> Tensor:
    return torch.zeros((), dtype=torch.float64)


def clamped_tau(log_tau: Tensor) -> Tensor:
    """The temperature used by a loss with `learn_temperature=True`: exp(log_tau) clamped."""
    return torch.clamp(torch.exp(log_tau), TAU_MIN, TAU_MAX)


def unit_rows(x: Tensor) -> list[Tensor]:
    """Each row divided by max(||row||, 1e-12), exactly like `F.normalize(x, dim=1)`."""
    rows = []
    for i in range(x.shape[0]):
        norm = torch.linalg.vector_norm(x[i])  # its gradient at a zero row is 0, not NaN
        rows.append(x[i] / torch.clamp(norm, min=NORMALIZE_EPS))
    return rows


def dot(u: Tensor, v: Tensor) -> Tensor:
    return torch.dot(u, v)


def cosine(u: Tensor, v: Tensor) -> Tensor:
    """Plain cosine of two vectors (no eps games; test inputs are far from zero)."""
    return dot(u, v) / (torch.sqrt(dot(u, u)) * torch.sqrt(dot(v, v)))


def as_list(labels: Tensor | None) -> list[int] | None:
    return None if labels is None else [int(v) for v in labels.tolist()]


# --------------------------------------------------------------------------------------------------
# Positive / negative sets
# --------------------------------------------------------------------------------------------------


def label_sets(
    target: Sequence[int],
    ref_target: Sequence[int] | None,
    nuisance: Sequence[int] | None = None,
    ref_nuisance: Sequence[int] | None = None,
    *,
    self_mode: bool,
    negatives: str = "all",
) -> tuple[Mask, Mask]:
    """Boolean N x M positive / negative tables built from the spec's set formulas."""
    n = len(target)
    keys_target = list(target) if self_mode else list(ref_target)  # type: ignore[arg-type]
    m = len(keys_target)
    if not self_mode and (nuisance is None) != (ref_nuisance is None):
        raise AssertionError("naive: nuisance labels must be given on both sides or neither")
    if nuisance is None:
        if negatives != "all":
            raise AssertionError("naive: same_nuisance needs nuisance labels")
        # Every anchor and every key is its own nuisance group. In self mode key j is anchor j.
        anchor_groups = list(range(n))
        key_groups = list(range(n)) if self_mode else list(range(n, n + m))
    else:
        anchor_groups = list(nuisance)
        key_groups = list(nuisance) if self_mode else list(ref_nuisance)  # type: ignore[arg-type]
    pos: Mask = [[False] * m for _ in range(n)]
    neg: Mask = [[False] * m for _ in range(n)]
    for i in range(n):
        for j in range(m):
            if self_mode and i == j:
                continue  # the only excluded pair, and only when ref_emb is not given
            same_target = keys_target[j] == target[i]
            same_nuisance = key_groups[j] == anchor_groups[i]
            pos[i][j] = same_target and not same_nuisance
            if negatives == "all":
                neg[i][j] = not same_target
            elif negatives == "same_nuisance":
                neg[i][j] = (not same_target) and same_nuisance
            else:
                raise AssertionError(negatives)
    return pos, neg


def mask_sets(pos_mask: Tensor, neg_mask: Tensor, *, self_mode: bool) -> tuple[Mask, Mask]:
    pos = [[bool(v) for v in row] for row in pos_mask.tolist()]
    neg = [[bool(v) for v in row] for row in neg_mask.tolist()]
    if self_mode:
        for i in range(len(pos)):
            pos[i][i] = False
            neg[i][i] = False
    return pos, neg


def counted_rows(pos: Mask, neg: Mask) -> list[bool]:
    return [any(p) and any(q) for p, q in zip(pos, neg, strict=True)]


# --------------------------------------------------------------------------------------------------
# The contrastive core and the reductions
# --------------------------------------------------------------------------------------------------


def row_losses(
    x: Tensor, y: Tensor, pos: Mask, neg: Mask, tau: Tau
) -> tuple[list[Tensor], list[bool]]:
    """loss_i for every anchor (0 where the row does not count) and the counted flags."""
    xs, ys = unit_rows(x), unit_rows(y)
    losses: list[Tensor] = []
    counted: list[bool] = []
    for i in range(len(xs)):
        positives = [j for j in range(len(ys)) if pos[i][j]]
        negatives = [j for j in range(len(ys)) if neg[i][j]]
        if not positives or not negatives:
            losses.append(zero())
            counted.append(False)
            continue
        s = {j: dot(xs[i], ys[j]) / tau for j in positives + negatives}
        denominator = zero()
        for a in positives + negatives:
            denominator = denominator + torch.exp(s[a])
        log_denominator = torch.log(denominator)
        total = zero()
        for p in positives:
            total = total + (s[p] - log_denominator)
        losses.append(-total / len(positives))
        counted.append(True)
    return losses, counted


def reduce(
    losses: list[Tensor],
    counted: list[bool],
    reduction: str,
    prior_terms: list[Tensor] | None = None,
    prior_weight: float = 1.0,
) -> Tensor:
    """The spec's three reductions, with the optional prior term of EmotionAugmentedNCE."""
    c = sum(counted)
    if reduction == "none":
        out = torch.stack(
            [loss if ok else zero() for loss, ok in zip(losses, counted, strict=True)]
        )
        if prior_terms is not None:
            out = out + prior_weight * torch.stack(prior_terms)
        return out
    total = zero()
    for loss, ok in zip(losses, counted, strict=True):
        if ok:
            total = total + loss
    if reduction == "mean":
        total = total / max(c, 1)
    elif reduction != "sum":
        raise AssertionError(reduction)
    if prior_terms is not None:
        prior_total = zero()
        for term in prior_terms:
            prior_total = prior_total + term
        if reduction == "mean":
            prior_total = prior_total / len(prior_terms)
        total = total + prior_weight * prior_total
    return total


def num_counted(
    target: Tensor,
    nuisance: Tensor | None = None,
    *,
    ref_target: Tensor | None = None,
    ref_nuisance: Tensor | None = None,
    self_mode: bool = True,
    negatives: str = "all",
) -> int:
    pos, neg = label_sets(
        as_list(target),  # type: ignore[arg-type]
        as_list(ref_target),
        as_list(nuisance),
        as_list(ref_nuisance),
        self_mode=self_mode,
        negatives=negatives,
    )
    return sum(counted_rows(pos, neg))


# --------------------------------------------------------------------------------------------------
# The named losses
# --------------------------------------------------------------------------------------------------


def info_nce(
    x: Tensor,
    labels: Tensor | None = None,
    *,
    pos_mask: Tensor | None = None,
    neg_mask: Tensor | None = None,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    tau: Tau = 0.07,
    reduction: str = "mean",
) -> Tensor:
    self_mode = ref_emb is None
    y = x if self_mode else ref_emb
    if labels is None:
        assert pos_mask is not None and neg_mask is not None
        pos, neg = mask_sets(pos_mask, neg_mask, self_mode=self_mode)
    else:
        pos, neg = label_sets(as_list(labels), as_list(ref_labels), self_mode=self_mode)  # type: ignore[arg-type]
    losses, counted = row_losses(x, y, pos, neg, tau)  # type: ignore[arg-type]
    return reduce(losses, counted, reduction)


def decoupled_nce(
    x: Tensor,
    target: Tensor,
    nuisance: Tensor | None = None,
    *,
    ref_emb: Tensor | None = None,
    ref_target: Tensor | None = None,
    ref_nuisance: Tensor | None = None,
    negatives: str = "all",
    tau: Tau = 0.07,
    reduction: str = "mean",
) -> Tensor:
    self_mode = ref_emb is None
    y = x if self_mode else ref_emb
    pos, neg = label_sets(
        as_list(target),  # type: ignore[arg-type]
        as_list(ref_target),
        as_list(nuisance),
        as_list(ref_nuisance),
        self_mode=self_mode,
        negatives=negatives,
    )
    losses, counted = row_losses(x, y, pos, neg, tau)  # type: ignore[arg-type]
    return reduce(losses, counted, reduction)


def emotion_aware_nce(
    x: Tensor,
    content: Tensor,
    emotion: Tensor,
    *,
    ref_emb: Tensor | None = None,
    ref_content: Tensor | None = None,
    ref_emotion: Tensor | None = None,
    negatives: str = "same_emotion",
    tau: Tau = 0.07,
    reduction: str = "mean",
) -> Tensor:
    """Target = content, nuisance = emotion; "same_emotion" is "same_nuisance"."""
    mode = {"same_emotion": "same_nuisance", "all": "all"}[negatives]
    return decoupled_nce(
        x,
        content,
        emotion,
        ref_emb=ref_emb,
        ref_target=ref_content,
        ref_nuisance=ref_emotion,
        negatives=mode,
        tau=tau,
        reduction=reduction,
    )


def prior_terms(x: Tensor, emotion: Tensor, prior: Tensor, tau: Tau) -> list[Tensor]:
    """prior_i = (s2p_i + p2s_i) / 2 for every anchor (counted or not, never the keys)."""
    xs, ts = unit_rows(x), unit_rows(prior)
    e = as_list(emotion)
    assert e is not None
    k = len(ts)
    terms: list[Tensor] = []
    for i in range(len(xs)):
        assert 0 <= e[i] < k
        # s2p: cross-entropy of the logits cos(x_i, T_c) / tau at the class e_i.
        logits = [dot(xs[i], ts[c]) / tau for c in range(k)]
        denominator = zero()
        for c in range(k):
            denominator = denominator + torch.exp(logits[c])
        s2p = -(logits[e[i]] - torch.log(denominator))
        # p2s: the prior T_{e_i} must pick x_i among the anchors of another emotion.
        own = torch.exp(dot(ts[e[i]], xs[i]) / tau)
        others = [j for j in range(len(xs)) if e[j] != e[i]]
        if others:
            denominator = own
            for j in others:
                denominator = denominator + torch.exp(dot(ts[e[i]], xs[j]) / tau)
            p2s = -torch.log(own / denominator)
        else:
            p2s = zero()
        terms.append((s2p + p2s) / 2)
    return terms


def emotion_augmented_nce(
    x: Tensor,
    emotion: Tensor,
    content: Tensor | None = None,
    *,
    prior: Tensor | None = None,
    ref_emb: Tensor | None = None,
    ref_emotion: Tensor | None = None,
    ref_content: Tensor | None = None,
    negatives: str = "all",
    prior_weight: float = 1.0,
    tau: Tau = 0.07,
    reduction: str = "mean",
) -> Tensor:
    """Target = emotion, nuisance = content; "same_content" is "same_nuisance"; optional prior."""
    mode = {"same_content": "same_nuisance", "all": "all"}[negatives]
    self_mode = ref_emb is None
    y = x if self_mode else ref_emb
    pos, neg = label_sets(
        as_list(emotion),  # type: ignore[arg-type]
        as_list(ref_emotion),
        as_list(content),
        as_list(ref_content),
        self_mode=self_mode,
        negatives=mode,
    )
    losses, counted = row_losses(x, y, pos, neg, tau)  # type: ignore[arg-type]
    terms = None if prior is None else prior_terms(x, emotion, prior, tau)
    return reduce(losses, counted, reduction, terms, prior_weight)


def content_consistency(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """mean_i -log(clamp(cos(a_i, b_i), eps, 1)), cosine over the flattened non-batch dims."""
    total = zero()
    for i in range(a.shape[0]):
        c = cosine(a[i].reshape(-1), b[i].reshape(-1))
        total = total - torch.log(torch.clamp(c, eps, 1.0))
    return total / a.shape[0]


def emotion_consistency(
    reference: Tensor, generated: Tensor, prior: Tensor, emotion_labels: Tensor | None = None
) -> Tensor:
    """mean over all leading positions of 1 - cos(r * T, g * T), cosine over the last dim."""
    if emotion_labels is None:
        weights = torch.broadcast_to(prior, reference.shape)
    else:
        labels = as_list(emotion_labels)
        assert labels is not None
        per_sample = [prior[labels[b]] for b in range(reference.shape[0])]
        weights = torch.stack([torch.broadcast_to(t, reference.shape[1:]) for t in per_sample])
    d = reference.shape[-1]
    r, g, w = reference.reshape(-1, d), generated.reshape(-1, d), weights.reshape(-1, d)
    total = zero()
    for p in range(r.shape[0]):
        total = total + (1 - cosine(r[p] * w[p], g[p] * w[p]))
    return total / r.shape[0]


def cosine_contrast(anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """(1 - mean clamp(cos(x, y), 0, 1)) + mean clamp(cos(x, z), 0, 1), per triplet row."""
    pos_total, neg_total = zero(), zero()
    n = anchor.shape[0]
    for i in range(n):
        pos_total = pos_total + torch.clamp(cosine(anchor[i], positive[i]), 0.0, 1.0)
        neg_total = neg_total + torch.clamp(cosine(anchor[i], negative[i]), 0.0, 1.0)
    return (1 - pos_total / n) + neg_total / n


# --------------------------------------------------------------------------------------------------
# Test data and comparison helpers (shared by the test modules; still no decouple import)
# --------------------------------------------------------------------------------------------------


def parallel_labels(contents: int, emotions: int) -> tuple[Tensor, Tensor]:
    """A parallel batch: every content in every emotion once (content-major order)."""
    content = torch.arange(contents).repeat_interleave(emotions)
    emotion = torch.arange(emotions).repeat(contents)
    return content, emotion


def random_labels(n: int, classes: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, classes, (n,), generator=generator)


def randn(*shape: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)


def assert_close_rel(actual: Tensor, expected: Tensor, rtol: float = 1e-10) -> None:
    """Relative agreement; the absolute floor scales with the largest expected entry."""
    assert isinstance(actual, Tensor), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=rtol, atol=rtol * max(scale, 1e-3)
    )
