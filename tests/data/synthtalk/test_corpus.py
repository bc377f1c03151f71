"""SynthTalk corpus: generation into shards, determinism, sync, DTW error, counterfactuals, errors.

Most tests read the session fixture `synthtalk_tiny` (tests/conftest.py: 5 speakers, 4 train and
1 held out, 2 sentences, neutral + seven emotions at level 3, 64 px, 25 fps); the determinism
and re-run tests generate their own tiny corpora (a few clips each).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("espeakng_loader")

from decouple.data.io import read_audio, read_video
from decouple.data.registry import MEAD
from decouple.data.synthtalk.captions import caption
from decouple.data.synthtalk.corpus import (
    FRAME_ARRAYS,
    SUMMARY_FILE,
    SynthTalkConfig,
    clip_key,
    generate,
    iter_clips,
    load_clip,
    render,
)
from decouple.data.synthtalk.expressions import EXPRESSION_PARAMS, expression
from decouple.data.synthtalk.render import ZOOM
from decouple.data.synthtalk.speakers import SpeakerParams

SMALL = {"speakers": 3, "sentences": 1,
         "conditions": (("neutral", 1), ("happy", 3), ("sad", 1))}  # fmt: skip


def _clips(root: Path) -> dict[str, object]:
    return {c.key: c for split in ("train", "test") for c in iter_clips(root, split)}


# ----------------------------------------------------------------------------- the set


def test_tiny_set_layout_and_summary(synthtalk_tiny: object) -> None:
    root, cfg, summary = synthtalk_tiny.root, synthtalk_tiny.config, synthtalk_tiny.summary
    assert json.loads((root / SUMMARY_FILE).read_text()) == summary
    train, test = list(iter_clips(root, "train")), list(iter_clips(root, "test"))
    assert (len(train), len(test)) == (64, 16) == (summary["splits"]["train"]["clips"],
                                                   summary["splits"]["test"]["clips"])
    assert {c.meta.speaker for c in test} == {"S004"} and "S004" not in {
        c.meta.speaker for c in train}
    assert summary["frames"] == sum(c.meta.num_frames for c in train + test)
    assert summary["frames_per_second"] > 0 and summary["seconds"] > 0
    groups: dict[str, list] = defaultdict(list)
    for c in train + test:  # groups are contiguous, reference first, align from it
        groups[c.meta.group].append(c)
    assert len(groups) == 10
    for gid, members in groups.items():
        ref = members[0]
        assert ref.meta.emotion == "neutral" and ref.meta.intensity == 1
        assert gid == f"{ref.meta.speaker}-{ref.meta.sentence}"
        assert [(c.meta.emotion, c.meta.intensity) for c in members] == cfg.clip_conditions()
        assert {c.meta.reference for c in members} == {ref.key}
        for c in members:
            assert c.key == clip_key(c.meta.speaker, c.meta.emotion, c.meta.intensity,
                                     c.meta.sentence)
            assert c.meta.emotion_id == MEAD.id(c.meta.emotion)
            path = c.arrays["align"]
            assert path[0].tolist() == [0, 0]
            assert path[-1].tolist() == [ref.meta.num_frames - 1, c.meta.num_frames - 1]
            t = c.meta.num_frames
            for name in FRAME_ARRAYS:
                assert c.arrays[name].shape[0] == t, name
            assert c.arrays["landmarks"].shape == (t, 68, 2)
            assert c.arrays["expression"].shape == (t, len(EXPRESSION_PARAMS))
            extra = c.extras["synthtalk"]
            assert extra["emotion"] == c.meta.emotion and extra["level"] == c.meta.intensity
            assert extra["num_frames"] == t and extra["size"] == 64 and extra["fps"] == 25
            assert extra["timing"]["num_samples"] == c.meta.num_samples
            assert math.ceil(c.meta.num_samples / 16000 * 25 - 1e-9) == t


def test_shards_validate_and_dataset_reads(synthtalk_tiny: object) -> None:
    from decouple.data.pipeline import ShardDataset
    from decouple.data.validate import validate_shards

    root = synthtalk_tiny.root
    for split in ("train", "test"):
        assert validate_shards(root, split, decode=True) == []
    ds = ShardDataset(root, "train", batch_size=4, window=8, features="mel", shuffle=False)
    item = next(iter(ds))
    assert tuple(item["video"].shape) == (8, 3, 64, 64)
    groups = ShardDataset(root, "test", batch_size=1, unit="group", window=8, features=None)
    first = next(iter(groups))
    assert first["group"] in {"S004-001", "S004-002"} and len(first["clips"]) == 8


def test_dtw_error_small_and_recomputed(synthtalk_tiny: object) -> None:
    """Mean |content_pos| difference along the stored DTW paths, in phonemes (measured on the
    tiny set: 0.12 mean, 0.18 max over clips; a linear time stretch gives 0.15 mean)."""
    summary = synthtalk_tiny.summary
    for split in ("train", "test"):
        refs, errors = {}, []
        for c in iter_clips(synthtalk_tiny.root, split):
            if c.key == c.meta.reference:
                refs[c.meta.group] = c
                continue
            a, b, path = refs[c.meta.group].arrays["content_pos"], c.arrays["content_pos"], \
                c.arrays["align"]
            err = sum(abs(float(a[i]) - float(b[j])) for i, j in path.tolist()) / len(path)
            errors.append(err)
        stats = summary["splits"][split]["dtw_error"]
        assert stats["clips"] == len(errors) == (56 if split == "train" else 14)
        assert stats["mean"] == pytest.approx(np.mean(errors), abs=1e-4)
        assert stats["mean"] < 0.2 and stats["max"] < 0.3
        assert stats["mean"] < summary["splits"][split]["linear_error"]["mean"]


def test_audio_visual_sync(synthtalk_tiny: object) -> None:
    """The mouth opening follows the audio energy: correlation is highest near lag 0."""
    lags = range(-5, 6)
    corr: dict[int, list[float]] = {k: [] for k in lags}
    for c in iter_clips(synthtalk_tiny.root, "train"):
        wave = read_audio(c.audio).waveform.numpy().astype(np.float64)
        t = c.meta.num_frames
        half = 320  # +-20 ms around the frame time i / fps
        energy = np.array([np.sqrt(np.mean(wave[max(0, i * 640 - half):i * 640 + half] ** 2))
                           if i * 640 - half < len(wave) else 0.0 for i in range(t)])
        mouth = c.arrays["mouth"][:, 0].astype(np.float64)
        for k in lags:  # mouth at frame i against energy at frame i + k
            m = mouth[max(0, -k):t - max(0, k)]
            e = energy[max(0, k):max(0, k) + len(m)]
            corr[k].append(float(np.corrcoef(m, e)[0, 1]))
    mean = {k: float(np.mean(v)) for k, v in corr.items()}
    best = max(mean, key=mean.get)
    assert abs(best) <= 1, mean
    assert mean[0] > 0.4, mean
    assert mean[0] > mean[5] + 0.2 and mean[0] > mean[-5] + 0.2, mean


def test_emotions_separable_on_pixels_of_held_out_speaker(synthtalk_tiny: object) -> None:
    """Nearest centroid on raw RGB pixels: centroids from one sentence of the held-out speaker,
    every frame of the other sentence classified (measured 0.46 and 0.50; chance 1/8)."""
    x, y, s = [], [], []
    for c in iter_clips(synthtalk_tiny.root, "test"):
        v = read_video(c.video).frames.float()
        x.append(v.reshape(v.shape[0], -1))
        y += [c.meta.emotion_id] * v.shape[0]
        s += [c.meta.sentence] * v.shape[0]
    xs, ys, ss = torch.cat(x), torch.tensor(y), np.array(s)
    for train, test in (("001", "002"), ("002", "001")):
        tr, te = torch.from_numpy(ss == train), torch.from_numpy(ss == test)
        labels = sorted(set(ys[tr].tolist()))
        centroids = torch.stack([xs[tr & (ys == k)].mean(0) for k in labels])
        pred = torch.tensor(labels)[torch.cdist(xs[te], centroids).argmin(1)]
        accuracy = float((pred == ys[te]).float().mean())
        assert accuracy > 0.35, (train, accuracy)


# ----------------------------------------------------------------------------- counterfactuals


def _pick(root: Path, emotion: str = "happy", split: str = "test") -> object:
    return next(c for c in iter_clips(root, split) if c.meta.emotion == emotion)


def test_render_reproduces_the_stored_clip(synthtalk_tiny: object) -> None:
    clip = _pick(synthtalk_tiny.root)
    same = render(clip.extras["synthtalk"])
    for name in FRAME_ARRAYS:
        assert np.array_equal(same.arrays[name], clip.arrays[name]), name
    decoded = read_video(clip.video).frames
    assert same.frames.shape == decoded.shape
    diff = (same.frames.float() - decoded.float()).abs().mean()
    assert diff < 4.0  # H.264 at crf 18, yuv420p chroma at 64 px: measured about 3 levels
    assert same.params == clip.extras["synthtalk"]


def test_counterfactual_keeps_speech_and_changes_expression(synthtalk_tiny: object) -> None:
    clip = _pick(synthtalk_tiny.root, "happy")
    params = clip.extras["synthtalk"]
    speaker = SpeakerParams.from_json(params["speaker"])
    for target in ("sad", "angry", "surprised", "neutral"):
        cf = render(params, emotion=target)
        level = 1 if target == "neutral" else 3
        assert (cf.params["emotion"], cf.params["level"]) == (target, level)
        for name in ("mouth", "content_pos", "phoneme_id", "viseme_id", "blink", "head_pose",
                     "gain"):
            assert np.array_equal(cf.arrays[name], clip.arrays[name]), (target, name)
        want = expression(target, level, speaker)
        assert np.array_equal(cf.arrays["expression"],
                              np.repeat(want[None], clip.meta.num_frames, axis=0))
        assert not np.array_equal(cf.arrays["expression"], clip.arrays["expression"])
        assert (cf.frames.float() - render(params).frames.float()).abs().mean() > 0.5
        # back to the source emotion: the stored clip exactly
        back = render(cf.params, emotion="happy", intensity=3)
        assert np.array_equal(back.landmarks, clip.arrays["landmarks"])
        assert torch.equal(back.frames, render(params).frames)
        assert cf.params["caption"] == caption(speaker, target, level,
                                               seed=params["nuisance_seed"])


def _corner_change(speaker: SpeakerParams, a: np.ndarray, b: np.ndarray, size: int
                   ) -> np.ndarray:
    """Documented lip-corner geometry (render module docstring): the displacement (2, 2) of
    the outer corners 48 (image-left) and 54 from expression a to b, before the head roll."""
    def side(vec: np.ndarray, sign: int) -> tuple[float, float]:
        v = dict(zip(EXPRESSION_PARAMS, vec.tolist(), strict=True))
        pull = v["lip_corner_pull"] * (1 + sign * max(-1.0, min(1.0, v["lip_corner_asym"])))
        w = 0.22 * v["lip_stretch"] - 0.08 * v["lip_press"] + 0.04 * v["lip_corner_depress"] \
            + 0.12 * pull
        h = 0.38 * v["lip_corner_depress"] + 0.12 * v["lip_stretch"] - 0.42 * pull
        return sign * speaker.mouth_width * w, speaker.mouth_width * h

    out = np.zeros((2, 2))
    for row, sign in ((0, -1), (1, 1)):
        xa, ya = side(a, sign)
        xb, yb = side(b, sign)
        out[row] = (xb - xa, yb - ya)
    return out * ZOOM * size


def test_counterfactual_mouth_landmarks_move_only_by_the_emotion(synthtalk_tiny: object) -> None:
    """Landmarks 48-67 of a counterfactual: the lip corners move by the documented corner
    change of the two expressions (rotated by the head roll), at every frame whatever the
    speech; the lip centres (51, 57, 62, 66) stay put but for the opening terms (jaw, press,
    upper-lip raise), bounded by their documented coefficients."""
    clip = _pick(synthtalk_tiny.root, "happy")
    params = clip.extras["synthtalk"]
    speaker = SpeakerParams.from_json(params["speaker"])
    src = clip.arrays["landmarks"]
    roll = clip.arrays["head_pose"][:, 2].astype(np.float64)
    rot = np.stack([np.stack([np.cos(roll), -np.sin(roll)], -1),
                    np.stack([np.sin(roll), np.cos(roll)], -1)], -2)  # (t, 2, 2)
    for target in ("sad", "angry", "contempt", "fear", "surprised", "disgusted"):
        cf = render(params, emotion=target)
        a, b = clip.arrays["expression"][0], cf.arrays["expression"][0]
        want = np.einsum("tij,cj->tci", rot, _corner_change(speaker, a, b, 64))
        got = (cf.landmarks[:, [48, 54]] - src[:, [48, 54]]).astype(np.float64)
        assert np.abs(got - want).max() < 2e-3, target
        d = {n: abs(float(b[i]) - float(a[i])) for i, n in enumerate(EXPRESSION_PARAMS)}
        lt = speaker.lip_thickness
        bound = ZOOM * 64 * (0.1 * 1.6 * (0.6 * d["jaw"] + 0.7 * d["lip_press"]) +
                             0.012 * d["nose_wrinkle"] + 1.3 * lt * 0.4 * d["lip_press"] +
                             lt * 0.4 * d["lip_press"]) + 1e-3
        centres = np.linalg.norm(cf.landmarks[:, [51, 57, 62, 66]] - src[:, [51, 57, 62, 66]],
                                 axis=-1)
        assert centres.max() <= bound, (target, centres.max(), bound)
        # the rest of the face outside the mouth and jaw: the eye corners do not move sideways
        assert np.abs(cf.landmarks[:, [36, 39, 42, 45], 0] - src[:, [36, 39, 42, 45], 0]
                      ).max() < 0.3


def test_other_nuisance_seed_is_the_noise_floor(synthtalk_tiny: object) -> None:
    clip = _pick(synthtalk_tiny.root, "sad")
    params = clip.extras["synthtalk"]
    other = render(params, nuisance_seed=params["nuisance_seed"] + 1)
    for name in ("mouth", "expression", "content_pos", "phoneme_id"):
        assert np.array_equal(other.arrays[name], clip.arrays[name])
    assert not np.array_equal(other.arrays["head_pose"], clip.arrays["head_pose"])
    assert other.params["nuisance_seed"] == params["nuisance_seed"] + 1
    big = render(params, size=128)
    assert big.frames.shape[-1] == 128
    assert np.allclose((big.landmarks + 0.5) / 128, (clip.arrays["landmarks"] + 0.5) / 64,
                       atol=1e-5)


def test_render_and_load_errors(synthtalk_tiny: object) -> None:
    clip = _pick(synthtalk_tiny.root)
    params = clip.extras["synthtalk"]
    with pytest.raises(ValueError, match="neutral has level 1 only"):
        render(params, emotion="neutral", intensity=2)
    with pytest.raises(ValueError, match="unknown emotion 'boredom'"):
        render(params, emotion="boredom")
    with pytest.raises(ValueError, match="intensity"):
        render(params, intensity=4)
    with pytest.raises(ValueError, match="nuisance_seed"):
        render(params, nuisance_seed=-1)
    with pytest.raises(ValueError, match="size"):
        render(params, size=100)
    with pytest.raises(ValueError, match="lacks fields"):
        render({"version": 1})
    with pytest.raises(ValueError, match="version"):
        render({**params, "version": 99})
    with pytest.raises(KeyError, match="no clip 'synthtalk-S999"):
        load_clip(synthtalk_tiny.root, "synthtalk-S999-happy-3-001")
    got = load_clip(synthtalk_tiny.root, clip.key)
    assert got.extras == clip.extras and np.array_equal(got.arrays["mouth"], clip.arrays["mouth"])


def test_captions_from_ground_truth(synthtalk_tiny: object) -> None:
    seen = set()
    for c in iter_clips(synthtalk_tiny.root, "train"):
        extra = c.extras["synthtalk"]
        speaker = SpeakerParams.from_json(extra["speaker"])
        assert extra["caption"] == caption(speaker, c.meta.emotion, c.meta.intensity,
                                           seed=extra["nuisance_seed"])
        assert speaker.describe() in extra["caption"]
        seen.add(extra["caption"].replace(speaker.describe(), "{speaker}"))
    assert len(seen) > 10  # templates and phrase variants are used


# ----------------------------------------------------------------------------- generation


def _decoded(root: Path) -> dict[str, tuple]:
    out = {}
    for key, c in _clips(root).items():
        out[key] = (read_video(c.video).frames, read_audio(c.audio).waveform,
                    {k: v for k, v in c.arrays.items()}, c.extras)
    return out


def test_deterministic_and_independent_of_worker_count(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SynthTalkConfig(**SMALL, workers=1), progress=False)
    b = generate(tmp_path / "b", SynthTalkConfig(**SMALL, workers=2), progress=False)
    assert a["clips"] == b["clips"] == 9
    da, db = _decoded(tmp_path / "a"), _decoded(tmp_path / "b")
    assert sorted(da) == sorted(db)
    for key in da:
        fa, wa, ra, ea = da[key]
        fb, wb, rb, eb = db[key]
        assert torch.equal(fa, fb) and torch.equal(wa, wb), key
        assert sorted(ra) == sorted(rb) and all(np.array_equal(ra[k], rb[k]) for k in ra)
        assert ea == eb
    c = generate(tmp_path / "c", SynthTalkConfig(**SMALL, workers=1, seed=1), progress=False)
    assert c["clips"] == 9
    dc = _decoded(tmp_path / "c")
    key = clip_key("S000", "happy", 3, "001")
    assert not torch.equal(da[key][0], dc[key][0])
    assert not torch.equal(da[key][1], dc[key][1])  # another speaker, another voice


def test_rerun_is_a_no_op_and_other_settings_need_overwrite(tmp_path: Path) -> None:
    cfg = SynthTalkConfig(speakers=2, sentences=1, conditions=(("neutral", 1), ("fear", 2)),
                          workers=1)
    first = generate(tmp_path, cfg, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = generate(tmp_path, cfg, progress=False)
    assert again["nothing_to_do"] and not first["nothing_to_do"]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
    other = SynthTalkConfig(speakers=2, sentences=1, conditions=(("neutral", 1),), workers=1)
    with pytest.raises(FileExistsError, match="other settings"):
        generate(tmp_path, other, progress=False)
    done = generate(tmp_path, other, progress=False, overwrite=True)
    assert done["clips"] == 2 and len(_clips(tmp_path)) == 2
    # an interrupted run of the same settings (no summary) is regenerated
    (tmp_path / SUMMARY_FILE).unlink()
    assert generate(tmp_path, other, progress=False)["clips"] == 2
    # shards of something else: refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "train-000000.tar").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="not from a SynthTalk run"):
        generate(foreign, other, progress=False)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"emotions": ("happy", "joyful")}, "unknown emotion 'joyful'"),
    ({"conditions": (("neutral", 2),)}, "neutral has level 1 only"),
    ({"conditions": (("happy", 4),)}, "intensity"),
    ({"levels": (0,)}, "levels 1, 2 or 3"),
    ({"speakers": 0}, "speakers: expected an int >= 1"),
    ({"texts": ("Hello there.", "  ")}, r"texts\[1\].*empty sentence"),
    ({"texts": ("Hello.",), "sentences": 2}, "only 1 texts"),
    ({"size": 100}, r"size: expected one of \(64, 128, 256\)"),
    ({"fps": 24}, r"fps: expected one of \(25, 30\)"),
    ({"seed": -1}, "seed"),
    ({"workers": 0}, "workers"),
    ({"preset": "warp"}, "preset"),
])  # fmt: skip
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthTalkConfig(**kwargs)


@pytest.mark.parametrize(("argv", "message"), [
    (["--speakers", "0"], "--speakers: expected an int >= 1, got 0"),
    (["--emotions", "happy,joyful"], "--emotions: unknown emotion 'joyful'"),
    (["--conditions", "neutral:2"], "neutral has level 1 only"),
    (["--conditions", "neutral"], "EMOTION:LEVEL"),
    (["--size", "100"], "--size: expected one of (64, 128, 256), got 100"),
    (["--fps", "24"], "--fps: expected one of (25, 30)"),
    (["--levels", "2,x"], "comma-separated integers"),
])  # fmt: skip
def test_cli_bad_input(argv: list[str], message: str, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    from decouple.data.synthtalk.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written


def test_cli_empty_sentence_file_and_run(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from decouple.data.synthtalk.__main__ import main

    texts = tmp_path / "texts.txt"
    texts.write_text("Open the door.\n\nClose it.\n")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--texts", str(texts)])
    assert "line 2 is an empty sentence" in capsys.readouterr().err
    texts.write_text("Open the door.\nClose it.\n")
    code = main(["--out", str(tmp_path / "x"), "--texts", str(texts), "--sentences", "2",
                 "--speakers", "1", "--conditions", "neutral:1,angry:2", "--workers", "1",
                 "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 4 and summary["splits"]["train"]["groups"] == 2
    assert load_clip(tmp_path / "x", clip_key("S000", "angry", 2, "002")).extras[
        "synthtalk"]["sentence"] == {"id": "002", "text": "Close it."}
