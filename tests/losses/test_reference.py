"""decouple.losses against the naive float64 loop reference: values and gradients.

Covers InfoNCE (label and explicit-mask forms), DecoupledNCE, EmotionAwareNCE and
EmotionAugmentedNCE (prior term included), every reduction, both negatives modes, keys from the
anchors themselves, from a separate `ref_emb`, and from `ref_emb` being the very same tensor object
(then nothing is excluded), plus the temperature rules (default, learnt log(tau), clamping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from decouple.losses import DecoupledNCE, EmotionAugmentedNCE, EmotionAwareNCE, InfoNCE

from . import naive
from .naive import assert_close_rel

D = 6
M = 10
K = 4  # emotions, also the number of prior rows
TAU = 0.1
REDUCTIONS = ["mean", "sum", "none"]
KEY_MODES = ["self", "ref", "same_object"]
LABEL_KINDS = ["parallel", "random"]

Tensors = dict[str, Tensor]


@dataclass
class Batch:
    """Anchors with content / emotion labels, and the key side for one key mode."""

    tensors: Tensors  # "x", optionally "y" (separate keys) and "prior"
    content: Tensor
    emotion: Tensor
    ref_content: Tensor | None
    ref_emotion: Tensor | None
    key_mode: str

    def keys(self, t: Tensors) -> Tensor | None:
        """The ref_emb argument for the leaves `t` (None in self mode)."""
        if self.key_mode == "self":
            return None
        if self.key_mode == "same_object":
            return t["x"]
        return t["y"]


def make_batch(labels_kind: str, key_mode: str, seed: int = 0, with_prior: bool = False) -> Batch:
    g = torch.Generator().manual_seed(seed)
    if labels_kind == "parallel":
        content, emotion = naive.parallel_labels(3, K)  # N = 12
    else:
        content = naive.random_labels(14, 4, g)
        emotion = naive.random_labels(14, K, g)
        content[-1] = 9  # a content nobody else has: that row never counts for content targets
    n = content.shape[0]
    tensors: Tensors = {"x": naive.randn(n, D, generator=g)}
    ref_content = ref_emotion = None
    if key_mode == "ref":
        tensors["y"] = naive.randn(M, D, generator=g)
        ref_content = naive.random_labels(M, 4, g)
        ref_emotion = naive.random_labels(M, K, g)
    elif key_mode == "same_object":
        ref_content, ref_emotion = content, emotion  # same objects too
    if with_prior:
        tensors["prior"] = naive.randn(K, D, generator=g)
    return Batch(tensors, content, emotion, ref_content, ref_emotion, key_mode)


def check_against_naive(
    impl: Callable[[Tensors], Tensor],
    ref: Callable[[Tensors], Tensor],
    tensors: Tensors,
    *,
    impl_params: Sequence[Tensor] = (),
    ref_params: Sequence[Tensor] = (),
    rtol: float = 1e-10,
) -> Tensor:
    """Compare values and the gradients of every input leaf (and of matching parameters)."""
    a = {k: v.detach().clone().requires_grad_(True) for k, v in tensors.items()}
    b = {k: v.detach().clone().requires_grad_(True) for k, v in tensors.items()}
    got = impl(a)
    expected = ref(b)
    assert_close_rel(got, expected, rtol)
    # A fixed random weighting checks the whole Jacobian row mix for reduction="none".
    weights = torch.linspace(0.5, 1.5, expected.numel(), dtype=expected.dtype).reshape(
        expected.shape
    )
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    for key in tensors:
        assert a[key].grad is not None, f"no gradient reached {key!r}"
        assert_close_rel(a[key].grad, b[key].grad, rtol)  # type: ignore[arg-type]
    for p_impl, p_ref in zip(impl_params, ref_params, strict=True):
        assert p_impl.grad is not None, "no gradient reached the temperature parameter"
        assert_close_rel(p_impl.grad.reshape(p_ref.grad.shape), p_ref.grad, rtol)  # type: ignore[union-attr]
    return got


# --------------------------------------------------------------------------------------------------
# InfoNCE
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
@pytest.mark.parametrize("labels_kind", LABEL_KINDS)
def test_infonce_labels(labels_kind: str, key_mode: str, reduction: str) -> None:
    batch = make_batch(labels_kind, key_mode)
    loss_fn = InfoNCE(temperature=TAU, reduction=reduction)

    def impl(t: Tensors) -> Tensor:
        ref_emb = batch.keys(t)
        if ref_emb is None:
            return loss_fn(t["x"], batch.content)
        return loss_fn(t["x"], batch.content, ref_emb=ref_emb, ref_labels=batch.ref_content)

    def ref(t: Tensors) -> Tensor:
        return naive.info_nce(
            t["x"],
            batch.content,
            ref_emb=batch.keys(t),
            ref_labels=batch.ref_content,
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


def random_masks(n: int, m: int, seed: int, self_mode: bool) -> tuple[Tensor, Tensor]:
    """Disjoint random masks with one row lacking positives and one lacking negatives."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, m, generator=g)
    pos, neg = r < 0.25, r > 0.55
    if self_mode:
        pos.fill_diagonal_(False)
        neg.fill_diagonal_(False)
    pos[1] = False
    neg[2] = False
    pos[2, 0] = pos[2, 3] = True  # row 2 has positives but no negatives: not counted
    return pos, neg


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
def test_infonce_masks(key_mode: str, reduction: str) -> None:
    batch = make_batch("random", key_mode, seed=1)
    n = batch.tensors["x"].shape[0]
    m = M if key_mode == "ref" else n
    pos_mask, neg_mask = random_masks(n, m, seed=2, self_mode=key_mode == "self")
    if key_mode == "same_object":
        pos_mask[0, 0] = True  # nothing is excluded when ref_emb is given: the diagonal counts
        neg_mask[0, 0] = False
    loss_fn = InfoNCE(temperature=TAU, reduction=reduction)

    def impl(t: Tensors) -> Tensor:
        ref_emb = batch.keys(t)
        if ref_emb is None:
            return loss_fn(t["x"], pos_mask=pos_mask, neg_mask=neg_mask)
        return loss_fn(t["x"], pos_mask=pos_mask, neg_mask=neg_mask, ref_emb=ref_emb)

    def ref(t: Tensors) -> Tensor:
        return naive.info_nce(
            t["x"],
            pos_mask=pos_mask,
            neg_mask=neg_mask,
            ref_emb=batch.keys(t),
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


def test_infonce_masks_self_pair_is_excluded() -> None:
    """Without ref_emb the pair (i, i) is excluded, even if a mask marks it."""
    batch = make_batch("random", "self", seed=3)
    x = batch.tensors["x"]
    n = x.shape[0]
    pos_mask, neg_mask = random_masks(n, n, seed=4, self_mode=True)
    pos_with_diag = pos_mask.clone()
    pos_with_diag.fill_diagonal_(True)
    neg_with_diag = neg_mask & ~pos_with_diag
    loss_fn = InfoNCE(temperature=TAU, reduction="none")
    got = loss_fn(x, pos_mask=pos_with_diag, neg_mask=neg_with_diag)
    expected = naive.info_nce(x, pos_mask=pos_mask, neg_mask=neg_mask, tau=TAU, reduction="none")
    assert_close_rel(got, expected)


def test_infonce_label_and_mask_forms_agree() -> None:
    batch = make_batch("random", "ref", seed=5)
    x, y = batch.tensors["x"], batch.tensors["y"]
    labels, ref_labels = batch.content, batch.ref_content
    assert ref_labels is not None
    pos_mask = labels[:, None] == ref_labels[None, :]
    loss_fn = InfoNCE(temperature=TAU, reduction="none")
    by_labels = loss_fn(x, labels, ref_emb=y, ref_labels=ref_labels)
    by_masks = loss_fn(x, pos_mask=pos_mask, neg_mask=~pos_mask, ref_emb=y)
    assert_close_rel(by_masks, by_labels)


# --------------------------------------------------------------------------------------------------
# DecoupledNCE
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
@pytest.mark.parametrize("labels_kind", LABEL_KINDS)
@pytest.mark.parametrize("negatives", ["all", "same_nuisance"])
def test_decoupled(negatives: str, labels_kind: str, key_mode: str, reduction: str) -> None:
    batch = make_batch(labels_kind, key_mode, seed=6)
    loss_fn = DecoupledNCE(negatives=negatives, temperature=TAU, reduction=reduction)

    def impl(t: Tensors) -> Tensor:
        ref_emb = batch.keys(t)
        if ref_emb is None:
            return loss_fn(t["x"], batch.content, batch.emotion)
        return loss_fn(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_target_labels=batch.ref_content,
            ref_nuisance_labels=batch.ref_emotion,
        )

    def ref(t: Tensors) -> Tensor:
        return naive.decoupled_nce(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=batch.keys(t),
            ref_target=batch.ref_content,
            ref_nuisance=batch.ref_emotion,
            negatives=negatives,
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
def test_decoupled_without_nuisance_labels(key_mode: str, reduction: str) -> None:
    """Every anchor and every key is its own nuisance group (with ref_emb=x: key i is positive)."""
    batch = make_batch("random", key_mode, seed=7)
    loss_fn = DecoupledNCE(temperature=TAU, reduction=reduction)

    def impl(t: Tensors) -> Tensor:
        ref_emb = batch.keys(t)
        if ref_emb is None:
            return loss_fn(t["x"], batch.content)
        return loss_fn(t["x"], batch.content, ref_emb=ref_emb, ref_target_labels=batch.ref_content)

    def ref(t: Tensors) -> Tensor:
        return naive.decoupled_nce(
            t["x"],
            batch.content,
            ref_emb=batch.keys(t),
            ref_target=batch.ref_content,
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


def test_decoupled_without_nuisance_equals_infonce() -> None:
    batch = make_batch("random", "ref", seed=8)
    x, y = batch.tensors["x"], batch.tensors["y"]
    a = DecoupledNCE(temperature=TAU, reduction="none")(
        x, batch.content, ref_emb=y, ref_target_labels=batch.ref_content
    )
    b = InfoNCE(temperature=TAU, reduction="none")(
        x, batch.content, ref_emb=y, ref_labels=batch.ref_content
    )
    assert_close_rel(a, b)


# --------------------------------------------------------------------------------------------------
# EmotionAwareNCE (target = content, nuisance = emotion)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
@pytest.mark.parametrize("labels_kind", LABEL_KINDS)
@pytest.mark.parametrize("negatives", ["same_emotion", "all"])
def test_emotion_aware(negatives: str, labels_kind: str, key_mode: str, reduction: str) -> None:
    batch = make_batch(labels_kind, key_mode, seed=9)
    loss_fn = EmotionAwareNCE(negatives=negatives, temperature=TAU, reduction=reduction)

    def impl(t: Tensors) -> Tensor:
        ref_emb = batch.keys(t)
        if ref_emb is None:
            return loss_fn(t["x"], batch.content, batch.emotion)
        return loss_fn(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_content_labels=batch.ref_content,
            ref_emotion_labels=batch.ref_emotion,
        )

    def ref(t: Tensors) -> Tensor:
        return naive.emotion_aware_nce(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=batch.keys(t),
            ref_content=batch.ref_content,
            ref_emotion=batch.ref_emotion,
            negatives=negatives,
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


# --------------------------------------------------------------------------------------------------
# EmotionAugmentedNCE (target = emotion, nuisance = content, optional prior)
# --------------------------------------------------------------------------------------------------

AUGMENTED_CASES = [
    # (negatives, with content labels)
    ("all", True),
    ("same_content", True),
    ("all", False),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key_mode", KEY_MODES)
@pytest.mark.parametrize("with_prior", [False, True], ids=["no_prior", "prior"])
@pytest.mark.parametrize(("negatives", "with_content"), AUGMENTED_CASES)
def test_emotion_augmented(
    negatives: str, with_content: bool, with_prior: bool, key_mode: str, reduction: str
) -> None:
    batch = make_batch("random", key_mode, seed=10, with_prior=with_prior)
    weight = 0.7
    loss_fn = EmotionAugmentedNCE(
        negatives=negatives, prior_weight=weight, temperature=TAU, reduction=reduction
    )
    content = batch.content if with_content else None
    ref_content = batch.ref_content if with_content else None

    def impl(t: Tensors) -> Tensor:
        kwargs: dict[str, object] = {}
        if with_prior:
            kwargs["prior"] = t["prior"]
        ref_emb = batch.keys(t)
        if ref_emb is not None:
            kwargs["ref_emb"] = ref_emb
            kwargs["ref_emotion_labels"] = batch.ref_emotion
            if with_content:
                kwargs["ref_content_labels"] = ref_content
        if with_content:
            return loss_fn(t["x"], batch.emotion, content, **kwargs)
        return loss_fn(t["x"], batch.emotion, **kwargs)

    def ref(t: Tensors) -> Tensor:
        return naive.emotion_augmented_nce(
            t["x"],
            batch.emotion,
            content,
            prior=t.get("prior"),
            ref_emb=batch.keys(t),
            ref_emotion=batch.ref_emotion,
            ref_content=ref_content,
            negatives=negatives,
            prior_weight=weight,
            tau=TAU,
            reduction=reduction,
        )

    check_against_naive(impl, ref, batch.tensors)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_emotion_augmented_prior_on_parallel_batch(reduction: str) -> None:
    """Parallel labels, default prior_weight = 1.0, prior term over all anchors."""
    batch = make_batch("parallel", "self", seed=11, with_prior=True)
    loss_fn = EmotionAugmentedNCE(temperature=TAU, reduction=reduction)
    check_against_naive(
        lambda t: loss_fn(t["x"], batch.emotion, batch.content, prior=t["prior"]),
        lambda t: naive.emotion_augmented_nce(
            t["x"], batch.emotion, batch.content, prior=t["prior"], tau=TAU, reduction=reduction
        ),
        batch.tensors,
    )


def test_emotion_augmented_prior_weight_is_linear() -> None:
    batch = make_batch("random", "self", seed=12, with_prior=True)
    x, prior = batch.tensors["x"], batch.tensors["prior"]
    values = [
        EmotionAugmentedNCE(prior_weight=w, temperature=TAU)(x, batch.emotion, prior=prior)
        for w in (0.0, 1.0, 2.5)
    ]
    no_prior = EmotionAugmentedNCE(temperature=TAU)(x, batch.emotion)
    assert_close_rel(values[0], no_prior)
    assert_close_rel(values[2] - values[0], 2.5 * (values[1] - values[0]))
    assert float(values[1] - values[0]) > 0.0


# --------------------------------------------------------------------------------------------------
# Defaults and temperature
# --------------------------------------------------------------------------------------------------


def test_defaults_match_the_spec() -> None:
    """temperature=0.07, reduction="mean", and each class's default negatives / prior_weight."""
    batch = make_batch("parallel", "self", seed=13, with_prior=True)
    x, prior = batch.tensors["x"], batch.tensors["prior"]
    c, e = batch.content, batch.emotion
    assert_close_rel(InfoNCE()(x, c), naive.info_nce(x, c, tau=0.07))
    assert_close_rel(
        DecoupledNCE()(x, c, e), naive.decoupled_nce(x, c, e, negatives="all", tau=0.07)
    )
    assert_close_rel(
        EmotionAwareNCE()(x, c, e),
        naive.emotion_aware_nce(x, c, e, negatives="same_emotion", tau=0.07),
    )
    assert_close_rel(
        EmotionAugmentedNCE()(x, e, c, prior=prior),
        naive.emotion_augmented_nce(
            x, e, c, prior=prior, negatives="all", prior_weight=1.0, tau=0.07
        ),
    )


ALL_CLASSES = [InfoNCE, DecoupledNCE, EmotionAwareNCE, EmotionAugmentedNCE]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_learned_temperature_is_a_log_parameter(cls: type[torch.nn.Module]) -> None:
    loss_fn = cls(learn_temperature=True)
    assert isinstance(loss_fn.log_temperature, torch.nn.Parameter)
    assert loss_fn.log_temperature.numel() == 1
    assert math.isclose(float(loss_fn.log_temperature.detach()), math.log(0.07), rel_tol=1e-6)
    assert any(p is loss_fn.log_temperature for p in loss_fn.parameters())
    other = cls(temperature=0.2, learn_temperature=True)
    assert math.isclose(float(other.log_temperature.detach()), math.log(0.2), rel_tol=1e-6)


def _call(cls: type[torch.nn.Module], loss_fn: torch.nn.Module, batch: Batch, t: Tensors) -> Tensor:
    """Call any of the four classes on a batch (content targets; emotion targets for CERL)."""
    ref_emb = batch.keys(t)
    if cls is InfoNCE:
        if ref_emb is None:
            return loss_fn(t["x"], batch.content)
        return loss_fn(t["x"], batch.content, ref_emb=ref_emb, ref_labels=batch.ref_content)
    if cls is DecoupledNCE:
        if ref_emb is None:
            return loss_fn(t["x"], batch.content, batch.emotion)
        return loss_fn(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_target_labels=batch.ref_content,
            ref_nuisance_labels=batch.ref_emotion,
        )
    if cls is EmotionAwareNCE:
        if ref_emb is None:
            return loss_fn(t["x"], batch.content, batch.emotion)
        return loss_fn(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_content_labels=batch.ref_content,
            ref_emotion_labels=batch.ref_emotion,
        )
    if ref_emb is None:
        return loss_fn(t["x"], batch.emotion, batch.content, prior=t["prior"])
    return loss_fn(
        t["x"],
        batch.emotion,
        batch.content,
        prior=t["prior"],
        ref_emb=ref_emb,
        ref_emotion_labels=batch.ref_emotion,
        ref_content_labels=batch.ref_content,
    )


def _naive(
    cls: type[torch.nn.Module], batch: Batch, t: Tensors, tau: naive.Tau, reduction: str
) -> Tensor:
    ref_emb = batch.keys(t)
    if cls is InfoNCE:
        return naive.info_nce(
            t["x"],
            batch.content,
            ref_emb=ref_emb,
            ref_labels=batch.ref_content,
            tau=tau,
            reduction=reduction,
        )
    if cls is DecoupledNCE:
        return naive.decoupled_nce(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_target=batch.ref_content,
            ref_nuisance=batch.ref_emotion,
            tau=tau,
            reduction=reduction,
        )
    if cls is EmotionAwareNCE:
        return naive.emotion_aware_nce(
            t["x"],
            batch.content,
            batch.emotion,
            ref_emb=ref_emb,
            ref_content=batch.ref_content,
            ref_emotion=batch.ref_emotion,
            tau=tau,
            reduction=reduction,
        )
    return naive.emotion_augmented_nce(
        t["x"],
        batch.emotion,
        batch.content,
        prior=t["prior"],
        ref_emb=ref_emb,
        ref_emotion=batch.ref_emotion,
        ref_content=batch.ref_content,
        tau=tau,
        reduction=reduction,
    )


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("key_mode", ["self", "ref"])
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_learned_temperature_gradient(
    cls: type[torch.nn.Module], key_mode: str, reduction: str
) -> None:
    """d loss / d log(tau) and the input gradients equal the naive ones (float64 parameter)."""
    batch = make_batch("random", key_mode, seed=14, with_prior=cls is EmotionAugmentedNCE)
    loss_fn = cls(learn_temperature=True, reduction=reduction).double()
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(0.15))
    log_tau = torch.tensor(math.log(0.15), dtype=torch.float64, requires_grad=True)
    check_against_naive(
        lambda t: _call(cls, loss_fn, batch, t),
        lambda t: _naive(cls, batch, t, naive.clamped_tau(log_tau), reduction),
        batch.tensors,
        impl_params=[loss_fn.log_temperature],
        ref_params=[log_tau],
    )
    assert float(loss_fn.log_temperature.grad.abs().sum()) > 0.0  # type: ignore[union-attr]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("stored_tau", "used_tau", "rtol"),
    [(5.0, 1.0, 1e-10), (1e-3, 0.01, 1e-8)],  # float32 0.01 is 2e-9 away from 0.01
    ids=["above", "below"],
)
def test_learned_temperature_is_clamped(
    cls: type[torch.nn.Module], stored_tau: float, used_tau: float, rtol: float
) -> None:
    batch = make_batch("random", "ref", seed=15, with_prior=cls is EmotionAugmentedNCE)
    loss_fn = cls(learn_temperature=True, reduction="none")
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(stored_tau))
    got = _call(cls, loss_fn, batch, batch.tensors)
    expected = _naive(cls, batch, batch.tensors, used_tau, "none")
    assert_close_rel(got, expected, rtol)


@pytest.mark.parametrize("key_mode", ["self", "ref"])
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_gather_distributed_is_a_no_op_without_process_group(
    cls: type[torch.nn.Module], key_mode: str
) -> None:
    """With no process group (or a world of one) gather_distributed=True changes nothing."""
    batch = make_batch("random", key_mode, seed=16, with_prior=cls is EmotionAugmentedNCE)
    loss_fn = cls(gather_distributed=True, temperature=TAU, reduction="none")
    check_against_naive(
        lambda t: _call(cls, loss_fn, batch, t),
        lambda t: _naive(cls, batch, t, TAU, "none"),
        batch.tensors,
    )
