"""Frechet distances between feature sets (the FID formula) with any embedding model.

The Frechet distance between the Gaussians fitted to two feature sets a and b (means
`mu_a`, `mu_b`, covariances `S_a`, `S_b`) is

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

(Dowson & Landau 1982; the FID of Heusel et al. 2017 is this with Inception-v3 pool features).
[frechet_distance][decouple.metrics.frechet.frechet_distance] computes it the way pytorch-fid
does, so that the numbers can be compared: float64 statistics, `np.cov` with `ddof=1`, the
matrix square root by `scipy.linalg.sqrtm`; when that root is not finite (a singular product),
`eps` is added to both diagonals and the root taken again; an imaginary part left by rounding
is dropped when the diagonal's is below 1e-3, and is an error otherwise.

[fad][decouple.metrics.frechet.fad] is the "FAD" of the SPFEM papers: a Frechet distance on
ArcFace identity embeddings of face frames, not the Frechet *Audio* Distance.

Statistics can be built from one feature matrix
([FeatureStats.from_features][decouple.metrics.frechet.FeatureStats.from_features]) or
streamed through a model batch by batch
([embedding_statistics][decouple.metrics.frechet.embedding_statistics]), which merges the
per-batch means and scatter matrices exactly (Chan et al.'s pairwise update) instead of
keeping every feature.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from decouple.encoders.iresnet import IResNet, iresnet50
from decouple.metrics._batching import check_batch_size, inference, iter_embeddings

__all__ = [
    "FeatureStats",
    "embedding_frechet_distance",
    "embedding_statistics",
    "fad",
    "frechet_distance",
]

# pytorch-fid's limit on the imaginary part of sqrtm's diagonal (absolute).
_IMAGINARY_ATOL = 1e-3


def _features_array(features: Tensor | np.ndarray, where: str, what: str) -> np.ndarray:
    if isinstance(features, Tensor):
        x = features.detach().to("cpu", torch.float64).numpy()
    elif isinstance(features, np.ndarray):
        x = features.astype(np.float64, copy=False)
    else:
        raise TypeError(f"{where}: {what} must be a (n, d) tensor or array, or FeatureStats; "
                        f"got {type(features).__name__}")  # fmt: skip
    if x.ndim != 2:
        raise ValueError(f"{where}: {what} must be (n, d) features, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(
            f"{where}: {what} needs at least 2 feature rows for a covariance, got {x.shape[0]}"
        )
    if x.shape[1] < 1:
        raise ValueError(f"{where}: {what} has no feature columns (shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: {what} holds non-finite values")
    return x


@dataclass(frozen=True, eq=False, repr=False)
class FeatureStats:
    """Mean and covariance of a feature set: what a Frechet distance compares.

    Args:
        mean: (d,) mean feature.
        cov: (d, d) covariance (unbiased, `ddof=1`).
        n: Number of samples the statistics were computed from (>= 2).

    Raises:
        ValueError: If the shapes do not fit, `n < 2`, or a value is not finite.

    Examples:
        >>> import numpy as np
        >>> stats = FeatureStats.from_features(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]]))
        >>> stats
        FeatureStats(d=2, n=3)
        >>> stats.mean.tolist(), stats.cov[0].tolist()
        ([2.0, 4.0], [4.0, 7.0])
    """

    mean: np.ndarray
    cov: np.ndarray
    n: int

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=np.float64)
        cov = np.array(self.cov, dtype=np.float64)
        if mean.ndim != 1 or mean.shape[0] < 1:
            raise ValueError(f"FeatureStats: mean must be (d,), got shape {mean.shape}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(
                f"FeatureStats: cov must be (d, d) = ({d}, {d}) for a mean of {d} features, "
                f"got shape {cov.shape}"
            )
        if isinstance(self.n, bool) or int(self.n) != self.n or self.n < 2:
            raise ValueError(f"FeatureStats: n must be an int >= 2, got {self.n!r}")
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            raise ValueError("FeatureStats: mean and cov must be finite")
        mean.setflags(write=False)
        cov.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "n", int(self.n))

    def __repr__(self) -> str:
        return f"FeatureStats(d={self.dim}, n={self.n})"

    @property
    def dim(self) -> int:
        """The feature size d."""
        return int(self.mean.shape[0])

    @classmethod
    def from_features(cls, features: Tensor | np.ndarray) -> FeatureStats:
        """Statistics of a feature matrix: mean and `np.cov(rowvar=False)` (ddof=1), float64.

        Args:
            features: (n, d) features, n >= 2.

        Returns:
            The statistics.

        Raises:
            ValueError: If `features` is not (n, d) with n >= 2, or holds non-finite values.

        Examples:
            >>> import torch
            >>> FeatureStats.from_features(torch.randn(100, 8)).cov.shape
            (8, 8)
        """
        x = _features_array(features, "FeatureStats.from_features", "features")
        return cls(mean=x.mean(axis=0), cov=np.cov(x, rowvar=False), n=x.shape[0])


def _as_stats(x: Tensor | np.ndarray | FeatureStats, where: str, what: str) -> FeatureStats:
    if isinstance(x, FeatureStats):
        return x
    return FeatureStats.from_features(_features_array(x, where, what))


def frechet_distance(
    a: Tensor | np.ndarray | FeatureStats,
    b: Tensor | np.ndarray | FeatureStats,
    *,
    eps: float = 1e-6,
) -> float:
    """Frechet distance between two feature sets (the FID formula).

    `||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b))`, computed as pytorch-fid does:
    `scipy.linalg.sqrtm(S_a @ S_b)` in float64; if the root is not finite,
    a `RuntimeWarning` is issued and `eps * I` is added to both covariances before taking it
    again; an imaginary part from rounding is dropped when every diagonal entry's is at most
    1e-3 (absolute), else the product has no usable real root and a ValueError is raised.

    With fewer samples than features (n <= d) both covariances are singular: the square root
    of the product's near-zero eigenvalues leaves a rounding error of up to about 1e-7 of
    `Tr(S_a) + Tr(S_b)` (measured: identical sets of 16 samples of 512-d features gave
    -1.3e-4), and the distance is strongly biased upward for small n. Use n well above d.

    Args:
        a: (n_a, d) features, or their `FeatureStats`.
        b: (n_b, d) features, or their `FeatureStats`.
        eps: Diagonal offset used only when the square root is not finite.

    Returns:
        The distance (a squared distance, >= 0 up to rounding: identical sets can give a
        tiny negative number such as -1e-12).

    Raises:
        ValueError: If the feature sizes differ, a set has fewer than 2 rows or non-finite
            values, `eps < 0`, or the square root has a large imaginary part or stays not
            finite after the offset.

    Examples:
        >>> import numpy as np
        >>> a = FeatureStats(mean=np.zeros(2), cov=np.eye(2), n=10)
        >>> b = FeatureStats(mean=np.array([3.0, 4.0]), cov=4 * np.eye(2), n=10)
        >>> round(frechet_distance(a, b), 9)  # 25 + 2 * (1 + 4 - 2 * 2)
        27.0
    """
    if not (eps >= 0 and np.isfinite(eps)):
        raise ValueError(f"frechet_distance: eps must be a finite number >= 0, got {eps!r}")
    sa = _as_stats(a, "frechet_distance", "a")
    sb = _as_stats(b, "frechet_distance", "b")
    if sa.dim != sb.dim:
        raise ValueError(
            f"frechet_distance: a and b must have the same feature size, got {sa.dim} and "
            f"{sb.dim}"
        )
    diff = sa.mean - sb.mean
    covmean = scipy.linalg.sqrtm(sa.cov @ sb.cov)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"frechet_distance: the covariance product is singular (its square root is not "
            f"finite); adding eps = {eps:g} to both diagonals",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = eps * np.eye(sa.dim)
        covmean = scipy.linalg.sqrtm((sa.cov + offset) @ (sb.cov + offset))
        if not np.isfinite(covmean).all():
            raise ValueError(
                f"frechet_distance: the square root of the covariance product is not finite "
                f"even with eps = {eps:g} on the diagonals"
            )
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > _IMAGINARY_ATOL:
            raise ValueError(
                f"frechet_distance: the square root of the covariance product has an "
                f"imaginary part of {imag:.3g} on its diagonal (more than rounding, limit "
                f"{_IMAGINARY_ATOL:g}); the covariances are not valid (positive semi-definite)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sa.cov) + np.trace(sb.cov) - 2.0 * np.trace(covmean))


class _StatsAccumulator:
    """Mean and scatter of feature rows, merged batch by batch (Chan, Golub & LeVeque 1979)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.scatter: np.ndarray | None = None  # sum of outer products of centred rows

    def add(self, rows: np.ndarray) -> None:
        m = rows.shape[0]
        if m == 0:
            return
        mean_b = rows.mean(axis=0)
        centred = rows - mean_b
        scatter_b = centred.T @ centred
        if self.mean is None or self.scatter is None:
            self.n, self.mean, self.scatter = m, mean_b, scatter_b
            return
        n = self.n + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / n)
        self.scatter = self.scatter + scatter_b + np.outer(delta, delta) * (self.n * m / n)
        self.n = n

    def stats(self, where: str, what: str) -> FeatureStats:
        if self.n < 2 or self.mean is None or self.scatter is None:
            raise ValueError(f"{where}: {what} needs at least 2 frames for a covariance, got "
                             f"{self.n}")  # fmt: skip
        return FeatureStats(mean=self.mean, cov=self.scatter / (self.n - 1), n=self.n)


def _statistics(
    frames: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    batch_size: int,
    where: str,
    what: str,
) -> FeatureStats:
    acc = _StatsAccumulator()
    with inference(embed):
        for rows in iter_embeddings(frames, embed, batch_size=batch_size, where=where,
                                    what=what):  # fmt: skip
            acc.add(rows.numpy())
    return acc.stats(where, what)


def embedding_statistics(
    frames: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 64,
) -> FeatureStats:
    """Feature statistics of frames under an embedding model, streamed batch by batch.

    The model runs under `torch.no_grad()`, in eval mode (restored afterwards), on its own
    device; features are accumulated in float64 on the CPU by merging each batch's mean and
    scatter matrix, which gives `FeatureStats.from_features` of all features (to rounding)
    without holding them.

    Args:
        frames: One (n, 3, h, w) tensor, or an iterable of (b, 3, h, w) batches (a
            generator reading a corpus, say); RGB, uint8 0..255 or float in [0, 1].
        embed: Any callable `(b, 3, h, w) -> (b, d)` (an `nn.Module` or a function).
        batch_size: Largest number of frames per call of `embed`.

    Returns:
        The statistics (n = number of frames).

    Raises:
        ValueError: If there are fewer than 2 frames, or `embed` does not return one finite
            (d,) row per frame.
        decouple.encoders.ImageSpecError: If frames break the frame convention.

    Examples:
        >>> import torch
        >>> frames = torch.rand(10, 3, 8, 8)
        >>> stats = embedding_statistics(frames, lambda x: x.mean((2, 3)), batch_size=4)
        >>> stats, bool(abs(stats.mean - frames.mean((0, 2, 3)).numpy()).max() < 1e-6)
        (FeatureStats(d=3, n=10), True)
    """
    check_batch_size(batch_size, "embedding_statistics")
    return _statistics(frames, embed, batch_size, "embedding_statistics", "frames")


def embedding_frechet_distance(
    real: Tensor | Iterable[Tensor],
    generated: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 64,
) -> float:
    """Frechet distance between the embeddings of real and generated frames.

    `frechet_distance(embedding_statistics(real, embed), embedding_statistics(generated,
    embed))`: FID with Inception-v3 pool features as `embed`, "FAD" with ArcFace (see `fad`).
    The two sets need not have the same size or be paired.

    Args:
        real: (n, 3, h, w) frames or an iterable of batches; RGB, uint8 or float in [0, 1].
        generated: The same for the generated frames.
        embed: Any callable `(b, 3, h, w) -> (b, d)`.
        batch_size: Largest number of frames per call of `embed`.

    Returns:
        The distance.

    Raises:
        ValueError: As `embedding_statistics` and `frechet_distance`.

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> real = torch.rand(50, 3, 4, 4, generator=g)
        >>> pooled = lambda x: x.mean((2, 3))
        >>> abs(embedding_frechet_distance(real, real, pooled)) < 1e-9
        True
        >>> embedding_frechet_distance(real, real.flip(0) * 0.5, pooled) > 0.1
        True
    """
    check_batch_size(batch_size, "embedding_frechet_distance")
    where = "embedding_frechet_distance"
    stats_real = _statistics(real, embed, batch_size, where, "real")
    stats_gen = _statistics(generated, embed, batch_size, where, "generated")
    if stats_real.dim != stats_gen.dim:  # embed changed its output size between the sets
        raise ValueError(f"{where}: embed gave {stats_real.dim} features for real and "
                         f"{stats_gen.dim} for generated frames")  # fmt: skip
    return frechet_distance(stats_real, stats_gen)


def fad(
    real: Tensor | Iterable[Tensor],
    generated: Tensor | Iterable[Tensor],
    arcface: IResNet | str | os.PathLike,
    *,
    batch_size: int = 64,
) -> float:
    """The "FAD" of the SPFEM papers: Frechet distance of ArcFace identity embeddings.

    The embeddings are the full IResNet's 512-d output (`stop_at="embedding"`, the
    BatchNorm1d `features` layer), *not* L2-normalised, on frames resized to 112 x 112 RGB and
    normalised to [-1, 1] by the network's `ImageSpec`. The frames should be face crops
    (aligned as for ArcFace when comparing with numbers of other tools).

    Args:
        real: (n, 3, h, w) real frames or an iterable of batches; RGB, uint8 or float [0, 1].
        generated: The same for the generated frames.
        arcface: An `IResNet` built with `stop_at="embedding"` (on the device to run on), or
            a local insightface weight file for IResNet-50 (e.g.
            `ms1mv3_arcface_r50_fp16/backbone.pth`), loaded with
            `iresnet50(weights=path, stop_at="embedding")` on the CPU.
        batch_size: Largest number of frames per network call.

    Returns:
        The distance.

    Raises:
        ValueError: If `arcface` is an IResNet cut before the embedding, or as
            `embedding_frechet_distance`.
        TypeError: If `arcface` is neither an IResNet nor a path.
        FileNotFoundError: If the weight file does not exist.

    Examples:
        >>> import torch
        >>> from decouple.encoders import IResNet
        >>> net = IResNet((1, 1, 1, 1), stop_at="embedding", num_features=4)  # tiny, random
        >>> real = torch.randint(0, 256, (6, 3, 112, 112), dtype=torch.uint8)
        >>> fad(real, real.flip(-1), net) > 0
        True
    """
    check_batch_size(batch_size, "fad")
    if isinstance(arcface, (str, os.PathLike)):
        net = iresnet50(weights=arcface, stop_at="embedding")
    elif isinstance(arcface, IResNet):
        if arcface.stop_at != "embedding":
            raise ValueError(
                f"fad: arcface must be the full IResNet (stop_at='embedding'), got one that "
                f"stops at {arcface.stop_at!r}: build it with iresnet50(weights=..., "
                f"stop_at='embedding')"
            )
        net = arcface
    else:
        raise TypeError(f"fad: arcface must be an IResNet or a path to insightface weights, "
                        f"got {type(arcface).__name__}")  # fmt: skip
    stats_real = _statistics(real, net, batch_size, "fad", "real")
    stats_gen = _statistics(generated, net, batch_size, "fad", "generated")
    return frechet_distance(stats_real, stats_gen)
