"""Feature similarities (identical frames -> 1, known rotations -> cos of the angle, pairing,
streaming, eval mode) and emotion accuracy with a hand-made classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from decouple.metrics.similarity import (
    emotion_accuracy,
    emotion_feature_similarity,
    feature_similarity,
    identity_similarity,
)

SIMILARITIES = [feature_similarity, emotion_feature_similarity, identity_similarity]


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """No metric may leave gradients disabled (e.g. a no_grad held across a generator's yield)."""
    yield
    assert torch.is_grad_enabled(), "the test left torch.is_grad_enabled() False"


def index_frames(start: int, n: int) -> torch.Tensor:
    """uint8 frames whose pixel value is their index (start .. start + n - 1)."""
    values = torch.arange(start, start + n, dtype=torch.uint8)
    return values.view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()


class Lookup(nn.Module):
    """Embeds frame v (its pixel value) as table[v]: any embedding we want, exactly."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.table[frames[:, 0, 0, 0].long()]


def rotated_pairs(n: int, d: int, angles: torch.Tensor, seed: int = 0) -> Lookup:
    """Rows 0..n-1: r_i u_i; rows n..2n-1: s_i (cos phi_i u_i + sin phi_i w_i), w_i ⟂ u_i."""
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.nn.functional.normalize(w - (w * u).sum(1, keepdim=True) * u, dim=1)
    r = torch.rand(n, 1, generator=g, dtype=torch.float64) * 5 + 0.1
    s = torch.rand(n, 1, generator=g, dtype=torch.float64) * 5 + 0.1
    b = s * (torch.cos(angles)[:, None] * u + torch.sin(angles)[:, None] * w)
    return Lookup(torch.cat([r * u, b]))


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_identical_frames_give_one(similarity) -> None:
    frames = torch.rand(7, 3, 8, 8)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16))
    assert similarity(frames, frames.clone(), net, batch_size=3) == pytest.approx(1.0, abs=1e-12)


def test_known_rotation_gives_cos_angle() -> None:
    n = 12
    angles = torch.linspace(0.0, math.pi, n, dtype=torch.float64)
    embed = rotated_pairs(n, 9, angles)
    a, b = index_frames(0, n), index_frames(n, n)
    expected = float(torch.cos(angles).mean())
    assert feature_similarity(a, b, embed) == pytest.approx(expected, abs=1e-12)
    # one angle for all pairs: exactly cos(angle)
    same = torch.full((n,), 1.0, dtype=torch.float64)
    assert feature_similarity(a, b, rotated_pairs(n, 9, same, seed=1)) == pytest.approx(
        math.cos(1.0), abs=1e-12)
    # opposite vectors: -1
    opposite = torch.full((n,), math.pi, dtype=torch.float64)
    assert feature_similarity(a, b, rotated_pairs(n, 4, opposite)) == pytest.approx(-1.0)


def test_pairs_are_frame_by_frame() -> None:
    """Frame i with frame i only: a reversed order changes the score."""
    n = 6
    embed = rotated_pairs(n, 5, torch.zeros(n, dtype=torch.float64))
    a, b = index_frames(0, n), index_frames(n, n)
    assert feature_similarity(a, b, embed) == pytest.approx(1.0)
    assert feature_similarity(a, b.flip(0), embed) < 0.9


def test_named_similarities_are_the_core() -> None:
    n = 10
    embed = rotated_pairs(n, 6, torch.rand(n, dtype=torch.float64) * 3)
    a, b = index_frames(0, n), index_frames(n, n)
    core = feature_similarity(a, b, embed)
    assert emotion_feature_similarity(a, b, embed) == core
    assert identity_similarity(a, b, embed) == core


def test_streamed_batches_of_different_sizes() -> None:
    n = 11
    embed = rotated_pairs(n, 7, torch.rand(n, dtype=torch.float64) * 3)
    a, b = index_frames(0, n), index_frames(n, n)
    whole = feature_similarity(a, b, embed)
    streamed = feature_similarity([a[:2], a[2:9], a[9:]], (b[i : i + 4] for i in range(0, n, 4)),
                                  embed, batch_size=3)  # fmt: skip
    assert streamed == pytest.approx(whole, abs=1e-14)


def test_frame_counts_must_match() -> None:
    embed = rotated_pairs(8, 3, torch.zeros(8, dtype=torch.float64))
    a, b = index_frames(0, 8), index_frames(8, 8)
    with pytest.raises(ValueError, match=r"same number of frames .* got 8 and 7"):
        feature_similarity(a, b[:7], embed)
    with pytest.raises(ValueError, match="generated ended after 7 frames, real has more"):
        emotion_feature_similarity(a, [b[:3], b[3:7]], embed)
    with pytest.raises(ValueError, match="source ended after 5 frames, generated has more"):
        identity_similarity([a[:5]], iter([b[:4], b[4:]]), embed)
    with pytest.raises(ValueError, match="hold no frames"):
        feature_similarity([], [], embed)


def test_zero_embedding_is_an_error() -> None:
    table = torch.ones(8, 3, dtype=torch.float64)
    table[5] = 0
    with pytest.raises(ValueError, match="zero feature vector for b frame 1"):
        feature_similarity(index_frames(0, 4), index_frames(4, 4), Lookup(table))


class _BNEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.proj(x.float().mean((2, 3))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def test_eval_mode_for_both_streams_and_restored() -> None:
    torch.manual_seed(0)
    net = _BNEmbed().train()
    with torch.no_grad():
        net.bn.running_mean.fill_(0.3)  # eval-mode output differs from batch statistics
    frames = torch.rand(9, 3, 4, 4)
    # In training mode BatchNorm would use batch statistics: batches of 4 vs 9 would differ.
    assert feature_similarity(frames, [frames[:4], frames[4:]], net) == pytest.approx(1.0)
    assert net.training and net.bn.training
    # a bound method counts as its module
    assert feature_similarity(frames, [frames[:2], frames[2:]], net.features) == pytest.approx(1.0)
    assert net.training and net.proj.weight.grad is None


def test_embed_output_checked() -> None:
    frames = torch.rand(4, 3, 4, 4)
    with pytest.raises(ValueError, match=r"embed returned shape \(4,\) for a batch of 4"):
        feature_similarity(frames, frames, lambda x: x.mean((1, 2, 3)))
    with pytest.raises(ValueError, match="channels-last"):
        feature_similarity(frames.permute(0, 2, 3, 1), frames, lambda x: x.mean((2, 3)))


# ---------------------------------------------------------------------- emotion accuracy


class Brightness(nn.Module):
    """A hand-made 3-class classifier: 0 dark (< 1/3), 1 medium, 2 bright (> 2/3)."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        v = frames.float().mean((1, 2, 3))
        v = v / 255.0 if frames.dtype == torch.uint8 else v
        centres = torch.tensor([1 / 6, 1 / 2, 5 / 6])
        return -(v[:, None] - centres).abs()  # logits: closest centre wins


def brightness_frames(levels: list[float]) -> torch.Tensor:
    return torch.tensor(levels).view(-1, 1, 1, 1).expand(-1, 3, 4, 4).contiguous()


def test_emotion_accuracy_known_answer() -> None:
    frames = brightness_frames([0.1, 0.5, 0.9, 0.9, 0.2, 0.6])  # classes 0 1 2 2 0 1
    assert emotion_accuracy(Brightness(), frames, [0, 1, 2, 2, 0, 1]) == 1.0
    assert emotion_accuracy(Brightness(), frames, [0, 1, 2, 0, 0, 0]) == pytest.approx(4 / 6)
    assert emotion_accuracy(Brightness(), frames, torch.tensor([2, 2, 0, 0, 1, 0])) == 0.0
    assert emotion_accuracy(Brightness(), frames, np.array([0, 1, 2, 2, 0, 2])) == pytest.approx(
        5 / 6)
    u8 = (frames * 255).round().to(torch.uint8)
    assert emotion_accuracy(Brightness(), u8, [0, 1, 2, 2, 0, 1], batch_size=4) == 1.0


def test_emotion_accuracy_streamed() -> None:
    frames = brightness_frames([0.1, 0.5, 0.9, 0.9, 0.2, 0.6])
    targets = [0, 1, 0, 2, 0, 1]
    whole = emotion_accuracy(Brightness(), frames, targets)
    streamed = emotion_accuracy(Brightness(), [frames[:1], frames[1:5], frames[5:]], targets,
                                batch_size=2)  # fmt: skip
    assert streamed == whole == pytest.approx(5 / 6)


def test_emotion_accuracy_errors() -> None:
    frames = brightness_frames([0.1, 0.5, 0.9])
    clf = Brightness()
    with pytest.raises(ValueError, match="got 3 frames and 2 targets"):
        emotion_accuracy(clf, frames, [0, 1])
    with pytest.raises(ValueError, match="more frames than the 2 targets"):
        emotion_accuracy(clf, [frames[:2], frames[2:]], [0, 1])
    with pytest.raises(ValueError, match="got 3 frames and 4 targets"):
        emotion_accuracy(clf, [frames], [0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"target 3 is out of range .* 3 classes \(0\.\.2\)"):
        emotion_accuracy(clf, frames, [0, 1, 3])
    with pytest.raises(TypeError, match="integer class indices"):
        emotion_accuracy(clf, frames, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="targets must be >= 0"):
        emotion_accuracy(clf, frames, [0, -1, 2])
    with pytest.raises(ValueError, match=r"targets must be \(n,\)"):
        emotion_accuracy(clf, frames, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"classifier returned shape \(3,\)"):
        emotion_accuracy(lambda x: x.mean((1, 2, 3)), frames, [0, 1, 2])
    with pytest.raises(ValueError, match="no frames given"):
        emotion_accuracy(clf, [], [])


def test_modes_restored_after_errors_mid_stream() -> None:
    net = _BNEmbed().train()
    frames = torch.rand(6, 3, 4, 4)
    with pytest.raises(ValueError, match="ended after"):
        feature_similarity([frames[:3], frames[3:]], [frames[:2]], net)
    with pytest.raises(ValueError, match="more frames than"):
        emotion_accuracy(net, [frames[:3], frames[3:]], [0, 1, 2, 3])
    assert net.training and net.bn.training and torch.is_grad_enabled()


@pytest.mark.parametrize("fn", SIMILARITIES)
def test_all_pairs_mean_equals_a_double_loop_of_cosines(fn) -> None:
    g = torch.Generator().manual_seed(3)
    table = torch.randn(12, 5, generator=g, dtype=torch.float64)
    look = Lookup(table)
    a, b = index_frames(0, 7), index_frames(7, 5)  # different counts: allowed for "all"
    want = np.mean([
        float(table[i] @ table[j] / (table[i].norm() * table[j].norm()))
        for i in range(7) for j in range(7, 12)
    ])
    assert fn(a, b, look, pairs="all") == pytest.approx(want, abs=1e-12)
    streamed = fn([a[:2], a[2:]], [b[:4], b[4:]], look, batch_size=3, pairs="all")
    assert streamed == pytest.approx(want, abs=1e-12)


def test_all_pairs_of_identical_sets_is_below_one_and_paired_is_one() -> None:
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    frames = index_frames(0, 2)
    assert feature_similarity(frames, frames, Lookup(table)) == pytest.approx(1.0, abs=1e-12)
    # mean unit row (0.5, 0.5): squared length 0.5 (the all-pairs mean of 1, 0, 0, 1)
    assert feature_similarity(frames, frames, Lookup(table), pairs="all") == pytest.approx(0.5)


def test_pairs_must_be_known() -> None:
    frames = index_frames(0, 2)
    with pytest.raises(ValueError, match="pairs must be one of"):
        feature_similarity(frames, frames, Lookup(torch.eye(2)), pairs="every")
