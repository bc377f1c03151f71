"""Parallel batches: windows aligned by the stored DTW paths; labels that feed the losses."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from decouple.data.batches import EmotionBatches, ParallelWindows, parallel_labels
from decouple.data.io import encode_audio, encode_video
from decouple.data.pipeline import ShardDataset
from decouple.data.registry import get_emotion_set
from decouple.data.schema import Clip, ClipMeta
from decouple.data.shards import ShardWriter
from decouple.losses import EmotionAugmentedNCE, EmotionAwareNCE

FPS, SR, T_REF, SIZE = 25.0, 16000, 12, 16
# emotion -> number of frames: the same sentence spoken at three speeds
RENDITIONS = {"neutral": 12, "angry": 18, "happy": 9}


def _path(t_clip: int) -> np.ndarray:
    """A monotone path (reference frame, clip frame) for a uniform time warp."""
    if t_clip >= T_REF:
        return np.array([(j * T_REF // t_clip, j) for j in range(t_clip)])
    return np.array([(i, i * t_clip // T_REF) for i in range(T_REF)])


def _clip(group: int, emotion: str) -> Clip:
    t = RENDITIONS[emotion]
    frames = torch.zeros(t, 3, SIZE, SIZE, dtype=torch.uint8)
    for j in range(t):  # grey level = the reference position (content) the frame shows
        frames[j] = 16 * (j * T_REF // t) + 2 * group
    key = f"g{group}_{emotion}"
    n = int(t * SR / FPS)
    meta = ClipMeta("synth", "spk", emotion, get_emotion_set("mead").id(emotion), 1, f"s{group}",
                    f"grp{group}", FPS, SR, t, n, key, f"g{group}_neutral")
    audio = encode_audio(torch.zeros(n), SR)
    content = np.array([j * T_REF // t for j in range(t)])  # ground truth per frame
    return Clip(key, meta, encode_video(frames, FPS), audio,
                {"align": _path(t), "content": content})


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    with ShardWriter(root, "train", "mead", fps=FPS, sample_rate=SR, max_samples=6) as w:
        for g in range(4):
            w.write_group([_clip(g, e) for e in RENDITIONS])
    return root


def test_parallel_windows_are_aligned_by_the_paths(root: Path) -> None:
    ds = ShardDataset(root, "train", batch_size=2, unit="group", features="mel",
                      transform=ParallelWindows(emotions=3, window=5))
    batches = list(DataLoader(ds, batch_size=2))
    assert len(batches) == 2
    for batch in batches:
        video, frame, position = batch["video"], batch["frame"], batch["position"]
        assert video.shape == (2, 3, 5, 3, SIZE, SIZE)
        assert batch["features"].shape == (2, 3, 5, 4, 80)
        assert batch["emotion"].tolist() == [[0, 1, 5]] * 2  # neutral, angry, happy in MEAD ids
        for b in range(2):
            group = int(batch["group"][b][3:])
            for e, emotion in enumerate(("neutral", "angry", "happy")):
                t = RENDITIONS[emotion]
                index = torch.as_tensor(_first_match(_path(t)))
                assert frame[b, e].tolist() == index[position[b]].tolist()
            # per-frame arrays come at the aligned frames: neutral and angry show the position
            assert batch["content"][b, 0].tolist() == position[b].tolist()
            assert batch["content"][b, 1].tolist() == position[b].tolist()
            # the slow (angry) and reference (neutral) renditions show the same content
            grey = video[b].float().mean(dim=(2, 3, 4))  # (e, t)
            want = (16 * position[b] + 2 * group).float()
            torch.testing.assert_close(grey[0], want, atol=2.0, rtol=0)
            torch.testing.assert_close(grey[1], want, atol=2.0, rtol=0)


def _first_match(path: np.ndarray) -> list[int]:
    out = [-1] * T_REF
    for i, j in path:
        if out[i] < 0:
            out[i] = int(j)
    return out


def test_parallel_labels_feed_emotion_aware_nce(root: Path) -> None:
    ds = ShardDataset(root, "train", batch_size=2, unit="group", features=None,
                      transform=ParallelWindows(emotions=3, window=4))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    content, emotion = parallel_labels(batch["emotion"], window=4)
    assert content.shape == emotion.shape == (2 * 3 * 4,)
    z = torch.randn(24, 8, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every row has positives and negatives
        loss = EmotionAwareNCE(reduction="none")(z, content, emotion)
    assert bool((loss > 0).all())


def test_groups_without_enough_emotions_are_skipped(root: Path) -> None:
    ds = ShardDataset(root, "train", batch_size=1, unit="group", features=None,
                      transform=ParallelWindows(emotions=4, window=4))
    with pytest.warns(UserWarning, match="dropped by the transform"):
        assert list(ds) == []


def test_emotion_batches_hold_distinct_content_per_emotion(root: Path) -> None:
    ds = ShardDataset(root, "train", batch_size=1, window=4, features=None)
    batches = list(EmotionBatches(ds, emotions=3, per_emotion=2, seed=1))
    assert batches
    for batch in batches:
        assert batch["video"].shape == (6, 4, 3, SIZE, SIZE)
        emotion, content = batch["emotion"], batch["content"]
        assert sorted(set(emotion.tolist())) == [0, 1, 5]
        for e in set(emotion.tolist()):
            ids = content[emotion == e]
            assert len(set(ids.tolist())) == len(ids)  # other content in every clip
        loss = EmotionAugmentedNCE()(torch.randn(6, 8), emotion, content)
        assert torch.isfinite(loss)


@pytest.mark.parametrize("features", [None, "mel"])
def test_lazy_groups_give_the_same_windows_as_decoded_groups(root: Path, features: str | None
                                                             ) -> None:  # fmt: skip
    def items(lazy: bool) -> list[dict]:
        ds = ShardDataset(root, "train", batch_size=1, unit="group", features=features,
                          seed=3, lazy=lazy, transform=ParallelWindows(emotions=2, window=4))
        return list(ds)

    eager, lazy = items(False), items(True)
    assert len(eager) == len(lazy) == 4
    for a, b in zip(eager, lazy, strict=True):
        assert a.keys() == b.keys() and a["keys"] == b["keys"]
        for k, v in a.items():
            if isinstance(v, torch.Tensor):  # decoding a span gives the same pixels and features
                assert torch.equal(v, b[k]), k


def test_lazy_group_items_decode_on_demand(root: Path) -> None:
    group = next(iter(ShardDataset(root, "train", batch_size=1, unit="group", features=None,
                                   shuffle=False, lazy=True)))  # fmt: skip
    clip = next(c for c in group["clips"] if c["meta"].emotion == "angry")
    assert "video" not in clip and clip["arrays"]["align"].shape == (18, 2)
    part = clip["decode"](3, 7)
    assert part["video"].shape == (4, 3, SIZE, SIZE) and part["key"] == clip["key"]
    assert clip["waveform"]().shape == (int(18 * SR / FPS),)


def test_lazy_is_for_groups() -> None:
    with pytest.raises(ValueError, match="lazy applies to unit='group'"):
        ShardDataset(Path("nowhere"), "train", batch_size=1, lazy=True)


def test_a_lazy_clip_that_fails_to_decode_skips_its_group(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "train", "mead", fps=FPS, sample_rate=SR) as w:
        for g in range(2):
            clips = [_clip(g, e) for e in RENDITIONS]
            if g == 1:  # a corrupted video stream in the slow rendition of group 1
                bad = clips[1]
                clips[1] = Clip(bad.key, bad.meta, b"not an mp4" * 50, bad.audio, bad.arrays)
            w.write_group(clips)
    ds = ShardDataset(tmp_path, "train", batch_size=1, unit="group", features=None,
                      shuffle=False, lazy=True, transform=ParallelWindows(emotions=3, window=4))
    with pytest.warns(UserWarning, match=r"skipping group grp1: .*g1_angry"):
        items = list(ds)
    assert [it["group"] for it in items] == ["grp0"]
