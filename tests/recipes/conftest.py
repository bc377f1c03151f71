"""Shared fixtures of the recipe tests: a tiny SynthTalk corpus, the real script launched by
`accelerate launch`, and one completed tiny run whose stages later tests reuse."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "spfem"
TRAIN = RECIPE / "train.py"
ACCELERATE = Path(sys.executable).with_name("accelerate")

# A config small enough for seconds per stage on one CPU core; every stage runs for real.
TINY = """\
# accelerate launch recipes/spfem/train.py --config tiny.yaml
run_dir: {run_dir}
data:
  root: {root}
runtime:
  threads: 1
  save_every: 2
  log_every: 2
  sample_every: 2
  progress: false
  tensorboard: false
audio_prior: {{steps: 3, batch_size: 4, window: 16, dim: 16, width: 16}}
clip: {{steps: 3, batch_size: 8}}
ccrl: {{steps: 3, batch_size: 1, emotions: 3, window: 3, channels: [8, 16], dim: 16,
        probe_windows: 16}}
cerl: {{steps: 3, emotions: 3, per_emotion: 2, window: 2, frames_per_clip: 1, hidden: 32,
        probe_windows: 16}}
# spfem: 2-frame windows, both code sources and both edit directions (the defaults use one)
spfem: {{steps: 4, batch_size: 2, window: 2, channels: 8, levels: 2, samples: 2,
        label_code_prob: 0.5, reverse_prob: 0.5}}
"""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(args: list[str], *, processes: int = 1, timeout: float = 240
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run train.py through `accelerate launch` on the CPU (gloo for 2 processes)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", ACCELERATE_USE_CPU="true",
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # fmt: skip
    cmd = [str(ACCELERATE), "launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "--num_processes", str(processes)]  # fmt: skip
    if processes > 1:
        cmd.append("--multi_gpu")
    cmd += [str(TRAIN), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="session")
def run_train() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_train(args, processes=1)`: train.py through `accelerate launch` (see `launch`)."""
    return launch


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SynthTalk corpus: 3 speakers (2 train, 1 held out) x 2 sentences x 4 emotions."""
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    root = tmp_path_factory.mktemp("synthtalk")
    generate(root, SynthTalkConfig(speakers=3, sentences=2, levels=(3,), workers=1,
                                   emotions=("neutral", "happy", "angry", "sad")),
             progress=False)  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path
                ) -> Callable[[Path], Path]:  # fmt: skip
    """`tiny_config(run_dir) -> config file` on the tiny corpus."""
    folder = tmp_path_factory.mktemp("configs")

    def make(run_dir: Path) -> Path:
        path = folder / f"{len(list(folder.iterdir()))}-{run_dir.name}.yaml"
        path.write_text(TINY.format(run_dir=run_dir, root=tiny_corpus), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory,
             tiny_config: Callable[[Path], Path]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Every stage of the tiny config run once through accelerate (the smoke run)."""
    run_dir = tmp_path_factory.mktemp("runs") / "base"
    result = launch(["--config", str(tiny_config(run_dir))])
    return run_dir, result


@pytest.fixture
def run_before_spfem(tmp_path: Path, base_run: tuple[Path, subprocess.CompletedProcess[str]],
                     tiny_config: Callable[[Path], Path]) -> Callable[[str], tuple[Path, Path]]:
    """`copy(name) -> (run_dir, config)`: the base run without its spfem stage."""
    source, result = base_run
    assert result.returncode == 0, result.stderr[-3000:]

    def copy(name: str) -> tuple[Path, Path]:
        run_dir = tmp_path / name
        shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("spfem"))
        return run_dir, tiny_config(run_dir)

    return copy
