"""The three execution paths of the core (plain, chunked, grouped) against the naive reference.

The grouped path (negatives restricted to the same nuisance group) only runs when it saves
work, which small test batches rarely do: these tests force it by lifting the budget, and also
check that it is chosen on its own for a realistic parallel batch.
"""

from __future__ import annotations

import math

import pytest
import torch

from decouple.losses import DecoupledNCE, EmotionAugmentedNCE, EmotionAwareNCE, _engine
from decouple.losses._pairs import PairRule
from tests.losses import naive


@pytest.fixture
def force_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "GROUPED_MAX_FRACTION", float("inf"))


def _grads(loss: torch.Tensor, weights: torch.Tensor, inputs: list[torch.Tensor]) -> tuple:
    return torch.autograd.grad((loss * weights).sum(), inputs)


def _labels(gen: torch.Generator, n: int, t: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return naive.random_labels(n, t, gen), naive.random_labels(n, k, gen)


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("ref", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_grouped_path_matches_naive(
    force_grouped: None, ref: bool, reduction: str, chunk_size: int | None
) -> None:
    gen = torch.Generator().manual_seed(3)
    n, m, d = 20, 15, 5
    x = naive.randn(n, d, generator=gen).requires_grad_()
    t, nu = _labels(gen, n, 5, 3)
    kwargs: dict = {}
    inputs = [x]
    y = ty = ny = None
    if ref:
        y = naive.randn(m, d, generator=gen).requires_grad_()
        ty, ny = _labels(gen, m, 5, 4)  # nuisance 3 exists only among the keys
        kwargs = dict(ref_emb=y, ref_target_labels=ty, ref_nuisance_labels=ny)
        inputs.append(y)
    loss_fn = DecoupledNCE(
        negatives="same_nuisance", reduction=reduction, learn_temperature=True,
        chunk_size=chunk_size,
    )
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(0.2))
    got = loss_fn(x, t, nu, **kwargs)
    log_tau = torch.tensor(math.log(0.2), dtype=torch.float64, requires_grad=True)
    want = naive.decoupled_nce(
        x, t, nu, ref_emb=y, ref_target=ty, ref_nuisance=ny, negatives="same_nuisance",
        tau=log_tau.exp(), reduction=reduction,
    )
    naive.assert_close_rel(got, want)
    w = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(
        _grads(got, w, [*inputs, loss_fn.log_temperature]),
        _grads(want, w, [*inputs, log_tau]),
        strict=True,
    ):
        naive.assert_close_rel(a, b)


def test_grouped_path_with_uncounted_rows(force_grouped: None) -> None:
    # Content 9 appears once (no positive); emotion 2 holds a single content (no negative).
    content = torch.tensor([0, 0, 1, 1, 9, 3, 3, 4])
    emotion = torch.tensor([0, 1, 0, 1, 0, 1, 2, 0])
    gen = torch.Generator().manual_seed(1)
    x = naive.randn(8, 4, generator=gen).requires_grad_()
    got = EmotionAwareNCE(reduction="none")(x, content, emotion)
    want = naive.emotion_aware_nce(x, content, emotion, reduction="none")
    naive.assert_close_rel(got, want)
    assert got[4] == 0 and got[6] == 0
    naive.assert_close_rel(
        torch.autograd.grad(got.sum(), x)[0], torch.autograd.grad(want.sum(), x)[0]
    )


@pytest.mark.parametrize("chunk_size", [None, 7, 64])
def test_paths_agree_on_a_parallel_batch(chunk_size: int | None) -> None:
    """Plain/grouped (None) and chunked paths give the same float64 values and gradients."""
    content, emotion = naive.parallel_labels(16, 8)
    gen = torch.Generator().manual_seed(5)
    x = naive.randn(128, 16, generator=gen).requires_grad_()
    got = EmotionAwareNCE(chunk_size=chunk_size)(x, content, emotion)
    want = naive.emotion_aware_nce(x, content, emotion)
    naive.assert_close_rel(got, want)
    naive.assert_close_rel(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def test_grouped_plan_is_chosen_for_parallel_batches() -> None:
    content, emotion = naive.parallel_labels(64, 8)
    rule = PairRule(512, 512, t_anchor=content, t_key=content, n_anchor=emotion,
                    n_key=emotion, negatives="same_nuisance", self_offset=0)
    plan = _engine._grouped_plan(rule)
    assert plan is not None
    assert len(plan.blocks) == 8 and plan.pos.shape == (64, 8, 8)
    # every anchor has 7 positives (its content in the 7 other emotions)
    assert int(plan.pos.sum()) == 512 * 7
    # chunking splits the same-emotion blocks into row chunks
    chunked = _engine._grouped_plan(rule, chunk_size=50)
    assert chunked is not None and chunked.chunked
    assert max(a1 - a0 for a0, a1, _, _ in chunked.blocks) == 50 and len(chunked.blocks) == 16
    # with "all" negatives the dense path is the right one
    rule.negatives = "all"
    assert not rule.grouped_applicable()


def test_grouped_plan_declines_when_it_saves_nothing() -> None:
    # 2 targets x 2 nuisances: the positive groups are as large as the whole batch.
    t = torch.arange(2).repeat_interleave(32)
    n = torch.arange(2).repeat(32)
    rule = PairRule(64, 64, t_anchor=t, t_key=t, n_anchor=n, n_key=n,
                    negatives="same_nuisance", self_offset=0)
    assert _engine._grouped_plan(rule) is None


def test_emotion_augmented_same_content_uses_grouped_path(force_grouped: None) -> None:
    gen = torch.Generator().manual_seed(2)
    content, emotion = naive.parallel_labels(4, 6)
    x = naive.randn(24, 8, generator=gen).requires_grad_()
    prior = naive.randn(6, 8, generator=gen).requires_grad_()
    got = EmotionAugmentedNCE(negatives="same_content")(x, emotion, content, prior=prior)
    want = naive.emotion_augmented_nce(x, emotion, content, prior=prior, negatives="same_content")
    naive.assert_close_rel(got, want)
    for a, b in zip(torch.autograd.grad(got, [x, prior]), torch.autograd.grad(want, [x, prior]),
                    strict=True):
        naive.assert_close_rel(a, b)


def test_float32_paths_agree() -> None:
    content, emotion = naive.parallel_labels(32, 8)
    x = torch.randn(256, 32, requires_grad=True)
    plain = EmotionAwareNCE()(x, content, emotion)
    chunked = EmotionAwareNCE(chunk_size=50)(x, content, emotion)
    torch.testing.assert_close(plain, chunked, rtol=1e-5, atol=1e-6)
    g1 = torch.autograd.grad(plain, x)[0]
    g2 = torch.autograd.grad(chunked, x)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)
