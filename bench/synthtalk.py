"""SynthTalk speed: rendering alone and the whole generation, at 64 and 128 px, on both cores.

    .venv/bin/python bench/synthtalk.py                 # print the table (about 2-3 minutes)
    .venv/bin/python bench/synthtalk.py --write-docs    # also write docs/benchmarks/synthtalk.md
    .venv/bin/python bench/synthtalk.py --quick         # smaller corpora (about 40 s)

1. **Rendering alone**: `render_frames` on precomputed tracks (real speech timelines, the
   clips' own expression and nuisance), `--workers` processes with one torch thread each, each
   rendering its share of the clips; frames/s = all frames / wall time of the parallel part
   (process start-up excluded: the pool is warmed first).
2. **Whole generation**: `decouple.data.synthtalk.corpus.generate` (speech, tracks, rendering,
   H.264 and FLAC encoding, DTW alignment, shard writing), frames/s and wall time, at 64 px
   for the default demo corpus (`SynthTalkConfig()`) and at 128 px for a smaller one.

The machine is shared: the load average (`os.getloadavg()`) before and after each case is in
the table; numbers measured under load are slower than on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _machine import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
DOCS_PAGE = ROOT / "docs" / "benchmarks" / "synthtalk.md"



def _init() -> None:
    import torch

    torch.set_num_threads(1)


def _tracks(n_clips: int, size: int) -> list[dict[str, Any]]:
    """Clip parameters (the synthtalk extra) of `n_clips` real clips, made with espeak."""
    from decouple.data.registry import MEAD
    from decouple.data.synthtalk.corpus import SynthTalkConfig, _clip_params
    from decouple.data.synthtalk.speakers import sample_speakers
    from decouple.data.synthtalk.speech import SENTENCES, speak

    cfg = SynthTalkConfig(size=size)
    speakers = sample_speakers(4, 0)
    out = []
    for i in range(n_clips):
        sp = speakers[i % 4]
        emotion = MEAD.names[i % 8]
        level = 1 if emotion == "neutral" else 3
        s = SENTENCES[i % len(SENTENCES)]
        speech = speak(s.text, emotion, level, variant=sp.voice_variant, base_pitch=sp.voice_pitch)
        out.append(_clip_params(cfg, sp, (s.id, s.text), emotion, level, speech))
    return out


def _render_share(params: list[dict[str, Any]]) -> tuple[int, float]:
    """Render clips in this process: (frames, seconds of rendering only)."""
    from decouple.data.synthtalk.corpus import _tracks as tracks
    from decouple.data.synthtalk.render import render_frames
    from decouple.data.synthtalk.speakers import SpeakerParams

    prepared = []
    for p in params:
        arrays = tracks(p)
        prepared.append((SpeakerParams.from_json(p["speaker"]), arrays, int(p["size"])))
    frames = 0
    start = time.perf_counter()
    for sp, a, size in prepared:
        nui = {k: a[k] for k in ("blink", "head_pose", "gain")}
        frames += render_frames(sp, a["expression"], a["mouth"], nui, size).frames.shape[0]
    return frames, time.perf_counter() - start


def bench_render(size: int, n_clips: int, workers: int) -> dict[str, Any]:
    params = _tracks(n_clips, size)
    shares = [params[i::workers] for i in range(workers)]
    load0 = load_average()
    with ProcessPoolExecutor(workers, initializer=_init) as pool:
        list(pool.map(_render_share, [params[:2]] * workers))  # warm: imports, first calls
        start = time.perf_counter()
        results = list(pool.map(_render_share, shares))
        wall = time.perf_counter() - start
    frames = sum(r[0] for r in results)
    return {"case": f"render {size} px", "frames": frames, "seconds": wall,
            "fps": frames / wall, "per_process_fps": [round(f / s) for f, s in results],
            "load": f"{load0} -> {load_average()}"}


def bench_generate(size: int, config_kw: dict[str, Any], label: str) -> dict[str, Any]:
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    cfg = SynthTalkConfig(size=size, **config_kw)
    load0 = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = generate(tmp, cfg, progress=False)
        wall = time.perf_counter() - start
        mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    return {"case": f"generate {size} px, {label}", "clips": summary["clips"],
            "frames": summary["frames"], "seconds": wall, "fps": summary["frames"] / wall,
            "megabytes": mb, "dtw": {k: (v["dtw_error"], v["linear_error"]["mean"])
                                     for k, v in summary["splits"].items()},
            "load": f"{load0} -> {load_average()}", "workers": cfg.workers}


def report(rows: list[dict[str, Any]], quick: bool) -> str:
    busiest = max(float(r["load"].split(" -> ")[0].split("/")[0]) for r in rows)
    lines = [
        "# SynthTalk generation speed",
        "",
        "Measured by `bench/synthtalk.py` (see its docstring for what each case times).",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Load average (1/5/15 min) before / after each case: in the table; the highest "
        f"1-minute load at a case's start was {busiest:.2f} on {os.cpu_count()} CPUs.",
        "",
    ]
    if busiest > 0.5:
        lines += [
            "!!! warning \"Measured on a shared, busy machine\"",
            f"    Other processes were running (1-minute load up to {busiest:.2f}). The "
            "numbers are lower bounds: re-measure on an idle machine.",
            "",
        ]
    if quick:
        lines += ["*Quick run (smaller corpora).*", ""]
    lines += [
        "| case | clips | frames | seconds | frames/s | load before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r.get('clips', '')} | {r['frames']} | "
                     f"{r['seconds']:.1f} | {r['fps']:,.0f} | {r['load']} |")
    lines += ["", "Goals: rendering at least 1,000 frames/s at 64 px on both cores; the default "
              "demo corpus (`SynthTalkConfig()`, the CLI defaults) generated in under 2 "
              "minutes.", ""]
    for r in rows:
        if "per_process_fps" in r:
            lines.append(f"- {r['case']}: per process {r['per_process_fps']} frames/s "
                         "(one torch thread each).")
        if "megabytes" in r:
            dtw = "; ".join(f"{split} mean {d['mean']:.3f}, max {d['max']:.3f} (linear stretch "
                            f"{lin:.3f})" for split, (d, lin) in r["dtw"].items())
            lines.append(f"- {r['case']}: {r['megabytes']:.1f} MB of shards, {r['workers']} "
                         f"workers; DTW error against content_pos, phonemes: {dtw}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS_PAGE}")
    parser.add_argument("--quick", action="store_true", help="smaller corpora")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _init()
    rows = []
    n = 24 if args.quick else 48
    for size in (64, 128):
        rows.append(bench_render(size, n, args.workers))
        print(rows[-1], file=sys.stderr)
    demo: dict[str, Any] = {"workers": args.workers}
    if args.quick:
        demo |= {"speakers": 5, "sentences": 2}
    rows.append(bench_generate(64, demo, "the default demo corpus" if not args.quick else
                               "5 speakers x 2 sentences"))
    print(rows[-1], file=sys.stderr)
    rows.append(bench_generate(128, {"workers": args.workers, "speakers": 5, "sentences": 2},
                               "5 speakers x 2 sentences"))
    print(rows[-1], file=sys.stderr)
    text = report(rows, args.quick)
    print(text)
    if args.write_docs:
        DOCS_PAGE.parent.mkdir(parents=True, exist_ok=True)
        DOCS_PAGE.write_text(text)
        print(f"wrote {DOCS_PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
