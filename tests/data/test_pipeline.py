"""ShardDataset: splitting by rank and worker, epochs, resume, windows, damaged shards."""

from __future__ import annotations

import itertools
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from decouple.data.io import encode_audio, encode_video
from decouple.data.pipeline import DataWarning, ShardDataset
from decouple.data.registry import get_emotion_set
from decouple.data.schema import Clip, ClipMeta, SchemaVersionError
from decouple.data.shards import ShardWriter

FPS, SR, FRAMES, SIZE = 25.0, 16000, 12, 16
EMOTIONS = ("neutral", "angry", "happy")
GROUPS = 7  # 7 groups x 3 emotions = 21 clips


def _clip(group: int, emotion: str) -> Clip:
    """Frame i is a flat grey of value 16 * i + 4 * group; audio sample values encode the frame."""
    mead = get_emotion_set("mead")
    frames = torch.zeros(FRAMES, 3, SIZE, SIZE, dtype=torch.uint8)
    for i in range(FRAMES):
        frames[i] = 16 * i + 4 * group
    per_frame = int(SR / FPS)
    audio = torch.arange(FRAMES).repeat_interleave(per_frame).float() / 100.0
    key = f"g{group}_{emotion}"
    meta = ClipMeta("synth", f"spk{group % 2}", emotion, mead.id(emotion), 1, f"s{group}",
                    f"grp{group}", FPS, SR, FRAMES, FRAMES * per_frame, f"src/{key}",
                    f"g{group}_neutral")
    path = np.stack([np.arange(FRAMES)] * 2, axis=1)
    arrays = {"align": path, "frame_id": np.arange(FRAMES) * 10}  # a per-frame array
    return Clip(key, meta, encode_video(frames, FPS), encode_audio(audio, SR), arrays)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    with ShardWriter(root, "train", "mead", fps=FPS, sample_rate=SR, max_samples=6) as w:
        for g in range(GROUPS):
            w.write_group([_clip(g, e) for e in EMOTIONS])
    return root


def _epoch_keys(root: Path, *, rank: int, world: int, workers: int, batch: int,
                epoch: int = 0, skip: int = 0, **kw) -> list[list[str]]:
    ds = ShardDataset(root, "train", batch_size=batch, window=4, features=None, rank=rank,
                      world_size=world, **kw)
    ds.set_epoch(epoch)
    if skip:
        ds.skip(skip)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers)
    return [list(b["key"]) for b in loader]


def test_two_ranks_two_workers_read_every_sample_once(
    split_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, world = 2, 2
    seen: list[str] = []
    batches_per_rank = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        ds = ShardDataset(split_dir, "train", batch_size=batch, window=4, features=None)
        assert (ds.rank, ds.world_size) == (rank, world)
        summary = ds.epoch_summary(num_workers=2)
        assert summary == {"units": 21, "batches": 5, "dropped": 1}  # 21 = 5 * 2 * 2 + 1
        batches = [list(b["key"]) for b in DataLoader(ds, batch_size=batch, num_workers=2)]
        assert all(len(b) == batch for b in batches)
        batches_per_rank.append(len(batches))
        seen += [k for b in batches for k in b]
    assert batches_per_rank == [5, 5]
    assert len(seen) == 20 and len(set(seen)) == 20  # none twice, only the tail of 1 lost


def test_order_is_deterministic_and_changes_with_the_epoch(split_dir: Path) -> None:
    kw = dict(rank=0, world=1, workers=2, batch=3)
    a = _epoch_keys(split_dir, epoch=0, **kw)
    assert a == _epoch_keys(split_dir, epoch=0, **kw)
    b = _epoch_keys(split_dir, epoch=1, **kw)
    assert a != b and sorted(k for x in a for k in x) == sorted(k for x in b for k in x)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_resumes_mid_epoch_exactly(split_dir: Path, workers: int) -> None:
    kw = dict(rank=1, world=2, workers=workers, batch=2, epoch=3)
    full = _epoch_keys(split_dir, **kw)
    for n in range(len(full) + 1):
        assert _epoch_keys(split_dir, skip=n, **kw) == full[n:]
    ds = ShardDataset(split_dir, "train", batch_size=2, rank=1, world_size=2)
    with pytest.raises(ValueError, match="cannot skip"):
        ds.skip(99)


def test_windows_match_the_decoded_frames_audio_and_features(split_dir: Path) -> None:
    ds = ShardDataset(split_dir, "train", batch_size=1, window=5, features="mel", context=4,
                      shuffle=False)
    per_frame = int(SR / FPS)
    n = 0
    for item in ds:
        group = int(item["key"][1:].split("_")[0])
        frame = item["frame"]
        assert item["video"].shape == (5, 3, SIZE, SIZE)
        assert torch.equal(frame, torch.arange(int(frame[0]), int(frame[0]) + 5))
        grey = item["video"].float().mean(dim=(1, 2, 3))
        torch.testing.assert_close(grey, (16 * frame + 4 * group).float(), atol=2.0, rtol=0)
        assert item["audio"].shape == (5 * per_frame,)
        expected = frame.repeat_interleave(per_frame).float() / 100.0
        torch.testing.assert_close(item["audio"], expected, atol=1e-3, rtol=0)
        assert item["features"].shape == (5, 4, 80)
        assert torch.equal(item["frame_id"], frame * 10)  # per-frame arrays share the window
        assert item["emotion"] == get_emotion_set("mead").id(item["key"].split("_")[1])
        n += 1
    assert n == 21


def test_group_mode_yields_whole_parallel_groups(split_dir: Path) -> None:
    ds = ShardDataset(split_dir, "train", batch_size=2, unit="group", features=None)
    assert ds.epoch_summary() == {"units": 7, "batches": 3, "dropped": 1}
    groups = list(ds)
    assert len(groups) == 6
    for g in groups:
        keys = [c["key"] for c in g["clips"]]
        assert sorted(keys) == sorted(f"{g['group'].replace('grp', 'g')}_{e}" for e in EMOTIONS)
        assert all(c["video"].shape == (FRAMES, 3, SIZE, SIZE) for c in g["clips"])


def test_damaged_and_missing_shards_are_skipped_with_a_warning(
    split_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(split_dir, root)
    shards = sorted(root.glob("train-*.tar"))
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])  # truncated
    shards[1].unlink()  # missing
    ds = ShardDataset(root, "train", batch_size=1, window=4, features=None, shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = [item["key"] for item in ds]
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any(shards[0].name in m for m in messages)
    assert any(shards[1].name in m for m in messages)
    assert len(keys) >= 21 - 2 * 6 and len(keys) == len(set(keys))  # the other shards intact


def test_schema_version_mismatch_fails_at_once(split_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(split_dir, root)
    index = root / "train-index.json"
    index.write_text(index.read_text().replace('"schema_version": 2', '"schema_version": 99'))
    with pytest.raises(SchemaVersionError, match="99"):
        ShardDataset(root, "train", batch_size=1)


# ----------------------------------------------------------------------------- windows per clip


def _epoch_windows(root: Path, *, rank: int, world: int, workers: int, batch: int,
                   epoch: int = 0, skip: int = 0, **kw) -> list[list[tuple[str, int]]]:
    """Batches of (key, first frame) of one epoch on one rank."""
    ds = ShardDataset(root, "train", batch_size=batch, window=4, features=None, rank=rank,
                      world_size=world, **kw)
    ds.set_epoch(epoch)
    if skip:
        ds.skip(skip)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers)
    return [list(zip(b["key"], b["frame"][:, 0].tolist(), strict=True)) for b in loader]


@pytest.mark.parametrize(("per_clip", "expected"), [(1, 21), (2, 42), ("all", 63), (5, 63)])
def test_windows_per_clip_are_counted_from_the_index(
    split_dir: Path, per_clip: int | str, expected: int
) -> None:
    ds = ShardDataset(split_dir, "train", batch_size=4, window=4, windows_per_clip=per_clip)
    # 12 frames, window 4: at most 3 windows per clip, 21 clips
    assert ds.clip_windows(FRAMES) == min(3, 99 if per_clip == "all" else per_clip)
    assert ds.clip_windows(3) == 0
    assert ds.epoch_summary() == {"units": expected, "batches": expected // 4,
                                  "dropped": expected % 4}


def test_two_ranks_two_workers_read_every_window_once(
    split_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, world = 3, 2
    seen: list[tuple[str, int]] = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        ds = ShardDataset(split_dir, "train", batch_size=batch, window=4, features=None,
                          windows_per_clip="all", shuffle_buffer=8)
        assert ds.epoch_summary(num_workers=2) == {"units": 63, "batches": 10, "dropped": 3}
        batches = [list(zip(b["key"], b["frame"][:, 0].tolist(), strict=True))
                   for b in DataLoader(ds, batch_size=batch, num_workers=2)]
        assert len(batches) == 10 and all(len(b) == batch for b in batches)
        seen += [w for b in batches for w in b]
    assert len(seen) == 60 and len(set(seen)) == 60  # none twice, only the tail of 3 lost
    starts: dict[str, list[int]] = {}
    for key, start in seen:
        starts.setdefault(key, []).append(start)
    for key, s in starts.items():  # the windows of one clip cover distinct frames
        assert len(s) <= 3 and all(b - a >= 4 for a, b in itertools.pairwise(sorted(s))), key
    assert sum(len(s) == 3 for s in starts.values()) >= 18  # most clips gave all 3 windows


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_resumes_windows_mid_epoch_exactly(split_dir: Path, workers: int) -> None:
    kw = dict(rank=0, world=2, workers=workers, batch=2, epoch=2, windows_per_clip=2,
              shuffle_buffer=6)
    full = _epoch_windows(split_dir, **kw)
    assert len(full) == 10  # 42 windows, global batch 4: 10 batches per rank, 2 dropped
    for n in (0, 1, 3, 4, 7, 9, 10):
        assert _epoch_windows(split_dir, skip=n, **kw) == full[n:]


def test_windows_of_one_clip_match_its_frames_and_spread_through_the_buffer(
    split_dir: Path,
) -> None:
    ds = ShardDataset(split_dir, "train", batch_size=1, window=4, features="mel",
                      windows_per_clip="all", shuffle_buffer=64, seed=3)
    items = list(ds)
    assert len(items) == 63
    assert len({(it["key"], int(it["frame"][0])) for it in items}) == 63
    per_frame = int(SR / FPS)
    for item in items:
        group = int(item["key"][1:].split("_")[0])
        frame = item["frame"]
        grey = item["video"].float().mean(dim=(1, 2, 3))
        torch.testing.assert_close(grey, (16 * frame + 4 * group).float(), atol=2.0, rtol=0)
        expected = frame.repeat_interleave(per_frame).float() / 100.0
        torch.testing.assert_close(item["audio"], expected, atol=1e-3, rtol=0)
        assert torch.equal(item["frame_id"], frame * 10)
    # The three windows of a clip are not handed out one after the other.
    keys = [it["key"] for it in items]
    adjacent = sum(a == b for a, b in itertools.pairwise(keys))
    assert adjacent <= 6  # ~2 expected at random; 62 if the clips were not spread


def test_window_features_equal_the_whole_clip_features(split_dir: Path) -> None:
    from decouple.data.features import frame_to_video, log_mel, mfcc
    from decouple.data.io import read_audio
    from decouple.data.shards import iter_samples, read_index

    raw = {s["__key__"]: s for p in read_index(split_dir, "train").paths
           for s in iter_samples(p)}  # fmt: skip
    for features, compute in (("mel", log_mel), ("mfcc", mfcc)):
        ds = ShardDataset(split_dir, "train", batch_size=1, window=4, features=features,
                          windows_per_clip="all", shuffle=False)
        n = 0
        for item in itertools.islice(ds, 63 if features == "mel" else 9):
            wave = read_audio(raw[item["key"]]["flac"]).waveform
            full = frame_to_video(compute(wave), FRAMES, FPS, context=4)
            start = int(item["frame"][0])
            torch.testing.assert_close(item["features"], full[start : start + 4], atol=1e-4,
                                       rtol=1e-4)
            n += 1
        assert n == (63 if features == "mel" else 9)


def test_video_features_match_the_reference_at_every_position() -> None:
    from decouple.data.features import AudioFeatureConfig, frame_to_video, log_mel
    from decouple.data.pipeline import video_features

    gen = torch.Generator().manual_seed(0)
    for frames, samples, fps, context, config in [
        (50, 32000, 25.0, 4, AudioFeatureConfig()),
        (50, 31000, 25.0, 5, AudioFeatureConfig()),  # audio shorter than the video
        (31, 16500, 30.0, 16, AudioFeatureConfig()),  # wide context, 3.33 features per frame
        # n_fft // 2 == hop_length: the segment margin must still exceed it
        (40, 25600, 25.0, 4, AudioFeatureConfig(n_fft=320, win_length=320, n_mels=40)),
    ]:
        wave = torch.randn(samples, generator=gen) * 0.1
        full = frame_to_video(log_mel(wave, config), frames, fps, context=context, config=config)
        for start, stop in [(0, 1), (0, 4), (3, 9), (20, 36), (frames - 5, frames),
                            (0, frames), (frames - 1, frames)]:
            part = video_features(wave, frames, fps, start, stop, context=context, config=config)
            torch.testing.assert_close(part, full[start:stop], atol=1e-4, rtol=1e-4)


def test_window_starts_do_not_overlap_and_cover_every_start() -> None:
    from decouple.data.pipeline import window_starts

    for frames, k, window in [(12, 3, 4), (50, 3, 16), (74, 2, 16), (17, 1, 16), (40, 1, 8)]:
        firsts = set()
        for seed in range(300):
            s = window_starts(frames, k, window, seed=seed)
            assert len(s) == k and s[0] >= 0 and s[-1] + window <= frames
            assert all(b - a >= window for a, b in itertools.pairwise(s))
            assert s == window_starts(frames, k, window, seed=seed)  # a function of the seed
            firsts.add(s[0])
        if k == 1:  # one window: every start occurs
            assert firsts == set(range(frames - window + 1))
        else:  # the windows move (the slack is spread over the gaps)
            assert len(firsts) > (frames - k * window) // 2
    with pytest.raises(ValueError, match="cannot place"):
        window_starts(10, 3, 4, seed=0)


def test_an_index_without_frame_counts_reads_them_from_the_metadata(
    split_dir: Path, tmp_path: Path
) -> None:
    import json

    root = tmp_path / "old"
    shutil.copytree(split_dir, root)
    index = root / "train-index.json"
    d = json.loads(index.read_text())
    for s in d["shards"]:
        del s["frames"]
    index.write_text(json.dumps(d))
    kw = dict(rank=1, world=2, workers=0, batch=2, windows_per_clip="all")
    assert _epoch_windows(root, **kw) == _epoch_windows(split_dir, **kw)
    one = ShardDataset(root, "train", batch_size=2, window=4)  # one window a clip: no scan
    assert one.epoch_summary()["units"] == 21


def test_windows_per_clip_arguments(split_dir: Path) -> None:
    for bad in (0, -1, "some", 1.5, True):
        with pytest.raises(ValueError, match="windows_per_clip"):
            ShardDataset(split_dir, "train", batch_size=1, windows_per_clip=bad)
    with pytest.raises(ValueError, match="unit='sample'"):
        ShardDataset(split_dir, "train", batch_size=1, unit="group", windows_per_clip=2)
