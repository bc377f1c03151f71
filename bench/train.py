"""Training throughput of every stage of the SPFEM recipe, and the wall time it implies per config.

    .venv/bin/python bench/train.py                 # demo + benchmark configs, about 10-15 minutes
    .venv/bin/python bench/train.py --quick         # fewer steps per measurement, about 5 minutes
    .venv/bin/python bench/train.py --write-docs    # also writes docs/benchmarks/train.md

Each stage runs as the recipe runs it (`recipes/spfem/train.py --stages STAGE`, one process,
the config's threads and data workers) in a fresh process on a run folder whose other stages
are complete with random weights (`recipes/spfem/random_run.py`: a step costs the same whatever
the weights). A stage runs twice, for `n1` and `n2` steps; the time per step is
`(T(n2) - T(n1)) / (n2 - n1)` (what each further step costs) and the set-up is what remains of
`T(n1)` (process start, imports, model building, the data pipeline's first batch, the stage's
final probe or export). The projected wall time of a stage is set-up + steps x time per step
with the config's step budget; `prepare` (SynthTalk generation) is timed once per corpus.

The per-step numbers of the benchmark config are measured on the demo corpus (the frame size,
fps and batch shapes are the config's own; only the corpus is smaller), and its `prepare` time
is measured on its own corpus with `--benchmark-data` (about 2-3 minutes) or else scaled from
the demo corpus by the clip count (marked "scaled").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _machine import load_average, machine

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "spfem"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOCS_PAGE = REPO / "docs" / "benchmarks" / "train.md"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "decouple-bench"
CONFIGS = {name: RECIPE / "configs" / f"{name}.yaml" for name in ("demo", "benchmark")}
STAGES = ("audio_prior", "clip", "ccrl", "cerl", "spfem")
DEMO_GOAL_S = 15 * 60.0

sys.path.insert(0, str(RECIPE))
sys.path.insert(0, str(REPO))


@dataclass
class StageTiming:
    """One stage of one config: two timed runs and what they imply."""

    config: str
    stage: str
    n1: int
    t1: float
    n2: int
    t2: float
    budget: int  # the config's steps
    samples_per_step: int
    frames_per_sample: int

    @property
    def per_step(self) -> float:
        return max((self.t2 - self.t1) / (self.n2 - self.n1), 1e-9)

    @property
    def setup(self) -> float:
        return max(self.t1 - self.n1 * self.per_step, 0.0)

    @property
    def projected(self) -> float:
        return self.setup + self.budget * self.per_step


def _load(config: str, overrides: list[str] | None = None) -> Any:
    from config import Config, check_config
    from configlib import load_config

    cfg = load_config(Config, str(CONFIGS[config]), overrides or [])
    return check_config(cfg, str(CONFIGS[config]))


def batch_shape(cfg: Any, stage: str) -> tuple[int, int]:
    """(samples per step, frames per sample) of a stage's batches under a config."""
    if stage == "audio_prior":
        return cfg.audio_prior.batch_size, cfg.audio_prior.window
    if stage == "clip":
        return cfg.clip.batch_size, 1
    if stage == "ccrl":
        return cfg.ccrl.batch_size * cfg.ccrl.emotions, cfg.ccrl.window
    if stage == "cerl":
        return cfg.cerl.emotions * cfg.cerl.per_emotion, 1
    return cfg.spfem.batch_size, cfg.spfem.window


def _run(args: list[str], log: Path) -> float:
    """Run the recipe's train.py with arguments; its wall time in seconds."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as f:
        proc = subprocess.run([sys.executable, str(RECIPE / "train.py"), *args], cwd=REPO,
                              stdout=f, stderr=subprocess.STDOUT, env=env, check=False)  # fmt: skip
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
        raise RuntimeError(f"train.py {' '.join(args)} failed ({proc.returncode}); "
                           f"log {log}:\n{tail}")
    return elapsed


def prepare_corpus(config: str, root: Path, work: Path) -> float | None:
    """Generate the config's SynthTalk corpus into `root` unless there; wall time (None: cached)."""
    from decouple.data.synthtalk.corpus import SUMMARY_FILE

    if (root / SUMMARY_FILE).is_file():  # written last by a complete generation
        return None
    run = work / f"prepare-{config}"
    t = _run(["--config", str(CONFIGS[config]), "--stages", "prepare", f"run_dir={run}",
              f"data.root={root}"], work / f"prepare-{config}.log")  # fmt: skip
    return t


def time_stage(config: str, stage: str, data_root: Path, work: Path, n1: int, n2: int
               ) -> StageTiming:  # fmt: skip
    """Time one stage for n1 and n2 steps on a random-weight run folder."""
    from random_run import write_random_run

    overrides = [f"data.root={data_root}"]
    cfg = _load(config, overrides)
    times = []
    for n in (n1, n2):
        run = work / f"{config}-{stage}-{n}"
        if run.exists():
            shutil.rmtree(run)
        write_random_run(cfg, run)
        shutil.rmtree(run / stage)
        cmd = ["--config", str(CONFIGS[config]), "--stages", stage, f"run_dir={run}", *overrides,
               f"{stage}.steps={n}", "runtime.save_every=0", "runtime.sample_every=0"]
        times.append(_run(cmd, work / f"{config}-{stage}-{n}.log"))
        shutil.rmtree(run)
    samples, frames = batch_shape(cfg, stage)
    return StageTiming(config, stage, n1, times[0], n2, times[1], getattr(cfg, stage).steps,
                       samples, frames)  # fmt: skip


def _clips(config: str) -> int:
    from decouple.data.synthtalk.corpus import SynthTalkConfig

    s = _load(config).data.synthtalk
    return SynthTalkConfig(speakers=s.speakers, sentences=s.sentences, levels=tuple(s.levels)
                           ).num_clips  # fmt: skip


def render(timings: list[StageTiming], prepare: dict[str, tuple[float, bool]],
           args: argparse.Namespace, wall: float, loads: list[str]) -> str:  # fmt: skip
    """The markdown report."""
    lines = [
        "| config | stage | samples per step | frames per sample | s per step | steps/s "
        "| samples/s | set-up (s) | steps in config | projected stage time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals: dict[str, float] = {}
    for config in CONFIGS:
        rows = [t for t in timings if t.config == config]
        if not rows:
            continue
        prep, scaled = prepare.get(config, (float("nan"), False))
        label = "prepare (SynthTalk generation" + (", scaled by clips)" if scaled else ")")
        lines.append(f"| {config} | {label} | | | | | | | | {_mmss(prep)} |")
        total = prep
        for t in rows:
            lines.append(
                f"| {config} | {t.stage} | {t.samples_per_step} | {t.frames_per_sample} | "
                f"{t.per_step:.3f} | {1 / t.per_step:.2f} | "
                f"{t.samples_per_step / t.per_step:.1f} | "
                f"{t.setup:.1f} | {t.budget} | {_mmss(t.projected)} |"
            )
            total += t.projected
        missing = [s for s in STAGES if s not in {t.stage for t in rows}]
        if missing:
            label = f"timed stages (not timed: {', '.join(missing)})"
        else:
            label = "all stages"
            totals[config] = total
        lines.append(f"| {config} | **{label}** | | | | | | | | **{_mmss(total)}** |")
    lines += ["", "Goals:", ""]
    if "demo" not in totals:
        lines.append("- the demo goal (at most 15 min) needs every stage timed: not checked")
    else:
        verdict = "PASS" if totals["demo"] <= DEMO_GOAL_S else "MISS"
        lines.append(f"- {verdict}: the whole default demo (data + all stages) in at most 15 min "
                     f"on 2 CPU cores: projected {_mmss(totals['demo'])}")  # fmt: skip
    lines += [
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min) at the start of each stage: {', '.join(loads)}",
        f"- steps per measurement: n1 = {args.n1}, n2 = {args.n2}; total wall time {wall:.0f} s",
        "",
        "s per step = (T(n2) - T(n1)) / (n2 - n1) from two fresh runs of the stage; set-up = "
        "T(n1) - n1 x s per step (process start, model building, first batch, the stage's final "
        "probe); projected = set-up + steps in config x s per step. Samples per step: audio "
        "windows (audio_prior), image-caption pairs (clip), clips of K groups x E emotions (ccrl), "
        "frames of E emotions x P (cerl), source clips (spfem).",
    ]
    return "\n".join(lines) + "\n"


def _mmss(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


HEADER = """# Training throughput of the SPFEM recipe

Per-stage training speed of `recipes/spfem/train.py` on our 2-core CPU (no GPU) and the wall
time it implies for the demo (`configs/demo.yaml`, the README's main job) and the benchmark
(`configs/benchmark.yaml`, one seed). Each stage runs as the recipe runs it, in a fresh process
on a run folder whose other stages hold random weights (a step costs the same whatever the
weights), twice with different step counts, so the time per step excludes start-up. The
benchmark's steps are measured on the demo corpus (same frame size and batch shapes). Reproduce
with `python bench/train.py --write-docs` (see `bench/README.md`) on an idle machine: other work
on the two cores slows every row.

"""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report; write it to bench/results (and the docs page)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps per measurement")
    p.add_argument("--configs", default="demo,benchmark", help="comma-separated: demo,benchmark")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to time")
    p.add_argument("--benchmark-data", action="store_true",
                   help="generate and time the benchmark config's own corpus (2-3 min)")
    p.add_argument("--write-docs", action="store_true", help="also write docs/benchmarks/train.md")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = p.parse_args(argv)
    args.n1, args.n2 = (3, 13) if args.quick else (5, 35)
    configs = [c for c in args.configs.split(",") if c]
    stages = [s for s in args.stages.split(",") if s]
    for c in configs:
        if c not in CONFIGS:
            p.error(f"--configs: unknown config {c!r} (known: {', '.join(CONFIGS)})")
    for s in stages:
        if s not in STAGES:
            p.error(f"--stages: unknown stage {s!r} (known: {', '.join(STAGES)})")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="decouple-bench-train-"))
    demo_root = CACHE / "train-demo-corpus"
    prepare: dict[str, tuple[float, bool]] = {}
    loads: list[str] = []
    try:
        cached = CACHE / "train-demo-corpus.prepare.json"
        t = prepare_corpus("demo", demo_root, work)
        if t is not None:
            cached.write_text(json.dumps({"seconds": t}), encoding="utf-8")
        demo_prep = json.loads(cached.read_text(encoding="utf-8"))["seconds"]
        print(f"prepare demo: {demo_prep:.0f} s" + (" (cached corpus)" if t is None else ""),
              file=sys.stderr)  # fmt: skip
        prepare["demo"] = (demo_prep, False)
        if "benchmark" in configs:
            if args.benchmark_data:
                root = work / "benchmark-corpus"
                tb = prepare_corpus("benchmark", root, work)
                prepare["benchmark"] = (float(tb or 0.0), False)
            else:
                prepare["benchmark"] = (demo_prep * _clips("benchmark") / _clips("demo"), True)
        timings = []
        for c in configs:
            for s in stages:
                loads.append(f"{c}/{s} {load_average()}")
                timing = time_stage(c, s, demo_root, work, args.n1, args.n2)
                timings.append(timing)
                print(f"{c:>9} {s:<11} {timing.per_step:.3f} s/step, set-up {timing.setup:.1f} s, "
                      f"projected {_mmss(timing.projected)}", file=sys.stderr)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}", file=sys.stderr)
    report = render(timings, prepare, args, time.perf_counter() - t0, loads)
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / ("train-quick.md" if args.quick else "train.md")
    out.write_text(report, encoding="utf-8")
    if args.write_docs:
        DOCS_PAGE.write_text(HEADER + report, encoding="utf-8")
        print(f"wrote {DOCS_PAGE.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
