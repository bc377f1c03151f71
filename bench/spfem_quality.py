"""How well a trained SPFEM generator edits: held-out SynthTalk speakers vs counterfactual truth.

    .venv/bin/python bench/spfem_quality.py --run runs/demo             # table + <run>/quality.json
    .venv/bin/python bench/spfem_quality.py --run runs/demo --max-sources 4 --stride 2   # quicker
    .venv/bin/python bench/spfem_quality.py --run runs/demo --evaluators runs/evaluators

The yardstick of the generator (issue 6). Sources: every neutral clip of the run's held-out
speakers (the corpus's `test` split). Targets: the 7 other emotions at level 3. Two ways to ask
for the edit, as `generate.py` does (`target_code`):

* label-driven: the prompt prior's row of the target emotion;
* reference-driven: the emotion encoder's mean code of a reference clip of the **same speaker**
  in the target emotion (level 3) saying **another sentence** (its mouth cannot be copied).

Ground truth: SynthTalk's counterfactual of the source,
`decouple.data.synthtalk.corpus.render(clip.extras["synthtalk"], emotion=e, intensity=3)`: the
same speaker, speech timing, mouth track and nuisance, only the expression changed. It is never
seen in training. Per (source, target, mode) pair, on every `--stride`-th frame:

* `l1`, `psnr`: mean absolute error (pixels in [0, 1]) and PSNR (`decouple.metrics.image.psnr`,
  data range 1) of the output against the ground truth, over the full face and over the mouth
  box (the box around the 20 mouth landmarks 48-67 of source and ground truth, padded by 2 px);
* the same for **copying the source** (the do-nothing edit every generator must beat);
* `edit`: the mean |output - source| (how much the generator changed), next to `gt_edit`, the
  mean |ground truth - source| (how much it should change);
* `gain`: 1 - l1 / copy_l1 of the full face (> 0: closer to the truth than the source is);
* `codec_l1`: the L1 between the decoded source and its own clean re-render (the H.264 noise
  of the shards): even a perfect edit of the decoded source stays about this far from the
  clean ground truth (unless it also removed the codec noise), so `1 - codec_l1 / copy_l1`
  is about the largest reachable `gain`;
* `frozen_ee_rate`: how often the frozen CERL emotion encoder's nearest prompt-prior row of an
  output frame is the target (what the CDRL emotion loss optimises; NOT an independent judge);
* with evaluators (`recipes/spfem/evaluators.py`, trained on the corpus's train split only):
  `accuracy`, the independent emotion classifier's target-emotion accuracy on the output (and on
  the source and the ground truth for the floor and ceiling), and `mouth_error`, the mean
  |mouth parameters of the output - the true mouth track| (and of the source, the ground truth).

Means are over pairs (each pair = one clip's frames); per-emotion means of the full-face L1 gain
are in the JSON. Nothing here trains the generator or reaches the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))

MOUTH_POINTS = tuple(range(48, 68))
"""The mouth landmarks of the 68-point layout SynthTalk renders."""
LEVEL = 3
"""Target intensity level of the protocol."""
MODES = ("label", "reference")
"""How the target code is given."""
BOX_PAD = 2
"""Pixels added around the mouth landmarks' box."""


@dataclass
class Pair:
    """One edit to score: a held-out neutral clip toward a target emotion.

    Attributes:
        source: The neutral source clip (`decouple.data.schema.Clip`).
        emotion: Target emotion name.
        reference: A clip of the same speaker in the target emotion at level 3 with another
            sentence (None when the corpus has none).
    """

    source: Any
    emotion: str
    reference: Any | None


def held_out_pairs(root: str | Path, split: str = "test", max_sources: int | None = None
                   ) -> list[Pair]:  # fmt: skip
    """The protocol's pairs: each neutral clip of `split` x the other emotions at level 3.

    Args:
        root: The SynthTalk corpus (shard) directory.
        split: The held-out split.
        max_sources: Use only the first N neutral clips (in shard order); None = all.

    Returns:
        The pairs, sources in shard order, targets in the corpus's emotion order.

    Raises:
        LookupError: The split has no neutral clip or no level-3 clip of another emotion.
    """
    from decouple.data.synthtalk.corpus import iter_clips

    clips = list(iter_clips(root, split))
    sources = [c for c in clips if c.meta.emotion == "neutral"]
    if max_sources is not None:
        sources = sources[:max_sources]
    targets = list(dict.fromkeys(c.meta.emotion for c in clips
                                 if c.meta.emotion != "neutral" and c.meta.intensity == LEVEL))
    if not sources or not targets:
        raise LookupError(f"{root}: split {split!r} needs neutral clips and level-{LEVEL} clips "
                          f"of other emotions (found {len(sources)} neutral, targets {targets})")
    by_speaker: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for c in clips:
        if c.meta.intensity == LEVEL:
            by_speaker[(c.meta.speaker, c.meta.emotion)].append(c)
    pairs = []
    for src in sources:
        for emotion in targets:
            refs = [c for c in by_speaker[(src.meta.speaker, emotion)]
                    if c.meta.sentence != src.meta.sentence]
            pairs.append(Pair(src, emotion, refs[0] if refs else None))
    return pairs


def mouth_box(*landmarks: Tensor | Any, size: int, pad: int = BOX_PAD) -> tuple[int, int, int, int]:
    """The pixel box `(x0, y0, x1, y1)` around the mouth landmarks of every frame given.

    Args:
        *landmarks: (t, 68, 2) arrays of (x, y) pixel coordinates.
        size: Frame side (the box is clipped to it).
        pad: Pixels added on each side.

    Returns:
        The box, x1 / y1 exclusive.

    Examples:
        >>> import numpy as np
        >>> pts = np.zeros((1, 68, 2)); pts[0, 48:68] = [[10, 20], [14, 23]] * 10
        >>> mouth_box(pts, size=64)
        (8, 18, 17, 26)
    """
    pts = torch.cat([torch.as_tensor(lm, dtype=torch.float64)[:, list(MOUTH_POINTS)].reshape(-1, 2)
                     for lm in landmarks])  # fmt: skip
    lo = pts.min(0).values.floor().long() - pad
    hi = pts.max(0).values.ceil().long() + pad + 1
    x0, y0 = (int(v) for v in lo.clamp(0, size))
    x1, y1 = (int(v) for v in hi.clamp(0, size))
    return x0, y0, x1, y1


def _l1(a: Tensor, b: Tensor, box: tuple[int, int, int, int] | None = None) -> float:
    if box is not None:
        x0, y0, x1, y1 = box
        a, b = a[..., y0:y1, x0:x1], b[..., y0:y1, x0:x1]
    return float((a.double() - b.double()).abs().mean())


def _scores(out: Tensor, gt: Tensor, box: tuple[int, int, int, int]) -> dict[str, float]:
    from decouple.metrics.image import psnr

    return {"l1": _l1(out, gt), "psnr": psnr(out, gt, data_range=1.0),
            "mouth_l1": _l1(out, gt, box), "mouth_psnr": psnr(out, gt, data_range=1.0, box=box)}


def _load_evaluators(path: str | None, root: Path, device: torch.device) -> Any | None:
    if not path:
        return None
    try:
        from evaluators import load_evaluators, train_evaluators
    except ImportError as err:
        print(f"note: no evaluators ({err}); accuracy and mouth error are left out",
              file=sys.stderr)
        return None
    out = Path(path)
    try:
        ev = load_evaluators(out)
    except (FileNotFoundError, ValueError):
        ev = train_evaluators(root, out, device=device, progress=False)
    return ev.to(device)


def _decode(clip: Any, stride: int) -> Tensor:
    from decouple.data.io import read_video

    return read_video(clip.video, name=f"{clip.key}.mp4").frames[::stride]


def iter_scores(run_dir: str | Path, *, max_sources: int | None = None, stride: int = 1,
                evaluators: str | None = None, device: str = "cpu", batch: int = 64
                ) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Score a run's generator pair by pair (see the module docstring for the fields).

    Args:
        run_dir: A run folder with a finished `spfem` stage.
        max_sources: Only the first N neutral held-out clips.
        stride: Score every stride-th frame.
        evaluators: Folder of the independent evaluators (trained there when missing); None:
            no accuracy / mouth error.
        device: Torch device.
        batch: Frames per generator call.

    Yields:
        One record per (source, target, mode).
    """
    from generate import load_run, sample_frames, target_code
    from model import read_run_info

    from decouple.data.synthtalk.corpus import render

    dev = torch.device(device)
    models = load_run(run_dir).to(dev)
    info = read_run_info(run_dir)
    root = Path(info["root"])
    ev = _load_evaluators(evaluators, root, dev)
    names = models.emotion_names
    gen, ee = models.generator, models.emotion_encoder
    assert gen is not None
    with torch.no_grad():
        table = models.prior.prior().float()
    cache: dict[str, tuple[Tensor, float]] = {}
    for pair in held_out_pairs(root, max_sources=max_sources):
        src_clip = pair.source
        if src_clip.key not in cache:
            frames = _decode(src_clip, stride)
            clean = render(src_clip.extras["synthtalk"]).frames[::stride]
            cache = {src_clip.key: (frames, _l1(frames.float() / 255.0, clean.float() / 255.0))}
        src = cache[src_clip.key][0].to(dev).float() / 255.0
        cf = render(src_clip.extras["synthtalk"], emotion=pair.emotion, intensity=LEVEL)
        gt = cf.frames[::stride].to(dev).float() / 255.0
        box = mouth_box(src_clip.arrays["landmarks"][::stride], cf.landmarks[::stride],
                        size=src.shape[-1])
        true_mouth = torch.as_tensor(cf.arrays["mouth"][::stride], dtype=torch.float64)
        target = names.index(pair.emotion)
        for mode in MODES:
            if mode == "label":
                code = target_code(models, emotion=pair.emotion)
            elif pair.reference is not None:
                code = target_code(models, reference=sample_frames(_decode(pair.reference, 1)))
            else:
                continue
            with torch.no_grad():
                out = torch.cat([gen(src[i:i + batch], code.expand(len(src[i:i + batch]), -1))
                                 for i in range(0, len(src), batch)]).float().clamp(0, 1)
                pick = (ee(out) @ table.t()).argmax(-1)
            rec: dict[str, Any] = {"source": src_clip.key, "speaker": src_clip.meta.speaker,
                                   "emotion": pair.emotion, "mode": mode,
                                   "reference": None if mode == "label" else pair.reference.key,
                                   "frames": len(src), "mouth_box": list(box)}  # fmt: skip
            rec.update(_scores(out, gt, box))
            rec.update({f"copy_{k}": v for k, v in _scores(src, gt, box).items()})
            rec["edit"] = _l1(out, src)
            rec["gt_edit"] = _l1(gt, src)
            rec["codec_l1"] = cache[src_clip.key][1]
            rec["gain"] = 1.0 - rec["l1"] / max(rec["copy_l1"], 1e-12)
            rec["frozen_ee_rate"] = float((pick == target).double().mean())
            if ev is not None:
                tgt = ev.emotion_names.index(pair.emotion)
                with torch.no_grad():
                    for name, frames in (("", out), ("source_", src), ("gt_", gt)):
                        logits = ev.emotion(frames)
                        rec[f"{name}accuracy"] = float((logits.argmax(-1) == tgt).double().mean())
                        if getattr(ev, "mouth", None) is not None:
                            m = ev.mouth(frames).double().cpu()
                            rec[f"{name}mouth_error"] = float((m - true_mouth).abs().mean())
            yield rec


SUMMARY_KEYS = ("l1", "copy_l1", "psnr", "copy_psnr", "mouth_l1", "copy_mouth_l1", "mouth_psnr",
                "copy_mouth_psnr", "edit", "gt_edit", "gain", "frozen_ee_rate", "accuracy",
                "source_accuracy", "gt_accuracy", "codec_l1", "mouth_error", "source_mouth_error",
                "gt_mouth_error")  # fmt: skip
"""The fields averaged per mode in the summary."""


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per mode (and over both) of the per-pair scores; per-emotion gains.

    Args:
        records: `iter_scores` records.

    Returns:
        `{"label": {...}, "reference": {...}, "all": {...}, "per_emotion": {mode: {e: gain}}}`.

    Examples:
        >>> r = [{"mode": "label", "emotion": "sad", "l1": 0.1, "gain": 0.5},
        ...      {"mode": "label", "emotion": "sad", "l1": 0.3, "gain": 0.1}]
        >>> s = summarize(r)
        >>> sad = s["per_emotion"]["label"]["sad"]
        >>> round(s["label"]["l1"], 6), s["label"]["pairs"], round(sad, 6)
        (0.2, 2, 0.3)
    """
    out: dict[str, Any] = {}
    groups = {m: [r for r in records if r["mode"] == m] for m in MODES}
    groups["all"] = records
    for name, rows in groups.items():
        if not rows:
            continue
        s: dict[str, Any] = {"pairs": len(rows)}
        for k in SUMMARY_KEYS:
            vals = [r[k] for r in rows if k in r]
            if vals:
                s[k] = sum(vals) / len(vals)
        out[name] = s
    per: dict[str, dict[str, float]] = {}
    for m in MODES:
        emo: dict[str, list[float]] = defaultdict(list)
        for r in groups[m]:
            emo[r["emotion"]].append(r["gain"])
        if emo:
            per[m] = {e: sum(v) / len(v) for e, v in emo.items()}
    out["per_emotion"] = per
    return out


def table(summary: dict[str, Any]) -> str:
    """A plain-text table of a summary (rows: output, copy the source, ground truth, per mode).

    Args:
        summary: `summarize` output.

    Returns:
        The table (blank where a field was not measured).
    """
    cols = [("L1", "l1", 4), ("PSNR", "psnr", 2), ("mouth L1", "mouth_l1", 4),
            ("mouth PSNR", "mouth_psnr", 2), ("edit", "edit", 4), ("Ee rate", "frozen_ee_rate", 3),
            ("accuracy", "accuracy", 3), ("mouth err", "mouth_error", 4)]  # fmt: skip

    def cell(s: dict[str, Any], key: str | None, prec: int) -> str:
        return f"{s[key]:>11.{prec}f}" if key is not None and key in s else f"{'':>11}"

    lines = [f"{'row':<24}" + "".join(f"{c:>11}" for c, _, _ in cols)]
    for mode in (*MODES, "all"):
        s = summary.get(mode)
        if not s:
            continue
        name = f"{mode} ({s['pairs']} pairs)"
        lines.append(f"{name:<24}"
                     + "".join(cell(s, k, p) for _, k, p in cols))
        copy = {"l1": "copy_l1", "psnr": "copy_psnr", "mouth_l1": "copy_mouth_l1",
                "mouth_psnr": "copy_mouth_psnr", "accuracy": "source_accuracy",
                "mouth_error": "source_mouth_error"}  # fmt: skip
        lines.append(f"{'  copy the source':<24}"
                     + "".join(cell(s, copy.get(k), p) for _, k, p in cols))
        truth = {"edit": "gt_edit", "accuracy": "gt_accuracy", "mouth_error": "gt_mouth_error",
                 "l1": "codec_l1"}  # fmt: skip
        lines.append(f"{'  truth (L1: codec)':<24}"
                     + "".join(cell(s, truth.get(k), p) for _, k, p in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: score a run, print the table, write the JSON.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        Exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="run folder with a finished spfem stage")
    p.add_argument("--max-sources", type=int, default=None, help="first N neutral clips only")
    p.add_argument("--stride", type=int, default=1, help="score every N-th frame")
    p.add_argument("--evaluators", default=None,
                   help="evaluator folder (recipes/spfem/evaluators.py; trained when missing)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="output JSON (default <run>/quality.json)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        records = list(iter_scores(args.run, max_sources=args.max_sources, stride=args.stride,
                                   evaluators=args.evaluators, device=args.device))
    except (FileNotFoundError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = summarize(records)
    summary["seconds"] = time.perf_counter() - t0
    summary["run"] = str(args.run)
    summary["stride"] = args.stride
    path = Path(args.json) if args.json else Path(args.run) / "quality.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": summary, "pairs": records}, indent=1) + "\n",
                    encoding="utf-8")
    print(table(summary))
    print("per-emotion full-face gain (1 - L1/copy L1): "
          + "; ".join(f"{m}: " + ", ".join(f"{e} {g:+.2f}" for e, g in v.items())
                      for m, v in summary["per_emotion"].items()))
    print(f"{len(records)} pairs in {summary['seconds']:.1f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
