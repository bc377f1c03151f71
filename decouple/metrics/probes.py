"""Decoupling probes: how much of a factor a linear classifier can read from an embedding.

A representation is *decoupled* from a factor when a linear probe cannot predict that factor
from it better than chance on people it has not seen, and *carries* a factor when it can. So a
content embedding should give a high content probe and an emotion probe near chance; an emotion
embedding the reverse.

[linear_probe][decouple.metrics.probes.linear_probe] splits the samples **by group** (speaker):
the probe is trained on some speakers and tested on the held-out speakers, so identity cannot
stand in for the factor. It reports the accuracy together with the chance level (the
majority-class rate of the test labels), which is what the accuracy must be compared with.

The classifier ([LinearProbe][decouple.metrics.probes.LinearProbe]) is a multinomial logistic
regression fitted on the CPU in float64 with full-batch L-BFGS for a fixed number of iterations on
features standardised with the training statistics: deterministic, no scikit-learn needed. It
minimises

    mean_i CE(W z_i + b, y_i) + (weight_decay / 2) * ||W||^2      (b not penalised),

which is scikit-learn's `LogisticRegression(C=1 / (weight_decay * n_train))` objective.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LinearProbe", "ProbeResult", "group_split", "linear_probe"]


def _values(x: Any, name: str) -> list[Hashable]:
    if isinstance(x, Tensor):
        return x.detach().cpu().flatten().tolist()
    if isinstance(x, np.ndarray):
        return x.flatten().tolist()
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(x).__name__}")
    return list(x)


def _sorted_unique(values: Sequence[Hashable]) -> list[Hashable]:
    unique = list(dict.fromkeys(values))
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:  # mixed types: a stable order that does not depend on the input order
        return sorted(unique, key=repr)


class LinearProbe:
    """Multinomial logistic regression, standardised features, deterministic L-BFGS (float64).

    Args:
        weight_decay: L2 penalty on the weights (not the biases), per the mean loss.
        max_iter: L-BFGS iterations (fixed; the fit stops earlier only at convergence).
        tolerance: Gradient and change tolerance of L-BFGS.

    Attributes:
        weight: (K, d) weights on standardised features (after `fit`).
        bias: (K,) biases.
        mean: (d,) training feature means.
        std: (d,) training feature stds (1 for constant features).

    Examples:
        >>> import torch
        >>> x = torch.cat([torch.randn(20, 3) - 3, torch.randn(20, 3) + 3])
        >>> y = torch.tensor([0] * 20 + [1] * 20)
        >>> probe = LinearProbe().fit(x, y)
        >>> float((probe.predict(x) == y).float().mean())
        1.0
    """

    def __init__(
        self, *, weight_decay: float = 1e-3, max_iter: int = 200, tolerance: float = 1e-10
    ) -> None:
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.weight_decay = float(weight_decay)
        self.max_iter = int(max_iter)
        self.tolerance = float(tolerance)
        self.weight: Tensor | None = None
        self.bias: Tensor | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    @staticmethod
    def _as_features(x: Tensor | np.ndarray, name: str = "embeddings") -> Tensor:
        t = torch.as_tensor(x).detach().to("cpu", torch.float64)
        if t.dim() != 2:
            raise ValueError(f"{name} must be (n, d), got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds non-finite values")
        return t

    def fit(
        self, x: Tensor | np.ndarray, y: Tensor | np.ndarray, num_classes: int | None = None
    ) -> LinearProbe:
        """Fit on features x (n, d) and class indices y (n,) in [0, K).

        Args:
            x: (n, d) features.
            y: (n,) integer class indices.
            num_classes: K; default `max(y) + 1`.

        Returns:
            self.
        """
        x = self._as_features(x)
        y = torch.as_tensor(y).detach().to("cpu").long().flatten()
        if y.shape[0] != x.shape[0] or x.shape[0] == 0:
            raise ValueError(f"need as many labels as rows (> 0): {y.shape[0]} vs {x.shape[0]}")
        k = int(num_classes) if num_classes is not None else int(y.max()) + 1
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"class indices must lie in [0, {k}), got [{int(y.min())}, "
                             f"{int(y.max())}]")  # fmt: skip
        self.mean = x.mean(0)
        std = x.std(0, unbiased=False)
        self.std = torch.where(std > 1e-12, std, torch.ones_like(std))
        xs = (x - self.mean) / self.std
        w = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w, b], lr=1.0, max_iter=self.max_iter, tolerance_grad=self.tolerance,
            tolerance_change=self.tolerance, history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip
        wd = self.weight_decay

        def closure() -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(xs @ w.t() + b, y) + 0.5 * wd * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weight, self.bias = w.detach(), b.detach()
        return self

    def logits(self, x: Tensor | np.ndarray) -> Tensor:
        """Class scores (n, K) of features x (n, d).

        Args:
            x: (n, d) features.

        Returns:
            (n, K) float64 logits.
        """
        if self.weight is None or self.bias is None or self.mean is None or self.std is None:
            raise RuntimeError("LinearProbe: call fit() first")
        xs = (self._as_features(x) - self.mean) / self.std
        return xs @ self.weight.t() + self.bias

    def predict(self, x: Tensor | np.ndarray) -> Tensor:
        """Predicted class indices (n,) of features x (n, d).

        Args:
            x: (n, d) features.

        Returns:
            (n,) int64.
        """
        return self.logits(x).argmax(dim=1)


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of a group-wise linear probe.

    Attributes:
        accuracy: Test accuracy on the held-out groups.
        chance: Majority-class rate of the test labels (what always guessing the most frequent
            test class would score).
        n_train: Training samples.
        n_test: Test samples.
        train_accuracy: Accuracy on the training samples.
        classes: Label values, in class-index order (those seen in training).
        test_groups: The held-out groups.

    Examples:
        >>> r = ProbeResult(0.75, 0.25, 40, 20, 0.9, (0, 1, 2, 3), ("s5",))
        >>> round(r.above_chance, 2), str(r)
        (0.5, 'accuracy 0.750 (chance 0.250), 40 train / 20 test samples, 1 held-out groups')
    """

    accuracy: float
    chance: float
    n_train: int
    n_test: int
    train_accuracy: float
    classes: tuple[Hashable, ...]
    test_groups: tuple[Hashable, ...]

    @property
    def above_chance(self) -> float:
        """accuracy - chance."""
        return self.accuracy - self.chance

    def __str__(self) -> str:
        return (
            f"accuracy {self.accuracy:.3f} (chance {self.chance:.3f}), {self.n_train} train / "
            f"{self.n_test} test samples, {len(self.test_groups)} held-out groups"
        )


def group_split(
    groups: Tensor | np.ndarray | Sequence[Hashable],
    test_groups: Sequence[Hashable] | None = None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[Tensor, tuple[Hashable, ...]]:
    """Split samples by group: every sample of a held-out group is a test sample.

    Args:
        groups: (n,) the group (speaker) of each sample: ints or strings.
        test_groups: The held-out groups; default: `max(1, round(test_fraction * G))` of the
            G groups, drawn from the sorted groups with a generator seeded by `seed`.
        test_fraction: Fraction of groups held out when `test_groups` is None.
        seed: Seed of that draw.

    Returns:
        `test` (n,) bool mask and the held-out groups (sorted).

    Raises:
        ValueError: With fewer than 2 groups, when a given test group does not occur, or when
            no group is left for training.

    Examples:
        >>> mask, held_out = group_split(["a", "a", "b", "c", "c"], test_groups=["c"])
        >>> mask.tolist(), held_out
        ([False, False, False, True, True], ('c',))
    """
    values = _values(groups, "groups")
    unique = _sorted_unique(values)
    if len(unique) < 2:
        raise ValueError(f"a group-wise split needs >= 2 groups, got {len(unique)}: {unique}")
    if test_groups is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
        order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed))
        held = [unique[i] for i in order[:n_test].tolist()]
    else:
        held = list(dict.fromkeys(_values(test_groups, "test_groups")))
        absent = [g for g in held if g not in set(unique)]
        if absent:
            raise ValueError(f"test_groups {absent} do not occur in groups {unique}")
        if len(held) >= len(unique):
            raise ValueError("test_groups hold every group: none is left for training")
    held_set = set(held)
    mask = torch.tensor([v in held_set for v in values], dtype=torch.bool)
    return mask, tuple(_sorted_unique(held))


def linear_probe(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray | Sequence[Hashable],
    groups: Tensor | np.ndarray | Sequence[Hashable],
    *,
    test_groups: Sequence[Hashable] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> ProbeResult:
    """Linear-probe accuracy of a factor from an embedding, on held-out groups (speakers).

    Args:
        embeddings: (n, d) embeddings.
        labels: (n,) the factor to predict (ints or strings: emotion, content id, ...).
        groups: (n,) the group of each sample (speaker); train and test share no group.
        test_groups: Held-out groups (default: drawn, see `group_split`).
        test_fraction: Fraction of groups held out when drawn.
        seed: Seed of the draw.
        weight_decay: L2 penalty of the probe (see `LinearProbe`).
        max_iter: L-BFGS iterations.

    Returns:
        A `ProbeResult`; test labels never seen in training count as errors.

    Raises:
        ValueError: On length mismatches, non-finite embeddings, or an impossible split.

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> emotion = torch.arange(4).repeat(60)  # 240 samples, 4 emotions
        >>> speaker = torch.arange(6).repeat_interleave(40)  # 6 speakers
        >>> z = torch.randn(240, 8, generator=g) + 6.0 * torch.eye(8)[emotion]
        >>> r = linear_probe(z, emotion, speaker, test_groups=[4, 5])
        >>> r.accuracy, r.chance, r.n_train, r.n_test
        (1.0, 0.25, 160, 80)
        >>> noise = torch.randn(240, 8, generator=g)  # knows nothing of the emotion
        >>> r = linear_probe(noise, emotion, speaker, test_groups=[4, 5])
        >>> abs(r.accuracy - r.chance) < 0.15
        True
    """
    x = LinearProbe._as_features(embeddings)
    label_values = _values(labels, "labels")
    group_values = _values(groups, "groups")
    if not (len(label_values) == len(group_values) == x.shape[0]):
        raise ValueError(
            f"embeddings, labels and groups must have the same length, got {x.shape[0]}, "
            f"{len(label_values)} and {len(group_values)}"
        )
    test, held = group_split(group_values, test_groups, test_fraction=test_fraction, seed=seed)
    train = ~test
    train_labels = [v for v, t in zip(label_values, train.tolist(), strict=True) if t]
    test_labels = [v for v, t in zip(label_values, test.tolist(), strict=True) if t]
    classes = _sorted_unique(train_labels)
    index = {c: i for i, c in enumerate(classes)}
    y_train = torch.tensor([index[v] for v in train_labels])
    y_test = torch.tensor([index.get(v, -1) for v in test_labels])  # unseen class: never right
    if len(classes) < 2:
        raise ValueError(f"the training groups hold a single label value {classes}: nothing "
                         "to probe")  # fmt: skip
    probe = LinearProbe(weight_decay=weight_decay, max_iter=max_iter)
    probe.fit(x[train], y_train, num_classes=len(classes))
    accuracy = float((probe.predict(x[test]) == y_test).double().mean())
    train_accuracy = float((probe.predict(x[train]) == y_train).double().mean())
    counts: dict[Hashable, int] = {}
    for v in test_labels:
        counts[v] = counts.get(v, 0) + 1
    chance = max(counts.values()) / len(test_labels)
    return ProbeResult(
        accuracy=accuracy,
        chance=chance,
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        train_accuracy=train_accuracy,
        classes=tuple(classes),
        test_groups=held,
    )
