"""Decoupling probes: known answers (separable -> 1, independent -> chance), chance = majority
rate, group-wise splits, and agreement with scikit-learn's LogisticRegression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decouple.metrics import LinearProbe, ProbeResult, group_split, linear_probe

SPEAKERS = [f"spk{i}" for i in range(8)]


def synthetic(n_per: int = 60, k: int = 4, d: int = 16, sep: float = 8.0, seed: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:  # fmt: skip
    """8 speakers, labels cycling over k classes, class means `sep` apart plus a per-speaker
    offset (identity) in other directions."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat(n_per * len(SPEAKERS) // k)
    speaker = torch.arange(len(SPEAKERS)).repeat_interleave(n_per)
    means = torch.randn(k, d, generator=g)
    means = sep * means / means.norm(dim=1, keepdim=True)
    identity = 3.0 * torch.randn(len(SPEAKERS), d, generator=g)
    z = torch.randn(len(labels), d, generator=g) + means[labels] + identity[speaker]
    return z, labels, [SPEAKERS[i] for i in speaker.tolist()]


def test_linearly_separable_gives_one() -> None:
    z, labels, speakers = synthetic(sep=30.0)
    r = linear_probe(z, labels, speakers)
    assert isinstance(r, ProbeResult)
    assert r.accuracy == 1.0 and r.train_accuracy == 1.0
    assert r.chance == pytest.approx(0.25)
    assert r.n_train + r.n_test == len(labels) and r.n_test == 2 * 60  # 2 of 8 speakers


@pytest.mark.parametrize("seed", range(5))
def test_independent_labels_give_chance(seed: int) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    z = torch.randn(480, 16, generator=g)
    labels = torch.randint(0, 4, (480,), generator=g)
    speakers = torch.arange(8).repeat_interleave(60)
    r = linear_probe(z, labels, speakers, seed=seed)
    # 120 test samples, 4 classes: the accuracy's std is ~0.04 around 0.25; chance (the
    # majority rate) is a little above 0.25. 0.12 is 3 std.
    assert abs(r.accuracy - 0.25) < 0.12, r
    assert abs(r.accuracy - r.chance) < 0.15, r


def test_independent_labels_average_to_chance() -> None:
    accs = []
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(480, 16, generator=g)
        labels = torch.randint(0, 4, (480,), generator=g)
        accs.append(linear_probe(z, labels, torch.arange(8).repeat_interleave(60),
                                 seed=seed).accuracy)  # fmt: skip
    assert abs(float(np.mean(accs)) - 0.25) < 0.04, accs  # std of the mean ~0.014


def test_chance_is_the_majority_rate_of_the_test_labels() -> None:
    z = torch.randn(10, 3)
    labels = ["happy", "sad", "happy", "sad", "happy", "happy", "happy", "sad", "sad", "angry"]
    groups = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]
    r = linear_probe(z, labels, groups, test_groups=["b"])
    # test labels: happy, happy, sad, sad, angry -> majority 2/5
    assert r.chance == pytest.approx(2 / 5)
    assert r.classes == ("happy", "sad")  # angry never seen in training: always an error
    assert r.test_groups == ("b",) and (r.n_train, r.n_test) == (5, 5)


def test_group_split_is_group_wise_and_deterministic() -> None:
    groups = [s for s in SPEAKERS for _ in range(5)]
    mask, held = group_split(groups, test_fraction=0.25, seed=3)
    assert len(held) == 2
    test_groups = {g for g, m in zip(groups, mask.tolist(), strict=True) if m}
    train_groups = {g for g, m in zip(groups, mask.tolist(), strict=True) if not m}
    assert test_groups == set(held) and not (test_groups & train_groups)
    assert torch.equal(group_split(groups, seed=3)[0], mask)
    assert group_split(groups, seed=4)[1] != held or group_split(groups, seed=5)[1] != held
    # the draw does not depend on the order of the samples
    assert group_split(list(reversed(groups)), seed=3)[1] == held


def test_speaker_split_blocks_identity_shortcuts() -> None:
    # Each speaker shows a single label and a strong identity code: within speakers the label
    # is perfectly predictable from identity, across speakers it is not.
    g = torch.Generator().manual_seed(0)
    speaker = torch.arange(8).repeat_interleave(40)
    labels = speaker % 2
    z = 5.0 * torch.randn(8, 16, generator=g)[speaker] + torch.randn(320, 16, generator=g)
    held_out = linear_probe(z, labels, speaker.tolist(), test_groups=[6, 7])
    sample_groups = torch.arange(320) % 8  # a split that ignores the speakers
    mixed = linear_probe(z, labels, sample_groups, test_groups=[6, 7])
    assert mixed.accuracy == 1.0
    assert held_out.train_accuracy == 1.0 and held_out.accuracy <= 0.75


def test_agrees_with_sklearn_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    z, labels, speakers = synthetic(sep=3.0, seed=1)  # overlapping classes: accuracy < 1
    wd = 1e-2
    r = linear_probe(z, labels, speakers, weight_decay=wd, max_iter=500)
    test, _ = group_split(speakers)
    x_train, x_test = z[~test].numpy().astype(np.float64), z[test].numpy().astype(np.float64)
    y_train, y_test = labels[~test].numpy(), labels[test].numpy()
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=1.0 / (wd * len(y_train)), max_iter=5000, tol=1e-10)
    clf.fit(scaler.transform(x_train), y_train)
    sk_pred = clf.predict(scaler.transform(x_test))
    sk_acc = float((sk_pred == y_test).mean())
    assert 0.4 < r.accuracy < 0.99  # a non-trivial case
    assert abs(r.accuracy - sk_acc) <= 0.02, (r.accuracy, sk_acc)
    probe = LinearProbe(weight_decay=wd, max_iter=500).fit(z[~test], torch.as_tensor(y_train))
    ours = probe.predict(z[test]).numpy()
    assert float((ours == sk_pred).mean()) >= 0.98
    # the same objective: the same weights (sklearn's multinomial coefficients)
    np.testing.assert_allclose(probe.weight.numpy(), clf.coef_, atol=1e-3, rtol=0)  # measured: 7e-5


def test_deterministic_and_input_types() -> None:
    z, labels, speakers = synthetic(sep=3.0)
    a = linear_probe(z, labels, speakers)
    b = linear_probe(z.numpy(), labels.numpy(), np.array(speakers))
    assert a == b


def test_errors() -> None:
    z, labels, speakers = synthetic()
    with pytest.raises(ValueError, match="same length"):
        linear_probe(z[:-1], labels, speakers)
    with pytest.raises(ValueError, match=">= 2 groups"):
        linear_probe(z, labels, ["one"] * len(labels))
    with pytest.raises(ValueError, match=r"test_groups \['nobody'\] do not occur"):
        linear_probe(z, labels, speakers, test_groups=["nobody"])
    with pytest.raises(ValueError, match="none is left for training"):
        linear_probe(z, labels, speakers, test_groups=SPEAKERS)
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        linear_probe(bad, labels, speakers)
    with pytest.raises(ValueError, match="single label value"):
        linear_probe(z, torch.zeros(len(labels), dtype=torch.long), speakers)
    with pytest.raises(RuntimeError, match="fit"):
        LinearProbe().predict(z)
