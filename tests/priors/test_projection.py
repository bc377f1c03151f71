"""project_to_prior against a naive float64 loop and its two temperature limits."""

from __future__ import annotations

import math

import pytest
import torch

from decouple.priors import project_to_prior


def _naive(e: list[float], anchors: list[list[float]], tau: float) -> list[float]:
    def unit(v: list[float]) -> list[float]:
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    e = unit(e)
    a = [unit(r) for r in anchors]
    logits = [sum(x * y for x, y in zip(e, r, strict=True)) / tau for r in a]
    m = max(logits)
    w = [math.exp(v - m) for v in logits]
    w = [x / sum(w) for x in w]
    mix = [sum(w[k] * a[k][d] for k in range(len(a))) for d in range(len(e))]
    return unit(mix)


def test_against_a_naive_loop() -> None:
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 6, generator=g, dtype=torch.float64)
    a = torch.randn(4, 6, generator=g, dtype=torch.float64)
    got = project_to_prior(e, a, 0.3)
    assert got.dtype == torch.float64 and got.shape == (5, 6)
    for i in range(5):
        want = _naive(e[i].tolist(), a.tolist(), 0.3)
        assert torch.allclose(got[i], torch.tensor(want, dtype=torch.float64), atol=1e-6)


def test_temperature_limits_nearest_anchor_and_mean() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    e = a[1] + 0.3 * torch.randn(8, generator=g)
    nearest = int((torch.nn.functional.normalize(e, dim=0) @ a.T).argmax())
    assert torch.allclose(project_to_prior(e, a, 1e-4), a[nearest], atol=1e-5)
    mean = torch.nn.functional.normalize(a.mean(0), dim=0)
    assert torch.allclose(project_to_prior(e, a, 1e4), mean, atol=1e-3)


def test_batch_shape_and_errors() -> None:
    a = torch.eye(4)
    assert project_to_prior(torch.rand(2, 3, 4), a, 0.07).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="temperature"):
        project_to_prior(torch.rand(4), a, 0.0)
    with pytest.raises(ValueError, match="anchors"):
        project_to_prior(torch.rand(5), a, 0.1)
