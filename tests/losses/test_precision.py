"""Precision rules: compute in promote_types(input dtype, float32) with autocast disabled.

float16 / bfloat16 inputs are computed in float32 and return float32; float32 stays float32; float64
stays float64; calling a loss inside `torch.autocast("cpu", dtype=torch.bfloat16)` gives exactly the
float32 result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from decouple.losses import DecoupledNCE, EmotionAugmentedNCE, EmotionAwareNCE, InfoNCE

from . import naive
from .naive import assert_close_rel

N, M, D, K = 12, 9, 8, 4
TAU = 0.1

Inputs = dict[str, Tensor]


def _labels() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    content, emotion = naive.parallel_labels(3, K)
    return {
        "content": content,
        "emotion": emotion,
        "ref_labels": naive.random_labels(M, 3, g),
        "pos_mask": torch.rand(N, N, generator=g) < 0.3,
    }


LABELS = _labels()


def _master() -> Inputs:
    g = torch.Generator().manual_seed(2)
    return {
        "x": naive.randn(N, D, generator=g),
        "y": naive.randn(M, D, generator=g),
        "prior": naive.randn(K, D, generator=g),
    }


Case = tuple[Callable[[Inputs], Tensor], Callable[[Inputs], Tensor]]  # (decouple, naive)


def _cases() -> dict[str, Case]:
    lab = LABELS
    pos = lab["pos_mask"] & ~torch.eye(N, dtype=torch.bool)
    neg = ~lab["pos_mask"] & ~torch.eye(N, dtype=torch.bool)
    info = InfoNCE(temperature=TAU)
    dec = DecoupledNCE(negatives="same_nuisance", temperature=TAU, reduction="sum")
    aware = EmotionAwareNCE(temperature=TAU, reduction="none")
    aug = EmotionAugmentedNCE(temperature=TAU, prior_weight=0.5)
    c, e = lab["content"], lab["emotion"]
    return {
        "infonce_self": (
            lambda t: info(t["x"], c),
            lambda t: naive.info_nce(t["x"], c, tau=TAU),
        ),
        "infonce_ref": (
            lambda t: info(t["x"], c, ref_emb=t["y"], ref_labels=lab["ref_labels"]),
            lambda t: naive.info_nce(
                t["x"], c, ref_emb=t["y"], ref_labels=lab["ref_labels"], tau=TAU
            ),
        ),
        "infonce_masks": (
            lambda t: info(t["x"], pos_mask=pos, neg_mask=neg),
            lambda t: naive.info_nce(t["x"], pos_mask=pos, neg_mask=neg, tau=TAU),
        ),
        "decoupled": (
            lambda t: dec(t["x"], c, e),
            lambda t: naive.decoupled_nce(
                t["x"], c, e, negatives="same_nuisance", tau=TAU, reduction="sum"
            ),
        ),
        "emotion_aware": (
            lambda t: aware(t["x"], c, e),
            lambda t: naive.emotion_aware_nce(t["x"], c, e, tau=TAU, reduction="none"),
        ),
        "emotion_augmented_prior": (
            lambda t: aug(t["x"], e, c, prior=t["prior"]),
            lambda t: naive.emotion_augmented_nce(
                t["x"], e, c, prior=t["prior"], prior_weight=0.5, tau=TAU
            ),
        ),
    }


CASES = _cases()
USED = {  # which master tensors each case reads (so gradients can be checked)
    "infonce_self": ["x"],
    "infonce_ref": ["x", "y"],
    "infonce_masks": ["x"],
    "decoupled": ["x"],
    "emotion_aware": ["x"],
    "emotion_augmented_prior": ["x", "prior"],
}


def _leaves(dtype: torch.dtype, names: list[str]) -> Inputs:
    master = _master()
    return {k: master[k].to(dtype).requires_grad_(True) for k in names}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", list(CASES))
def test_half_inputs_are_computed_in_float32(case: str, dtype: torch.dtype) -> None:
    impl, ref = CASES[case]
    low = _leaves(dtype, USED[case])
    out = impl(low)
    assert out.dtype == torch.float32
    # The same numbers as the float32 computation on the (exactly) up-cast inputs...
    up = {k: v.detach().float() for k, v in low.items()}
    assert_close_rel(out, impl(up), 1e-6)
    # ...and close to float64 maths on them (a float16 / bfloat16 computation is ~1e-3 off).
    exact = ref({k: v.detach().double() for k, v in low.items()})
    assert_close_rel(out.double(), exact, 1e-5)
    out.sum().backward()
    exact_leaves = {k: v.detach().double().requires_grad_(True) for k, v in low.items()}
    ref(exact_leaves).sum().backward()
    for k, leaf in low.items():
        assert leaf.grad is not None and leaf.grad.dtype == dtype
        assert torch.isfinite(leaf.grad).all()
        expected = exact_leaves[k].grad
        assert expected is not None
        scale = float(expected.abs().max())
        torch.testing.assert_close(leaf.grad.double(), expected, rtol=0.0, atol=0.02 * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("case", list(CASES))
def test_float32_and_float64_keep_their_dtype(case: str, dtype: torch.dtype) -> None:
    impl, ref = CASES[case]
    leaves = _leaves(dtype, USED[case])
    out = impl(leaves)
    assert out.dtype == dtype
    exact = ref({k: v.detach().double() for k, v in leaves.items()})
    assert_close_rel(out.double(), exact, 1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("case", list(CASES))
def test_autocast_is_disabled_inside_the_loss(case: str) -> None:
    impl, _ = CASES[case]
    outside = _leaves(torch.float32, USED[case])
    inside = _leaves(torch.float32, USED[case])
    expected = impl(outside)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = impl(inside)
    assert got.dtype == torch.float32
    assert_close_rel(got, expected, 1e-6)
    got.sum().backward()
    expected.sum().backward()
    for k in inside:
        assert_close_rel(inside[k].grad, outside[k].grad, 1e-6)  # type: ignore[arg-type]


def test_autocast_would_have_changed_the_result() -> None:
    """Guard for the test above: bf16 autocast really perturbs a plain similarity computation."""
    x = _master()["x"].float()
    plain = x @ x.T
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = x @ x.T
    assert cast.dtype == torch.bfloat16
    assert float((cast.float() - plain).abs().max()) > 1e-4


def test_float32_temperature_parameter_with_float64_inputs() -> None:
    """A learnt float32 log(tau) does not demote a float64 computation."""
    loss_fn = InfoNCE(learn_temperature=True, reduction="none")
    x = _master()["x"]
    out = loss_fn(x, LABELS["content"])
    assert out.dtype == torch.float64
    tau = math.exp(float(loss_fn.log_temperature.detach()))
    assert_close_rel(out, naive.info_nce(x, LABELS["content"], tau=tau, reduction="none"), 1e-6)
