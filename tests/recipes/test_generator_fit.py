"""bench/generator_fit.py on the tiny corpus: the counterfactual pairs are what SynthTalk renders,
and the script trains and scores a generator through the recipe's own loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "recipes" / "spfem"))

import generator_fit as gf  # noqa: E402

NAMES = ("neutral", "angry", "happy", "sad")
SMALL = {"audio_prior": {"dim": 16, "width": 16}, "ccrl": {"channels": [8, 16], "dim": 16},
         "cerl": {"hidden": 32}, "spfem": {"channels": 8, "levels": 2}}  # fmt: skip


def test_truth_batches_pair_each_neutral_clip_with_its_counterfactual(tiny_corpus: Path) -> None:
    from decouple.data.io import encode_video, read_video
    from decouple.data.synthtalk.corpus import SynthTalkConfig, iter_clips, render

    clips = {c.key: c for c in iter_clips(tiny_corpus, "train")}
    batches = list(gf.truth_batches(tiny_corpus, "train", emotion_names=NAMES, batch_size=1,
                                    window=3, seed=0, epoch=0))  # fmt: skip
    neutral = [c for c in clips.values() if c.meta.emotion == "neutral"]
    assert len(batches) == len(neutral) * (len(NAMES) - 1)
    seen = set()
    for b in batches:
        v, e = b["video"], b["emotion"]
        assert v.dtype == torch.uint8 and tuple(v.shape[:3]) == (1, 2, 3)
        assert e[0, 0] == 0 and e[0, 1] > 0
        # find the neutral clip and window the source came from, independently
        emotion = NAMES[int(e[0, 1])]
        hits = []
        for c in neutral:
            frames = read_video(c.video, name=c.key).frames
            for s in range(len(frames) - 2):
                if torch.equal(frames[s:s + 3], v[0, 0]):
                    hits.append((c, s))
        assert len(hits) == 1
        c, s = hits[0]
        cf = render(c.extras["synthtalk"], emotion=emotion, intensity=3).frames
        # the target went through the corpus's codec, as the source did: close to the render
        # (crf 18), not equal, and equal to the render encoded with the corpus's settings
        corpus = SynthTalkConfig.from_json(
            json.loads((tiny_corpus / "synthtalk-config.json").read_text()))
        coded = read_video(encode_video(cf, float(corpus.fps), crf=corpus.crf,
                                        preset=corpus.preset, tune=corpus.tune)).frames
        assert torch.equal(coded[s:s + 3], v[0, 1])
        err = (cf[s:s + 3].float() - v[0, 1].float()).abs().mean().item()
        assert 0.0 < err < 8.0  # uint8 levels
        seen.add((c.key, emotion))
    assert len(seen) == len(batches)  # every (clip, emotion) pair once per epoch
    again = list(gf.truth_batches(tiny_corpus, "train", emotion_names=NAMES, batch_size=1,
                                  window=3, seed=0, epoch=0))  # fmt: skip
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(batches, again, strict=True))


@pytest.fixture(scope="module")
def random_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from config import Config
    from configlib import from_dict
    from random_run import write_random_run

    run_dir = tmp_path_factory.mktemp("fit") / "run"
    cfg = from_dict(Config, {"run_dir": str(run_dir), "data": {"root": str(tiny_corpus)},
                             **SMALL})  # fmt: skip
    return write_random_run(cfg, run_dir, seed=0)


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO / "bench" / "generator_fit.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_fit_on_the_truth_trains_and_scores(random_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit"
    proc = _script("--run", str(random_run), "--target", "truth", "--out", str(out),
                   "--max-sources", "1", "--stride", "8", "spfem.variant=baseline",
                   "spfem.steps=3", "spfem.window=2", "spfem.batch_size=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "spfem" / "DONE").is_file() and (out / "spfem" / "model.safetensors").is_file()
    assert (out / "cerl").is_symlink() and not (random_run / "spfem").is_symlink()
    report = json.loads((out / "fit.json").read_text())
    assert report["fit"]["steps"] == 3 and report["fit"]["target"] == "truth"
    assert report["summary"]["label"]["pairs"] == 3  # 1 source x 3 target emotions
    assert "aligned_match: none" in (out / "config.yaml").read_text()


def test_truth_with_the_content_term_is_refused(random_run: Path, tmp_path: Path) -> None:
    proc = _script("--run", str(random_run), "--target", "truth", "--out", str(tmp_path / "f"),
                   "spfem.variant=full")
    assert proc.returncode == 2 and "spfem.variant=baseline" in proc.stderr
