"""The SPFEM stage's training pieces: the aligned target's matching (gain, similarity
registration), the anchored emotion gradient, the learning-rate schedule, the residual
generator's start. Checked against hand computations and closed forms."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "spfem"))

from generator import Generator
from loop import lr_scale
from stages import (
    _similarity_warp,
    match_gain,
    match_target,
    pixel_distance,
    register_similarity,
    source_index,
    toward,
)


def _face(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random frames (n, 3, size, size) in [0.1, 0.9]: blurred noise, like a face."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return 0.1 + 0.8 * (x - x.amin()) / (x.amax() - x.amin())


def test_match_gain_is_the_least_squares_gain() -> None:
    torch.manual_seed(0)
    like = torch.rand(3, 3, 8, 8, dtype=torch.float64) * 0.6
    frames = torch.rand(3, 3, 8, 8, dtype=torch.float64) * 0.6
    out = match_gain(frames, like)
    for i in range(3):  # naive loops: g = sum(l * f) / sum(f * f)
        num = den = 0.0
        for v_l, v_f in zip(like[i].flatten().tolist(), frames[i].flatten().tolist(), strict=True):
            num += v_l * v_f
            den += v_f * v_f
        torch.testing.assert_close(out[i], (num / den * frames[i]).clamp(0, 1))


def test_match_gain_removes_a_global_light_change_and_keeps_a_local_edit() -> None:
    src = _face()
    edited = src.clone()
    edited[..., 12:14, 10:18] -= 0.3  # an "expression": a small local change (a brow)
    lit = 1.05 * edited
    matched = match_gain(lit, src)
    outside = torch.ones_like(src, dtype=torch.bool)
    outside[..., 12:14, 10:18] = False
    assert (matched - src)[outside].abs().mean() < 0.2 * (lit - src)[outside].abs().mean()
    assert (matched - src)[~outside].abs().mean() > 0.25  # the edit is still there


@pytest.mark.parametrize("motion", [(1.2, -0.8, 0.0), (0.0, 0.0, 0.03), (-0.7, 1.5, -0.02)])
def test_similarity_registration_recovers_a_known_motion(motion: tuple[float, float, float]
                                                         ) -> None:  # fmt: skip
    src = _face(1, 64)
    moved = _similarity_warp(src, torch.tensor([motion]))
    aligned, p = register_similarity(moved, src, iters=5)
    # the inverse of a small similarity transform: about minus its parameters
    torch.testing.assert_close(p[0], -torch.tensor(motion), atol=0.08, rtol=0)
    inner = (..., slice(8, -8), slice(8, -8))  # away from the repeated borders
    before = (moved - src)[inner].abs().mean()
    after = (aligned - src)[inner].abs().mean()
    # what is left is the blur of resampling twice: the floor of moving back exactly
    floor = (_similarity_warp(moved, -torch.tensor([motion])) - src)[inner].abs().mean()
    assert after < 0.5 * before and after < 1.2 * floor + 1e-3


def test_match_target_modes() -> None:
    src = _face(2, 32).reshape(1, 2, 3, 32, 32)
    target = (1.05 * src).clamp(0, 1)
    assert match_target(target, src, "none") is target
    assert match_target(target, src, "gain").shape == src.shape
    out = match_target(target, src, "similarity")
    assert out.shape == src.shape and (out - src).abs().mean() < (target - src).abs().mean()
    with pytest.raises(ValueError, match="aligned_match"):
        match_target(target, src, "affine")


def test_toward_keeps_only_the_gradient_that_moves_toward_the_target() -> None:
    torch.manual_seed(0)
    x = torch.randn(500, requires_grad=True)
    target = torch.randn(500)
    weights = torch.randn(500)
    (toward(x, target) * weights).sum().backward()
    # hand computation: d/dx = weights; kept where -weights points from x to the target
    expect = torch.where(weights * (x.detach() - target) > 0, weights, torch.zeros(()))
    torch.testing.assert_close(x.grad, expect)
    assert 100 < int((x.grad != 0).sum()) < 400  # about half


def test_a_loss_through_toward_never_moves_an_element_away_from_the_target() -> None:
    torch.manual_seed(1)
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    target = torch.rand(4, 3, 8, 8)
    # a loss that wants every pixel bright (e.g. an encoder fooled by a bright texture)
    loss = -toward(x, target).mean()
    loss.backward()
    moved = x.grad != 0
    # a descent step (-grad) goes toward the target wherever it moves anything...
    assert ((-x.grad * (target - x.detach()))[moved] > 0).all()
    # ...and only pixels below their target move (the loss wants everything brighter)
    assert ((target > x.detach()) == moved).all()


def test_pixel_distances_against_naive_loops() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    y = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    a = sq = 0.0
    for u, v in zip(x.flatten().tolist(), y.flatten().tolist(), strict=True):
        a += abs(u - v)
        sq += (u - v) ** 2
    n = x.numel()
    assert pixel_distance(x, y, "l1").item() == pytest.approx(a / n, rel=1e-12)
    assert pixel_distance(x, y, "rmse").item() == pytest.approx(math.sqrt(sq / n), rel=1e-9)
    with pytest.raises(ValueError, match="pixel_loss"):
        pixel_distance(x, y, "l2")


def test_rmse_gradient_is_finite_at_a_perfect_match_and_mean_seeking() -> None:
    x = torch.zeros(3, requires_grad=True)
    pixel_distance(x, torch.zeros(3), "rmse").backward()
    assert torch.isfinite(x.grad).all()
    # one shared output against targets {0, 0, 1}: L1's minimiser is the median (0), RMSE's
    # the mean (1/3): between them (0.1) RMSE raises the output, L1 lowers it
    for kind, sign in (("rmse", -1.0), ("l1", 1.0)):
        c = torch.tensor([0.1], requires_grad=True)
        pixel_distance(c.expand(3), torch.tensor([0.0, 0.0, 1.0]), kind).backward()
        assert c.grad.item() * sign > 0, kind
    c = torch.zeros(1, requires_grad=True)
    t = torch.tensor([0.0, 0.0, 1.0])
    pixel_distance(c.expand(3), t, "rmse").backward()
    assert c.grad.item() < 0  # descent raises c
    c2 = torch.tensor([0.34], requires_grad=True)  # just above the mean: pushed back down
    pixel_distance(c2.expand(3), t, "rmse").backward()
    assert c2.grad.item() > 0


def test_cosine_schedule_closed_form() -> None:
    steps = 7
    for k in range(steps):
        assert lr_scale("cosine", k, steps) == pytest.approx(0.5 * (1 + math.cos(math.pi * k / 7)))
        assert lr_scale("constant", k, steps) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_scale("linear", 0, 1)


def test_untrained_generator_copies_the_source() -> None:
    torch.manual_seed(0)
    g = Generator(code_dim=16, channels=16, stages=3)
    x = torch.rand(4, 3, 64, 64)
    out = g(x, F.normalize(torch.randn(4, 16), dim=1))
    assert (out - x).abs().mean() < 1e-3 and (out - x).abs().max() < 0.02


def test_source_index_follows_the_reference_and_reverse_prob() -> None:
    torch.manual_seed(0)
    n = 4000
    reference = torch.zeros(n, 2, dtype=torch.bool)
    reference[: n // 2, 0] = True  # first half: rendition 0 is the reference (neutral)
    reference[n // 2 :, 1] = True
    batch = {"emotion": torch.zeros(n, 2, dtype=torch.long), "reference": reference}
    ref_index = reference.long().argmax(1)
    assert torch.equal(source_index(batch, 0.0), ref_index)  # always neutral -> emotion
    assert torch.equal(source_index(batch, 1.0), 1 - ref_index)  # always back to neutral
    reverse = (source_index(batch, 0.25) != ref_index).double()
    # binomial(4000, 0.25): sd 0.0068, the margin is > 5 sd in each half
    assert abs(reverse[: n // 2].mean().item() - 0.25) < 0.05
    assert abs(reverse[n // 2 :].mean().item() - 0.25) < 0.05
    # no reference flags: rendition 0 is the forward source
    assert torch.equal(source_index({"emotion": torch.zeros(3, 2)}, 0.0), torch.zeros(3).long())
    assert torch.equal(source_index({"emotion": torch.zeros(3, 2)}, 1.0), torch.ones(3).long())


def test_aligned_groups_flag_the_reference_rendition(tiny_corpus: Path) -> None:
    from stages import AlignedGroups

    from decouple.data import ShardDataset, read_index

    neutral = read_index(tiny_corpus, "train").emotion_set.names.index("neutral")
    ds = ShardDataset(tiny_corpus, "train", batch_size=1, unit="group", features=None,
                      shuffle=False, transform=AlignedGroups(2, 1, with_reference=True))
    items = list(ds)
    assert len(items) >= 4
    for item in items:
        flags = item["reference"]
        assert flags.dtype == torch.bool and flags.shape == (2,) and int(flags.sum()) == 1
        # SynthTalk's reference rendition (the one the DTW paths start from) is the neutral one
        assert int(item["emotion"][flags][0]) == neutral
        assert int(item["emotion"][~flags][0]) != neutral


def test_aligned_groups_read_lazily_give_the_same_batches(tiny_corpus: Path) -> None:
    from stages import AlignedGroups

    from decouple.data import ShardDataset

    def items(lazy: bool) -> list[dict]:
        return list(ShardDataset(tiny_corpus, "train", batch_size=1, unit="group",
                                 features=None, seed=1, lazy=lazy,
                                 transform=AlignedGroups(2, 2, with_reference=True)))

    eager, lazy = items(False), items(True)
    assert len(eager) == len(lazy) >= 4
    for a, b in zip(eager, lazy, strict=True):
        assert a["keys"] == b["keys"]
        for k in ("video", "frame", "emotion", "reference", "clip_frames"):
            assert torch.equal(a[k], b[k]), k
        for wa, wb in zip(a["clip_audio"], b["clip_audio"], strict=True):
            assert torch.equal(wa, wb)


def test_flip_groups_mirrors_whole_groups_and_draws_only_when_asked() -> None:
    from stages import flip_groups

    video = torch.rand(64, 2, 3, 3, 4, 5)  # (b, renditions, t, c, h, w)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert flip_groups(video, 0.0) is video
    assert torch.equal(torch.get_rng_state(), state)  # prob 0: no draw, runs unchanged
    assert torch.equal(flip_groups(video, 1.0), video.flip(-1))
    out = flip_groups(video, 0.5)
    flipped = []
    for g in range(64):
        same, mirrored = torch.equal(out[g], video[g]), torch.equal(out[g], video[g].flip(-1))
        assert same != mirrored  # every rendition and frame of a group, or none
        flipped.append(mirrored)
    assert 16 < sum(flipped) < 48


def test_flip_prob_is_checked() -> None:
    from config import Config, check_config
    from configlib import ConfigError, load_config

    bad = load_config(Config, None, ["spfem.flip_prob=1.5"])
    with pytest.raises(ConfigError, match=r"spfem\.flip_prob: expected a number in \[0, 1\]"):
        check_config(bad, "x.yaml")
