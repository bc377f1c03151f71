"""Train and score the SynthTalk SPFEM benchmark: every seed, every ablation, then evaluate.py.

    python recipes/spfem/benchmark.py             # 3 seeds x (full + 3 ablations), report
    python recipes/spfem/benchmark.py --seeds 0 --no-evaluate spfem.steps=100   # a quick look
    python recipes/spfem/benchmark.py --launcher "accelerate launch --num_processes 2"

Per seed `s` (the config's `seed`): the full run `<runs>/benchmark-s<s>` trains every stage of
the config (`configs/benchmark.yaml`); each ablation `v` (`spfem.variant=v`: `baseline` without
the CDRL terms, `content_only`, `emotion_only`) gets `<runs>/benchmark-s<s>-<v>`, a copy of the
full run's finished stages before `spfem` (the same data, priors and encoders: the rows differ
only in the generator's training), and trains its `spfem` stage. All seeds share the corpus
(the config's `data.root`). Then `evaluate.py` scores them all (`--runs full=... baseline=...`)
into `<runs>/benchmark-eval/` and, with `--docs`, writes the results page.

Re-running resumes: finished stages are skipped (their `DONE` markers), copies are not redone.
Extra `key=value` arguments override the config of every run (e.g. `spfem.steps=100`).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "configs" / "benchmark.yaml"
VARIANTS = ("baseline", "content_only", "emotion_only")
SHARED_STAGES = ("prepare", "audio_prior", "clip", "ccrl", "cerl")

__all__ = ["copy_shared_stages", "main", "run_dirs"]


def run_dirs(runs: str | Path, seeds: list[int], variants: list[str]) -> dict[str, list[Path]]:
    """The run folder of every method and seed.

    Args:
        runs: The parent folder.
        seeds: Training seeds.
        variants: Ablations (besides `full`).

    Returns:
        `{"full": [...], variant: [...]}`, one folder per seed in seed order.

    Examples:
        >>> d = run_dirs("runs", [0, 1], ["baseline"])
        >>> [p.as_posix() for p in d["baseline"]]
        ['runs/benchmark-s0-baseline', 'runs/benchmark-s1-baseline']
    """
    root = Path(runs)
    out = {"full": [root / f"benchmark-s{s}" for s in seeds]}
    for v in variants:
        out[v] = [root / f"benchmark-s{s}-{v}" for s in seeds]
    return out


def copy_shared_stages(full: str | Path, ablation: str | Path) -> list[str]:
    """Copy the finished stages before `spfem` from the full run into an ablation's folder.

    Stages the ablation already has (a `DONE` marker) are left alone; resumable training
    states (`states/`) are not copied. Each stage is copied to a temporary name, then renamed.

    Args:
        full: The full run's folder.
        ablation: The ablation's folder (created).

    Returns:
        The stages copied.

    Raises:
        FileNotFoundError: If a shared stage of the full run has not finished.
    """
    full, ablation = Path(full), Path(ablation)
    copied = []
    for stage in SHARED_STAGES:
        src, dst = full / stage, ablation / stage
        if (dst / "DONE").is_file():
            continue
        if not (src / "DONE").is_file():
            raise FileNotFoundError(f"{src}: the full run's {stage!r} stage has not finished "
                                    "(train the full run first)")  # fmt: skip
        tmp = ablation / f".tmp-{stage}"
        if tmp.exists():
            shutil.rmtree(tmp)
        if dst.exists():
            shutil.rmtree(dst)
        ablation.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("states"))
        tmp.rename(dst)
        copied.append(stage)
    return copied


def _train(launcher: list[str], config: Path, args: list[str]) -> None:
    cmd = [*launcher, str(HERE / "train.py"), "--config", str(config), *args]
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    """Train every seed and ablation, then evaluate.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        The exit status (0 when everything ran).
    """
    p = argparse.ArgumentParser(prog="python recipes/spfem/benchmark.py",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="the benchmark config")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (0,1,2)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated ablations besides full (default: all three)")
    p.add_argument("--runs", default="runs", help="parent folder of the run folders (runs)")
    p.add_argument("--launcher", default=None,
                   help='how to start train.py, e.g. "accelerate launch --num_processes 2" '
                        "(default: this Python, one process)")
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                   help="train only")
    p.add_argument("--docs", default=None, help="also write the results page here "
                                                "(e.g. docs/results.md)")
    p.add_argument("--evaluate-args", default="",
                   help='extra evaluate.py arguments, e.g. "--max-sources 4"')
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown ablation {v!r} (known: {', '.join(VARIANTS)})")
    launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    config = Path(args.config)
    dirs = run_dirs(args.runs, seeds, variants)
    t0 = time.perf_counter()
    for i, seed in enumerate(seeds):
        full = dirs["full"][i]
        _train(launcher, config, [f"seed={seed}", f"run_dir={full}", *args.overrides])
        for v in variants:
            ablation = dirs[v][i]
            copied = copy_shared_stages(full, ablation)
            if copied:
                print(f"[{ablation}] copied {', '.join(copied)} from {full}", flush=True)
            _train(launcher, config, ["--stages", "spfem", f"seed={seed}", f"run_dir={ablation}",
                                      f"spfem.variant={v}", *args.overrides])  # fmt: skip
        print(f"seed {seed} trained ({time.perf_counter() - t0:.0f} s so far)", flush=True)
    if args.evaluate:
        runs = [f"{m}={','.join(str(d) for d in ds)}" for m, ds in dirs.items()]
        cmd = [sys.executable, str(HERE / "evaluate.py"), "--runs", *runs,
               "--out", str(Path(args.runs) / "benchmark-eval")]  # fmt: skip
        if args.docs:
            cmd += ["--docs", args.docs]
        cmd += shlex.split(args.evaluate_args)
        print("$ " + shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    print(f"benchmark done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
