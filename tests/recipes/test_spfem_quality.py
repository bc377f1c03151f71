"""bench/spfem_quality.py (the generator's yardstick) and bench/gallery.py on a tiny corpus:
the protocol's pairs, known answers for a generator that copies its source, the gallery files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "recipes" / "spfem"))

import spfem_quality as q  # noqa: E402

SMALL = {"audio_prior": {"dim": 16, "width": 16}, "ccrl": {"channels": [8, 16], "dim": 16},
         "cerl": {"hidden": 32}, "spfem": {"channels": 8, "levels": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def copy_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose generator is freshly built: it copies its source (to about 1e-3)."""
    from config import Config
    from configlib import from_dict
    from random_run import write_random_run

    run_dir = tmp_path_factory.mktemp("quality") / "run"
    cfg = from_dict(Config, {"run_dir": str(run_dir), "data": {"root": str(tiny_corpus)},
                             **SMALL})  # fmt: skip
    return write_random_run(cfg, run_dir, seed=0)


def test_pairs_follow_the_protocol(tiny_corpus: Path) -> None:
    pairs = q.held_out_pairs(tiny_corpus)
    # the tiny corpus: 1 held-out speaker x 2 sentences; targets happy, angry, sad at level 3
    assert len(pairs) == 2 * 3
    assert {p.emotion for p in pairs} == {"happy", "angry", "sad"}
    for p in pairs:
        assert p.source.meta.emotion == "neutral"
        ref = p.reference
        assert ref.meta.speaker == p.source.meta.speaker and ref.meta.emotion == p.emotion
        assert ref.meta.intensity == q.LEVEL and ref.meta.sentence != p.source.meta.sentence
    assert len(q.held_out_pairs(tiny_corpus, max_sources=1)) == 3
    with pytest.raises(LookupError, match="neutral"):
        q.held_out_pairs(tiny_corpus, split="train", max_sources=0)


def test_mouth_box_covers_every_mouth_landmark() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(20, 40, (3, 68, 2))
    b = rng.uniform(25, 45, (2, 68, 2))
    x0, y0, x1, y1 = q.mouth_box(a, b, size=64, pad=0)
    pts = np.concatenate([a[:, 48:68], b[:, 48:68]]).reshape(-1, 2)
    assert x0 <= pts[:, 0].min() and pts[:, 0].max() < x1 and x1 - x0 <= 45 - 20 + 2
    assert y0 <= pts[:, 1].min() and pts[:, 1].max() < y1
    far = q.mouth_box(a * 10, size=64)  # clipped to the frame
    assert far[2:] == (64, 64) and far[0] <= 64 and far[1] <= 64


def test_a_copying_generator_scores_as_copy_the_source(copy_run: Path) -> None:
    records = list(q.iter_scores(copy_run, stride=4))
    assert len(records) == 2 * 3 * 2  # sources x targets x (label, reference)
    for r in records:
        assert r["edit"] < 2e-3
        assert r["l1"] == pytest.approx(r["copy_l1"], abs=2e-3)
        assert abs(r["gain"]) < 0.1
        assert 0 < r["codec_l1"] < r["copy_l1"]  # the counterfactual changes the face
        assert r["gt_edit"] == pytest.approx(r["copy_l1"])  # same quantity, two names
        assert np.isfinite(r["psnr"]) and r["psnr"] == pytest.approx(r["copy_psnr"], abs=0.5)
    s = q.summarize(records)
    assert s["label"]["pairs"] == s["reference"]["pairs"] == 6 and s["all"]["pairs"] == 12
    assert set(s["per_emotion"]["label"]) == {"happy", "angry", "sad"}
    assert "copy the source" in q.table(s)


def test_command_line_and_gallery(copy_run: Path, tmp_path: Path) -> None:
    import gallery

    out = tmp_path / "quality.json"
    assert q.main(["--run", str(copy_run), "--max-sources", "1", "--stride", "8",
                   "--json", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["summary"]["all"]["pairs"] == 6 and len(data["pairs"]) == 6
    paths = gallery.gallery(copy_run, tmp_path / "gallery", clips=1, emotions=("happy", "sad"),
                            scale=1)  # fmt: skip
    from PIL import Image

    with Image.open(paths[0]) as img:  # 5 columns of 64 px + the label margin, 2 rows
        assert img.size == (5 * 64 + 64, 2 * 64 + 14)
    index = json.loads((tmp_path / "gallery" / "gallery.json").read_text(encoding="utf-8"))
    assert index["images"][0]["emotions"] == ["happy", "sad"]
    assert gallery.main(["--run", str(copy_run), "--out", str(tmp_path / "g2"),
                         "--emotions", "fear"]) == 2  # fmt: skip
