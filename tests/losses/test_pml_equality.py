"""InfoNCE (label form) equals pytorch-metric-learning's SupConLoss when every row has a negative.

Documented difference, tested explicitly: a row with positives but no negatives. PML's SupConLoss
gives it the loss -mean_p log softmax_{P_i}(s)_p (> 0 when |P_i| >= 2) and averages it in
(AvgNonZeroReducer); decouple does not count such a row (it needs P_i and N_i both non-empty).
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import SupConLoss
from torch import Tensor

from decouple.losses import InfoNCE, NoValidPairsWarning

from . import naive
from .naive import assert_close_rel

D = 8


def _labels(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = naive.random_labels(n, 4, g)
    labels[-1] = 7  # a row without positives: both libraries ignore it
    return labels


def _compare(
    ours: torch.nn.Module,
    pml: torch.nn.Module,
    x: Tensor,
    labels: Tensor,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    same_object: bool = False,
) -> None:
    """Values and gradients (of x and of ref_emb) agree to 1e-10 relative."""
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    if ref_emb is None:
        a = ours(xa, labels)
        b = pml(xb, labels)
        leaves = [(xa, xb)]
    else:
        if same_object:  # ref_emb is the very tensor object passed as embeddings
            ya, yb = xa, xb
        else:
            ya, yb = ref_emb.clone().requires_grad_(True), ref_emb.clone().requires_grad_(True)
        a = ours(xa, labels, ref_emb=ya, ref_labels=ref_labels)
        # PML excludes the diagonal only when ref_labels *is* labels: pass a distinct object.
        b = pml(xb, labels, ref_emb=yb, ref_labels=ref_labels.clone())  # type: ignore[union-attr]
        leaves = [(xa, xb)] if same_object else [(xa, xb), (ya, yb)]
    assert float(b.detach()) > 0.0
    assert_close_rel(a, b)
    a.backward()
    b.backward()
    for la, lb in leaves:
        assert_close_rel(la.grad, lb.grad)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.3])
def test_equals_supcon_self(tau: float, seed: int) -> None:
    labels = _labels(16, seed)
    x = naive.randn(16, D, generator=torch.Generator().manual_seed(100 + seed))
    _compare(InfoNCE(temperature=tau), SupConLoss(temperature=tau), x, labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.3])
def test_equals_supcon_with_ref_emb(tau: float, seed: int) -> None:
    g = torch.Generator().manual_seed(200 + seed)
    labels = _labels(12, seed)
    ref_labels = naive.random_labels(15, 4, g)
    x, y = naive.randn(12, D, generator=g), naive.randn(15, D, generator=g)
    # Precondition of the equality: every row has a negative among the keys.
    assert all(bool((ref_labels != t).any()) for t in labels)
    _compare(InfoNCE(temperature=tau), SupConLoss(temperature=tau), x, labels, y, ref_labels)


def test_equals_supcon_with_ref_emb_being_the_embeddings() -> None:
    """ref_emb = x: decouple excludes nothing; PML neither when ref_labels is another object."""
    labels = _labels(10, 3)
    x = naive.randn(10, D, generator=torch.Generator().manual_seed(300))
    _compare(
        InfoNCE(temperature=0.1),
        SupConLoss(temperature=0.1),
        x,
        labels,
        x,
        labels,
        same_object=True,
    )


def test_default_temperatures_differ() -> None:
    """decouple's default tau is 0.07, PML's is 0.1: equal only at equal temperatures."""
    labels = _labels(10, 4)
    x = naive.randn(10, D, generator=torch.Generator().manual_seed(400))
    assert_close_rel(InfoNCE()(x, labels), SupConLoss(temperature=0.07)(x, labels))
    assert not torch.isclose(InfoNCE()(x, labels), SupConLoss()(x, labels))


def _positives_only_loss(x: Tensor, y: Tensor, positives: list[int], tau: float) -> float:
    """PML's loss of a row with positives and no negatives: -mean_p log softmax over P_i."""
    xs, ys = naive.unit_rows(x[None]), naive.unit_rows(y)
    s = [float(naive.dot(xs[0], ys[j])) / tau for j in positives]
    log_z = math.log(sum(math.exp(v) for v in s))
    return -sum(v - log_z for v in s) / len(s)


def test_difference_row_with_positives_but_no_negatives_labels() -> None:
    """Every key has label 0: rows with label 0 have positives but no negatives, the row with
    label 1 has no positives. decouple: C = 0 (zero + warning). PML: mean of the label-0 rows."""
    tau = 0.2
    g = torch.Generator().manual_seed(500)
    x, y = naive.randn(3, D, generator=g), naive.randn(4, D, generator=g)
    labels, ref_labels = torch.tensor([0, 0, 1]), torch.zeros(4, dtype=torch.long)
    with pytest.warns(NoValidPairsWarning):
        ours = InfoNCE(temperature=tau)(x, labels, ref_emb=y, ref_labels=ref_labels)
    theirs = SupConLoss(temperature=tau)(x, labels, ref_emb=y, ref_labels=ref_labels)
    expected_pml = sum(_positives_only_loss(x[i], y, [0, 1, 2, 3], tau) for i in (0, 1)) / 2
    assert float(ours) == 0.0
    assert math.isclose(float(theirs), expected_pml, rel_tol=1e-10)
    assert float(theirs) > 0.1


def test_difference_row_with_positives_but_no_negatives_masks() -> None:
    """Same difference with explicit pairs (PML's indices_tuple): row 0 has two positives and no
    negative. decouple averages rows 1..3 only; PML also averages in row 0."""
    tau = 0.2
    g = torch.Generator().manual_seed(600)
    x = naive.randn(4, D, generator=g)
    pos = torch.zeros(4, 4, dtype=torch.bool)
    neg = torch.zeros(4, 4, dtype=torch.bool)
    pos[0, 1] = pos[0, 2] = True  # row 0: positives only
    pos[1, 0] = neg[1, 2] = neg[1, 3] = True
    pos[2, 3] = neg[2, 0] = True
    pos[3, 2] = pos[3, 1] = neg[3, 0] = True
    ours = InfoNCE(temperature=tau, reduction="none")(x, pos_mask=pos, neg_mask=neg)
    expected_rows = naive.info_nce(x, pos_mask=pos, neg_mask=neg, tau=tau, reduction="none")
    assert_close_rel(ours, expected_rows)
    assert float(ours[0]) == 0.0  # not counted
    a1, p = torch.where(pos)
    a2, n = torch.where(neg)
    theirs = SupConLoss(temperature=tau)(x, indices_tuple=(a1, p, a2, n))
    row0 = _positives_only_loss(x[0], x, [1, 2], tau)
    assert math.isclose(float(theirs), (float(ours.sum()) + row0) / 4, rel_tol=1e-10)
    ours_mean = InfoNCE(temperature=tau)(x, pos_mask=pos, neg_mask=neg)
    assert math.isclose(float(ours_mean), float(ours.sum()) / 3, rel_tol=1e-10)
    assert abs(float(theirs) - float(ours_mean)) > 1e-3
