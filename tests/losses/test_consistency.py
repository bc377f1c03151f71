"""ContentConsistency, EmotionConsistency and CosineContrast against naive references.

ContentConsistency: mean_i -log(clamp(cos(a_i, b_i), eps, 1)), cosine over flattened non-batch dims.
EmotionConsistency: mean of 1 - cos(r * T, g * T) over all but the last dim (cosine over the last
dim); T broadcast to the inputs, or a (K x D) prior indexed by emotion_labels.
CosineContrast: (1 - mean clamp(cos(x, y), 0, 1)) + mean clamp(cos(x, z), 0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from decouple.losses import ContentConsistency, CosineContrast, EmotionConsistency

from . import naive
from .naive import assert_close_rel

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check(
    impl: Callable[..., Tensor], ref: Callable[..., Tensor], *inputs: Tensor, rtol: float = 1e-10
) -> Tensor:
    """Values and the gradients of every tensor input agree."""
    a = [t.detach().clone().requires_grad_(True) for t in inputs]
    b = [t.detach().clone().requires_grad_(True) for t in inputs]
    got, expected = impl(*a), ref(*b)
    assert got.shape == ()
    assert_close_rel(got, expected, rtol)
    got.backward()
    expected.backward()
    for ta, tb in zip(a, b, strict=True):
        assert ta.grad is not None
        assert_close_rel(ta.grad, tb.grad, rtol)  # type: ignore[arg-type]
    return got


# --------------------------------------------------------------------------------------------------
# ContentConsistency
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 2, 5)], ids=["2d", "4d"])
@pytest.mark.parametrize("eps", [1e-6, 1e-2])
def test_content_consistency(shape: tuple[int, ...], eps: float) -> None:
    g = _gen(0)
    a = naive.randn(*shape, generator=g)
    b = a + 0.8 * naive.randn(*shape, generator=g)  # positive cosines, away from the clamp
    b[1] = -a[1] + 0.1 * naive.randn(*shape[1:], generator=g)  # clamped at eps: -log(eps)
    loss = ContentConsistency(eps=eps)
    got = check(loss, lambda x, y: naive.content_consistency(x, y, eps), a, b)
    assert (
        float(got.detach()) > -math.log(eps) / shape[0]
    )  # the clamped row contributes -log(eps) / B


def test_content_consistency_uses_flattened_cosine() -> None:
    """Per-position cosines (over the last dim) would give another number."""
    g = _gen(1)
    a = naive.randn(3, 4, 6, generator=g)
    b = a + naive.randn(3, 4, 6, generator=g)
    got = ContentConsistency()(a, b)
    flat = naive.content_consistency(a, b, 1e-6)
    assert_close_rel(got, flat)
    per_position = naive.content_consistency(a.reshape(12, 6), b.reshape(12, 6), 1e-6)
    assert abs(float(flat) - float(per_position)) > 1e-3


def test_content_consistency_closed_form() -> None:
    a = naive.randn(4, 6, generator=_gen(2))
    assert abs(float(ContentConsistency()(a, 2.5 * a))) < 1e-12
    # Anti-parallel rows are clamped at eps = 1e-6 (the default): -log(1e-6) each, no gradient.
    b = a.clone().requires_grad_(True)
    out = ContentConsistency()(a, -b)
    assert math.isclose(float(out.detach()), -math.log(1e-6), rel_tol=1e-12)
    out.backward()
    assert b.grad is not None and torch.all(b.grad == 0)
    # Orthogonal rows: cos = 0 < eps as well.
    e = torch.eye(4, 6, dtype=F64)
    assert math.isclose(float(ContentConsistency(eps=1e-3)(e, e.roll(1, 1))), -math.log(1e-3))


# --------------------------------------------------------------------------------------------------
# EmotionConsistency
# --------------------------------------------------------------------------------------------------

B, L, D, K = 5, 3, 6, 3


def _pair(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    r = naive.randn(*shape, generator=g)
    return r, r + 0.9 * naive.randn(*shape, generator=g)


@pytest.mark.parametrize(
    ("shape", "prior_shape"),
    [
        ((B, D), (D,)),
        ((B, D), (B, D)),
        ((B, L, D), (D,)),
        ((B, L, D), (B, 1, D)),
        ((B, L, D), (L, D)),
    ],
    ids=["2d_D", "2d_BD", "3d_D", "3d_B1D", "3d_LD"],
)
def test_emotion_consistency_broadcast_prior(
    shape: tuple[int, ...], prior_shape: tuple[int, ...]
) -> None:
    r, g = _pair(shape, 3)
    prior = naive.randn(*prior_shape, generator=_gen(4))
    check(EmotionConsistency(), naive.emotion_consistency, r, g, prior)


@pytest.mark.parametrize("shape", [(B, D), (B, L, D)], ids=["2d", "3d"])
def test_emotion_consistency_indexed_prior(shape: tuple[int, ...]) -> None:
    r, g = _pair(shape, 5)
    prior = naive.randn(K, D, generator=_gen(6))
    labels = torch.tensor([2, 0, 1, 2, 2])
    check(
        lambda a, b, t: EmotionConsistency()(a, b, t, emotion_labels=labels),
        lambda a, b, t: naive.emotion_consistency(a, b, t, labels),
        r,
        g,
        prior,
    )
    # Positional emotion_labels as in the signature forward(reference, generated, prior, labels).
    assert_close_rel(
        EmotionConsistency()(r, g, prior, labels), naive.emotion_consistency(r, g, prior, labels)
    )


def test_emotion_consistency_indexing_equals_explicit_broadcast() -> None:
    r, g = _pair((B, L, D), 7)
    prior = naive.randn(K, D, generator=_gen(8))
    labels = torch.tensor([1, 1, 0, 2, 0])
    indexed = EmotionConsistency()(r, g, prior, emotion_labels=labels)
    explicit = EmotionConsistency()(r, g, prior[labels][:, None, :])
    assert_close_rel(indexed, explicit)


def test_emotion_consistency_closed_form() -> None:
    r, _ = _pair((B, L, D), 9)
    prior = naive.randn(D, generator=_gen(10)).abs() + 0.1
    assert abs(float(EmotionConsistency()(r, 3.0 * r, prior))) < 1e-12
    assert math.isclose(float(EmotionConsistency()(r, -r, prior)), 2.0, rel_tol=1e-12)
    # The weighting matters: r and g orthogonal only after the element-wise product with T.
    r2 = torch.tensor([[1.0, 1.0]], dtype=F64)
    g2 = torch.tensor([[1.0, -4.0]], dtype=F64)
    t2 = torch.tensor([2.0, 1.0], dtype=F64)  # r*T = (2, 1), g*T = (2, -4): cos = 0
    assert math.isclose(float(EmotionConsistency()(r2, g2, t2)), 1.0, rel_tol=1e-12)


# --------------------------------------------------------------------------------------------------
# CosineContrast
# --------------------------------------------------------------------------------------------------


def test_cosine_contrast_matches_naive() -> None:
    g = _gen(11)
    x = naive.randn(8, D, generator=g)
    y = x + naive.randn(8, D, generator=g)
    z = naive.randn(8, D, generator=g)
    # Make sure both clamps are exercised: one negative cosine on each side.
    y[0] = -x[0] + 0.1 * naive.randn(D, generator=g)
    z[1] = -x[1] + 0.1 * naive.randn(D, generator=g)
    z[2] = x[2] + 0.1 * naive.randn(D, generator=g)
    check(CosineContrast(), naive.cosine_contrast, x, y, z)


def test_cosine_contrast_closed_form() -> None:
    x = torch.eye(4, 6, dtype=F64)
    assert abs(float(CosineContrast()(x, 2 * x, x.roll(1, 1)))) < 1e-12  # best case: 0
    assert math.isclose(float(CosineContrast()(x, x.roll(1, 1), 3 * x)), 2.0)  # worst case: 2
    # Negative cosines are clamped to 0 on both sides: (1 - 0) + 0.
    assert math.isclose(float(CosineContrast()(x, -x, -x)), 1.0)
    # Per triplet, then averaged: rows with cos(x, y) = 1 / 0 and cos(x, z) = 0 / 1.
    y = torch.stack([x[0], x[2]])
    z = torch.stack([x[2], x[1]])
    assert math.isclose(float(CosineContrast()(x[:2], y, z)), (1 - 0.5) + 0.5)
