"""Closed-form cases of the decouple.losses contrastive family.

Known cosines give known numbers: one positive and one negative, orthogonal and identical
embeddings (loss_i = log(|P_i| + |N_i|)), the self-pair rule, the max(C, 1) divisor, the prior term
with an orthonormal prior, and the C = 0 case (a graph-connected zero plus NoValidPairsWarning on
every call).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from decouple.losses import (
    DecoupledNCE,
    EmotionAugmentedNCE,
    EmotionAwareNCE,
    InfoNCE,
    NoValidPairsWarning,
)

from . import naive
from .naive import assert_close_rel

F64 = torch.float64


def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def two_class_softmax_loss(a: float, b: float, tau: float) -> float:
    """-log(e^{a/t} / (e^{a/t} + e^{b/t})), written as log1p(e^{(b-a)/t}) to stay accurate."""
    return math.log1p(math.exp((b - a) / tau))


@pytest.mark.parametrize("tau", [0.07, 0.3, 1.0])
def test_one_positive_one_negative(tau: float) -> None:
    alpha, beta = 0.9, 1.4  # angles: cos = 0.62..., 0.17...
    x = torch.tensor([[3.5, 0.0]], dtype=F64)  # the norm must not matter
    y = torch.tensor([unit(alpha), [2 * v for v in unit(beta)]], dtype=F64)
    expected = two_class_softmax_loss(math.cos(alpha), math.cos(beta), tau)
    for reduction in ("mean", "sum"):
        got = InfoNCE(temperature=tau, reduction=reduction)(
            x, torch.tensor([0]), ref_emb=y, ref_labels=torch.tensor([0, 1])
        )
        assert got.shape == ()
        assert math.isclose(float(got), expected, rel_tol=1e-12)
    got = InfoNCE(temperature=tau, reduction="none")(
        x, torch.tensor([0]), ref_emb=y, ref_labels=torch.tensor([0, 1])
    )
    assert got.shape == (1,)
    assert math.isclose(float(got[0]), expected, rel_tol=1e-12)


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_one_positive_one_negative_emotion_aware(tau: float) -> None:
    """Key 0: same content, other emotion (positive); key 1: other content, same emotion (negative);
    key 2: same content, same emotion (neither); key 3: other content, other emotion (neither)."""
    a, b = 0.9, 1.2
    x = torch.tensor([[1.0, 0.0]], dtype=F64)
    y = torch.tensor([unit(a), unit(b), unit(0.05), unit(3.0)], dtype=F64)
    ref_content = torch.tensor([0, 1, 0, 1])
    ref_emotion = torch.tensor([1, 0, 0, 1])
    got = EmotionAwareNCE(temperature=tau)(
        x,
        torch.tensor([0]),
        torch.tensor([0]),
        ref_emb=y,
        ref_content_labels=ref_content,
        ref_emotion_labels=ref_emotion,
    )
    assert math.isclose(
        float(got), two_class_softmax_loss(math.cos(a), math.cos(b), tau), rel_tol=1e-12
    )
    # With negatives="all" key 3 becomes a negative as well.
    got_all = EmotionAwareNCE(negatives="all", temperature=tau)(
        x,
        torch.tensor([0]),
        torch.tensor([0]),
        ref_emb=y,
        ref_content_labels=ref_content,
        ref_emotion_labels=ref_emotion,
    )
    s = [math.cos(v) / tau for v in (a, b, 3.0)]
    expected_all = -(s[0] - math.log(sum(math.exp(v) for v in s)))
    assert math.isclose(float(got_all), expected_all, rel_tol=1e-12)


def orthogonal(n: int, dim: int = 16) -> Tensor:
    scales = torch.linspace(0.5, 3.0, n, dtype=F64)
    return torch.eye(dim, dtype=F64)[:n] * scales[:, None]


def identical(n: int, dim: int = 5) -> Tensor:
    direction = torch.linspace(-1.0, 2.0, dim, dtype=F64)
    return torch.linspace(0.5, 3.0, n, dtype=F64)[:, None] * direction


@pytest.mark.parametrize("make", [orthogonal, identical], ids=["orthogonal", "identical"])
def test_equal_cosines_give_log_of_set_size(make: Callable[[int], Tensor]) -> None:
    """With all cosines equal, loss_i = log(|P_i| + |N_i|)."""
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])  # label 3 is alone: that row does not count
    x = make(8)
    expected_rows = [
        math.log(1 + 6),
        math.log(1 + 6),
        math.log(2 + 5),
        math.log(2 + 5),
        math.log(2 + 5),
        math.log(1 + 6),
        math.log(1 + 6),
        0.0,
    ]
    got = InfoNCE(reduction="none")(x, labels)
    assert_close_rel(got, torch.tensor(expected_rows, dtype=F64), 1e-12)
    got_sum = InfoNCE(reduction="sum")(x, labels)
    assert math.isclose(float(got_sum), sum(expected_rows), rel_tol=1e-12)
    got_mean = InfoNCE(reduction="mean")(x, labels)
    assert math.isclose(float(got_mean), sum(expected_rows) / 7, rel_tol=1e-12)  # C = 7, not N


def test_mean_divides_by_counted_rows() -> None:
    x = orthogonal(4)
    labels = torch.tensor([0, 0, 1, 2])  # rows 2 and 3 have no positive: C = 2
    got = InfoNCE(temperature=0.3)(x, labels)
    assert math.isclose(float(got), math.log(3), rel_tol=1e-12)
    assert math.isclose(float(InfoNCE(reduction="sum")(x, labels)), 2 * math.log(3), rel_tol=1e-12)


@pytest.mark.parametrize(
    ("negatives", "expected"),
    [("same_emotion", math.log(3 + 2)), ("all", math.log(3 + 8))],
)
def test_identical_embeddings_parallel_batch(negatives: str, expected: float) -> None:
    """3 contents x 4 emotions: P_i = 3 (same content, other emotion); N_i = 2 or 8."""
    content, emotion = naive.parallel_labels(3, 4)
    x = identical(12)
    got = EmotionAwareNCE(negatives=negatives, reduction="none")(x, content, emotion)
    assert_close_rel(got, torch.full((12,), expected, dtype=F64), 1e-12)


def test_decoupled_same_nuisance_parallel_orthogonal() -> None:
    content, emotion = naive.parallel_labels(2, 3)  # P_i = 2, N_i = 1 for same_nuisance
    x = orthogonal(6)
    got = DecoupledNCE(negatives="same_nuisance", reduction="none")(x, content, emotion)
    assert_close_rel(got, torch.full((6,), math.log(3), dtype=F64), 1e-12)


def test_self_pair_excluded_only_without_ref_emb() -> None:
    x = identical(4)
    labels = torch.tensor([0, 0, 1, 1])
    loss_fn = InfoNCE(reduction="none")
    # Self mode: P_i = 1 (the other one), N_i = 2.
    assert_close_rel(loss_fn(x, labels), torch.full((4,), math.log(3), dtype=F64), 1e-12)
    # ref_emb given (the very same object, or a copy): nothing is excluded, P_i = 2.
    four = torch.full((4,), math.log(4), dtype=F64)
    assert_close_rel(loss_fn(x, labels, ref_emb=x, ref_labels=labels), four, 1e-12)
    assert_close_rel(loss_fn(x, labels, ref_emb=x.clone(), ref_labels=labels.clone()), four, 1e-12)


def test_zero_row_is_normalised_like_f_normalize() -> None:
    """F.normalize maps a zero row to zero: its cosines are 0, so loss_3 = log(|P_3| + |N_3|)."""
    g = torch.Generator().manual_seed(3)
    x = naive.randn(6, 4, generator=g)
    x[3] = 0.0
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    x.requires_grad_(True)
    got = InfoNCE(temperature=0.2, reduction="none")(x, labels)
    assert_close_rel(got, naive.info_nce(x, labels, tau=0.2, reduction="none"))
    assert math.isclose(float(got[3].detach()), math.log(5), rel_tol=1e-12)
    got.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_prior_term_closed_form() -> None:
    """Orthonormal prior, x_i = T_{e_i}: s2p = log(1 + (K-1) e^{-1/tau}),
    p2s = log(1 + n_other e^{-1/tau})."""
    tau, k, weight = 0.5, 3, 0.3
    prior = torch.eye(k, 5, dtype=F64) * 2.0  # rows are normalised by the loss
    emotion = torch.tensor([0, 1, 2, 0])
    x = torch.eye(k, 5, dtype=F64)[emotion] * torch.tensor([[1.0], [2.0], [0.5], [3.0]], dtype=F64)
    q = math.exp(-1 / tau)
    s2p = math.log(1 + (k - 1) * q)
    n_other = [2, 3, 3, 2]
    prior_rows = [(s2p + math.log(1 + m * q)) / 2 for m in n_other]
    # Contrastive part (no content labels, negatives="all"): rows 0 and 3 are identical positives,
    # rows 1 and 2 have no positive. s = 2 for the positive, 0 for the two negatives.
    row = -(1 / tau - math.log(math.exp(1 / tau) + 2))
    contrastive_rows = [row, 0.0, 0.0, row]
    loss = EmotionAugmentedNCE(temperature=tau, prior_weight=weight, reduction="none")
    got = loss(x, emotion, prior=prior)
    expected = [c + weight * p for c, p in zip(contrastive_rows, prior_rows, strict=True)]
    assert_close_rel(got, torch.tensor(expected, dtype=F64), 1e-12)
    got_mean = EmotionAugmentedNCE(temperature=tau, prior_weight=weight)(x, emotion, prior=prior)
    expected_mean = (2 * row) / 2 + weight * sum(prior_rows) / 4
    assert math.isclose(float(got_mean), expected_mean, rel_tol=1e-12)
    got_sum = EmotionAugmentedNCE(temperature=tau, prior_weight=weight, reduction="sum")(
        x, emotion, prior=prior
    )
    assert math.isclose(float(got_sum), 2 * row + weight * sum(prior_rows), rel_tol=1e-12)


def test_prior_only_one_emotion_has_zero_p2s_and_warns() -> None:
    """All anchors share one emotion: C = 0 (no negatives) and p2s_i = 0; only s2p remains."""
    tau, k = 0.5, 3
    prior = torch.eye(k, 4, dtype=F64)
    emotion = torch.zeros(3, dtype=torch.long)
    x = torch.eye(k, 4, dtype=F64)[emotion].requires_grad_(True)
    s2p = math.log(1 + (k - 1) * math.exp(-1 / tau))
    with pytest.warns(NoValidPairsWarning):
        got = EmotionAugmentedNCE(temperature=tau, prior_weight=2.0)(x, emotion, prior=prior)
    assert math.isclose(float(got.detach()), 2.0 * s2p / 2, rel_tol=1e-12)


# --------------------------------------------------------------------------------------------------
# C = 0: a zero connected to the graph, and a warning on every call
# --------------------------------------------------------------------------------------------------


def _no_pairs_cases() -> list[
    tuple[str, Callable[[torch.nn.Module, Tensor, Tensor], Tensor], type]
]:
    same = torch.zeros(6, dtype=torch.long)
    distinct = torch.arange(6)
    content, emotion = naive.parallel_labels(1, 6)  # one content: no same-emotion negative
    return [
        ("infonce_all_same", lambda f, x, y: f(x, same), InfoNCE),
        ("infonce_all_distinct", lambda f, x, y: f(x, distinct), InfoNCE),
        ("infonce_ref", lambda f, x, y: f(x, same, ref_emb=y, ref_labels=same + 1), InfoNCE),
        (
            "infonce_masks",
            lambda f, x, y: f(
                x,
                pos_mask=torch.zeros(6, 6, dtype=torch.bool),
                neg_mask=~torch.eye(6, dtype=torch.bool),
            ),
            InfoNCE,
        ),
        (
            "decoupled_same_nuisance",
            lambda f, x, y: f(x, content, emotion),
            lambda **kw: DecoupledNCE(negatives="same_nuisance", **kw),
        ),
        ("emotion_aware", lambda f, x, y: f(x, content, emotion), EmotionAwareNCE),
        ("emotion_augmented", lambda f, x, y: f(x, same), EmotionAugmentedNCE),
    ]


NO_PAIRS = _no_pairs_cases()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("name", "call", "factory"), NO_PAIRS, ids=[c[0] for c in NO_PAIRS])
def test_no_valid_pairs(name: str, call: Callable, factory: Callable, reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = naive.randn(6, 5, generator=g).requires_grad_(True)
    y = naive.randn(6, 5, generator=g).requires_grad_(True)
    loss_fn = factory(reduction=reduction)
    for _ in range(2):  # the warning is raised on every such call, not once
        with pytest.warns(NoValidPairsWarning):
            out = call(loss_fn, x, y)
    assert out.dtype == F64
    assert out.shape == ((6,) if reduction == "none" else ())
    assert torch.all(out == 0)
    assert out.requires_grad, "the zero must stay connected to the graph"
    out.sum().backward()
    assert x.grad is not None and torch.all(x.grad == 0)
    if name == "infonce_ref":
        assert y.grad is not None and torch.all(y.grad == 0)


def test_no_valid_pairs_warning_is_a_warning_subclass() -> None:
    assert issubclass(NoValidPairsWarning, Warning)


def test_no_warning_when_some_row_counts() -> None:
    x = orthogonal(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InfoNCE()(x, torch.tensor([0, 0, 1, 2]))
    assert not [w for w in caught if issubclass(w.category, NoValidPairsWarning)]
