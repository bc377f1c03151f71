"""recipes/spfem/benchmark.py: run folders per method and seed, shared stages copied, the spfem
stage of an ablation trained for real with its variant."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import RECIPE

sys.path.insert(0, str(RECIPE))

from benchmark import SHARED_STAGES, copy_shared_stages, main, run_dirs


def test_run_dirs_name_every_method_and_seed() -> None:
    d = run_dirs("r", [0, 2], ["baseline", "emotion_only"])
    assert list(d) == ["full", "baseline", "emotion_only"]
    assert [p.as_posix() for p in d["full"]] == ["r/benchmark-s0", "r/benchmark-s2"]
    assert [p.as_posix() for p in d["emotion_only"]] == ["r/benchmark-s0-emotion_only",
                                                         "r/benchmark-s2-emotion_only"]


def test_copy_shared_stages(tmp_path: Path,
                            base_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    source, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]
    ablation = tmp_path / "ablation"
    assert copy_shared_stages(source, ablation) == list(SHARED_STAGES)
    for stage in SHARED_STAGES:
        assert (ablation / stage / "DONE").is_file()
        assert not (ablation / stage / "states").exists()  # resumable states are not copied
        src = sorted(p.relative_to(source / stage) for p in (source / stage).rglob("*")
                     if "states" not in p.parts)  # fmt: skip
        assert sorted(p.relative_to(ablation / stage) for p in (ablation / stage).rglob("*")) == src
    assert not (ablation / "spfem").exists()
    assert copy_shared_stages(source, ablation) == []  # done stages are left alone
    shutil.rmtree(ablation / "ccrl")
    assert copy_shared_stages(source, ablation) == ["ccrl"]


def test_copy_refuses_an_unfinished_full_run(tmp_path: Path) -> None:
    (tmp_path / "full" / "prepare").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="'prepare' stage has not finished"):
        copy_shared_stages(tmp_path / "full", tmp_path / "ablation")


@pytest.mark.slow
def test_benchmark_trains_an_ablation_for_real(
    tmp_path: Path, base_run: tuple[Path, subprocess.CompletedProcess[str]],
    tiny_config: Callable[[Path], Path],
) -> None:
    source, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]
    runs = tmp_path / "runs"
    shutil.copytree(source, runs / "benchmark-s0")  # the full run is complete: its stages skip
    config = tiny_config(runs / "unused")
    assert main(["--config", str(config), "--seeds", "0", "--variants", "baseline",
                 "--runs", str(runs), "--no-evaluate"]) == 0  # fmt: skip
    ablation = runs / "benchmark-s0-baseline"
    assert (ablation / "spfem" / "DONE").is_file()
    saved = yaml.safe_load((ablation / "config.yaml").read_text(encoding="utf-8"))
    assert saved["spfem"]["variant"] == "baseline" and saved["seed"] == 0
    assert saved["run_dir"] == str(ablation)
    # the ablation's generator is its own (trained without the CDRL terms), the encoders shared
    assert (ablation / "ccrl" / "model.safetensors").read_bytes() == (
        source / "ccrl" / "model.safetensors").read_bytes()
    assert (ablation / "spfem" / "model.safetensors").read_bytes() != (
        source / "spfem" / "model.safetensors").read_bytes()


def test_unknown_variant_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--variants", "half", "--no-evaluate"])
    assert "unknown ablation 'half'" in capsys.readouterr().err
