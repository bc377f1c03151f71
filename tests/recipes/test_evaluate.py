"""recipes/spfem/evaluate.py, protocol.py and report.py: the SPFEM evaluation protocol, every
row's metric plumbing, the report, and the MEAD path end to end.

Run folders are written without training (random_run.py); the SynthTalk evaluators are
randomly initialised (evaluators.py's architectures): these tests check what is compared with
what, not how good a model is. Known answers: the pair counts of the tiny corpus, references
that never say the source's sentence, a cross-ID map without a fixed point, the ground-truth
row scoring PSNR = inf and SSIM = 1 against itself, values recomputed here with naive float64
code."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))
sys.path.insert(0, str(REPO / "tests" / "data"))

# The tiny architecture of tests/recipes/conftest.py (TINY).
TINY = {"audio_prior": {"dim": 16, "width": 16}, "ccrl": {"channels": [8, 16], "dim": 16},
        "cerl": {"hidden": 32}, "spfem": {"channels": 8, "levels": 2}}  # fmt: skip


def _strict_json(path: Path) -> Any:
    """json.loads that rejects NaN / Infinity tokens (not JSON)."""

    def bad(token: str) -> None:
        raise ValueError(f"{path}: non-JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=bad)


def _random_evaluators(names: tuple[str, ...], speakers: int = 8) -> Any:
    from evaluators import (
        EmotionClassifier,
        Evaluators,
        IdentityEmbedder,
        LipSyncNet,
        MouthRegressor,
    )

    torch.manual_seed(7)
    # a 16-d identity embedding keeps the Frechet distances' matrix square roots cheap
    ev = Evaluators(names, 64, 25.0, EmotionClassifier(len(names)), MouthRegressor(),
                    LipSyncNet(), IdentityEmbedder(speakers, 16), {"random": True})  # fmt: skip
    for m in (ev.emotion, ev.mouth, ev.sync, ev.embed):
        m.eval()
    return ev


def _random_run(root: Path, run_dir: Path, seed: int, info: dict[str, Any] | None = None) -> Path:
    from config import Config
    from configlib import from_dict
    from random_run import write_random_run

    cfg = from_dict(Config, {"run_dir": str(run_dir), "seed": seed, "data": {"root": str(root)},
                             **TINY})  # fmt: skip
    return write_random_run(cfg, run_dir, info=info, seed=seed, film_std=0.5, mask_bias=2.0)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def two_held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SynthTalk with two held-out speakers (S004, S009): 10 speakers x 2 sentences x
    neutral, happy 3, angry 3 (60 clips)."""
    pytest.importorskip("espeakng_loader")
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    root = tmp_path_factory.mktemp("synthtalk_two")
    generate(root, SynthTalkConfig(speakers=10, sentences=2, workers=2,
                                   conditions=(("neutral", 1), ("happy", 3), ("angry", 3))),
             progress=False)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def synth(two_held_out: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One evaluation of random runs for every method (full: two seeds), written out."""
    from evaluate import RunSpec, _stamp, evaluate
    from report import write_report

    from decouple.data.registry import MEAD

    folder = tmp_path_factory.mktemp("eval_runs")
    runs = [RunSpec("full", _random_run(two_held_out, folder / "full-s0", 0)),
            RunSpec("full", _random_run(two_held_out, folder / "full-s1", 1)),
            RunSpec("baseline", _random_run(two_held_out, folder / "baseline", 2)),
            RunSpec("content_only", _random_run(two_held_out, folder / "content", 3)),
            RunSpec("emotion_only", _random_run(two_held_out, folder / "emotion", 4))]
    ev = _random_evaluators(MEAD.names)
    out = folder / "evaluation"
    results = evaluate(runs, out, evaluators=ev, max_sources=1, max_offset=4, stride=2,
                       max_frames=20, probe_windows=16, embed_windows=8,
                       progress=False)  # fmt: skip
    results["stamp"] = _stamp(["--runs", "full=..."], 1.0)
    docs = folder / "site" / "results.md"
    written = write_report(results, out, docs=docs)
    return SimpleNamespace(results=results, written=written, out=out, docs=docs, ev=ev,
                           root=two_held_out)  # fmt: skip


# ------------------------------------------------------------------------------ protocol


def test_pairs_on_the_tiny_corpus(synthtalk_tiny: Any) -> None:
    from protocol import TARGET_LEVEL, scan_split, synthtalk_protocol

    p = synthtalk_protocol(synthtalk_tiny.root)
    # 1 held-out speaker (S004) x 2 neutral sentences x 7 other emotions; no cross-ID
    assert p.speakers == ("S004",)
    assert p.targets == ("angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
    assert p.counts() == {"intra": 14, "cross": 0, "label": 14}
    assert p.cross_map == {} and any("no cross-ID" in n for n in p.notes)
    test = {c.key: c for c in scan_split(synthtalk_tiny.root, "test")}
    assert all(c.speaker == "S004" for c in test.values())
    for pair in p.of("intra"):
        src, ref = test[pair.source], test[pair.reference]
        assert src.emotion == "neutral" and src.level == 1
        assert (ref.speaker, ref.emotion, ref.level) == ("S004", pair.target, TARGET_LEVEL)
        assert ref.sentence != src.sentence
    assert {pr.reference for pr in p.of("label")} == {None}
    assert len(p.jobs()) == 14
    one = synthtalk_protocol(synthtalk_tiny.root, max_sources=1)
    assert one.counts() == {"intra": 7, "cross": 0, "label": 7}
    assert {test[pr.source].sentence for pr in one.pairs} == {"001"}


def test_cross_map_is_a_fixed_derangement(two_held_out: Path) -> None:
    from protocol import cyclic_map, scan_split, synthtalk_protocol

    names = ["S019", "S004", "S014", "S009"]
    m = cyclic_map(names)
    assert sorted(m) == sorted(names) and sorted(m.values()) == sorted(names)
    assert all(a != b for a, b in m.items())  # no speaker is its own reference
    seen, s = [], "S004"  # one cycle through every speaker
    for _ in names:
        seen.append(s)
        s = m[s]
    assert sorted(seen) == sorted(names) and s == "S004"
    assert cyclic_map(reversed(names)) == m  # fixed: independent of the order given

    p = synthtalk_protocol(two_held_out)
    assert p.cross_map == {"S004": "S009", "S009": "S004"}
    assert p.targets == ("angry", "happy")
    # 2 speakers x 2 neutral sources x 2 targets per setting
    assert p.counts() == {"intra": 8, "cross": 8, "label": 8}
    clips = {c.key: c for c in scan_split(two_held_out, "test")}
    for pair in p.of("cross"):
        src, ref = clips[pair.source], clips[pair.reference]
        assert ref.speaker == p.cross_map[src.speaker] != src.speaker
        assert ref.emotion == pair.target and ref.level == 3
        assert ref.sentence != src.sentence


# ------------------------------------------------------------------------- SynthTalk rows


def test_every_row_is_scored(synth: SimpleNamespace) -> None:
    r = synth.results
    assert list(r["rows"]) == ["copy", "baseline", "content_only", "emotion_only", "full",
                               "ground_truth", "floor"]
    assert r["settings_run"] == ["intra", "cross", "label"]
    keys = [m["key"] for m in r["metrics"]]
    for name, row in r["rows"].items():
        for s in r["settings_run"]:
            cell = row["settings"][s]
            assert cell["per_seed"][0]["pairs"] == 4  # 2 speakers x 1 source x 2 targets
            for k in keys:
                value = cell["mean"][k]
                if k == "fps" and name in ("copy", "ground_truth", "floor"):
                    assert value is None
                else:
                    assert value is not None and not math.isnan(value), (name, s, k)
    full = r["rows"]["full"]
    assert full["settings"]["intra"]["seeds"] == 2 and full["seeds"] == [0, 1]
    acc = [x["accuracy"] for x in full["settings"]["intra"]["per_seed"]]
    assert full["settings"]["intra"]["std"]["accuracy"] == pytest.approx(
        np.std(acc, ddof=1), abs=1e-12)  # the spread is the sample std over seeds
    assert r["rows"]["baseline"]["settings"]["intra"]["std"]["accuracy"] is None  # one seed
    assert all(v > 0 for v in full["fps_per_seed"])
    # the copy row's identity similarity is the embedding's cosine with itself
    assert r["rows"]["copy"]["settings"]["intra"]["mean"]["identity"] == pytest.approx(1.0,
                                                                                      abs=1e-6)
    assert r["decoupling"]["seeds"] == 2
    assert r["decoupling"]["content"]["emotion_probe"]["chance"] is not None


def test_ground_truth_row_and_floor(synth: SimpleNamespace) -> None:
    rows = synth.results["rows"]
    for s in ("intra", "cross", "label"):
        gt = rows["ground_truth"]["settings"][s]["mean"]
        floor = rows["floor"]["settings"][s]["mean"]
        assert gt["psnr"] == math.inf and gt["mouth_psnr"] == math.inf  # the target itself
        assert gt["ssim"] == pytest.approx(1.0, abs=1e-12)
        assert gt["mouth_ssim"] == pytest.approx(1.0, abs=1e-12)
        assert math.isfinite(floor["psnr"]) and floor["psnr"] > 15  # other nuisance only
        assert floor["ssim"] < 1.0
        # the same judge on equally right renders: the same order of error
        assert 0.5 < gt["mouth_error"] / floor["mouth_error"] < 2.0


def test_values_match_naive_recomputation(synth: SimpleNamespace) -> None:
    from protocol import load_clips

    from decouple.data.io import read_video
    from decouple.data.synthtalk.corpus import render

    r, ev = synth.results, synth.ev
    rec = r["rows"]["copy"]["pairs"]["intra"][0]
    clip = load_clips(synth.root, "test", [rec["source"]])[rec["source"]]
    src = read_video(clip.video).frames
    cf = render(clip.extras["synthtalk"], emotion=rec["target"], intensity=3)
    n = r["options"]["max_frames"]  # the first frames of the source are edited
    k = r["options"]["stride"]  # every k-th frame is scored
    a, b = src[:n:k].double(), cf.frames[:n:k].double()
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    naive_psnr = float((10 * torch.log10(255.0**2 / mse)).mean())
    assert rec["psnr"] == pytest.approx(naive_psnr, rel=1e-9)
    # mouth error of the ground truth: the mouth regressor against the true track, by hand
    gt_rec = next(x for x in r["rows"]["ground_truth"]["pairs"]["intra"]
                  if x["source"] == rec["source"] and x["target"] == rec["target"])
    with torch.no_grad():
        pred = ev.mouth(cf.frames[:n:k]).double()
    true = torch.as_tensor(cf.arrays["mouth"][:n:k], dtype=torch.float64)
    assert gt_rec["mouth_error"] == pytest.approx(float((pred - true).abs().mean()), rel=1e-6)
    # target-emotion accuracy of the ground truth: argmax of the classifier, by hand
    with torch.no_grad():
        hits = (ev.emotion(cf.frames[:n:k]).argmax(1) == ev.emotion_names.index(rec["target"]))
    assert gt_rec["accuracy"] == pytest.approx(float(hits.double().mean()), abs=1e-12)


def test_report_metrics_and_docs_page(synth: SimpleNamespace) -> None:
    w = synth.written
    metrics = _strict_json(w["metrics"])
    assert metrics["format"] == "spfem-evaluation"
    assert metrics["rows"]["ground_truth"]["settings"]["intra"]["mean"]["psnr"] == "inf"
    assert "pairs" not in metrics["rows"]["full"]
    pairs = _strict_json(w["pairs"])
    assert len(pairs["full"]["intra"]) == 8  # 4 pairs x 2 seeds
    statuses = {g["status"] for g in metrics["goals"]}
    assert statuses <= {"met", "not met", "not evaluated"} and len(metrics["goals"]) == 10
    for name in ("per_emotion", "embeddings", "grid-full", "grid-copy", "grid-baseline"):
        png = synth.out / metrics["images"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    grid = Image.open(synth.out / metrics["images"]["grid-full"])
    # source | reference | output | truth, 2 targets; 64 px frames shown twice as large
    assert grid.size == (4 * 128, 2 * 128)
    report = w["report"].read_text(encoding="utf-8")
    for text in ("## intra-ID", "## cross-ID", "## label-driven", "## Goals", "## Decoupling",
                 "S004 <- S009", "full CDRL (2 seeds)", "| counterfactual ground truth"):
        assert text in report
    page = w["docs"].read_text(encoding="utf-8")
    stamp = metrics["stamp"]
    for text in (stamp["command"], str(stamp["git_commit"]), stamp["date"], stamp["machine"],
                 "wall time", "img/results/per_emotion.png"):
        assert text in page
    assert (synth.docs.parent / "img" / "results" / "grid-full.png").is_file()
    assert _strict_json(synth.docs.with_suffix(".json"))["rows"].keys() == metrics["rows"].keys()
    # the page can be remade from the JSON alone
    from report import main as report_main

    again = synth.docs.parent / "again.md"
    assert report_main(["--metrics", str(w["metrics"]), "--docs", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == page


def test_goals_are_checked_with_the_numbers() -> None:
    from report import check_goals

    def cell(acc: float, acc_sd: float, mouth: float, mouth_sd: float) -> dict[str, Any]:
        return {"mean": {"accuracy": acc, "mouth_error": mouth},
                "std": {"accuracy": acc_sd, "mouth_error": mouth_sd}}

    both = ("intra", "cross")
    res = {"corpus": "synthtalk", "settings_run": list(both), "rows": {
        "full": {"settings": {s: cell(0.95, 0.01, 0.010, 0.001) for s in both}},
        "baseline": {"settings": {s: cell(0.50, 0.02, 0.030, 0.002) for s in both}},
        "floor": {"settings": {s: cell(0.9, 0.0, 0.008, 0.0) for s in both}}},
        "decoupling": {"content": {"content_probe": {"accuracy": 0.6, "chance": 0.2},
                                   "emotion_probe": {"accuracy": 0.18, "chance": 0.125}},
                       "emotion": {"content_probe": {"accuracy": 0.4, "chance": 0.2},
                                   "emotion_probe": {"accuracy": 0.95, "chance": 0.125}}}}
    goals = {g["goal"]: g["status"] for g in check_goals(res)}
    assert list(goals.values()).count("met") == 9
    assert [g for g, s in goals.items() if s != "met"] == [
        "emotion embedding (CERL): content probe within 10 points of chance while the emotion "
        "probe >= 90 %"]  # 0.4 vs 0.2: 20 points off
    res["rows"]["full"]["settings"]["intra"]["std"]["accuracy"] = 0.5  # spread > difference
    first = check_goals(res)[0]
    assert first["status"] == "not met" and "not more than" in first["detail"]


# ------------------------------------------------------------------------------- CLI errors


def test_cli_errors_name_the_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      synth: SimpleNamespace, synthtalk_tiny: Any) -> None:
    from evaluate import main

    assert main(["--runs", "cdrl=x"]) == 2
    assert "unknown method 'cdrl'" in capsys.readouterr().err
    assert main(["--runs", f"full={tmp_path / 'nope'}"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    other = _random_run(synthtalk_tiny.root, tmp_path / "other", 0)
    full = synth.results["rows"]["full"]["runs"][0]
    assert main(["--runs", f"full={full}", f"baseline={other}", "--no-progress"]) == 2
    assert "every run must share the shards" in capsys.readouterr().err
    assert main(["--runs", f"full={full},{full}"]) == 2
    assert "given twice" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ MEAD


def _fake_mead(root: Path, actors: tuple[str, ...]) -> Path:
    """Every actor: neutral L1 001 and happy L3 002 (another sentence), m4a audio."""
    import fake_corpora as fc

    for i, actor in enumerate(actors):
        for emotion, level, clip in (("neutral", 1, "001"), ("happy", 3, "002")):
            fc.write_clip(root / actor / f"video/front/{emotion}/level_{level}/{clip}.mp4",
                          emotion, seed=i, audio=False)  # fmt: skip
            fc.write_speech(root / actor / f"audio/{emotion}/level_{level}/{clip}.m4a", emotion,
                            shift=0.05 * i)  # fmt: skip
    return root


def _convert_mead(src: Path, out: Path) -> Path:
    from decouple.data.convert import ConvertOptions, convert

    convert("mead", src, out, ConvertOptions(face="fixed", size=32, preset="ultrafast",
                                             progress=False),
            split="spfem", emotion_set="mead7")  # fmt: skip
    return out


def test_mead_protocol_needs_the_six_actors(tmp_path: Path) -> None:
    import fake_corpora as fc
    from protocol import MEAD_CROSS_MAP, ProtocolError, mead_protocol

    shards = _convert_mead(fc.make_mead(tmp_path / "mead"), tmp_path / "shards")
    with pytest.raises(ProtocolError, match=r"lacks MEAD actor\(s\) M009, W029, M012, M030, "
                                            r"W015 .* it holds M003"):
        mead_protocol(shards)
    assert MEAD_CROSS_MAP["M003"] == "W015" and MEAD_CROSS_MAP["W015"] == "M030"


def test_mead_end_to_end(tmp_path: Path) -> None:
    """The fake six-actor MEAD tree, converted; a random run; random ArcFace / SyncNet /
    EfficientFace weight files; the CLI writes the papers' table layout."""
    from evaluate import main
    from prepare import shard_info
    from protocol import MEAD_ACTORS, mead_protocol

    from decouple.checkpoint import save_weights
    from decouple.encoders import IResNet
    from decouple.encoders.efficientface import efficientface
    from decouple.metrics.sync import SyncNet

    shards = _convert_mead(_fake_mead(tmp_path / "mead", (*MEAD_ACTORS, "M005")),
                           tmp_path / "shards")  # fmt: skip
    p = mead_protocol(shards)
    assert p.targets == ("happy",) and p.counts() == {"intra": 6, "cross": 6, "label": 0}
    for pair in p.of("cross"):
        assert p.clips[pair.reference].speaker == p.cross_map[p.clips[pair.source].speaker]

    from config import Config
    from configlib import from_dict

    cfg = from_dict(Config, {"run_dir": str(tmp_path / "run"), "data": {"root": str(shards)},
                             **TINY})  # fmt: skip
    info = {**shard_info(cfg), "corpus": "mead"}
    run = _random_run(shards, tmp_path / "run", 0, info=info)
    torch.manual_seed(0)
    # a tiny IResNet with an 8-d embedding (FAD of 8-d features from ~80 frames is defined)
    arcface = save_weights(IResNet((1, 1, 1, 1), stop_at="embedding", num_features=8),
                           tmp_path / "arc.pth")  # fmt: skip
    sync = save_weights(SyncNet(), tmp_path / "syncnet_v2.model")
    ef = tmp_path / "ef.pth.tar"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in
                                           efficientface().state_dict().items()}}, ef)
    out, docs = tmp_path / "out", tmp_path / "site" / "results.md"
    code = main(["--runs", f"full={run}", "--arcface", str(arcface), "--arcface-arch", "1,1,1,1",
                 "--syncnet", str(sync), "--emotion-model", str(ef), "--max-offset", "2",
                 "--stride", "8", "--fd-frames", "2",
                 "--out", str(out), "--docs", str(docs), "--no-progress", "--device", "cpu"])
    assert code == 0
    metrics = _strict_json(out / "metrics.json")
    assert metrics["corpus"] == "mead" and list(metrics["rows"]) == ["copy", "full"]
    for row in metrics["rows"].values():
        for s in ("intra", "cross"):
            mean = row["settings"][s]["mean"]
            for k in ("fad", "lse_d", "lse_c", "emotion_similarity", "identity", "accuracy"):
                assert isinstance(mean[k], float), (k, mean[k])
    copy = metrics["rows"]["copy"]["settings"]["intra"]["mean"]
    assert copy["identity"] == pytest.approx(1.0, abs=1e-6)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| setting | method | FAD ↓ | LSE-D ↓ | LSE-C ↑ |" in report
    assert "| intra-ID | full CDRL |" in report and "| cross-ID | copy the source" in report
    assert "M003 <- W015" in report and "## Goals" not in report
    assert docs.is_file() and (docs.parent / "img" / "results" / "grid-full.png").is_file()
    assert metrics["stamp"]["command"].startswith("python recipes/spfem/evaluate.py --runs")

    missing = main(["--runs", f"full={run}", "--out", str(out), "--no-progress"])
    assert missing == 2  # MEAD without the metric weights


def test_doctests() -> None:
    import doctest

    import evaluate
    import protocol
    import report

    for module in (protocol, evaluate, report):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
