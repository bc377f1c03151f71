"""generate.py speed: frames/s of an emotion edit on a SynthTalk clip at 64 and 128 px.

    .venv/bin/python bench/generate.py                 # print the table (about 2-4 minutes)
    .venv/bin/python bench/generate.py --write-docs    # also write docs/benchmarks/generate.md
    .venv/bin/python bench/generate.py --quick         # one repeat, fewer cases

What is timed: `recipes/spfem/generate.py`'s `generate()` in this process, end to end on one
source video: decode (video + audio), the face step (none: SynthTalk frames are model-size
crops, the face rule uses them as they are), the target code (`--emotion happy`), the edit in
batches, and the H.264 + AAC encode of the output (crf 18, preset veryfast) into a file.
Model loading (once per command) is reported separately, and one full command line
(`python recipes/spfem/generate.py ...`: interpreter start, imports, loading, the edit) is timed
as well.

The models: the demo config's architecture (`configs/demo.yaml`: generator with 16 channels
and 3 levels, the SynthTalk CLIP, the conv CERL tower) with **random weights**
(`recipes/spfem/random_run.py`), so no training run is needed; the speed of the edit does not
depend on the weight values. At 128 px the same architecture runs on 128 px frames (the demo
trains at 64 px).

The source: one SynthTalk speaker saying several sentences (happy, level 3) at 25 fps,
concatenated into one video with its speech. Cases: one torch thread (generate.py's default)
and two (`--threads 2`), the generator in float32 (default) and in bfloat16 (`--amp`), batch
sizes 8, 16, 32. The command line runs with its defaults (one thread, float32, batch 16).

The machine is shared: the load average before and after each case is in the table, with the
frames per CPU second of this process (all its threads) as a less load-dependent figure: with
one thread and a core of its own, the wall-clock rate approaches it. Two intra-op threads
spend CPU waiting for each other (OpenMP spinning), more so on a busy machine, so their
frames per CPU second are lower.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "spfem"
DOCS_PAGE = ROOT / "docs" / "benchmarks" / "generate.md"
NOTE = """\
How to read it: one torch thread is generate.py's default (`--threads 1`). On this shared
machine two intra-op threads were slower than one at every size (they spend CPU waiting for
each other; see the frames per CPU second), so the second core is better used by a second
video in another process. `--amp` runs the generator in bfloat16 on CPUs with native bf16
(this one has AVX512-BF16): about twice the float32 rate here, with edits within 0.3 levels
of float32 on average (tests/recipes/test_generate.py checks < 0.6). Whole command lines
add the interpreter start, imports and model loading (several seconds on a busy machine).
"""
sys.path.insert(0, str(RECIPE))  # before bench/: `import generate` is the recipe



def make_source(folder: Path, size: int, sentences: int) -> tuple[Path, Path]:
    """A SynthTalk corpus of one speaker and the source video made of all its clips."""
    import torch

    from decouple.data.io import read_audio, read_video, write_av
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate, iter_clips

    root = folder / f"synthtalk-{size}"
    generate(root, SynthTalkConfig(speakers=1, sentences=sentences, conditions=(("happy", 3),),
                                   size=size, workers=1), progress=False)  # fmt: skip
    frames, waves, fps, rate = [], [], 25.0, 16000
    for clip in iter_clips(root, "train"):
        video = read_video(clip.video)
        audio = read_audio(clip.audio, sample_rate=None)
        n = round(video.num_frames / video.fps * audio.sample_rate)
        frames.append(video.frames)
        waves.append(torch.nn.functional.pad(audio.waveform, (0, max(0, n - audio.num_samples)))
                     [:n])  # fmt: skip
        fps, rate = video.fps, audio.sample_rate
    path = write_av(folder / f"source-{size}.mp4", torch.cat(frames), fps, torch.cat(waves), rate)
    return root, path


def make_run(folder: Path, root: Path, size: int) -> Path:
    """The demo config's models with random weights, as a run folder."""
    from config import Config
    from configlib import load_config
    from random_run import write_random_run

    cfg = load_config(Config, RECIPE / "configs" / "demo.yaml")
    run_dir = folder / f"run-{size}"
    cfg.run_dir = str(run_dir)
    cfg.data.root = str(root)
    if cfg.clip.model_config and not Path(cfg.clip.model_config).is_absolute():
        cfg.clip.model_config = str(ROOT / cfg.clip.model_config)
    return write_random_run(cfg, run_dir)


def bench_size(folder: Path, size: int, sentences: int, repeats: int,
               cases: tuple[tuple[int, int, bool], ...]) -> list[dict[str, Any]]:  # fmt: skip
    """Time `generate()` for each (batch, threads, amp) case on one source of this size."""
    import torch
    from generate import generate, load_run

    from decouple.data.io import read_video

    root, source = make_source(folder, size, sentences)
    run_dir = make_run(folder, root, size)
    t0 = time.perf_counter()
    models = load_run(run_dir)
    loading = time.perf_counter() - t0
    frames = read_video(source).num_frames
    rows = []
    default_threads = torch.get_num_threads()
    for batch, threads, amp in cases:
        torch.set_num_threads(threads)
        out = folder / f"out-{size}-{batch}.mp4"
        kw = {"emotion": "happy", "batch": batch, "amp": amp, "progress": False}
        generate(models, source, out, **kw)  # warm-up
        walls, cpus, steps = [], [], []
        load0 = load_average()
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            result = generate(models, source, out, **kw)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            steps.append(result.seconds)
        i = walls.index(statistics.median(walls))
        rows.append({"size": size, "batch": batch, "frames": frames, "wall": walls[i],
                     "cpu": cpus[i], "fps": frames / walls[i], "cpu_fps": frames / cpus[i],
                     "steps": steps[i], "load": f"{load0} -> {load_average()}", "loading": loading,
                     "threads": torch.get_num_threads(), "precision": result.precision,
                     "run_dir": run_dir, "source": source})  # fmt: skip
        print(rows[-1], file=sys.stderr)
    torch.set_num_threads(default_threads)
    return rows


def bench_cli(row: dict[str, Any], folder: Path) -> dict[str, Any]:
    """One whole command line, interpreter start included."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(RECIPE / "generate.py"), "--run", str(row["run_dir"]),
           "--source", str(row["source"]), "--emotion", "happy", "--no-progress",
           "--out", str(folder / "cli.mp4")]  # fmt: skip
    load0 = load_average()
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return {"size": row["size"], "frames": row["frames"], "wall": wall,
            "load": f"{load0} -> {load_average()}", "stdout": result.stdout.strip()}  # fmt: skip


def report(rows: list[dict[str, Any]], cli: list[dict[str, Any]], repeats: int) -> str:
    busiest = max(float(r["load"].split(" -> ")[0].split("/")[0]) for r in rows + cli)
    lines = [
        "# Generation speed",
        "",
        "Measured by `bench/generate.py` (its docstring says what is timed):",
        "`recipes/spfem/generate.py` editing a SynthTalk source video toward `--emotion happy`,",
        "decode and encode included, no face detection (SynthTalk frames are model-size crops),",
        "with **randomly initialised models of the demo config's size** (`configs/demo.yaml`:",
        "generator 16 channels, 3 levels; at 128 px the same architecture on 128 px frames).",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Load average (1/5/15 min) before -> after each case: in the tables; the highest "
        f"1-minute load at a case's start was {busiest:.2f} on {os.cpu_count()} CPUs.",
        f"- Median of {repeats} timed runs after a warm-up run.",
        "",
    ]
    if busiest > 0.5:
        lines += [
            "!!! warning \"Measured on a shared, busy machine\"",
            f"    Other processes were running (1-minute load up to {busiest:.2f}), so the "
            "wall-clock rates are lower bounds; frames per CPU second is the rate a thread "
            "with a core of its own would approach.",
            "",
        ]
    lines += [
        "| size | batch | threads | generator | frames | seconds | frames/s | "
        "frames per CPU s | decode / code / edit / encode (s) | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["steps"]
        parts = " / ".join(f"{s[k]:.2f}" for k in ("decode", "code", "edit", "encode"))
        amp = " (`--amp`)" if r["precision"] != "float32" else ""
        lines.append(f"| {r['size']} px | {r['batch']} | {r['threads']} | {r['precision']}{amp} "
                     f"| {r['frames']} | {r['wall']:.2f} | {r['fps']:.1f} | {r['cpu_fps']:.1f} | "
                     f"{parts} | {r['load']} |")
    loading = {r["size"]: r["loading"] for r in rows}
    lines += ["", "Model loading (once per command, not in the rates above): "
              + ", ".join(f"{k} px {v:.2f} s" for k, v in loading.items()) + ".", ""]
    if cli:
        lines += ["Whole command lines (`python recipes/spfem/generate.py --run ... --source ... "
                  "--emotion happy`: interpreter start, imports, model loading, the edit):", "",
                  "| size | frames | seconds | load before -> after |", "|---|---|---|---|"]
        for c in cli:
            lines.append(f"| {c['size']} px | {c['frames']} | {c['wall']:.2f} | {c['load']} |")
        lines.append("")
    lines += ["Goal: at least 25 frames/s at 128 px on 2 CPU cores (real time at 25 fps). "
              "At 128 px:", ""]
    for g in (r for r in rows if r["size"] == 128):
        lines.append(f"- batch {g['batch']}, {g['threads']} thread(s), {g['precision']}: "
                     f"{g['fps']:.1f} frames/s wall clock (1-minute load "
                     f"{g['load'].split(' -> ')[0].split('/')[0]} at the start), "
                     f"{g['cpu_fps']:.1f} frames per CPU second.")
    lines += ["", NOTE]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS_PAGE}")
    parser.add_argument("--quick", action="store_true",
                        help="one repeat, fewer cases (no batch sweep)")
    parser.add_argument("--sentences", type=int, default=4, help="sentences in the source")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    repeats = 1 if args.quick else 3
    rows: list[dict[str, Any]] = []
    cli = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        folder = Path(tmp)
        # (batch, torch threads (generate.py's default is 1), --amp)
        small = ((16, 1, False),) if args.quick else ((16, 1, False), (16, 2, False))
        large = ((16, 1, False), (16, 2, False), (16, 1, True), (16, 2, True))
        if not args.quick:
            large += ((8, 1, False), (32, 1, False))
        rows += bench_size(folder, 64, args.sentences, repeats, small)
        rows += bench_size(folder, 128, args.sentences, repeats, large)
        for size in (64, 128):
            row = next(r for r in rows if r["size"] == size)
            cli.append(bench_cli(row, folder))
            print(cli[-1], file=sys.stderr)
    text = report(rows, cli, repeats)
    print(text)
    if args.write_docs:
        DOCS_PAGE.parent.mkdir(parents=True, exist_ok=True)
        DOCS_PAGE.write_text(text)
        print(f"wrote {DOCS_PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
