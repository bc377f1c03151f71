"""Chunked parity: `chunk_size=k` gives the values and gradients of the plain path.

1e-10 relative in float64, 1e-5 in float32, for every class with chunk_size, both negatives modes,
with and without ref_emb, every reduction, with rows that do not count, the prior term and a learnt
temperature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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

N, M, D, K = 14, 11, 6, 4
TAU = 0.1
CHUNKS = [1, 3, 7, N]
REDUCTIONS = ["mean", "sum", "none"]


@dataclass
class Data:
    x: Tensor
    y: Tensor
    prior: Tensor
    content: Tensor
    emotion: Tensor
    ref_content: Tensor
    ref_emotion: Tensor
    pos_mask_self: Tensor
    neg_mask_self: Tensor
    pos_mask_ref: Tensor
    neg_mask_ref: Tensor


def _data() -> Data:
    g = torch.Generator().manual_seed(7)
    content = naive.random_labels(N, 4, g)
    content[-1] = 9  # no positive for content targets
    emotion = naive.random_labels(N, K, g)
    r_self, r_ref = torch.rand(N, N, generator=g), torch.rand(N, M, generator=g)
    eye = torch.eye(N, dtype=torch.bool)
    pos_self, neg_self = (r_self < 0.3) & ~eye, (r_self > 0.6) & ~eye
    pos_self[0] = False  # a row without positives
    return Data(
        x=naive.randn(N, D, generator=g),
        y=naive.randn(M, D, generator=g),
        prior=naive.randn(K, D, generator=g),
        content=content,
        emotion=emotion,
        ref_content=naive.random_labels(M, 4, g),
        ref_emotion=naive.random_labels(M, K, g),
        pos_mask_self=pos_self,
        neg_mask_self=neg_self,
        pos_mask_ref=r_ref < 0.3,
        neg_mask_ref=r_ref > 0.6,
    )


DATA = _data()
Call = Callable[[torch.nn.Module, dict[str, Tensor], bool], Tensor]


def _kw(use_ref: bool, t: dict[str, Tensor], **labels: Tensor) -> dict[str, Tensor]:
    return {"ref_emb": t["y"], **labels} if use_ref else {}


# name -> (factory, call(module, leaves, use_ref), uses prior)
CONFIGS: dict[str, tuple[Callable[..., torch.nn.Module], Call, bool]] = {
    "infonce_labels": (
        InfoNCE,
        lambda f, t, r: f(t["x"], DATA.content, **_kw(r, t, ref_labels=DATA.ref_content)),
        False,
    ),
    "decoupled_all": (
        lambda **kw: DecoupledNCE(negatives="all", **kw),
        lambda f, t, r: f(
            t["x"],
            DATA.content,
            DATA.emotion,
            **_kw(r, t, ref_target_labels=DATA.ref_content, ref_nuisance_labels=DATA.ref_emotion),
        ),
        False,
    ),
    "decoupled_same_nuisance": (
        lambda **kw: DecoupledNCE(negatives="same_nuisance", **kw),
        lambda f, t, r: f(
            t["x"],
            DATA.content,
            DATA.emotion,
            **_kw(r, t, ref_target_labels=DATA.ref_content, ref_nuisance_labels=DATA.ref_emotion),
        ),
        False,
    ),
    "decoupled_no_nuisance": (
        DecoupledNCE,
        lambda f, t, r: f(t["x"], DATA.content, **_kw(r, t, ref_target_labels=DATA.ref_content)),
        False,
    ),
    "aware_same_emotion": (
        EmotionAwareNCE,
        lambda f, t, r: f(
            t["x"],
            DATA.content,
            DATA.emotion,
            **_kw(r, t, ref_content_labels=DATA.ref_content, ref_emotion_labels=DATA.ref_emotion),
        ),
        False,
    ),
    "aware_all": (
        lambda **kw: EmotionAwareNCE(negatives="all", **kw),
        lambda f, t, r: f(
            t["x"],
            DATA.content,
            DATA.emotion,
            **_kw(r, t, ref_content_labels=DATA.ref_content, ref_emotion_labels=DATA.ref_emotion),
        ),
        False,
    ),
    "augmented_all_prior": (
        lambda **kw: EmotionAugmentedNCE(prior_weight=0.6, **kw),
        lambda f, t, r: f(
            t["x"],
            DATA.emotion,
            DATA.content,
            prior=t["prior"],
            **_kw(r, t, ref_emotion_labels=DATA.ref_emotion, ref_content_labels=DATA.ref_content),
        ),
        True,
    ),
    "augmented_same_content_prior": (
        lambda **kw: EmotionAugmentedNCE(negatives="same_content", **kw),
        lambda f, t, r: f(
            t["x"],
            DATA.emotion,
            DATA.content,
            prior=t["prior"],
            **_kw(r, t, ref_emotion_labels=DATA.ref_emotion, ref_content_labels=DATA.ref_content),
        ),
        True,
    ),
    "augmented_no_content": (
        EmotionAugmentedNCE,
        lambda f, t, r: f(t["x"], DATA.emotion, **_kw(r, t, ref_emotion_labels=DATA.ref_emotion)),
        False,
    ),
}


def _run(
    name: str,
    chunk_size: int | None,
    reduction: str,
    use_ref: bool,
    dtype: torch.dtype = torch.float64,
    learn_temperature: bool = False,
    temperature: float = TAU,
) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
    factory, call, uses_prior = CONFIGS[name]
    module = factory(
        temperature=temperature,
        reduction=reduction,
        chunk_size=chunk_size,
        learn_temperature=learn_temperature,
    )
    names = ["x"] + (["y"] if use_ref else []) + (["prior"] if uses_prior else [])
    leaves = {k: getattr(DATA, k).detach().to(dtype, copy=True).requires_grad_(True) for k in names}
    out = call(module, leaves, use_ref)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights).sum().backward()
    grads = {k: v.grad for k, v in leaves.items()}
    assert all(g is not None for g in grads.values())
    temp_grad = module.log_temperature.grad if learn_temperature else None
    return out.detach(), grads, temp_grad  # type: ignore[return-value]


def test_some_rows_do_not_count() -> None:
    """Precondition for the parity tests: the data has counted and uncounted rows."""
    for negatives in ("all", "same_nuisance"):
        for use_ref in (False, True):
            c = naive.num_counted(
                DATA.content,
                DATA.emotion,
                ref_target=DATA.ref_content,
                ref_nuisance=DATA.ref_emotion,
                self_mode=not use_ref,
                negatives=negatives,
            )
            assert 0 < c < N


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_ref", [False, True], ids=["self", "ref"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_chunked_parity_float64(name: str, use_ref: bool, reduction: str, chunk_size: int) -> None:
    plain, plain_grads, _ = _run(name, None, reduction, use_ref)
    chunked, chunked_grads, _ = _run(name, chunk_size, reduction, use_ref)
    assert_close_rel(chunked, plain, 1e-10)
    for k in plain_grads:
        assert_close_rel(chunked_grads[k], plain_grads[k], 1e-10)


@pytest.mark.parametrize("chunk_size", [3, 7])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("use_ref", [False, True], ids=["self", "ref"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_chunked_parity_float32(name: str, use_ref: bool, reduction: str, chunk_size: int) -> None:
    plain, plain_grads, _ = _run(name, None, reduction, use_ref, torch.float32)
    chunked, chunked_grads, _ = _run(name, chunk_size, reduction, use_ref, torch.float32)
    assert chunked.dtype == torch.float32
    assert_close_rel(chunked, plain, 1e-5)
    for k in plain_grads:
        assert_close_rel(chunked_grads[k], plain_grads[k], 1e-5)


@pytest.mark.parametrize("use_ref", [False, True], ids=["self", "ref"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_chunked_parity_low_temperature(name: str, use_ref: bool) -> None:
    """tau = 0.01 puts s_ij in [-100, 100]: the blocks must stay numerically stable."""
    plain, plain_grads, _ = _run(name, None, "none", use_ref, temperature=0.01)
    chunked, chunked_grads, _ = _run(name, 3, "none", use_ref, temperature=0.01)
    assert torch.isfinite(plain).all()
    assert_close_rel(chunked, plain, 1e-10)
    for k in plain_grads:
        assert torch.isfinite(plain_grads[k]).all()
        assert_close_rel(chunked_grads[k], plain_grads[k], 1e-10)


@pytest.mark.parametrize("chunk_size", [1, 5])
@pytest.mark.parametrize("name", ["infonce_labels", "aware_same_emotion", "augmented_all_prior"])
def test_chunked_parity_learned_temperature(name: str, chunk_size: int) -> None:
    plain, plain_grads, plain_t = _run(name, None, "mean", True, learn_temperature=True)
    chunked, chunked_grads, chunked_t = _run(name, chunk_size, "mean", True, learn_temperature=True)
    assert plain_t is not None and chunked_t is not None
    assert_close_rel(chunked, plain, 1e-10)
    # The parameter is float32; its gradient is accumulated in float32.
    assert_close_rel(chunked_t, plain_t, 1e-5)
    for k in plain_grads:
        assert_close_rel(chunked_grads[k], plain_grads[k], 1e-10)


@pytest.mark.parametrize("chunk_size", [1, 4])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_chunked_same_object_ref_emb(reduction: str, chunk_size: int) -> None:
    """ref_emb is the embeddings object: nothing excluded, also when chunked; equals naive."""
    for negatives in ("all", "same_nuisance"):
        leaves = {}
        outs = []
        for chunk in (None, chunk_size):
            x = DATA.x.clone().requires_grad_(True)
            module = DecoupledNCE(
                negatives=negatives, temperature=TAU, reduction=reduction, chunk_size=chunk
            )
            out = module(
                x,
                DATA.content,
                DATA.emotion,
                ref_emb=x,
                ref_target_labels=DATA.content,
                ref_nuisance_labels=DATA.emotion,
            )
            out.sum().backward()
            outs.append(out)
            leaves[chunk] = x
        expected = naive.decoupled_nce(
            DATA.x,
            DATA.content,
            DATA.emotion,
            ref_emb=DATA.x,
            ref_target=DATA.content,
            ref_nuisance=DATA.emotion,
            negatives=negatives,
            tau=TAU,
            reduction=reduction,
        )
        assert_close_rel(outs[1], outs[0])
        assert_close_rel(outs[1], expected)
        assert_close_rel(leaves[chunk_size].grad, leaves[None].grad)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("use_ref", [False, True], ids=["self", "ref"])
def test_chunked_explicit_masks(use_ref: bool, chunk_size: int) -> None:
    """InfoNCE with explicit masks also honours chunk_size (values and gradients)."""
    pos = DATA.pos_mask_ref if use_ref else DATA.pos_mask_self
    neg = DATA.neg_mask_ref if use_ref else DATA.neg_mask_self
    results = []
    for chunk in (None, chunk_size):
        x = DATA.x.clone().requires_grad_(True)
        y = DATA.y.clone().requires_grad_(True)
        kwargs = {"ref_emb": y} if use_ref else {}
        out = InfoNCE(temperature=TAU, reduction="none", chunk_size=chunk)(
            x, pos_mask=pos, neg_mask=neg, **kwargs
        )
        out.sum().backward()
        results.append((out, x.grad, y.grad))
    assert_close_rel(results[1][0], results[0][0])
    assert_close_rel(results[1][1], results[0][1])  # type: ignore[arg-type]
    if use_ref:
        assert_close_rel(results[1][2], results[0][2])  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [1, 3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_chunked_no_valid_pairs(reduction: str, chunk_size: int) -> None:
    x = DATA.x.clone().requires_grad_(True)
    loss_fn = InfoNCE(reduction=reduction, chunk_size=chunk_size)
    for _ in range(2):
        with pytest.warns(NoValidPairsWarning):
            out = loss_fn(x, torch.zeros(N, dtype=torch.long))
    assert torch.all(out == 0) and out.requires_grad
    out.sum().backward()
    assert x.grad is not None and torch.all(x.grad == 0)
