"""Corpus converters on fake MEAD / RAVDESS / CREMA-D trees with real encoded media.

The trees (tests/data/fake_corpora.py) carry the layout quirks: missing audio, an extra path
level, a corrupt file, neutral at level 1 only, an actor missing a view, audio-only and
video-only files. Every conversion is checked by reading the shards back (index, raw samples,
the validator with decoding, ShardDataset), against the hand-counted expectations listed in
the tree builders' docstrings.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import fake_corpora as fc
import numpy as np
import pytest
import torch

from decouple.data.align import check_path, path_to_index
from decouple.data.convert import ConvertOptions, convert
from decouple.data.convert import common as convert_common
from decouple.data.convert.__main__ import main
from decouple.data.convert.common import (
    STATE_FILE,
    SUMMARY_FILE,
    ClipSource,
    Skip,
    run_conversion,
)
from decouple.data.convert.cremad import parse_cremad_name, scan_cremad
from decouple.data.convert.mead import load_mapping, parse_mead_path, scan_mead
from decouple.data.convert.ravdess import parse_ravdess_name, scan_ravdess
from decouple.data.io import read_audio, read_video
from decouple.data.pipeline import ShardDataset
from decouple.data.registry import CREMAD, MEAD, MEAD_SPFEM, RAVDESS
from decouple.data.schema import Clip
from decouple.data.shards import iter_samples, read_index
from decouple.data.validate import validate_shards

FPS, SR = 25.0, 16000
FAST = {"face": "fixed", "size": 32, "preset": "ultrafast", "progress": False}


def _opts(**kw: object) -> ConvertOptions:
    return ConvertOptions(**{**FAST, **kw})  # type: ignore[arg-type]


def _clips(out: Path, split: str) -> list[Clip]:
    index = read_index(out, split)
    return [Clip.from_members(s["__key__"], s, s["__key__"]) for p in index.paths
            for s in iter_samples(p)]


def _check_split(out: Path, split: str, clips: int, groups: int) -> list[Clip]:
    index = read_index(out, split)
    assert (index.num_samples, index.num_groups) == (clips, groups)
    assert validate_shards(out, split, decode=True) == []
    found = _clips(out, split)
    assert len(found) == clips
    return found


def _reasons(summary: dict) -> dict[str, int]:
    return summary["skipped_by_reason"]


def _dominant_hz(wave: torch.Tensor, start: float, stop: float) -> float:
    seg = wave[round(start * SR) : round(stop * SR)].double()
    spectrum = torch.fft.rfft(seg * torch.hann_window(seg.shape[0], dtype=torch.float64)).abs()
    return float(spectrum.argmax()) * SR / seg.shape[0]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mead_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fc.make_mead(tmp_path_factory.mktemp("mead"))


@pytest.fixture(scope="module")
def mead_out(mead_src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mead_out")
    return out, convert("mead", mead_src, out, _opts())


@pytest.fixture(scope="module")
def ravdess_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fc.make_ravdess(tmp_path_factory.mktemp("ravdess"))


@pytest.fixture(scope="module")
def cremad_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fc.make_cremad(tmp_path_factory.mktemp("cremad"))


@pytest.fixture(scope="module")
def cremad_out(cremad_src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cremad_out")
    return out, convert("cremad", cremad_src, out, _opts())


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("path", "expected"), [
    ("M003/video/front/angry/level_3/001.mp4", ("M003", "video", "front", "angry", 3, "001")),
    ("MEAD/part1/M005/video/video/front/sad/level_1/021.mp4",
     ("M005", "video", "front", "sad", 1, "021")),
    ("W015/video/left_30/neutral/level_1/extra/7.mp4",
     ("W015", "video", "left_30", "neutral", 1, "007")),
    ("M012/audio/surprised/Level2/030.m4a", ("M012", "audio", "", "surprised", 2, "030")),
])  # fmt: skip
def test_mead_paths_are_parsed_from_the_end(path: str, expected: tuple) -> None:
    f = parse_mead_path(path)
    assert (f.actor, f.modality, f.view, f.emotion, f.level, f.clip) == expected


@pytest.mark.parametrize(("path", "message"), [
    ("M003/video/front/angry/001.mp4", "no 'level_<k>' folder"),
    ("M003/video/front/bored/level_1/001.mp4", "'bored' is not an emotion folder"),
    ("M003/front/angry/level_1/001.mp4", "no 'video' or 'audio' folder"),
    ("video/front/angry/level_1/001.mp4", "no actor folder"),
    ("M003/video/angry/level_1/001.mp4", "no camera view folder"),
    ("M003/video/front/angry/level_1/take1.mp4", "clip number"),
])  # fmt: skip
def test_mead_path_errors_name_the_path_and_the_part(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_mead_path(path)
    assert str(info.value).startswith(path)


def test_ravdess_and_cremad_names() -> None:
    r = parse_ravdess_name("x/Actor_07/02-02-08-02-02-01-07.mp4")
    assert (r.modality, r.vocal, r.emotion, r.intensity, r.statement, r.repetition, r.actor) == (
        "02", "song", "surprised", 2, "02", "01", "07")
    assert [parse_ravdess_name(f"01-01-{c}-01-01-01-01.mp4").emotion
            for c in ("01", "02", "06", "07")] == ["neutral", "calm", "fear", "disgusted"]
    for name, field in (("04-01-01-01-01-01-01.mp4", "modality"),
                        ("01-01-01-03-01-01-01.mp4", "intensity"),
                        ("01-01-01-01-03-01-01.mp4", "statement")):
        with pytest.raises(ValueError, match=f"{name}: field '{field}'"):
            parse_ravdess_name(name)
    c = parse_cremad_name("VideoFlash/1091_wsi_fea_md.flv")
    assert (c.actor, c.sentence, c.emotion, c.level, c.intensity) == ("1091", "WSI", "fear",
                                                                      "MD", 2)
    assert [parse_cremad_name(f"1001_DFA_NEU_{lv}.flv").intensity
            for lv in ("LO", "MD", "HI", "XX")] == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="field 'sentence'"):
        parse_cremad_name("1001_ABC_NEU_XX.flv")
    with pytest.raises(ValueError, match="field 'level'"):
        parse_cremad_name("1001_DFA_NEU_ZZ.flv")


def test_mapping_file_is_validated(tmp_path: Path) -> None:
    f = tmp_path / "map.json"
    f.write_text(json.dumps({"M003": {"neutral/level_1/31": "s31", "Sad/021": "s31", "5": "x"}}))
    assert load_mapping(f) == {"M003": {"neutral/level_1/031": "s31", "sad/021": "s31",
                                        "005": "x"}}
    for bad, field in (({"M003": {"angry/021": "s 31"}}, "M003.angry/021"),
                       ({"M003": {"bored/021": "s31"}}, "M003.bored/021"),
                       ({"M003": ["021"]}, "'M003'")):
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=str(f)) as info:
            load_mapping(f)
        assert field in str(info.value)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_mapping(f)


# ----------------------------------------------------------------------------- MEAD

MEAD_KEYS = {
    "mead-M003-neutral-1-001", "mead-M003-neutral-1-002", "mead-M003-neutral-1-035",
    "mead-M003-angry-1-001", "mead-M003-angry-1-028", "mead-M003-angry-3-001",
    "mead-M003-happy-2-001", "mead-M003-contempt-1-001",
    "mead-M005-neutral-1-001", "mead-M005-neutral-1-031", "mead-M005-sad-1-001",
    "mead-M005-sad-1-021",
}  # fmt: skip
M003_GROUP = {"mead-M003-neutral-1-001", "mead-M003-angry-1-001", "mead-M003-angry-3-001",
              "mead-M003-happy-2-001", "mead-M003-contempt-1-001"}


def test_mead_conversion_writes_the_expected_clips_and_groups(mead_out: tuple[Path, dict]
                                                              ) -> None:
    out, summary = mead_out
    index = read_index(out, "all")
    assert index.emotion_set == MEAD and index.fps == FPS and index.sample_rate == SR
    clips = _check_split(out, "all", 12, 2)
    by_key = {c.key: c for c in clips}
    assert set(by_key) == MEAD_KEYS
    for c in clips:
        _, actor, emotion, level, number = c.key.split("-")
        m = c.meta
        assert (m.dataset, m.speaker, m.emotion, m.intensity) == ("mead", actor, emotion,
                                                                  int(level))
        assert m.emotion_id == MEAD.names.index(emotion)
        assert m.source.endswith(f"front/{emotion}/level_{level}/{number}.mp4")
        frames = read_video(c.video)
        assert frames.frames.shape[1:] == (3, 32, 32) and frames.num_frames == m.num_frames
        # every 25 fps frame time inside the 30 fps clip: ceil(t * 25 / 30)
        assert m.num_frames == math.ceil(fc.num_frames(emotion) * FPS / fc.SRC_FPS - 1e-9)
        assert m.num_samples == round(m.num_frames * SR / FPS)
    groups = {}
    for c in clips:
        groups.setdefault(c.meta.group, set()).add(c.key)
    assert groups.pop("mead-M003-001") == M003_GROUP
    assert groups.pop("mead-M005-001") == {"mead-M005-neutral-1-001", "mead-M005-sad-1-001"}
    assert groups == {"": MEAD_KEYS - M003_GROUP - {"mead-M005-neutral-1-001",
                                                    "mead-M005-sad-1-001"}}
    # Groups: contiguous, the neutral reference first, an align path to every member.
    order = [c.key for c in clips]
    for gid in ("mead-M003-001", "mead-M005-001"):
        at = [i for i, c in enumerate(clips) if c.meta.group == gid]
        assert at == list(range(at[0], at[0] + len(at)))
        assert order[at[0]] == clips[at[0]].meta.reference
    for c in clips:
        if c.meta.group:
            ref = by_key[c.meta.reference]
            assert ref.meta.emotion == "neutral" and ref.meta.group == c.meta.group
            assert c.arrays["align"].dtype == np.int32
            check_path(c.arrays["align"], ref.meta.num_frames, c.meta.num_frames)
        else:
            assert c.meta.reference == "" and "align" not in c.arrays
            number = c.key[-3:]  # 001-003 keep their shared sentence id even alone
            shared = number in ("001", "002", "003")
            assert c.meta.sentence == (number if shared else f"{c.meta.emotion}-{number}")
    ref = by_key["mead-M003-neutral-1-001"]
    assert np.array_equal(ref.arrays["align"], np.stack([np.arange(ref.meta.num_frames)] * 2, 1))
    assert {by_key[k].meta.sentence for k in M003_GROUP} == {"001"}

    assert _reasons(summary) == {"unparsable path": 1, "missing audio": 1,
                                 "missing video": 2, "unreadable video": 1}
    skipped = {s["source"]: s["reason"] for s in summary["skipped"]}
    assert skipped["M003/video/front/angry/level_1/002.mp4"] == "missing audio"
    assert skipped["batch2/M005/video/video/front/angry/level_2/001.mp4"] == "unreadable video"
    assert skipped["W015/audio/neutral/level_1/001.m4a"] == "missing video"
    assert summary["events"] == {convert_common.EVENT_AUDIO_FROM_STREAM: 1}
    assert any(n.startswith("W015: no 'front' videos") for n in summary["notes"])
    assert (summary["clips_written"], summary["groups_written"], summary["clips_converted"],
            summary["clips_skipped"]) == (12, 2, 12, 5)
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary


def test_mead_audio_comes_from_the_m4a_or_the_stream(mead_out: tuple[Path, dict]) -> None:
    out, _ = mead_out
    by_key = {c.key: c for c in _clips(out, "all")}
    for key in ("mead-M003-angry-1-001", "mead-M003-angry-3-001"):  # m4a / the mp4's stream
        wave = read_audio(by_key[key].audio, sample_rate=None).waveform
        d = fc.durations("angry")
        middles = [sum(d[:i]) + d[i] / 2 for i in range(3)]
        found = [_dominant_hz(wave, t - 0.04, t + 0.04) for t in middles]
        assert found == pytest.approx(fc.FREQS, rel=0.05)


def test_mead_alignment_follows_the_time_warp(mead_out: tuple[Path, dict]) -> None:
    out, _ = mead_out
    by_key = {c.key: c for c in _clips(out, "all")}
    for key in ("mead-M003-angry-1-001", "mead-M003-happy-2-001"):
        clip, ref = by_key[key], by_key["mead-M003-neutral-1-001"]
        n_ref, n = ref.meta.num_frames, clip.meta.num_frames
        matched = path_to_index(torch.from_numpy(clip.arrays["align"]), n_ref).numpy()
        truth = np.array([min(n - 1, fc.warp_time(i / FPS, "neutral", clip.meta.emotion) * FPS)
                          for i in range(n_ref)])
        linear = np.arange(n_ref) * (n - 1) / (n_ref - 1)
        dtw_error = np.abs(matched - truth).mean()
        assert dtw_error < 1.5
        assert dtw_error < np.abs(linear - truth).mean()


def test_mead_reads_back_through_shard_dataset(mead_out: tuple[Path, dict]) -> None:
    out, _ = mead_out
    groups = list(ShardDataset(out, "all", batch_size=1, unit="group", features=None,
                               shuffle=False))
    assert sorted(len(g["clips"]) for g in groups) == [2, 5]
    samples = list(ShardDataset(out, "all", batch_size=1, window=8, shuffle=False))
    assert len(samples) == 12
    assert sorted(s["key"] for s in samples) == sorted(MEAD_KEYS)
    for s in samples:
        assert s["emotion"] == MEAD.id(s["key"].split("-")[2])
        assert s["video"].shape == (8, 3, 32, 32) and s["features"].shape[0] == 8


def test_mead_mapping_pairs_the_listed_sentences(mead_src: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"M005": {"neutral/031": "p31", "sad/level_1/021": "p31"}}))
    plan = scan_mead(mead_src, mapping=mapping)
    units = {u.uid: [c.key for c in u.clips] for u in plan.units}
    assert units["mead-M005-p31"] == ["mead-M005-neutral-1-031", "mead-M005-sad-1-021"]
    assert [u.group for u in plan.units if len(u.clips) > 1] == [
        "mead-M003-001", "mead-M003-002", "mead-M005-001", "mead-M005-p31"]
    assert {c.sentence for u in plan.units if u.uid == "mead-M005-p31" for c in u.clips} == {
        "p31"}
    no_map = scan_mead(mead_src)
    assert "mead-M005-p31" not in {u.uid for u in no_map.units}
    assert no_map.params["mapping"] is None and plan.params["mapping"] is not None


def test_mead_official_split(mead_src: Path, tmp_path: Path) -> None:
    summary = convert("mead", mead_src, tmp_path, _opts(), split="official")
    test = {c.key for c in _check_split(tmp_path, "test", 3, 0)}
    assert test == {"mead-M003-neutral-1-035", "mead-M003-angry-1-028",
                    "mead-M005-neutral-1-031"}
    train = _check_split(tmp_path, "train", 9, 2)
    assert {c.key for c in train} == MEAD_KEYS - test
    assert summary["splits"] == {"test": {"clips": 3, "groups": 0, "shards": 1},
                                 "train": {"clips": 9, "groups": 2, "shards": 1}}
    # A mapped group that straddles the split is cut along it (no sentence leaks).
    mapping = {"M005": {"neutral/031": "p31", "sad/021": "p31"}}
    plan = scan_mead(mead_src, split="official", mapping=mapping)
    where = {c.key: (u.split, u.group) for u in plan.units for c in u.clips}
    assert where["mead-M005-neutral-1-031"] == ("test", "")
    assert where["mead-M005-sad-1-021"] == ("train", "")
    plan = scan_mead(mead_src, split="official", official_last=(0, 30))
    keys = {c.key: u.split for u in plan.units for c in u.clips}
    assert len(keys) == 14  # the 12 written + 2 found unusable when processed
    assert all((split == "test") == ("neutral" not in k) for k, split in keys.items())


def test_mead_spfem_split_with_seven_emotions(mead_src: Path, tmp_path: Path) -> None:
    summary = convert("mead", mead_src, tmp_path, _opts(), split="spfem", emotion_set="mead7")
    test = _check_split(tmp_path, "test", 7, 1)
    train = _check_split(tmp_path, "train", 4, 1)
    assert read_index(tmp_path, "test").emotion_set == MEAD_SPFEM
    assert {c.meta.speaker for c in test} == {"M003"}
    assert {c.meta.speaker for c in train} == {"M005"}
    for c in test + train:
        assert c.meta.emotion_id == MEAD_SPFEM.id(c.meta.emotion)
    assert "mead-M003-contempt-1-001" not in {c.key for c in test}
    assert _reasons(summary)["emotion not in the emotion set"] == 1
    # The other view brings W015 in (both of its clips; it is a SPFEM test actor).
    plan = scan_mead(mead_src, view="left_30", split="spfem")
    assert {(c.speaker, u.split) for u in plan.units for c in u.clips} == {("W015", "test"),
                                                                           ("M003", "test")}


# ----------------------------------------------------------------------------- RAVDESS


def test_ravdess_conversion(ravdess_src: Path, tmp_path: Path) -> None:
    summary = convert("ravdess", ravdess_src, tmp_path, _opts())
    assert read_index(tmp_path, "all").emotion_set == RAVDESS
    clips = {c.key: c for c in _check_split(tmp_path, "all", 6, 2)}
    assert set(clips) == {
        "ravdess-01-speech-neutral-1-s01-r01", "ravdess-01-speech-calm-2-s01-r01",
        "ravdess-01-speech-happy-1-s01-r01", "ravdess-01-speech-angry-1-s02-r01",
        "ravdess-02-speech-neutral-1-s01-r01", "ravdess-02-speech-happy-2-s01-r01",
    }  # fmt: skip
    calm = clips["ravdess-01-speech-calm-2-s01-r01"]
    assert (calm.meta.emotion_id, calm.meta.intensity, calm.meta.sentence) == (1, 2, "01")
    assert calm.meta.group == "ravdess-01-speech-s01-r01"
    assert calm.meta.reference == "ravdess-01-speech-neutral-1-s01-r01"
    assert calm.meta.source == "Actor_01/02-01-02-02-01-01-01.mp4"  # video only ...
    wave = read_audio(calm.audio, sample_rate=None).waveform  # ... audio from the 03 wav
    first = fc.durations("calm")[0] / 2
    assert _dominant_hz(wave, first - 0.05, first + 0.05) == pytest.approx(330 * 1.1, rel=0.03)
    happy = clips["ravdess-01-speech-happy-1-s01-r01"]
    assert happy.meta.source == "Actor_01/01-01-03-01-01-01-01.mp4"  # the 01, not the 02
    assert clips["ravdess-02-speech-happy-2-s01-r01"].meta.speaker == "02"
    assert clips["ravdess-01-speech-angry-1-s02-r01"].meta.group == ""
    assert _reasons(summary) == {"missing audio": 1, "missing video": 1,
                                 "unreadable video": 1, "excluded by an option": 1}
    plan = scan_ravdess(ravdess_src, split="speakers", test_speakers=["02"], vocal="both")
    assert {(c.speaker, u.split) for u in plan.units for c in u.clips} == {("01", "train"),
                                                                           ("02", "test")}
    assert "ravdess-01-song-happy-1-s01-r01" in {c.key for u in plan.units for c in u.clips}
    assert {u.split for u in scan_ravdess(ravdess_src, split="spfem").units} == {"test"}


# ----------------------------------------------------------------------------- CREMA-D


def test_cremad_conversion(cremad_out: tuple[Path, dict]) -> None:
    out, summary = cremad_out
    assert read_index(out, "all").emotion_set == CREMAD
    clips = {c.key: c for c in _check_split(out, "all", 6, 2)}
    assert {k: (c.meta.emotion_id, c.meta.intensity, c.meta.group) for k, c in clips.items()} == {
        "cremad-1001-DFA-ANG-XX": (0, 0, "cremad-1001-DFA"),
        "cremad-1001-DFA-NEU-XX": (4, 0, "cremad-1001-DFA"),
        "cremad-1001-DFA-HAP-LO": (3, 1, "cremad-1001-DFA"),
        "cremad-1001-IEO-SAD-HI": (5, 3, ""),
        "cremad-1002-DFA-NEU-XX": (4, 0, "cremad-1002-DFA"),
        "cremad-1002-DFA-FEA-MD": (2, 2, "cremad-1002-DFA"),
    }
    assert {c.meta.reference for c in clips.values() if c.meta.group} == {
        "cremad-1001-DFA-NEU-XX", "cremad-1002-DFA-NEU-XX"}
    fear = read_audio(clips["cremad-1002-DFA-FEA-MD"].audio).waveform  # from AudioWAV
    assert float(fear.abs().max()) > 0.2
    assert _reasons(summary) == {"unparsable path": 1, "missing audio": 1}


def test_cremad_speaker_split(cremad_src: Path) -> None:
    plan = scan_cremad(cremad_src, split="speakers", test_speakers=["1002"])
    assert {(c.speaker, u.split) for u in plan.units for c in u.clips} == {("1001", "train"),
                                                                           ("1002", "test")}
    with pytest.raises(ValueError, match="test_speakers"):
        scan_cremad(cremad_src, split="speakers")


# ----------------------------------------------------------------------------- faces


def test_default_detector_crops_on_the_face(tmp_path: Path, draw_face) -> None:
    src = fc.make_cremad(tmp_path / "src", face=draw_face)

    def centre_red(out: Path, face: str) -> float:
        convert("cremad", src, out, ConvertOptions(size=32, face=face, progress=False))
        frames = [read_video(c.video).frames for c in _clips(out, "all")]
        return float(torch.cat(frames)[:, 0, 12:20, 12:20].float().mean())

    skin, background = 200, 90  # red channel of the drawn face and of the background
    assert abs(centre_red(tmp_path / "haar", "haar") - skin) < 25
    assert abs(centre_red(tmp_path / "fixed", "fixed") - background) < 25
    summary = json.loads((tmp_path / "haar" / SUMMARY_FILE).read_text())
    assert summary["events"] == {}  # the face was found: no fixed-crop fallback


# ----------------------------------------------------------------------------- resume


_PROCESS_CLIP = convert_common.process_clip


def _counting(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[str]:
    """Count the clips processed (in this process); raise Ctrl-C at call `fail_at`."""
    calls: list[str] = []
    real = _PROCESS_CLIP

    def wrapped(root: Path, src: ClipSource, options: ConvertOptions) -> object:
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        calls.append(src.key)
        return real(root, src, options)

    monkeypatch.setattr(convert_common, "process_clip", wrapped)
    return calls


def _shard_keys(out: Path, split: str = "all") -> list[list[str]]:
    return [[s["__key__"] for s in iter_samples(p)] for p in read_index(out, split).paths]


def test_resume_after_an_interruption(ravdess_src: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    opts = _opts(max_samples=2)
    reference = convert("ravdess", ravdess_src, tmp_path / "clean", opts)
    expected = _shard_keys(tmp_path / "clean")
    # Units in order: a single clip, a group of 4 (3 written: one has no audio), a group of 3
    # (2 written: one is corrupt); at 2 clips per shard each unit gets a shard of its own.
    assert [len(k) for k in expected] == [1, 3, 2]

    out = tmp_path / "out"
    calls = _counting(monkeypatch, fail_at=5)  # dies on the first clip of the third unit
    with pytest.raises(KeyboardInterrupt):
        convert("ravdess", ravdess_src, out, opts)
    state = json.loads((out / STATE_FILE).read_text())
    assert state["complete"] is False
    finished = state["splits"]["all"]["shards"]
    assert [e["name"] for e in finished] == ["all-000000.tar"]
    assert not (out / "all-index.json").exists()
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    reused = sum(len(state["splits"]["all"]["units"][u]["keys"]) for e in finished
                 for u in e["units"])

    calls = _counting(monkeypatch)
    summary = convert("ravdess", ravdess_src, out, opts)
    total = sum(len(u.clips) for u in scan_ravdess(ravdess_src).units)
    assert reused == 1 and len(set(calls)) == len(calls) == total - reused == 7
    assert summary["clips_reused"] == reused
    assert _shard_keys(out) == expected
    for name in ("all-000000.tar", "all-000001.tar", "all-000002.tar"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    for k in ("clips_written", "groups_written", "skipped_by_reason", "splits"):
        assert summary[k] == reference[k]
    assert validate_shards(out, "all", decode=True) == []

    # A third run does no work and touches no shard.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("all-*")}
    calls = _counting(monkeypatch)
    again = convert("ravdess", ravdess_src, out, opts)
    assert calls == [] and again["nothing_to_do"] is True
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("all-*")} == stamps
    assert again["clips_reused"] == again["clips_written"] == 6
    assert again["skipped_by_reason"] == reference["skipped_by_reason"]


def test_resume_redoes_only_changed_units(cremad_src: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(cremad_src, src)
    out = tmp_path / "out"
    convert("cremad", src, out, _opts())
    # The clip that had no audio gets its wav: only that clip is converted on the re-run.
    fc.write_speech(src / "AudioWAV" / "1002_TIE_DIS_XX.wav", "disgusted")
    calls = _counting(monkeypatch)
    summary = convert("cremad", src, out, _opts())
    assert calls == ["cremad-1002-TIE-DIS-XX"]
    assert (summary["clips_written"], summary["clips_reused"]) == (7, 6)
    assert _reasons(summary) == {"unparsable path": 1}
    _check_split(out, "all", 7, 2)


def test_resume_refuses_other_settings_and_overwrite_starts_over(
    tmp_path: Path, cremad_src: Path
) -> None:
    out = tmp_path / "out"
    convert("cremad", cremad_src, out, _opts())
    with pytest.raises(ValueError, match="size") as info:
        convert("cremad", cremad_src, out, _opts(size=16))
    assert str(out / STATE_FILE) in str(info.value) and "--overwrite" in str(info.value)
    summary = convert("cremad", cremad_src, out, _opts(size=16, overwrite=True))
    assert summary["clips_converted"] == 6 and summary["clips_reused"] == 0
    assert read_video(_clips(out, "all")[0].video).frames.shape[-1] == 16

    other = tmp_path / "other"
    other.mkdir()
    (other / "all-000000.tar").write_bytes(b"")
    with pytest.raises(FileExistsError, match=r"no convert-state\.json"):
        convert("cremad", cremad_src, other, _opts())
    (other / STATE_FILE).write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        convert("cremad", cremad_src, other, _opts())


def test_resume_stops_replaying_at_a_damaged_shard(
    ravdess_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = _opts(max_samples=2)
    convert("ravdess", ravdess_src, tmp_path, opts)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    state["complete"] = False  # as after a crash
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    shard = tmp_path / "all-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[:1024] + b"\1" * (len(data) - 1024))  # same size, damaged
    calls = _counting(monkeypatch)
    summary = convert("ravdess", ravdess_src, tmp_path, opts)
    first = set(state["splits"]["all"]["shards"][0]["units"])
    redone = [c.key for u in scan_ravdess(ravdess_src).units if u.uid not in first
              for c in u.clips]
    assert sorted(calls) == sorted(redone) and len(redone) == 7
    assert (summary["clips_written"], summary["clips_reused"]) == (6, 1)
    assert validate_shards(tmp_path, "all", decode=True) == []


# ----------------------------------------------------------------------------- CLI, workers


def test_cli_with_two_worker_processes_matches_one_process(
    cremad_src: Path, cremad_out: tuple[Path, dict], tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["cremad", str(cremad_src), str(tmp_path), "--face", "fixed", "--size", "32",
                 "--preset", "ultrafast", "--workers", "2", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 clips written (2 parallel groups)" in printed and "missing audio: 1" in printed
    mine, theirs = _clips(tmp_path, "all"), _clips(cremad_out[0], "all")
    assert [c.key for c in mine] == [c.key for c in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert a.meta == b.meta and a.audio == b.audio
        assert a.arrays.keys() == b.arrays.keys()
        assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
        assert torch.equal(read_video(a.video).frames, read_video(b.video).frames)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["voxceleb", str(tmp_path), str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["cremad", str(tmp_path), str(tmp_path / "o"), "--size", "33", "--max-bytes", "x"])
    capsys.readouterr()
    assert main(["cremad", str(tmp_path), str(tmp_path / "o"), "--no-progress"]) == 1
    assert "no cremad clips to convert" in capsys.readouterr().err
    assert main(["mead", str(tmp_path), str(tmp_path / "o"), "--size", "33"]) == 1
    assert "even" in capsys.readouterr().err


def test_a_missing_detector_package_fails_before_any_work(
    cremad_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dlib" else real(name, *a))
    with pytest.raises(ImportError, match="--face dlib needs dlib"):
        convert("cremad", cremad_src, tmp_path, _opts(face="dlib"))
    assert list(tmp_path.iterdir()) == []


def test_skip_and_plan_objects_round_trip() -> None:
    s = Skip("a.mp4", "missing audio", "no stream", "k")
    assert Skip(**s.to_json()) == s
    with pytest.raises(ValueError, match="two work units"):
        convert_common.make_units({("all", "k"): [ClipSource("a", "1", "sad", 1, "s", "a"),
                                                  ClipSource("b", "1", "sad", 1, "s", "b")]},
                                  [("all", ClipSource("k", "1", "sad", 1, "s", "k"))], CREMAD)
    with pytest.raises(FileNotFoundError, match="corpus root"):
        run_conversion(scan_cremad("/no/such/dir"), "/tmp/x", _opts())
