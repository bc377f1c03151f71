"""The validator reports every problem of a split with its shard and key; the CLI exits 1."""

from __future__ import annotations

import io
import json
import runpy
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from decouple.data.align import dtw
from decouple.data.io import encode_audio, encode_video
from decouple.data.registry import MEAD
from decouple.data.schema import Clip, ClipMeta, make_key
from decouple.data.shards import ShardWriter, index_path, iter_samples
from decouple.data.validate import Problem, main, validate_shards

FPS, SR = 25.0, 16000
ROOT = Path(__file__).resolve().parents[2]


def _clip(speaker: str, sentence: str, emotion: str, frames: int, group: str, reference: str,
          ref_frames: int, seed: int) -> Clip:
    video = encode_video(torch.full((frames, 3, 16, 16), 30 + 10 * seed, dtype=torch.uint8), FPS,
                         preset="ultrafast")
    n = round(frames * SR / FPS)
    audio = encode_audio(0.3 * torch.sin(torch.arange(n) * (0.05 + 0.01 * seed)), SR)
    meta = ClipMeta("mead", speaker, emotion, MEAD.id(emotion), 1, sentence, group, FPS, SR,
                    frames, n, f"{speaker}/{emotion}/{sentence}.mp4", reference)
    arrays: dict[str, np.ndarray] = {"landmarks": np.zeros((frames, 5, 2), dtype=np.float32)}
    if group:
        path = dtw(torch.linspace(0, 1, ref_frames)[:, None], torch.linspace(0, 1, frames)[:, None],
                   metric="euclidean")
        arrays["align"] = path.numpy().astype(np.int32)
    return Clip(make_key(speaker, emotion, sentence), meta, video, audio, arrays)


def _group(speaker: str, sentence: str, emotions: list[str], frames: list[int],
           seed: int) -> list[Clip]:
    gid = make_key(speaker, sentence)
    ref = make_key(speaker, emotions[0], sentence)
    return [_clip(speaker, sentence, e, n, gid, ref, frames[0], seed + k)
            for k, (e, n) in enumerate(zip(emotions, frames, strict=True))]


def _single(speaker: str, sentence: str, emotion: str, frames: int, seed: int) -> list[Clip]:
    return [_clip(speaker, sentence, emotion, frames, "", "", frames, seed)]


# shard 0: G1 (3) + S1 | shard 1: G2 (2) + S2 | shard 2: G3 (3)
LAYOUT = [
    ["M003-neutral-001", "M003-angry-001", "M003-happy-001", "M003-fear-021"],
    ["M009-neutral-002", "M009-sad-002", "M009-surprised-022"],
    ["W015-neutral-003", "W015-disgusted-003", "W015-contempt-003"],
]


@pytest.fixture(scope="module")
def base_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base")
    with ShardWriter(root, "train", MEAD, fps=FPS, sample_rate=SR, max_samples=4) as writer:
        writer.write_group(_group("M003", "001", ["neutral", "angry", "happy"], [5, 6, 4], 0))
        writer.write_group(_single("M003", "021", "fear", 5, 3))
        writer.write_group(_group("M009", "002", ["neutral", "sad"], [6, 5], 4))
        writer.write_group(_single("M009", "022", "surprised", 6, 6))
        writer.write_group(_group("W015", "003", ["neutral", "disgusted", "contempt"],
                                  [4, 5, 6], 7))
    return root


@pytest.fixture
def split(base_split: Path, tmp_path: Path) -> Path:
    root = tmp_path / "shards"
    shutil.copytree(base_split, root)
    return root


Samples = list[dict]


def rewrite(root: Path, number: int, edit: Callable[[Samples], Samples | None], *,
            fix_index: bool = True) -> None:
    """Rewrite shard `number` with edited samples (in order); keep the index consistent with
    the new file size (and sample count) unless told otherwise, so only the planted problem
    shows."""
    path = root / f"train-{number:06d}.tar"
    samples = list(iter_samples(path))
    out = edit(samples)
    samples = out if isinstance(out, list) else samples
    with tarfile.open(path, "w") as tar:
        for s in samples:
            for ext, data in s.items():
                if ext.startswith("__"):
                    continue
                info = tarfile.TarInfo(f"{s['__key__']}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if fix_index:
        index = index_path(root, "train")
        d = json.loads(index.read_text())
        d["shards"][number]["bytes"] = path.stat().st_size
        d["shards"][number].pop("frames")  # optional; the edit may change the samples
        index.write_text(json.dumps(d))


def edit_meta(sample: dict, **over) -> None:
    d = json.loads(sample["json"])
    d.update(over)
    sample["json"] = json.dumps(d).encode()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def by_key(samples: Samples, key: str) -> dict:
    return next(s for s in samples if s["__key__"] == key)


# ----------------------------------------------------------------------------- valid split


def test_layout_of_the_fixture(split: Path) -> None:
    keys = [[s["__key__"] for s in iter_samples(split / f"train-{n:06d}.tar")] for n in range(3)]
    assert keys == LAYOUT


@pytest.mark.parametrize("decode", [False, True])
def test_valid_split_has_no_problem(split: Path, decode: bool) -> None:
    assert validate_shards(split, "train", decode=decode) == []


def test_main_prints_ok_and_returns_0(split: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(split), "train", "--decode"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"ok: split 'train' of {split}: 10 samples, 3 groups in 3 shards")


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy re-runs it
def test_module_entry_point_exits_0(split: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", ["validate", str(split), "train"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("decouple.data.validate", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("ok: split 'train'")


def test_cli_prints_every_problem_and_exits_1(split: Path) -> None:
    (split / "train-000001.tar").unlink()
    rewrite(split, 2, lambda s: edit_meta(by_key(s, "W015-contempt-003"), fps=30.0))
    cmd = [sys.executable, "-m", "decouple.data.validate", str(split), "train"]
    bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stderr
    lines = bad.stdout.strip().splitlines()
    assert lines == [
        "train-000001.tar: missing: listed in the index but not on disk",
        "train-000002.tar:W015-contempt-003: field 'fps': 30 differs from the split's 25",
        f"2 problems in split 'train' of {split}",
    ]


# ----------------------------------------------------------------------------- files


def test_missing_shard(split: Path) -> None:
    (split / "train-000001.tar").unlink()
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "", "missing: listed in the index but not on disk")]


def test_truncated_shard_and_a_problem_elsewhere_are_both_reported(split: Path) -> None:
    path = split / "train-000000.tar"
    path.write_bytes(path.read_bytes()[:5000])
    rewrite(split, 2, lambda s: edit_meta(by_key(s, "W015-neutral-003"), emotion_id=5))
    problems = validate_shards(split, "train")
    shards = [p.shard for p in problems]
    assert shards.count("train-000000.tar") == 2
    assert problems[0] == Problem("train-000000.tar", "", f"5000 bytes on disk, the index says "
                                  f"{problems[0].message.split()[-1]}")
    assert problems[1].shard == "train-000000.tar" and problems[1].key == ""
    assert problems[1].message.startswith("truncated or corrupt")
    planted = Problem("train-000002.tar", "W015-neutral-003",
                      "field 'emotion_id': 5 but 'neutral' has id 0 in emotion set 'mead'")
    assert planted in problems
    assert len(problems) == 3


def test_unlisted_shard_and_leftover_temporary_file(split: Path) -> None:
    shutil.copy(split / "train-000002.tar", split / "train-000003.tar")
    (split / ".train-000004.tar.abc123.tmp").write_bytes(b"partial")
    (split / "val-000000.tar").write_bytes(b"another split: not ours to check")
    assert validate_shards(split, "train") == [
        Problem("train-000003.tar", "", "shard file is not listed in the index (left from "
                                        "another run?)"),
        Problem(".train-000004.tar.abc123.tmp", "", "temporary file left by an interrupted write"),
    ]


def test_size_and_count_mismatch_with_the_index(split: Path) -> None:
    index = index_path(split, "train")
    d = json.loads(index.read_text())
    d["shards"][1]["samples"] = 4
    d["shards"][1].pop("frames")  # optional; a list of 3 frame counts would not match 4 samples
    d["shards"][1]["groups"] = 2
    d["num_samples"] += 1
    d["num_groups"] += 1
    d["shards"][2]["bytes"] += 512
    index.write_text(json.dumps(d))
    size = (split / "train-000002.tar").stat().st_size
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "", "3 samples, the index says 4"),
        Problem("train-000001.tar", "", "1 groups, the index says 2"),
        Problem("train-000002.tar", "", f"{size} bytes on disk, the index says {size + 512}"),
    ]


# ----------------------------------------------------------------------------- index


def test_schema_version_mismatch_is_the_only_problem(split: Path) -> None:
    index = index_path(split, "train")
    d = json.loads(index.read_text())
    d["schema_version"] = 1
    index.write_text(json.dumps(d))
    (split / "train-000001.tar").unlink()  # not looked at: nothing can be trusted
    problems = validate_shards(split, "train")
    assert len(problems) == 1
    assert problems[0].shard == "train-index.json" and problems[0].key == ""
    assert problems[0].message.startswith(
        "schema_version 1 is not supported (this code reads version 2)")


def test_corrupt_or_missing_index(split: Path) -> None:
    index = index_path(split, "train")
    index.write_text('{"schema_version": 2, "split": ')
    [problem] = validate_shards(split, "train")
    assert problem.shard == "train-index.json" and problem.message.startswith("not valid JSON")
    index.unlink()
    assert validate_shards(split, "train") == [
        Problem("train-index.json", "", "no index for split 'train' (index files there: none)")]


# ----------------------------------------------------------------------------- samples


def test_corrupt_json(split: Path) -> None:
    def edit(samples: Samples) -> None:
        by_key(samples, "M009-surprised-022")["json"] = b'{"dataset": "mead", "speak'

    rewrite(split, 1, edit)
    [problem] = validate_shards(split, "train")
    assert (problem.shard, problem.key) == ("train-000001.tar", "M009-surprised-022")
    assert problem.message.startswith("field 'json': not valid JSON")


def test_every_problem_of_a_sample_is_reported(split: Path) -> None:
    def edit(samples: Samples) -> None:
        s = by_key(samples, "M003-fear-021")
        del s["flac"]
        s["txt"] = b"notes"
        s["pose.npy"] = b"garbage"
        edit_meta(s, emotion="calm", fps=30.0, sample_rate=22050)

    rewrite(split, 0, edit)
    problems = validate_shards(split, "train")
    assert all((p.shard, p.key) == ("train-000000.tar", "M003-fear-021") for p in problems)
    messages = [p.message for p in problems]
    assert messages[0] == "field 'flac': missing member M003-fear-021.flac"
    assert messages[1] == ("field 'txt': unknown member M003-fear-021.txt (expected json, mp4, "
                           "flac, NAME.npy or NAME.json)")
    assert messages[2].startswith("field 'pose.npy': not a valid .npy array without pickle")
    assert messages[3:] == [
        "field 'fps': 30 differs from the split's 25",
        "field 'sample_rate': 22050 differs from the split's 16000",
        "field 'emotion': 'calm' is not in emotion set 'mead' " + str(list(MEAD.names)),
    ]


def test_invalid_metadata_field(split: Path) -> None:
    rewrite(split, 0, lambda s: edit_meta(by_key(s, "M003-angry-001"), num_frames=0))
    assert validate_shards(split, "train") == [
        Problem("train-000000.tar", "M003-angry-001", "field 'num_frames': expected an integer "
                                                      ">= 1, got 0")]


def test_pickled_array_is_reported_not_loaded(split: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    rewrite(split, 1, lambda s: by_key(s, "M009-sad-002").update({"landmarks.npy": buf.getvalue()}))
    [problem] = validate_shards(split, "train")
    assert problem.key == "M009-sad-002" and "field 'landmarks.npy'" in problem.message
    assert "without pickle" in problem.message


def test_per_frame_array_rows(split: Path) -> None:
    rewrite(split, 1, lambda s: by_key(s, "M009-sad-002").update(
        {"landmarks.npy": npy(np.zeros((3, 5, 2)))}))
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M009-sad-002",
                "field 'landmarks.npy': per-frame arrays need 5 rows (num_frames), got shape "
                "(3, 5, 2)")]


def test_duplicate_key_across_shards(split: Path) -> None:
    def edit(samples: Samples) -> Samples:
        extra = dict(samples[-1])
        extra["__key__"] = "M003-fear-021"  # already in shard 0
        return [*samples, extra]

    rewrite(split, 1, edit, fix_index=False)
    index = index_path(split, "train")
    d = json.loads(index.read_text())
    d["shards"][1].update(samples=4, bytes=(split / "train-000001.tar").stat().st_size)
    d["shards"][1].pop("frames")  # optional; the rewritten shard has one sample more
    d["num_samples"] += 1
    index.write_text(json.dumps(d))
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M003-fear-021",
                "duplicate key (first seen in train-000000.tar)")]


def test_invalid_key(split: Path) -> None:
    def edit(samples: Samples) -> None:
        by_key(samples, "M009-surprised-022")["__key__"] = "M009 surprised"

    rewrite(split, 1, edit)
    [problem] = validate_shards(split, "train")
    assert problem.key == "M009 surprised" and problem.message.startswith("field 'key'")


# ----------------------------------------------------------------------------- groups


def test_bad_align_path(split: Path) -> None:
    bad = np.array([[0, 0], [1, 1], [3, 2], [3, 3], [3, 4]], dtype=np.int32)
    rewrite(split, 2, lambda s: by_key(s, "W015-disgusted-003").update({"align.npy": npy(bad)}))
    assert validate_shards(split, "train") == [
        Problem("train-000002.tar", "W015-disgusted-003",
                "field 'align.npy': not a valid path from reference 'W015-neutral-003': step 2 "
                "goes from (1, 1) to (3, 2); allowed steps are (1, 0), (0, 1), (1, 1)")]


def test_align_out_of_range_and_wrong_dtype(split: Path) -> None:
    path = dtw(torch.linspace(0, 1, 4)[:, None], torch.linspace(0, 1, 7)[:, None],
               metric="euclidean").numpy()  # int64, and 7 frames where the clip has 6
    rewrite(split, 2, lambda s: by_key(s, "W015-contempt-003").update({"align.npy": npy(path)}))
    assert validate_shards(split, "train") == [
        Problem("train-000002.tar", "W015-contempt-003",
                "field 'align.npy': dtype int64, expected int32"),
        Problem("train-000002.tar", "W015-contempt-003",
                "field 'align.npy': not a valid path from reference 'W015-neutral-003': path "
                "must end at (3, 5), ends at (3, 6)"),
    ]


def test_missing_align_in_a_group(split: Path) -> None:
    rewrite(split, 1, lambda s: by_key(s, "M009-sad-002").pop("align.npy"))
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M009-sad-002", "field 'align.npy': missing; every clip of "
                                                    "a group of 2 needs one")]


def test_align_on_a_clip_without_group(split: Path) -> None:
    path = npy(np.stack([np.arange(6)] * 2, axis=1).astype(np.int32))
    rewrite(split, 1, lambda s: by_key(s, "M009-surprised-022").update({"align.npy": path}))
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M009-surprised-022",
                "field 'align.npy': a clip without a group has no alignment")]


def test_reference_outside_the_group(split: Path) -> None:
    def edit(samples: Samples) -> None:
        for key in ("M009-neutral-002", "M009-sad-002"):
            edit_meta(by_key(samples, key), reference="M009-happy-002")

    rewrite(split, 1, edit)
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M009-neutral-002",
                "field 'reference': 'M009-happy-002' is not a clip of group 'M009-002' (clips: "
                "['M009-neutral-002', 'M009-sad-002'])")]


def test_mixed_references_in_a_group(split: Path) -> None:
    rewrite(split, 0, lambda s: edit_meta(by_key(s, "M003-happy-001"),
                                          reference="M003-angry-001"))
    problems = validate_shards(split, "train")
    assert problems[0] == Problem(
        "train-000000.tar", "M003-happy-001",
        "field 'reference': 'M003-angry-001' differs from 'M003-neutral-001' of the other clips "
        "of group 'M003-001'")
    assert len(problems) == 1  # its align path is still checked against the group's reference


def test_group_split_across_shards(split: Path) -> None:
    moved: list[dict] = []

    def take(samples: Samples) -> Samples:
        moved.append(by_key(samples, "M003-happy-001"))
        return [s for s in samples if s["__key__"] != "M003-happy-001"]

    def put(samples: Samples) -> Samples:
        return [moved[0], *samples]

    rewrite(split, 0, take, fix_index=False)
    rewrite(split, 1, put, fix_index=False)
    index = index_path(split, "train")
    d = json.loads(index.read_text())
    for n, delta, groups in ((0, -1, 1), (1, 1, 2)):
        d["shards"][n].update(samples=d["shards"][n]["samples"] + delta, groups=groups,
                              bytes=(split / f"train-{n:06d}.tar").stat().st_size)
        d["shards"][n].pop("frames")  # optional; a clip moved between the shards
    d["num_groups"] = 4
    index.write_text(json.dumps(d))
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M003-happy-001",
                "group 'M003-001' is not contiguous: it also appears earlier, in "
                "train-000000.tar (a group is written whole, in one shard)"),
        # the stray part is checked as a group of its own: its reference is elsewhere
        Problem("train-000001.tar", "M003-happy-001",
                "field 'reference': 'M003-neutral-001' is not a clip of group 'M003-001' "
                "(clips: ['M003-happy-001'])"),
    ]


def test_group_interrupted_within_a_shard(split: Path) -> None:
    def edit(samples: Samples) -> Samples:
        order = ["M003-neutral-001", "M003-fear-021", "M003-angry-001", "M003-happy-001"]
        return [by_key(samples, k) for k in order]

    rewrite(split, 0, edit)
    problems = validate_shards(split, "train")
    assert problems[0] == Problem(
        "train-000000.tar", "M003-angry-001",
        "group 'M003-001' is not contiguous: it also appears earlier, in train-000000.tar (a "
        "group is written whole, in one shard)")


# ----------------------------------------------------------------------------- decoding


def test_decode_checks_frames_samples_and_decodability(split: Path) -> None:
    def edit(samples: Samples) -> None:
        edit_meta(by_key(samples, "M009-surprised-022"), num_frames=7, num_samples=9999)
        by_key(samples, "M009-neutral-002")["mp4"] = b"\x00\x00\x00\x18ftypmp42 broken"
        by_key(samples, "M009-sad-002")["flac"] = b"fLaC and then nothing"

    rewrite(split, 1, edit)
    # without decoding, nothing of this is visible except the per-frame array rows
    assert validate_shards(split, "train") == [
        Problem("train-000001.tar", "M009-surprised-022",
                "field 'landmarks.npy': per-frame arrays need 7 rows (num_frames), got shape "
                "(6, 5, 2)")]
    problems = validate_shards(split, "train", decode=True)
    keyed = [(p.key, p.message) for p in problems]
    assert keyed[0][0] == "M009-neutral-002"
    assert keyed[0][1].startswith("video cannot be decoded (train-000001.tar:M009-neutral-002")
    assert keyed[1][0] == "M009-sad-002"
    assert keyed[1][1].startswith("audio cannot be decoded (train-000001.tar:M009-sad-002")
    assert keyed[2:] == [
        ("M009-surprised-022",
         "field 'landmarks.npy': per-frame arrays need 7 rows (num_frames), got shape (6, 5, 2)"),
        ("M009-surprised-022", "video has 6 frames, field 'num_frames' says 7"),
        ("M009-surprised-022", "audio has 3840 samples, field 'num_samples' says 9999"),
    ]
    assert all(p.shard == "train-000001.tar" for p in problems)


def test_problem_str() -> None:
    assert str(Problem("a-000000.tar", "k", "bad")) == "a-000000.tar:k: bad"
    assert str(Problem("a-000000.tar", "", "bad")) == "a-000000.tar: bad"


def test_index_frames_must_match_the_metadata(split: Path) -> None:
    index = index_path(split, "train")
    d = json.loads(index.read_text())
    frames = d["shards"][1]["frames"]
    assert frames == [6, 5, 6]  # G2 (6, 5) + S2 (6), from the metadata
    d["shards"][1]["frames"] = [6, 7, 6]
    index.write_text(json.dumps(d))
    problems = validate_shards(split, "train")
    assert [(p.shard, p.key) for p in problems] == [("train-000001.tar", "M009-sad-002")]
    assert problems[0].message.startswith("field 'num_frames' says 5, the index's 'frames' "
                                          "list says 7")


def test_an_extra_that_is_not_a_json_object_is_reported(split: Path) -> None:
    def edit(samples: Samples) -> None:
        samples[0]["params.json"] = b"[1, 2]"
        samples[1]["notes.json"] = b"\xff"

    rewrite(split, 0, edit)
    messages = [(p.key, p.message) for p in validate_shards(split, "train")]
    assert messages == [
        ("M003-neutral-001", "field 'params.json': expected a JSON object, got list"),
        ("M003-angry-001", messages[1][1]),
    ]
    assert messages[1][1].startswith("field 'notes.json': not valid UTF-8 JSON")
