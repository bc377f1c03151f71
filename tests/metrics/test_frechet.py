"""Frechet distances: known answers (identical sets, Gaussian closed forms), an independent
float64 eigen-decomposition reference for full covariances, pytorch-fid's singular and
imaginary handling, streaming, the embedding path and FAD's network checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from decouple.encoders.iresnet import IResNet
from decouple.metrics import frechet
from decouple.metrics.frechet import (
    FeatureStats,
    embedding_frechet_distance,
    embedding_statistics,
    fad,
    frechet_distance,
)


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """No metric may leave gradients disabled (e.g. a no_grad held across a generator's yield)."""
    yield
    assert torch.is_grad_enabled(), "the test left torch.is_grad_enabled() False"


def psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigh (float64)."""
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def reference_fd(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Tr sqrtm(S1 S2) = sum of sqrt(eig(S1^1/2 S2 S1^1/2)), a symmetric PSD matrix: no sqrtm."""
    r = psd_sqrt(s1)
    lam = np.linalg.eigvalsh(r @ s2 @ r)
    tr = np.sqrt(np.clip(lam, 0.0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr)


def random_spd(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d)) * scale
    return a @ a.T + 0.1 * np.eye(d)


# ------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("kind", ["tensor", "array", "stats"])
def test_identical_sets_give_zero(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64)
    x = torch.randn(500, 16, generator=g, dtype=torch.float64) @ mix
    a = {"tensor": x, "array": x.numpy(), "stats": FeatureStats.from_features(x)}[kind]
    assert abs(frechet_distance(a, a)) < 1e-6


def test_diagonal_gaussians_closed_form_exact_stats() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -1.0, 0.5]), np.array([0.5, 1.0, 0.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([2.0, 1.0, 0.5, 3.0])
    closed = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2.0 * np.sqrt(s1 * s2)).sum())
    a = FeatureStats(mean=mu1, cov=np.diag(s1), n=100)
    b = FeatureStats(mean=mu2, cov=np.diag(s2), n=100)
    assert frechet_distance(a, b) == pytest.approx(closed, rel=1e-12, abs=1e-12)
    assert frechet_distance(b, a) == pytest.approx(closed, rel=1e-12, abs=1e-12)


def test_diagonal_gaussians_from_samples() -> None:
    # 20,000 samples a set: over 20 seeds the estimate deviated by at most 0.055 (std 0.025)
    # from the closed form 2.1005; seed 0 deviates by -0.022.
    mu1, mu2 = np.array([0.0, 1.0, -1.0, 0.5]), np.array([0.5, 1.0, 0.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([2.0, 1.0, 0.5, 3.0])
    closed = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2.0 * np.sqrt(s1 * s2)).sum())
    rng = np.random.default_rng(0)
    a = mu1 + rng.normal(size=(20000, 4)) * np.sqrt(s1)
    b = mu2 + rng.normal(size=(20000, 4)) * np.sqrt(s2)
    assert frechet_distance(a, b) == pytest.approx(closed, abs=0.1)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(closed, abs=0.1)


def test_commuting_full_covariances() -> None:
    rng = np.random.default_rng(2)
    d = 12
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    l1, l2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    s1, s2 = (q * l1) @ q.T, (q * l2) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    closed = float(((mu1 - mu2) ** 2).sum() + (l1 + l2 - 2.0 * np.sqrt(l1 * l2)).sum())
    got = frechet_distance(FeatureStats(mu1, s1, 50), FeatureStats(mu2, s2, 50))
    assert got == pytest.approx(closed, rel=1e-10)
    assert reference_fd(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_non_commuting_full_covariances_against_eigen_reference(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    d = 24
    s1, s2 = random_spd(d, rng), random_spd(d, rng, scale=0.5)
    assert np.abs(s1 @ s2 - s2 @ s1).max() > 1.0  # really non-commuting
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref = reference_fd(mu1, s1, mu2, s2)
    got = frechet_distance(FeatureStats(mu1, s1, 50), FeatureStats(mu2, s2, 50))
    assert got == pytest.approx(ref, rel=1e-9)
    assert got > 0


def test_features_match_their_stats() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) * 2 + 1
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    np.testing.assert_allclose(sa.mean, a.mean(0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(sa.cov, np.cov(a, rowvar=False), rtol=0, atol=1e-14)
    assert sa.n == 300 and sa.dim == 8
    ref = reference_fd(sa.mean, sa.cov, sb.mean, sb.cov)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(sa, b) == frechet_distance(a, sb) == frechet_distance(a, b)


# ----------------------------------------------------------- pytorch-fid's special cases


def test_singular_product_adds_eps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-finite root: warn, add eps to both diagonals, take the root again."""
    real_sqrtm = scipy.linalg.sqrtm
    calls: list[np.ndarray] = []

    def fake(m: np.ndarray) -> np.ndarray:
        calls.append(m)
        if len(calls) == 1:
            return np.full_like(m, np.nan)
        return real_sqrtm(m)

    monkeypatch.setattr(scipy.linalg, "sqrtm", fake)
    mu = np.zeros(3)
    s1, s2 = np.diag([1.0, 0.0, 2.0]), np.diag([0.0, 3.0, 2.0])
    eps = 1e-2
    with pytest.warns(RuntimeWarning, match="singular"):
        got = frechet_distance(FeatureStats(mu, s1, 5), FeatureStats(mu, s2, 5), eps=eps)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + eps * np.eye(3)) @ (s2 + eps * np.eye(3)))
    d1, d2 = np.diag(s1) + eps, np.diag(s2) + eps
    expected = np.trace(s1) + np.trace(s2) - 2.0 * np.sqrt(d1 * d2).sum()
    assert got == pytest.approx(expected, rel=1e-12)


def test_no_warning_when_root_is_finite() -> None:
    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(rng.normal(size=(100, 5)), rng.normal(size=(100, 5)))


def test_still_not_finite_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda m: np.full_like(m, np.inf))
    eye = FeatureStats(np.zeros(2), np.eye(2), 3)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="not finite even"):
        frechet_distance(eye, eye)


def test_large_imaginary_part_raises() -> None:
    # diag(1, -1) is no covariance: the root of the product has an imaginary diagonal of 1.
    a = FeatureStats(np.zeros(2), np.eye(2), 3)
    b = FeatureStats(np.zeros(2), np.diag([1.0, -1.0]), 3)
    with pytest.raises(ValueError, match="imaginary part of 1 "):
        frechet_distance(a, b)


def test_small_imaginary_part_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sqrtm = scipy.linalg.sqrtm
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda m: real_sqrtm(m) + 1e-5j)
    a = FeatureStats(np.zeros(2), np.eye(2), 3)
    b = FeatureStats(np.ones(2), 4 * np.eye(2), 3)
    assert frechet_distance(a, b) == pytest.approx(2.0 + 2.0 * (1 + 4 - 4), rel=1e-12)


# ------------------------------------------------------------------------------- errors


def test_errors_name_the_argument() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"same feature size, got 3 and 4"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"frechet_distance: b needs at least 2 feature rows"):
        frechet_distance(rng.random((5, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"a must be \(n, d\) features, got shape \(5,\)"):
        frechet_distance(np.zeros(5), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"a holds non-finite"):
        frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(TypeError, match=r"a must be a \(n, d\) tensor or array"):
        frechet_distance([[1.0, 2.0]], np.zeros((5, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps must be"):
        frechet_distance(rng.random((5, 3)), rng.random((5, 3)), eps=-1.0)


def test_feature_stats_validation() -> None:
    with pytest.raises(ValueError, match=r"cov must be \(d, d\) = \(3, 3\)"):
        FeatureStats(np.zeros(3), np.eye(2), 10)
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        FeatureStats(np.zeros(2), np.eye(2), 1)
    with pytest.raises(ValueError, match=r"mean must be \(d,\)"):
        FeatureStats(np.zeros((2, 2)), np.eye(2), 3)
    with pytest.raises(ValueError, match="finite"):
        FeatureStats(np.array([np.nan, 0.0]), np.eye(2), 3)
    s = FeatureStats(np.zeros(2), np.eye(2), 3)
    assert s.mean.dtype == np.float64 and not s.mean.flags.writeable
    with pytest.raises(AttributeError):
        s.n = 4  # type: ignore[misc]


# ------------------------------------------------------------------- streaming and models


def pooled(x: torch.Tensor) -> torch.Tensor:
    """A parameter-free embedding: per-channel mean and std of the frame (6 features)."""
    x = x.double() / 255.0 if x.dtype == torch.uint8 else x.double()
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)


def test_streamed_batches_equal_one_tensor() -> None:
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8, generator=g)
    reference = FeatureStats.from_features(pooled(frames))
    one = embedding_statistics(frames, pooled, batch_size=5)
    streamed = embedding_statistics(
        (frames[i:j] for i, j in [(0, 1), (1, 12), (12, 13), (13, 30), (30, 37)]), pooled,
        batch_size=8,
    )
    for stats in (one, streamed):
        assert stats.n == 37
        np.testing.assert_allclose(stats.mean, reference.mean, rtol=0, atol=1e-13)
        np.testing.assert_allclose(stats.cov, reference.cov, rtol=0, atol=1e-13)
    # the merge is stable for features far from the origin (no sum-of-squares cancellation)
    shifted = embedding_statistics(frames, lambda x: pooled(x) + 1e6, batch_size=4)
    np.testing.assert_allclose(shifted.cov, reference.cov, rtol=0, atol=1e-8)


def test_embedding_frechet_distance_equals_fd_of_features() -> None:
    g = torch.Generator().manual_seed(6)
    real = torch.rand(60, 3, 8, 8, generator=g)
    gen = (torch.rand(45, 3, 8, 8, generator=g) * 0.7).clamp(0, 1)
    got = embedding_frechet_distance(real, [gen[:20], gen[20:]], pooled, batch_size=16)
    assert got == pytest.approx(frechet_distance(pooled(real), pooled(gen)), rel=1e-10)
    assert abs(embedding_frechet_distance(real, real, pooled)) < 1e-9


class _Embed(nn.Module):
    """BatchNorm in training mode would make features depend on the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.proj(x.float().mean((2, 3))))


def test_model_runs_in_eval_mode_and_mode_is_restored() -> None:
    net = _Embed().train()
    net.proj.eval()  # a submodule's own mode must survive too
    frames = torch.rand(20, 3, 4, 4)
    a = embedding_statistics(frames, net, batch_size=3)
    b = embedding_statistics(frames, net, batch_size=20)
    # float32 matmuls of batches of 3 and of 20 round differently (measured up to 3e-6
    # relative under load); in train mode BatchNorm would normalise by the batch's own
    # statistics and move the covariance by O(1)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-4, atol=1e-9)
    assert net.training and net.bn.training and not net.proj.training
    assert net.proj.weight.grad is None


def test_embed_output_checked() -> None:
    frames = torch.rand(4, 3, 4, 4)
    with pytest.raises(ValueError, match=r"embed returned shape \(4, 3, 4\) for a batch of 4"):
        embedding_statistics(frames, lambda x: x[:, :, 0])
    with pytest.raises(ValueError, match=r"non-finite features for frames 0\.\.3"):
        embedding_statistics(frames, lambda x: x.mean((2, 3)) / 0.0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        embedding_statistics(frames[:1], pooled)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        embedding_statistics(frames, pooled, batch_size=0)


def test_frames_checked() -> None:
    with pytest.raises(ValueError, match="channels-last"):
        embedding_statistics(torch.rand(4, 8, 8, 3), pooled)
    with pytest.raises(ValueError, match=r"generated batch 1.*\[0, 1\]"):
        embedding_frechet_distance(torch.rand(4, 3, 4, 4), [torch.rand(2, 3, 4, 4),
                                                            torch.rand(2, 3, 4, 4) * 255],
                                   pooled)  # fmt: skip
    with pytest.raises(TypeError, match="frames must be a"):
        embedding_statistics(3, pooled)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- FAD


def tiny_arcface() -> IResNet:
    return IResNet((1, 1, 1, 1), stop_at="embedding", num_features=4).eval()


def test_fad_is_fd_of_unnormalised_arcface_embeddings() -> None:
    net = tiny_arcface()
    outputs: list[torch.Tensor] = []
    net.register_forward_hook(lambda module, args, out: outputs.append(out.detach().clone()))
    g = torch.Generator().manual_seed(7)
    real = torch.randint(0, 256, (8, 3, 112, 112), dtype=torch.uint8, generator=g)
    gen = torch.randint(0, 128, (6, 3, 96, 96), dtype=torch.uint8, generator=g)
    got = fad(real, gen, net, batch_size=5)
    assert [len(o) for o in outputs] == [5, 3, 5, 1]  # real in 2 calls, then generated
    z_real, z_gen = torch.cat(outputs[:2]), torch.cat(outputs[2:])
    assert not torch.allclose(z_real.norm(dim=1), torch.ones(8))  # raw, not L2-normalised
    assert got == pytest.approx(frechet_distance(z_real, z_gen), rel=1e-9)
    assert got > 0 and not net.training


def test_fad_rejects_truncated_network() -> None:
    with pytest.raises(ValueError, match=r"stop_at='embedding'.*stops at 'layer3'"):
        fad(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), IResNet((1, 1, 1, 1)))
    with pytest.raises(TypeError, match="arcface must be an IResNet or a path"):
        fad(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), nn.Identity())  # type: ignore[arg-type]


class _Pooled(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled(x)


def test_fad_loads_a_path_as_full_iresnet50(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    seen: dict[str, object] = {}

    def fake_iresnet50(weights: object = None, *, stop_at: str = "layer3") -> nn.Module:
        seen.update(weights=weights, stop_at=stop_at)
        return _Pooled()  # a cheap stand-in for the loaded network

    monkeypatch.setattr(frechet, "iresnet50", fake_iresnet50)
    g = torch.Generator().manual_seed(8)
    real, gen = torch.rand(20, 3, 8, 8, generator=g), torch.rand(15, 3, 8, 8, generator=g) * 0.5
    path = tmp_path / "backbone.pth"
    assert fad(real, gen, path) == embedding_frechet_distance(real, gen, pooled)
    assert seen == {"weights": path, "stop_at": "embedding"}
    fad(real, gen, str(path))
    assert seen["weights"] == str(path)


def test_fad_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_backbone\.pth"):
        fad(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), "/nonexistent/no_such_backbone.pth")
