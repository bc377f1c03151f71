"""example_clip.py: a held-out SynthTalk clip of a run as an mp4 with its audio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))


def _run_dir(tmp_path: Path, root: Path) -> Path:
    (tmp_path / "run" / "prepare").mkdir(parents=True)
    (tmp_path / "run" / "prepare" / "info.json").write_text(json.dumps({"root": str(root)}))
    return tmp_path / "run"


def test_exports_the_clip_with_its_audio(tmp_path: Path, synthtalk_tiny: Any) -> None:
    from example_clip import export_clip

    from decouple.data.io import read_audio, read_av, read_video
    from decouple.data.synthtalk.corpus import iter_clips

    run = _run_dir(tmp_path, synthtalk_tiny.root)
    path = export_clip(run, emotion="neutral")
    clip = next(c for c in iter_clips(synthtalk_tiny.root, "test") if c.meta.emotion == "neutral")
    assert path == run / "examples" / f"{clip.key}.mp4"
    video, audio = read_av(path, sample_rate=None)
    want = read_video(clip.video)
    assert video.num_frames == clip.meta.num_frames and video.fps == pytest.approx(want.fps)
    # the video is re-encoded (H.264 again): close to the shard's frames, not equal
    assert (video.frames.float() - want.frames.float()).abs().mean() < 3.0
    source = read_audio(clip.audio, sample_rate=None)
    assert audio.sample_rate == source.sample_rate
    assert abs(audio.num_samples - source.num_samples) <= 0.02 * source.num_samples
    assert torch.corrcoef(torch.stack([audio.waveform[:4000], source.waveform[:4000]]))[0, 1] > 0.9


def test_cli_errors(tmp_path: Path, synthtalk_tiny: Any) -> None:
    run = _run_dir(tmp_path, synthtalk_tiny.root)
    script = str(RECIPE / "example_clip.py")
    proc = subprocess.run([sys.executable, script, str(run), "--emotion", "calm"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no clip with emotion 'calm'" in proc.stderr
    proc = subprocess.run([sys.executable, script, str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "has no prepared data" in proc.stderr
