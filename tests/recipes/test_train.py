"""train.py end to end through `accelerate launch`: every stage, 2 processes, kill + resume,
NaN stop, config errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))

STAGES = ("prepare", "audio_prior", "clip", "ccrl", "cerl", "spfem")
RunCopy = Callable[[str], tuple[Path, Path]]
Launch = Callable[..., subprocess.CompletedProcess[str]]


def _finite(path: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(path))
    assert state, path
    for key, value in state.items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{path}: {key} is not finite"
    return state


def test_every_stage_runs_and_writes_its_outputs(
    base_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "config.yaml").read_text().startswith("# accelerate launch recipes/spfem/")
    for stage in STAGES:
        folder = run_dir / stage
        assert (folder / "DONE").is_file(), stage
        metrics = json.loads((folder / "metrics.json").read_text())
        assert not (folder / "states").exists()  # removed once the stage is complete
        if stage != "prepare":
            assert metrics["steps"] > 0 and math.isfinite(metrics["final"]["loss"]), stage
            _finite(folder / "model.safetensors")
            lines = (folder / "scalars.jsonl").read_text().splitlines()
            assert json.loads(lines[-1])["step"] == metrics["steps"]
    info = json.loads((run_dir / "prepare" / "info.json").read_text())
    assert info["size"] == 64 and info["fps"] == 25 and "neutral" in info["emotion_names"]
    # probes are measured on held-out speakers against their chance level
    probe = json.loads((run_dir / "ccrl" / "metrics.json").read_text())["probes"]
    assert {"emotion_probe", "viseme_probe"} <= set(probe)
    assert 0 <= probe["emotion_probe"]["chance"] <= 1
    assert probe["emotion_probe"]["test_speakers"] == ["S002"]
    cerl = json.loads((run_dir / "cerl" / "metrics.json").read_text())["probes"]
    assert cerl["emotion_probe"]["n_test"] > 0
    # sample grids: source | reference | output, `samples` rows
    from PIL import Image

    grids = sorted((run_dir / "spfem" / "samples").glob("step-*.png"))
    assert [g.name for g in grids] == ["step-000002.png", "step-000004.png"]
    assert Image.open(grids[-1]).size == (3 * 64, 2 * 64)


def test_models_load_from_the_run(base_run: tuple[Path, subprocess.CompletedProcess[str]]
                                  ) -> None:  # fmt: skip
    from model import emotion_code, load_models

    run_dir, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]
    models = load_models(run_dir)
    assert models.generator is not None and not models.generator.training
    assert all(not p.requires_grad for p in models.generator.parameters())
    frames = torch.rand(3, 3, 64, 64)
    code = emotion_code(models, label="happy")
    torch.testing.assert_close(code, emotion_code(models, label=models.emotion_names.index(
        "happy")))  # fmt: skip
    assert emotion_code(models, reference=frames).shape == code.shape
    # spfem.reference_code: embedding is Ee's mean embedding, prior reads it through the
    # prior's rows: both by hand
    import dataclasses

    def with_code(kind: str) -> object:
        cfg = dataclasses.replace(models.config, spfem=dataclasses.replace(
            models.config.spfem, reference_code=kind))  # fmt: skip
        return dataclasses.replace(models, config=cfg)

    ref = emotion_code(with_code("embedding"), reference=frames)
    via_prior = emotion_code(with_code("prior"), reference=frames)
    with torch.no_grad():
        rows = torch.nn.functional.normalize(models.prior.prior().double(), dim=-1)
        z = torch.nn.functional.normalize(models.emotion_encoder(frames).mean(0).double(), dim=0)
        w = torch.softmax(rows @ z / models.config.cerl.temperature, dim=0)
        want = torch.nn.functional.normalize(w @ rows, dim=0)
    torch.testing.assert_close(ref[0].double(), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(via_prior[0].double(), want, atol=1e-5, rtol=0)
    assert not torch.allclose(via_prior, ref, atol=1e-3)  # the embedding is off the rows
    assert emotion_code(models, text="a broad smile").shape == (1, models.prior.dim)
    out = models.generator(frames, code.expand(3, -1))
    assert out.shape == frames.shape
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        emotion_code(models, label="joy")


def test_a_rerun_skips_completed_stages(
    base_run: tuple[Path, subprocess.CompletedProcess[str]], tiny_config: Callable[[Path], Path],
    run_train: Launch,
) -> None:
    run_dir, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]
    before = (run_dir / "spfem" / "model.safetensors").read_bytes()
    again = run_train(["--config", str(tiny_config(run_dir)), "--stages", "ccrl,spfem"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[ccrl] complete" in again.stdout and "[spfem] complete" in again.stdout
    assert (run_dir / "spfem" / "model.safetensors").read_bytes() == before


def test_two_processes_train_the_spfem_stage(run_before_spfem: RunCopy, run_train: Launch
                                             ) -> None:  # fmt: skip
    run_dir, config = run_before_spfem("ddp")
    result = run_train(["--config", str(config), "--stages", "spfem"], processes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    _finite(run_dir / "spfem" / "model.safetensors")
    assert (run_dir / "spfem" / "DONE").is_file()


def test_killed_and_resumed_run_ends_with_the_same_weights(
    run_before_spfem: RunCopy, run_train: Launch, tmp_path: Path
) -> None:
    straight, cfg_a = run_before_spfem("straight")
    killed, cfg_b = run_before_spfem("killed")
    opts = ["--stages", "spfem", "spfem.steps=6", "runtime.sample_every=0"]
    a = run_train(["--config", str(cfg_a), *opts])
    assert a.returncode == 0, a.stderr[-3000:]
    b = run_train(["--config", str(cfg_b), *opts, "runtime.debug_exit_after_save=4"])
    assert b.returncode != 0  # hard exit right after the save at step 4
    assert not (killed / "spfem" / "DONE").exists()
    states = sorted(p.name for p in (killed / "spfem" / "states").iterdir())
    assert states == ["step-00000004"]  # keep_states=1: step 2 pruned after step 4 was in place
    at_4 = load_file(str(killed / "spfem" / "states" / "step-00000004" / "model.safetensors"))
    c = run_train(["--config", str(cfg_b), *opts, "--resume"])
    assert c.returncode == 0, c.stderr[-3000:]
    assert "resumed from" in c.stdout and "at step 4" in c.stdout
    wa = load_file(str(straight / "spfem" / "model.safetensors"))
    wb = load_file(str(killed / "spfem" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    # ... and the two steps after the resume point did move the weights
    assert any(not torch.equal(wa[k], at_4[f"generator.{k}"]) for k in wa)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_state(
    run_before_spfem: RunCopy, run_train: Launch
) -> None:
    run_dir, config = run_before_spfem("nan")
    result = run_train(["--config", str(config), "--stages", "spfem", "spfem.steps=6",
                     "runtime.debug_nan_step=3"])  # fmt: skip
    assert result.returncode != 0
    assert "stage spfem: the loss is nan (not finite) at step 3" in result.stderr
    assert "the last good state" in result.stderr
    state = run_dir / "spfem" / "states" / "step-00000002"
    assert json.loads((state / "loop.json").read_text()) == {"step": 2}
    _finite(state / "model.safetensors")
    assert not (run_dir / "spfem" / "DONE").exists()
    assert not (run_dir / "spfem" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ccrl.stpes=3"], "unknown key 'stpes' (did you mean 'steps'"),
        (["spfem.variant=strong"], "spfem.variant: expected one of"),
        (["runtime.save_every=often"], "runtime.save_every: expected an integer"),
        (["--stages", "spfem,ccrl"], "stages: expected stages in the order"),
        (["cerl.per_emotion=1"], "cerl.per_emotion: expected a value >= 2"),
    ],
)
def test_config_errors_exit_with_the_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import train

    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "demo.yaml" in err
