"""Shard writer, index and raw reader: round trips with real media, group contiguity across
shard boundaries, atomic writes, and damaged, missing or mismatched files."""

from __future__ import annotations

import functools
import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from decouple.data.align import align_audio, dtw
from decouple.data.io import Audio, encode_audio, encode_video, read_audio, read_video
from decouple.data.registry import MEAD, MEAD_SPFEM, get_emotion_set
from decouple.data.schema import (
    SCHEMA_VERSION,
    Clip,
    ClipMeta,
    SchemaError,
    SchemaVersionError,
    ShardError,
    make_key,
)
from decouple.data.shards import (
    ShardIndex,
    ShardInfo,
    ShardWriter,
    clip_problems,
    group_problems,
    index_path,
    iter_samples,
    read_index,
    shard_name,
)

FPS, SR = 25.0, 16000

# ----------------------------------------------------------------------------- real media


def frame_value(seed: int, i: int) -> int:
    return (40 + 23 * seed + 17 * i) % 200 + 20


@functools.cache
def video_bytes(num_frames: int, seed: int) -> bytes:
    """A tiny H.264 mp4: flat frames whose grey level encodes (seed, frame)."""
    frames = torch.stack(
        [torch.full((3, 16, 16), frame_value(seed, i), dtype=torch.uint8)
         for i in range(num_frames)]
    )  # fmt: skip
    return encode_video(frames, FPS, preset="ultrafast")


def waveform(num_frames: int, seed: int) -> torch.Tensor:
    """A tone whose pitch and level change over time (different per seed)."""
    n = round(num_frames * SR / FPS)
    t = torch.arange(n, dtype=torch.float64) / SR
    f = 300 + 150 * seed + 600 * t
    phase = 2 * math.pi * torch.cumsum(f, 0) / SR
    return (0.4 * torch.sin(phase) * (0.5 + 0.5 * torch.sin(7 * t))).float()


@functools.cache
def audio_bytes(num_frames: int, seed: int) -> bytes:
    return encode_audio(waveform(num_frames, seed), SR)


def ramp_path(n_ref: int, n: int) -> np.ndarray:
    """A valid alignment path between n_ref and n frames (DTW of two linear ramps)."""
    a = torch.linspace(0, 1, n_ref)[:, None]
    b = torch.linspace(0, 1, n)[:, None]
    return dtw(a, b, metric="euclidean").numpy().astype(np.int32)


def make_meta(emotion: str, frames: int, group: str, reference: str, *, speaker: str = "M003",
              sentence: str = "001", emotion_set=MEAD, **over) -> ClipMeta:
    fields = dict(
        dataset="mead", speaker=speaker, emotion=emotion, emotion_id=emotion_set.id(emotion),
        intensity=1 if emotion == "neutral" else 3, sentence=sentence, group=group, fps=FPS,
        sample_rate=SR, num_frames=frames, num_samples=round(frames * SR / FPS),
        source=f"{speaker}/video/front/{emotion}/level_1/{sentence}.mp4", reference=reference,
    )  # fmt: skip
    fields.update(over)
    return ClipMeta(**fields)


def make_group(speaker: str, sentence: str, emotions: list[str], frames: list[int], *,
               real_align: bool = False, landmarks: bool = False, seed: int = 0) -> list[Clip]:
    """A parallel group: the first clip is the reference; align.npy on every clip."""
    gid = make_key(speaker, sentence)
    keys = [make_key(speaker, e, sentence) for e in emotions]
    clips = []
    for k, (key, emotion, n) in enumerate(zip(keys, emotions, frames, strict=True)):
        s = seed + k
        if real_align:
            ref = Audio(waveform(frames[0], seed), SR)
            path = align_audio(ref, Audio(waveform(n, s), SR), frames[0], n, FPS).numpy()
        else:
            path = ramp_path(frames[0], n)
        arrays = {"align": path}
        if landmarks:
            arrays["landmarks"] = np.random.default_rng(s).normal(size=(n, 68, 2)).astype(
                np.float32)
        meta = make_meta(emotion, n, gid, keys[0], speaker=speaker, sentence=sentence)
        clips.append(Clip(key, meta, video_bytes(n, s), audio_bytes(n, s), arrays))
    return clips


def make_single(speaker: str, sentence: str, emotion: str, frames: int, seed: int = 0) -> Clip:
    key = make_key(speaker, emotion, sentence)
    meta = make_meta(emotion, frames, "", "", speaker=speaker, sentence=sentence)
    return Clip(key, meta, video_bytes(frames, seed), audio_bytes(frames, seed))


def fake_clip(key: str, video_size: int, group: str = "", reference: str = "",
              frames: int = 3) -> Clip:
    """A clip with dummy media bytes of a chosen size (the writer does not decode)."""
    meta = make_meta("happy", frames, group, reference)
    arrays = {"align": ramp_path(frames, frames)} if group else {}
    return Clip(key, meta, b"v" * video_size, b"a" * 100, arrays)


def read_all(root: Path, split: str) -> list[list[dict]]:
    index = read_index(root, split)
    return [list(iter_samples(p)) for p in index.paths]


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


# ----------------------------------------------------------------------------- round trip


def test_round_trip_with_real_media(tmp_path: Path) -> None:
    groups = [
        make_group("M003", "001", ["neutral", "angry", "happy"], [10, 12, 9], real_align=True,
                   landmarks=True, seed=0),
        make_group("M009", "002", ["neutral", "sad"], [8, 11], seed=5),
        [make_single("M003", "021", "fear", 7, seed=9)],
        [make_single("M009", "022", "surprised", 6, seed=11)],
    ]
    with ShardWriter(tmp_path, "train", "mead", fps=FPS, sample_rate=SR) as writer:
        for g in groups:
            assert writer.write_group(g) == "train-000000.tar"
    assert listing(tmp_path) == ["train-000000.tar", "train-index.json"]  # no temp file left

    raw = json.loads((tmp_path / "train-index.json").read_text())
    size = (tmp_path / "train-000000.tar").stat().st_size
    assert raw == {
        "schema_version": 2,
        "split": "train",
        "emotion_set": {"name": "mead", "names": list(MEAD.names)},
        "fps": 25.0,
        "sample_rate": 16000,
        "shards": [{"name": "train-000000.tar", "samples": 7, "groups": 2, "bytes": size,
                    "frames": [10, 12, 9, 8, 11, 7, 6]}],  # num_frames of each sample
        "num_samples": 7,
        "num_groups": 2,
    }
    index = read_index(tmp_path, "train")
    frames = (10, 12, 9, 8, 11, 7, 6)
    assert index == ShardIndex(tmp_path, "train", MEAD, 25.0, 16000,
                               (ShardInfo("train-000000.tar", 7, 2, size, frames),),
                               SCHEMA_VERSION)

    expected = [c for g in groups for c in g]
    samples = list(iter_samples(index.paths[0]))
    assert [s["__key__"] for s in samples] == [c.key for c in expected]
    assert all(s["__shard__"] == "train-000000.tar" for s in samples)
    for sample, clip in zip(samples, expected, strict=True):
        where = f"train-000000.tar:{sample['__key__']}"
        back = Clip.from_members(sample["__key__"], sample, where)
        assert back.meta == clip.meta
        assert back.video == clip.video and back.audio == clip.audio
        assert sorted(back.arrays) == sorted(clip.arrays)
        for name, arr in clip.arrays.items():
            assert np.array_equal(back.arrays[name], arr)
        if "align" in back.arrays:
            assert back.arrays["align"].dtype == np.int32

    # the media decode to what was encoded: frame count, grey levels, samples
    for k, clip in enumerate(expected[:3]):
        video = read_video(samples[k]["mp4"])
        assert video.num_frames == clip.meta.num_frames and video.fps == FPS
        levels = video.frames.float().mean(dim=(1, 2, 3))
        truth = torch.tensor([frame_value(k, i) for i in range(clip.meta.num_frames)])
        assert float((levels - truth).abs().max()) < 3
        audio = read_audio(samples[k]["flac"], sample_rate=None)
        assert audio.sample_rate == SR and audio.num_samples == clip.meta.num_samples
        assert float((audio.waveform - waveform(clip.meta.num_frames, k)).abs().max()) < 1e-4


def test_emotion_set_object_and_name_are_equivalent(tmp_path: Path) -> None:
    clip = make_single("M003", "021", "fear", 4)
    for split, emotion_set in (("a", "mead"), ("b", MEAD), ("c", get_emotion_set("mead"))):
        with ShardWriter(tmp_path, split, emotion_set, fps=FPS) as writer:
            writer.write_group([clip])
        assert read_index(tmp_path, split).emotion_set == MEAD


def test_extras_survive_in_groups_with_align_paths(tmp_path: Path) -> None:
    group = make_group("M003", "001", ["neutral", "angry"], [5, 6])
    group = [Clip(c.key, c.meta, c.video, c.audio, c.arrays, {"params": {"i": i}})
             for i, c in enumerate(group)]
    assert all("align" in c.arrays for c in group)
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS) as writer:
        writer.write_group(group)
    samples = list(iter_samples(read_index(tmp_path, "train").paths[0]))
    assert [json.loads(s["params.json"]) for s in samples] == [{"i": 0}, {"i": 1}]


def test_same_clips_give_the_same_bytes(tmp_path: Path) -> None:
    group = make_group("M003", "001", ["neutral", "angry"], [5, 6])
    for run in ("one", "two"):
        with ShardWriter(tmp_path / run, "train", MEAD, fps=FPS) as writer:
            writer.write_group(group)
    assert (tmp_path / "one/train-000000.tar").read_bytes() == (
        tmp_path / "two/train-000000.tar").read_bytes()


# ----------------------------------------------------------------------------- shard boundaries


def test_groups_never_straddle_a_shard_boundary(tmp_path: Path) -> None:
    emotions = ["neutral", "angry", "happy", "sad", "fear"]
    plan = [("001", 3), ("002", 3), ("003", 2), ("single", 1), ("004", 4), ("005", 5)]
    written = {}
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=4) as writer:
        for sentence, size in plan:
            if sentence == "single":
                clips = [make_single("W015", "030", "disgusted", 3)]
            else:
                clips = make_group("W015", sentence, emotions[:size], [3] * size)
            written[sentence] = (writer.write_group(clips), [c.key for c in clips])

    # Greedy filling, computed by hand: 3 | 3 | 2+1 | 4 | 5 (a group above the limit alone).
    index = read_index(tmp_path, "train")
    assert [(s.name, s.samples, s.groups) for s in index.shards] == [
        ("train-000000.tar", 3, 1), ("train-000001.tar", 3, 1), ("train-000002.tar", 3, 1),
        ("train-000003.tar", 4, 1), ("train-000004.tar", 5, 1),
    ]  # fmt: skip
    assert index.num_samples == 18 and index.num_groups == 5
    shards = read_all(tmp_path, "train")
    for sentence, (shard, keys) in written.items():
        number = int(shard[len("train-"):-len(".tar")])
        shard_keys = [s["__key__"] for s in shards[number]]
        start = shard_keys.index(keys[0])
        assert shard_keys[start:start + len(keys)] == keys, sentence  # whole and contiguous
    for number, samples in enumerate(shards):
        assert len(samples) == index.shards[number].samples
        assert index.shards[number].bytes == index.paths[number].stat().st_size


def test_max_bytes_starts_a_new_shard(tmp_path: Path) -> None:
    # Each clip is ~12.3 KB in the tar; a group of two ~24.6 KB: two groups fit in 60 KB.
    max_bytes = 60_000
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_bytes=max_bytes) as writer:
        for g in range(5):
            gid = f"g{g}"
            clips = [fake_clip(f"{gid}-a", 10_000, gid, f"{gid}-a"),
                     fake_clip(f"{gid}-b", 10_000, gid, f"{gid}-a")]
            writer.write_group(clips)
    index = read_index(tmp_path, "train")
    assert [s.samples for s in index.shards] == [4, 4, 2]
    for path in index.paths:
        assert path.stat().st_size <= max_bytes + tarfile.RECORDSIZE
    keys = [[s["__key__"] for s in shard] for shard in read_all(tmp_path, "train")]
    assert keys == [["g0-a", "g0-b", "g1-a", "g1-b"], ["g2-a", "g2-b", "g3-a", "g3-b"],
                    ["g4-a", "g4-b"]]


def test_a_group_larger_than_the_byte_limit_gets_its_own_shard(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_bytes=5_000) as writer:
        writer.write_group([fake_clip("a", 100)])
        writer.write_group([fake_clip("big", 20_000)])
        writer.write_group([fake_clip("b", 100)])
    assert [s.samples for s in read_index(tmp_path, "train").shards] == [1, 1, 1]


# ----------------------------------------------------------------------------- atomicity


def test_shards_appear_under_their_name_only_when_complete(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=2)
    writer.write_group([fake_clip("a", 50, "g", "a"), fake_clip("b", 50, "g", "a")])
    names = listing(tmp_path)
    assert len(names) == 1 and names[0].startswith(".train-000000.tar.") and names[0].endswith(
        ".tmp")
    writer.write_group([fake_clip("c", 50)])  # does not fit: shard 0 is finished
    names = listing(tmp_path)
    assert "train-000000.tar" in names and "train-index.json" not in names
    assert [s["__key__"] for s in iter_samples(tmp_path / "train-000000.tar")] == ["a", "b"]
    assert any(n.startswith(".train-000001.tar.") for n in names)
    index = writer.close()
    assert listing(tmp_path) == ["train-000000.tar", "train-000001.tar", "train-index.json"]
    assert index == read_index(tmp_path, "train")
    assert writer.close() == index  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        writer.write_group([fake_clip("d", 50)])


def test_an_exception_aborts_without_an_index(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=2) as writer:
            writer.write_group([fake_clip("a", 50, "g", "a"), fake_clip("b", 50, "g", "a")])
            writer.write_group([fake_clip("c", 50)])
            raise KeyboardInterrupt
    # the complete shard stays, the one in progress is gone, and there is no index
    assert listing(tmp_path) == ["train-000000.tar"]
    with pytest.raises(FileNotFoundError, match="no index for split 'train'"):
        read_index(tmp_path, "train")


def test_existing_split_is_refused_unless_overwrite(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=1) as writer:
        for k in range(3):
            writer.write_group([fake_clip(f"c{k}", 50)])
    with ShardWriter(tmp_path, "val", MEAD, fps=FPS) as writer:  # another split: no conflict
        writer.write_group([fake_clip("v", 50)])
    with pytest.raises(FileExistsError, match="split 'train' already exists"):
        ShardWriter(tmp_path, "train", MEAD, fps=FPS)
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, overwrite=True) as writer:
        assert not index_path(tmp_path, "train").exists()  # the old split reads as absent
        writer.write_group([fake_clip("new", 50)])
    assert listing(tmp_path) == ["train-000000.tar", "train-index.json", "val-000000.tar",
                                 "val-index.json"]
    assert [s["__key__"] for s in iter_samples(tmp_path / "train-000000.tar")] == ["new"]
    assert read_index(tmp_path, "val").num_samples == 1


# ----------------------------------------------------------------------------- rejections


def _good_group() -> list[Clip]:
    return make_group("M003", "001", ["neutral", "angry", "happy"], [5, 6, 4])


def _with_meta(clip: Clip, **over) -> Clip:
    d = {**clip.meta.to_json(), **over}
    return Clip(clip.key, ClipMeta(**d), clip.video, clip.audio, dict(clip.arrays))


def _with_arrays(clip: Clip, **arrays) -> Clip:
    new = {k: v for k, v in {**clip.arrays, **arrays}.items() if v is not None}
    return Clip(clip.key, clip.meta, clip.video, clip.audio, new)


def _bad(kind: str) -> tuple[list[Clip], str]:
    g = _good_group()
    if kind == "fps":
        return [g[0], _with_meta(g[1], fps=30.0), g[2]], r"clip 'M003-angry-001'.*field 'fps'"
    if kind == "sample_rate":
        return [_with_meta(g[0], sample_rate=22050)] + g[1:], "field 'sample_rate'"
    if kind == "emotion":
        return [g[0], g[1], _with_meta(g[2], emotion="calm", emotion_id=1)], (
            r"field 'emotion': 'calm' is not in emotion set 'mead'")
    if kind == "emotion_id":
        return [g[0], _with_meta(g[1], emotion_id=4)], (
            "field 'emotion_id': 4 but 'angry' has id 1")
    if kind == "missing_align":
        return [g[0], _with_arrays(g[1], align=None), g[2]], (
            r"clip 'M003-angry-001'.*field 'align.npy': missing")
    if kind == "bad_align_end":
        return [g[0], _with_arrays(g[1], align=ramp_path(5, 5))], (
            r"field 'align.npy': not a valid path from reference 'M003-neutral-001': path must "
            r"end at \(4, 5\)")
    if kind == "bad_align_step":
        path = np.array([[0, 0], [2, 1], [4, 5]], dtype=np.int32)
        return [g[0], _with_arrays(g[1], align=path)], "allowed steps"
    if kind == "float_align":
        return [g[0], _with_arrays(g[1], align=ramp_path(5, 6).astype(float))], "integer dtype"
    if kind == "reference":
        return [_with_meta(c, reference="M003-sad-001") for c in g], (
            "field 'reference': 'M003-sad-001' is not a clip of group 'M003-001'")
    if kind == "mixed_reference":
        return [g[0], _with_meta(g[1], reference="M003-happy-001"), g[2]], (
            "field 'reference': 'M003-happy-001' differs")
    if kind == "mixed_group":
        return [g[0], _with_meta(g[1], group="M003-002")], "field 'group': 'M003-002' differs"
    if kind == "landmarks_rows":
        return [g[0], _with_arrays(g[1], landmarks=np.zeros((5, 68, 2)))], (
            r"field 'landmarks.npy': per-frame arrays need 6 rows")
    if kind == "no_group_id":
        singles = [make_single("M003", "021", "fear", 4), make_single("M003", "022", "sad", 4)]
        return singles, "2 clips without a group id"
    if kind == "align_without_group":
        return [_with_arrays(make_single("M003", "021", "fear", 4), align=ramp_path(4, 4))], (
            "a clip without a group has no alignment")
    if kind == "duplicate_in_group":
        return [g[0], g[1], g[1]], "clip 'M003-angry-001': field 'key': appears 2 times"
    if kind == "empty":
        return [], "at least one clip"
    raise AssertionError(kind)


BAD_KINDS = ["fps", "sample_rate", "emotion", "emotion_id", "missing_align", "bad_align_end",
             "bad_align_step", "float_align", "reference", "mixed_reference", "mixed_group",
             "landmarks_rows", "no_group_id", "align_without_group", "duplicate_in_group",
             "empty"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_invalid_groups_are_refused_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    clips, match = _bad(kind)
    writer = ShardWriter(tmp_path, "train", MEAD, fps=FPS)
    writer.write_group([make_single("W015", "030", "sad", 4)])
    with pytest.raises(SchemaError, match=match) as info:
        writer.write_group(clips)
    assert "split 'train'" in str(info.value)
    assert writer.num_samples == 1
    writer.write_group(_good_group())  # the writer goes on
    index = writer.close()
    assert index.num_samples == 4
    keys = [s["__key__"] for s in iter_samples(index.paths[0])]
    assert keys == ["W015-sad-030", "M003-neutral-001", "M003-angry-001", "M003-happy-001"]


def test_keys_and_groups_are_unique_in_a_split(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=3) as writer:
        writer.write_group(_good_group())
        with pytest.raises(SchemaError, match="already written in this split"):
            writer.write_group([make_single("M003", "001", "angry", 4)])  # same key
        with pytest.raises(SchemaError, match=r"group 'M003-001'.*already written"):
            writer.write_group(make_group("M003", "001", ["sad", "fear"], [3, 3]))


def test_emotion_outside_a_subset(tmp_path: Path) -> None:
    clip = make_single("M003", "021", "fear", 4)
    clip = _with_meta(clip, emotion="contempt", emotion_id=MEAD.id("contempt"))
    with ShardWriter(tmp_path, "train", MEAD_SPFEM, fps=FPS) as writer:
        with pytest.raises(SchemaError, match="'contempt' is not in emotion set 'mead7'"):
            writer.write_group([clip])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": "train.v2"}, ValueError, "field 'split'"),
        ({"max_samples": 0}, ValueError, "max_samples"),
        ({"max_bytes": -1}, ValueError, "max_bytes"),
        ({"fps": 0.0}, ValueError, "fps"),
        ({"sample_rate": 16000.5}, ValueError, "sample_rate"),
        ({"emotion_set": "no-such-set"}, KeyError, "no-such-set"),
        ({"emotion_set": ("neutral",)}, TypeError, "EmotionSet"),
    ],
)
def test_writer_arguments(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    args = {"split": "train", "emotion_set": MEAD, "fps": FPS, **kwargs}
    with pytest.raises(error, match=match):
        ShardWriter(tmp_path, args.pop("split"), args.pop("emotion_set"), **args)


# ----------------------------------------------------------------------------- index errors


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    with ShardWriter(tmp_path, "train", MEAD, fps=FPS, max_samples=3) as writer:
        writer.write_group(_good_group())
        writer.write_group([make_single("M003", "021", "fear", 4)])
    return tmp_path


def _edit_index(root: Path, edit) -> Path:
    path = index_path(root, "train")
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    return path


def test_index_names(tmp_path: Path) -> None:
    assert shard_name("train", 0) == "train-000000.tar"
    assert shard_name("val", 123456) == "val-123456.tar"
    assert index_path(tmp_path, "test") == tmp_path / "test-index.json"


def test_missing_index_lists_the_others(split_dir: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        read_index(split_dir, "val")
    assert "val-index.json: no index for split 'val'" in str(info.value)
    assert "train-index.json" in str(info.value)


def test_corrupt_index_json(split_dir: Path) -> None:
    path = index_path(split_dir, "train")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SchemaError, match="not valid JSON") as info:
        read_index(split_dir, "train")
    assert info.value.where == str(path)


@pytest.mark.parametrize("found", [1, 3, 0])
def test_schema_version_mismatch_fails_at_once(split_dir: Path, found: int) -> None:
    def edit(d: dict) -> None:
        d["schema_version"] = found
        del d["shards"]  # a future format may differ in anything: the version is read first

    path = _edit_index(split_dir, edit)
    with pytest.raises(SchemaVersionError) as info:
        read_index(split_dir, "train")
    assert (info.value.found, info.value.supported) == (found, 2)
    assert str(path) in str(info.value)
    assert f"schema_version {found} is not supported (this code reads version 2)" in str(
        info.value)


@pytest.mark.parametrize(
    ("edit", "field", "match"),
    [
        (lambda d: d.update(schema_version="1"), "schema_version", "expected an integer"),
        (lambda d: d.pop("schema_version"), "schema_version", "missing"),
        (lambda d: d.pop("fps"), "fps", "missing"),
        (lambda d: d.update(extra=1), "extra", "unknown field"),
        (lambda d: d.update(split="val"), "split", "expected 'train'"),
        (lambda d: d.update(fps=-1), "fps", "positive number"),
        (lambda d: d.update(sample_rate=True), "sample_rate", "positive integer"),
        (lambda d: d.update(num_samples=99), "num_samples", "add up to 4"),
        (lambda d: d.update(num_groups=0), "num_groups", "add up to 1"),
        (lambda d: d["shards"][0].update(name="train-0.tar"), "shards[0].name", "NNNNNN"),
        (lambda d: d["shards"][1].update(samples=0), "shards[1].samples", ">= 1"),
        (lambda d: d["shards"][1].pop("bytes"), "shards[1].bytes", "missing"),
        (lambda d: d["shards"][0].update(groups=9), "shards[0].groups", "only 3 samples"),
        (lambda d: d["shards"][0].update(frames=[4, 4]), "shards[0].frames", "3 integers"),
        (lambda d: d["shards"][1].update(frames=[0]), "shards[1].frames", ">= 1"),
        (lambda d: d["shards"].append(dict(d["shards"][0])), "shards", "listed twice"),
        (lambda d: d.update(shards={}), "shards", "expected a list"),
        (lambda d: d["emotion_set"].update(names=["neutral", "grumpy"]), "emotion_set", "grumpy"),
    ],
)
def test_invalid_index_fields_are_named(split_dir: Path, edit, field: str, match: str) -> None:
    path = _edit_index(split_dir, edit)
    with pytest.raises(SchemaError, match=match) as info:
        read_index(split_dir, "train")
    assert info.value.where == str(path) and info.value.field == field


def test_an_index_without_frame_counts_still_reads(split_dir: Path) -> None:
    frames = [s.frames for s in read_index(split_dir, "train").shards]
    assert frames == [(5, 6, 4), (4,)]  # _good_group() and the single clip
    _edit_index(split_dir, lambda d: [s.pop("frames") for s in d["shards"]])
    index = read_index(split_dir, "train")
    assert [s.frames for s in index.shards] == [None, None]
    assert "frames" not in index.to_json()["shards"][0]


def test_index_is_not_an_object(split_dir: Path) -> None:
    index_path(split_dir, "train").write_text("[1, 2]")
    with pytest.raises(SchemaError, match="expected a JSON object"):
        read_index(split_dir, "train")


# ----------------------------------------------------------------------------- damaged tars


def _member_offsets(path: Path) -> list[tuple[str, int, int]]:
    with tarfile.open(path) as tar:
        return [(m.name, m.offset, m.offset_data + m.size) for m in tar.getmembers()]


def test_truncated_tar_yields_complete_samples_then_fails(split_dir: Path) -> None:
    path = split_dir / "train-000000.tar"
    members = _member_offsets(path)
    # cut inside the data of the second sample's video (sample 1 = M003-angry-001)
    _, start, end = next(m for m in members if m[0] == "M003-angry-001.mp4")
    path.write_bytes(path.read_bytes()[: (start + end) // 2])
    seen = []
    with pytest.raises(ShardError) as info:
        for sample in iter_samples(path):
            seen.append(sample["__key__"])
    assert seen == ["M003-neutral-001"]  # the cut sample is not yielded
    assert info.value.shard == str(path) and info.value.key == "M003-neutral-001"
    assert str(info.value).startswith(f"{path}: truncated or corrupt")


def test_tar_cut_at_a_member_boundary_is_detected(split_dir: Path) -> None:
    path = split_dir / "train-000000.tar"
    members = _member_offsets(path)
    # cut right after the json of the last sample: tarfile alone would stop quietly here
    _, _, end = next(m for m in members if m[0] == "M003-happy-001.json")
    cut = -(-end // 512) * 512
    path.write_bytes(path.read_bytes()[:cut])
    seen = []
    with pytest.raises(ShardError, match="without the end-of-archive marker") as info:
        for sample in iter_samples(path):
            seen.append(sample["__key__"])
    assert seen == ["M003-neutral-001", "M003-angry-001"]
    assert info.value.key == "M003-angry-001"


def test_damaged_header_is_detected(split_dir: Path) -> None:
    path = split_dir / "train-000000.tar"
    members = _member_offsets(path)
    header = next(m for m in members if m[0] == "M003-angry-001.json")[1]
    data = bytearray(path.read_bytes())
    data[header + 10 : header + 20] = b"XXXXXXXXXX"  # breaks the header checksum
    path.write_bytes(bytes(data))
    seen = []
    with pytest.raises(ShardError, match="has a damaged header at byte") as info:
        for sample in iter_samples(path):
            seen.append(sample["__key__"])
    # the sample before the damage might have had more members: it is not yielded either
    assert seen == [] and info.value.key == ""


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "missing: no such file"), (b"", "not a readable tar"),
     (b"this is not a tar archive" * 40, "not a readable tar")],
)
def test_missing_or_foreign_file(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "train-000003.tar"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ShardError, match=match) as info:
        list(iter_samples(path))
    assert info.value.shard == str(path)


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_member_repeated_within_a_sample(tmp_path: Path) -> None:
    path = tmp_path / "x-000000.tar"
    _write_tar(path, [("a.json", b"{}"), ("a.mp4", b"1"), ("a.json", b"{}")])
    with pytest.raises(ShardError, match=r"member 'a\.json' appears twice in sample 'a'"):
        list(iter_samples(path))


def test_member_names_split_like_webdataset(tmp_path: Path) -> None:
    path = tmp_path / "x-000000.tar"
    _write_tar(path, [("k1.json", b"1"), ("k1.align.npy", b"2"), ("dir/k2.json", b"3"),
                      ("k3", b"4")])
    samples = list(iter_samples(path))
    assert [(s["__key__"], sorted(k for k in s if not k.startswith("__"))) for s in samples] == [
        ("k1", ["align.npy", "json"]), ("dir/k2", ["json"]), ("k3", [""])]


def test_group_problems_lists_every_problem() -> None:
    g = _good_group()
    assert group_problems(g) == []
    assert group_problems([make_single("M003", "021", "fear", 4)]) == []
    broken = [
        g[0],
        _with_meta(g[1], reference="M003-sad-001"),
        _with_arrays(g[2], align=ramp_path(3, 4)),
    ]
    assert group_problems(broken) == [
        ("M003-angry-001", "reference",
         "'M003-sad-001' differs from 'M003-neutral-001' of the other clips of group 'M003-001'"),
        ("M003-happy-001", "align.npy",
         "not a valid path from reference 'M003-neutral-001': path must end at (4, 3), ends at "
         "(2, 3)"),
    ]


def test_clip_problems_lists_every_problem() -> None:
    clip = make_single("M003", "021", "fear", 4)
    assert clip_problems(clip, MEAD, FPS, SR) == []
    bad = _with_arrays(_with_meta(clip, fps=30.0, emotion_id=0), landmarks=np.zeros((3, 2)),
                       pose=np.zeros(()))
    assert clip_problems(bad, MEAD, FPS, 22050) == [
        ("fps", "30 differs from the split's 25"),
        ("sample_rate", "16000 differs from the split's 22050"),
        ("emotion_id", "0 but 'fear' has id 4 in emotion set 'mead'"),
        ("landmarks.npy", "per-frame arrays need 4 rows (num_frames), got shape (3, 2)"),
        ("pose.npy", "per-frame arrays need 4 rows (num_frames), got shape ()"),
    ]
