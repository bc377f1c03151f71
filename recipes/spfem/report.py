"""The evaluation report: markdown tables with the goals checked, plots, metrics.json, and the
documentation page, all from the results of `evaluate.evaluate`.

    <out>/report.md       tables per setting, per-emotion accuracy, decoupling, goals, figures
    <out>/metrics.json    every number of the report (no per-pair records), the stamp
    <out>/pairs.json      the per-pair records of every row and seed
    <out>/img/*.png       per-emotion bars, 2D projection of the embeddings, frame grids

`write_report(results, out, docs=PAGE)` also writes the documentation page `PAGE` (the same
content, stamped with the command, git commit, date, machine and wall time) with its images
in `<PAGE's folder>/img/results/`. The page can be remade from a published metrics.json:

    python recipes/spfem/report.py --metrics runs/benchmark-s0/evaluation/metrics.json \\
        --docs docs/results.md

Plots use matplotlib with the Agg backend (no display). Numbers that are not finite (the PSNR
of identical frames is inf) are written to JSON as the strings `"inf"`, `"-inf"`, `"nan"`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_RECIPE = Path(__file__).resolve().parent
if str(_RECIPE) not in sys.path:  # imported from elsewhere (tests)
    sys.path.insert(0, str(_RECIPE))

from protocol import SETTING_NAMES  # noqa: E402

__all__ = [
    "ACCURACY_GOALS",
    "CONTENT_PROBE_ABOVE",
    "EMOTION_PROBE_GOAL",
    "MOUTH_FLOOR_FACTOR",
    "PROBE_MARGIN",
    "check_goals",
    "format_value",
    "json_ready",
    "main",
    "render_markdown",
    "write_docs",
    "write_images",
    "write_report",
]

ACCURACY_GOALS: Mapping[str, float] = {"intra": 0.90, "cross": 0.80}
"""Target-emotion accuracy full CDRL must reach per setting."""
MOUTH_FLOOR_FACTOR = 1.5
"""Full CDRL's mouth error must be within this factor of the floor row's."""
PROBE_MARGIN = 0.10
"""'Near chance': a probe within this many points (fraction) of its chance rate."""
CONTENT_PROBE_ABOVE = 0.20
"""'High' content probe on the content embedding: at least this far above chance."""
EMOTION_PROBE_GOAL = 0.90
"""Emotion probe accuracy the emotion embedding must reach."""
GOAL_SETTINGS = ("intra", "cross")
"""Settings the generator goals are checked on (held-out speakers, reference-driven)."""


# -------------------------------------------------------------------------------------- JSON


def json_ready(obj: Any) -> Any:
    """A JSON-ready copy: numpy scalars and arrays as Python values, tuples as lists,
    non-finite floats as the strings `"inf"`, `"-inf"`, `"nan"`.

    Args:
        obj: Nested dicts, lists, numbers, strings.

    Returns:
        The copy.

    Examples:
        >>> json_ready({"psnr": float("inf"), "n": (1, 2)})
        {'psnr': 'inf', 'n': [1, 2]}
    """
    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _num(x: Any) -> float | None:
    """A number from JSON (the strings of json_ready back to floats)."""
    if x is None:
        return None
    if isinstance(x, str):
        return float(x)
    return float(x)


# ------------------------------------------------------------------------------------ values


def format_value(key: str, mean: Any, std: Any = None) -> str:
    """A table cell: the mean, and `± std` when there is a spread.

    Accuracies in percent (1 decimal), PSNR in dB (2 decimals), mouth error 4 decimals,
    frames/s no decimals, everything else 3 decimals.

    Args:
        key: The metric key.
        mean: The mean (None: not measured).
        std: The seed standard deviation (None: one seed).

    Returns:
        The cell text.

    Examples:
        >>> format_value("accuracy", 0.9213, 0.0104), format_value("psnr", "inf", 0.0)
        ('92.1 ± 1.0 %', 'inf')
        >>> format_value("lse_d", None), format_value("mouth_error", 0.01234)
        ('-', '0.0123')
        >>> format_value("frechet", 0.000123, 0.00004)
        '0.000123 ± 4e-05'
    """
    m, s = _num(mean), _num(std)
    if m is None:
        return "-"
    if key == "accuracy" or key.endswith("_probe"):
        scale, digits, unit = 100.0, 1, " %"
    elif key.endswith("psnr"):
        scale, digits, unit = 1.0, 2, ""
    elif key == "mouth_error":
        scale, digits, unit = 1.0, 4, ""
    elif key == "fps":
        scale, digits, unit = 1.0, 0, ""
    else:
        scale, digits, unit = 1.0, 3, ""
    if not math.isfinite(m):
        return "inf" if m > 0 else ("-inf" if m < 0 else "nan")
    v = m * scale
    sd = None if s is None else s * scale
    if digits == 3 and v != 0 and abs(v) < 0.01:  # small distances: 3 significant digits
        text, sd_text = f"{v:.3g}", ("" if sd is None else f"{sd:.2g}")
    else:
        text, sd_text = f"{v:.{digits}f}", ("" if sd is None else f"{sd:.{digits}f}")
    if sd is not None and math.isfinite(sd) and sd > 0:
        text += f" ± {sd_text}"
    return text + unit


def _cell(results: Mapping[str, Any], row: str, setting: str, key: str) -> tuple[Any, Any]:
    r = results["rows"].get(row)
    if r is None or setting not in r["settings"]:
        return None, None
    s = r["settings"][setting]
    return s["mean"].get(key), s["std"].get(key)


def _rows(results: Mapping[str, Any]) -> list[str]:
    return list(results["rows"])  # in table order (evaluate.ROWS)


# ------------------------------------------------------------------------------------- goals


def _goal(text: str, status: str, detail: str) -> dict[str, str]:
    return {"goal": text, "status": status, "detail": detail}


def _beats(results: Mapping[str, Any], key: str, setting: str) -> dict[str, str]:
    better = "higher" if key == "accuracy" else "lower"
    name = "target-emotion accuracy" if key == "accuracy" else "mouth error"
    text = (f"{SETTING_NAMES[setting]}: full CDRL beats the generator without CDRL on {name} "
            "by more than the seed spread")  # fmt: skip
    f_mean, f_std = (_num(v) for v in _cell(results, "full", setting, key))
    b_mean, b_std = (_num(v) for v in _cell(results, "baseline", setting, key))
    if f_mean is None or b_mean is None:
        return _goal(text, "not evaluated", "needs the full and baseline rows")
    diff = f_mean - b_mean if better == "higher" else b_mean - f_mean
    cells = (f"full {format_value(key, f_mean, f_std)}, without CDRL "
             f"{format_value(key, b_mean, b_std)}")  # fmt: skip
    if f_std is None or b_std is None:
        return _goal(text, "not evaluated", f"{cells}: one seed gives no spread (3 seeds needed)")
    spread = f_std + b_std
    scale = 100.0 if key == "accuracy" else 1.0
    unit = " points" if key == "accuracy" else ""
    ok = diff > spread
    return _goal(text, "met" if ok else "not met",
                 f"{cells}: the difference {diff * scale:.4g}{unit} is "
                 f"{'more' if ok else 'not more'} than the summed seed std "
                 f"{spread * scale:.4g}{unit}")  # fmt: skip


def check_goals(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The issue's goals, checked against the numbers (SynthTalk only).

    * full CDRL beats the no-CDRL generator on target-emotion accuracy and on mouth error by
      more than the seed spread (the difference of the seed means exceeds the sum of the two
      seed standard deviations), intra-ID and cross-ID;
    * target-emotion accuracy of full CDRL >= 90 % intra-ID and >= 80 % cross-ID;
    * full CDRL's mouth error within 1.5x of the floor row's (intra-ID, cross-ID);
    * decoupling: the emotion probe on the content embedding within 10 points of chance while
      its content (viseme) probe is high (at least 20 points above chance); the content probe
      on the emotion embedding within 10 points of chance while its emotion probe >= 90 %.

    Args:
        results: The results (or metrics.json).

    Returns:
        `[{"goal", "status" (met / not met / not evaluated), "detail"}]`; empty for MEAD.
    """
    if results.get("corpus") != "synthtalk":
        return []
    goals = []
    settings = [s for s in GOAL_SETTINGS if s in results.get("settings_run", GOAL_SETTINGS)]
    for key in ("accuracy", "mouth_error"):
        for s in settings:
            goals.append(_beats(results, key, s))
    for s in settings:
        need = ACCURACY_GOALS[s]
        text = f"{SETTING_NAMES[s]}: full CDRL target-emotion accuracy >= {need:.0%}"
        m, sd = (_num(v) for v in _cell(results, "full", s, "accuracy"))
        if m is None:
            goals.append(_goal(text, "not evaluated", "needs the full row"))
        else:
            goals.append(_goal(text, "met" if m >= need else "not met",
                               f"full {format_value('accuracy', m, sd)}"))
    for s in settings:
        text = (f"{SETTING_NAMES[s]}: full CDRL mouth error within {MOUTH_FLOOR_FACTOR}x of "
                "its floor")
        m, sd = (_num(v) for v in _cell(results, "full", s, "mouth_error"))
        floor = _num(_cell(results, "floor", s, "mouth_error")[0])
        if m is None or floor is None:
            goals.append(_goal(text, "not evaluated", "needs the full and floor rows"))
        else:
            ratio = m / floor if floor > 0 else math.inf
            goals.append(_goal(text, "met" if ratio <= MOUTH_FLOOR_FACTOR else "not met",
                               f"full {format_value('mouth_error', m, sd)}, floor "
                               f"{format_value('mouth_error', floor)}: {ratio:.2f}x"))
    d = results.get("decoupling")
    texts = ("content embedding (CCRL): emotion probe within 10 points of chance while the "
             "content probe is high (>= 20 points above chance)",
             "emotion embedding (CERL): content probe within 10 points of chance while the "
             "emotion probe >= 90 %")  # fmt: skip
    if not d:
        goals += [_goal(t, "not evaluated", "no decoupling table (no full run, or probes off)")
                  for t in texts]  # fmt: skip
        return goals

    def probe(emb: str, name: str) -> tuple[float | None, float | None]:
        p = d[emb].get(name) or {}
        return _num(p.get("accuracy")), _num(p.get("chance"))

    e_acc, e_ch = probe("content", "emotion_probe")
    c_acc, c_ch = probe("content", "content_probe")
    if None in (e_acc, e_ch, c_acc, c_ch):
        goals.append(_goal(texts[0], "not evaluated", "a probe was skipped"))
    else:
        ok = abs(e_acc - e_ch) <= PROBE_MARGIN and c_acc - c_ch >= CONTENT_PROBE_ABOVE
        goals.append(_goal(texts[0], "met" if ok else "not met",
                           f"emotion probe {e_acc:.1%} vs chance {e_ch:.1%} "
                           f"({(e_acc - e_ch) * 100:+.1f} points); content probe {c_acc:.1%} "
                           f"vs chance {c_ch:.1%} ({(c_acc - c_ch) * 100:+.1f} points)"))
    c_acc, c_ch = probe("emotion", "content_probe")
    e_acc, e_ch = probe("emotion", "emotion_probe")
    if None in (e_acc, e_ch, c_acc, c_ch):
        goals.append(_goal(texts[1], "not evaluated", "a probe was skipped"))
    else:
        ok = abs(c_acc - c_ch) <= PROBE_MARGIN and e_acc >= EMOTION_PROBE_GOAL
        goals.append(_goal(texts[1], "met" if ok else "not met",
                           f"content probe {c_acc:.1%} vs chance {c_ch:.1%} "
                           f"({(c_acc - c_ch) * 100:+.1f} points); emotion probe {e_acc:.1%} "
                           f"(chance {e_ch:.1%})"))
    return goals


# ------------------------------------------------------------------------------------ tables


def _results_table(results: Mapping[str, Any], setting: str) -> str:
    metrics = results["metrics"]
    head = "| row | " + " | ".join(f"{m['name']} {'↑' if m['better'] == 'higher' else '↓'}"
                                   for m in metrics) + " |"  # fmt: skip
    lines = [head, "|---" * (len(metrics) + 1) + "|"]
    for row in _rows(results):
        if setting not in results["rows"][row]["settings"]:
            continue
        name = results["rows"][row]["name"]
        seeds = len(results["rows"][row].get("runs") or [])
        label = f"{name} ({seeds} seeds)" if seeds > 1 else name
        cells = [format_value(m["key"], *_cell(results, row, setting, m["key"]))
                 for m in metrics]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mead_table(results: Mapping[str, Any]) -> str:
    """The papers' layout: setting | method | FAD | LSE-D | LSE-C | CSIM | identity | ..."""
    metrics = results["metrics"]
    head = "| setting | method | " + " | ".join(
        f"{m['name']} {'↑' if m['better'] == 'higher' else '↓'}" for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 2) + "|"]
    for setting in results["settings_run"]:
        for row in _rows(results):
            if setting not in results["rows"][row]["settings"]:
                continue
            cells = [format_value(m["key"], *_cell(results, row, setting, m["key"]))
                     for m in metrics]  # fmt: skip
            lines.append(f"| {SETTING_NAMES[setting]} | {results['rows'][row]['name']} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_emotion_table(results: Mapping[str, Any], setting: str) -> str:
    targets = results["protocol"]["targets"]
    lines = ["| row | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    for row in _rows(results):
        r = results["rows"][row]
        if setting not in r["settings"]:
            continue
        cells = []
        for t in targets:
            vals = [_num(s["per_emotion"].get(t)) for s in r["settings"][setting]["per_seed"]]
            vals = [v for v in vals if v is not None]
            if not vals:
                cells.append("-")
                continue
            mean = sum(vals) / len(vals)
            sd = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 \
                if len(vals) > 1 else None  # fmt: skip
            cells.append(format_value("accuracy", mean, sd))
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _decoupling_table(results: Mapping[str, Any]) -> str:
    d = results["decoupling"]
    lines = ["| embedding | content (viseme) probe | emotion probe | sentence probe |",
             "|---|---|---|---|"]

    def cell(emb: str, name: str) -> str:
        p = d[emb].get(name)
        if not p or p.get("accuracy") is None:
            return "-"
        return (f"{format_value('accuracy', p['accuracy'], p.get('std'))} "
                f"(chance {format_value('accuracy', p.get('chance'))})")

    lines.append(f"| content (CCRL, Ec) | {cell('content', 'content_probe')} | "
                 f"{cell('content', 'emotion_probe')} | - |")
    lines.append(f"| emotion (CERL, Ee) | {cell('emotion', 'content_probe')} | "
                 f"{cell('emotion', 'emotion_probe')} | {cell('emotion', 'sentence_probe')} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ images


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_per_emotion(results: Mapping[str, Any], path: Path) -> Path:
    import numpy as np

    plt = _plt()
    settings = results["settings_run"]
    targets = results["protocol"]["targets"]
    rows = [r for r in _rows(results) if r != "floor"]
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings) + 1, 3.4),
                             squeeze=False, sharey=True)  # fmt: skip
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(targets))
    for ax, setting in zip(axes[0], settings, strict=True):
        for i, row in enumerate(rows):
            r = results["rows"][row]
            if setting not in r["settings"]:
                continue
            per = [[_num(s["per_emotion"].get(t)) for s in r["settings"][setting]["per_seed"]]
                   for t in targets]  # fmt: skip
            mean = [np.mean([v for v in p if v is not None]) if any(v is not None for v in p)
                    else np.nan for p in per]  # fmt: skip
            err = [np.std([v for v in p if v is not None], ddof=1)
                   if sum(v is not None for v in p) > 1 else 0.0 for p in per]  # fmt: skip
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, mean, width, yerr=err,
                   label=r["name"], capsize=2)  # fmt: skip
        ax.set_title(SETTING_NAMES[setting])
        ax.set_xticks(x, targets, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("target-emotion accuracy")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pca2(x: Any) -> Any:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def _plot_embeddings(emb: Mapping[str, Any], path: Path) -> Path:
    import numpy as np

    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(8, 7))
    for i, (name, title) in enumerate((("content", "content embedding (CCRL)"),
                                       ("emotion", "emotion embedding (CERL)"))):  # fmt: skip
        xy = _pca2(emb[name])
        for j, (label_key, what) in enumerate((("emotion_label", "emotion"),
                                               ("content_label", "viseme"))):  # fmt: skip
            ax = axes[i][j]
            labels = list(emb[label_key])
            values = sorted(set(labels), key=str)
            cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
            for k, v in enumerate(values):
                m = np.array([lab == v for lab in labels])
                ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(k % cmap.N), label=str(v))
            ax.set_title(f"{title}, coloured by {what}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0 or len(values) <= 12:
                ax.legend(fontsize=6, markerscale=2, loc="best", ncol=2)
    fig.suptitle("2D PCA of held-out frames' embeddings")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


GRID_CELL = 96
"""Frame grids are enlarged (nearest neighbour, an integer factor) to at least this many
pixels per frame."""


def _frame_grid(examples: Mapping[str, Any], row: str) -> Any:
    """(3, n * k s, 4 * k s) uint8: per example source | reference | output | ground truth
    (k = the enlargement factor, `GRID_CELL`)."""
    import torch

    lines = []
    gt = examples["rows"].get("ground_truth")
    for i, src in enumerate(examples["source"]):
        blank = torch.zeros_like(src)
        ref = examples["reference"][i]
        ref = blank if ref is None else ref
        cols = [src, ref, examples["rows"][row][i], gt[i] if gt else blank]
        lines.append(torch.cat(cols, dim=-1))
    grid = torch.cat(lines, dim=-2)
    k = max(1, math.ceil(GRID_CELL / int(examples["source"][0].shape[-1])))
    return grid.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def write_images(results: Mapping[str, Any], img_dir: str | Path) -> dict[str, Path]:
    """Every figure of the report.

    Args:
        results: The results of `evaluate.evaluate` (with `examples` and `embeddings`).
        img_dir: Folder for the PNGs (created).

    Returns:
        `{name: path}`: `per_emotion`, `embeddings` (SynthTalk with a full run),
        `grid-<row>` per method (and `grid-copy`).
    """
    from stages import write_png

    img_dir = Path(img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    out = {"per_emotion": _plot_per_emotion(results, img_dir / "per_emotion.png")}
    if results.get("embeddings"):
        out["embeddings"] = _plot_embeddings(results["embeddings"], img_dir / "embeddings.png")
    ex = results.get("examples")
    if ex and ex.get("source"):
        for row in _rows(results):
            if row in ("ground_truth", "floor") or row not in ex["rows"]:
                continue
            out[f"grid-{row}"] = write_png(img_dir / f"grid-{row}.png", _frame_grid(ex, row))
    return out


# ---------------------------------------------------------------------------------- markdown


def _definitions(corpus: str) -> str:
    if corpus == "mead":
        return "\n".join([
            "- **FAD**: Frechet distance between ArcFace embedding statistics (the IResNet's "
            "512-d embedding, not normalised; IResNet-50 unless `--arcface-arch` says "
            "otherwise) of real frames of the target emotions (the held-out actors' level-3 "
            "clips) and of the outputs (lower is better).",
            "- **LSE-D / LSE-C**: SyncNet v2 distance at the best audio offset and confidence "
            "(median minus minimum of the mean distance over offsets), output frames against "
            "the source audio, 5-frame windows at 25 fps.",
            "- **emotion-feature similarity** (the papers' \"CSIM\"): mean cosine similarity of "
            "EfficientFace features between the output and real frames of the target emotion "
            "(the pair's reference; label rows: the intra-ID reference), frames paired by "
            "evenly spaced indices. Not identity similarity.",
            "- **identity similarity**: mean cosine similarity of ArcFace embeddings of the "
            "output and the source, frame by frame.",
            "- **EfficientFace accuracy**: how often EfficientFace's AffectNet-7 prediction on an "
            "output frame is the target emotion.",
            "- **generation frames/s**: the generator's throughput on the evaluation device "
            "(generator calls only).",
        ])  # fmt: skip
    return "\n".join([
        "- **target-emotion accuracy**: how often the independent emotion classifier (trained "
        "on the corpus's train speakers only) predicts the target emotion on an output frame.",
        "- **mouth error**: mean |R(output) - m_true| over frames and the 4 mouth parameters, R "
        "the independent mouth regressor, m_true the counterfactual's true mouth track (the "
        "source's speech); the *floor* row is the same on ground-truth renders with other "
        "nuisance seeds.",
        "- **PSNR / SSIM**: against the counterfactual ground truth (the source re-rendered in "
        "the target emotion at level 3, same speech timing and nuisance), over the face and the "
        "mouth box (around the 20 mouth landmarks, padded by 2 px, at least 11 px); SSIM: "
        "Gaussian window 11, sigma 1.5.",
        "- **identity similarity**: mean cosine similarity of the evaluators' identity "
        "embedding between output and source, frame by frame.",
        "- **LSE-D / LSE-C**: the SynthTalk sync model's distance at the best audio offset and "
        "its confidence (median minus minimum over offsets), output frames against the source "
        "audio.",
        "- **Frechet distance**: between the identity-embedding statistics of real frames of "
        "the target emotions (the held-out speakers' level-3 clips) and of the outputs.",
        "- **generation frames/s**: the generator's throughput (generator calls only).",
    ])  # fmt: skip


def render_markdown(results: Mapping[str, Any], images: Mapping[str, str], *,
                    title: str = "SPFEM evaluation") -> str:  # fmt: skip
    """The report as markdown.

    Args:
        results: The results (or metrics.json).
        images: `{name: relative path}` of the figures.
        title: The page title.

    Returns:
        The markdown text.
    """
    p = results["protocol"]
    corpus = results["corpus"]
    stamp = results.get("stamp") or {}
    out = [f"# {title}", ""]
    if stamp:
        out += ["```text", stamp.get("command", ""), "```", "",
                f"git commit `{stamp.get('git_commit')}`"
                + (" (with uncommitted changes in decouple/ or recipes/)"
                   if stamp.get("git_dirty") else "")
                + f", {stamp.get('date')}, {stamp.get('machine')}; wall time "
                f"{_num(stamp.get('wall_seconds')) or 0:.0f} s.", ""]  # fmt: skip
    goals = results.get("goals") or []
    if goals:
        met = sum(g["status"] == "met" for g in goals)
        out += ["## Goals", "", f"{met} of {len(goals)} goals met.", "",
                "| goal | status | numbers |", "|---|---|---|"]
        out += [f"| {g['goal']} | **{g['status']}** | {g['detail']} |" for g in goals]
        out.append("")
    out += ["## Protocol", "",
            f"Corpus `{corpus}` ({results['root']}), split `{results['split']}`; held-out "
            f"speakers {', '.join(p['speakers'])}; sources: their "
            f"{'/'.join(p['source_emotions'])} clips ({p['sources']} in all"
            + (f", at most {results['options']['max_sources']} per speaker"
               if results["options"].get("max_sources") else "")
            + f"); targets {', '.join(p['targets'])} (references at level {p['level']}, "
            "always another sentence than the source's).", ""]  # fmt: skip
    if p["cross_map"]:
        out.append("Cross-ID map (source <- reference speaker): "
                   + ", ".join(f"{a} <- {b}" for a, b in p["cross_map"].items()) + ".")
        out.append("")
    out.append("Pairs: " + ", ".join(f"{SETTING_NAMES[s]} {p['counts'][s]}"
                                     for s in results["settings_run"]) + ".")
    out += ["", "Rows: " + "; ".join(f"**{results['rows'][r]['name']}**"
                                     + (f" ({len(results['rows'][r]['runs'])} seed(s): "
                                        + ", ".join(results["rows"][r]["runs"]) + ")"
                                        if results["rows"][r]["runs"] else "")
                                     for r in _rows(results)) + ".", ""]  # fmt: skip
    out += ["Each value is the mean over pairs of a run, then the mean ± the sample standard "
            "deviation (ddof = 1) over seeds; rows without seeds (copy, ground truth, floor) "
            "have one value. Pooled metrics (Frechet distance / FAD, frames/s) are computed "
            "over all pairs of a setting.", ""]  # fmt: skip
    out += ["## Metrics", "", _definitions(corpus), ""]
    if corpus == "mead":
        out += ["## Results (the SPFEM papers' table layout)", "", _mead_table(results), ""]
    else:
        for s in results["settings_run"]:
            out += [f"## {SETTING_NAMES[s]}", "", _results_table(results, s), ""]
    out += ["## Per-emotion target accuracy", ""]
    for s in results["settings_run"]:
        out += [f"### {SETTING_NAMES[s]}", "", _per_emotion_table(results, s), ""]
    if "per_emotion" in images:
        out += [f"![per-emotion accuracy]({images['per_emotion']})", ""]
    if results.get("decoupling"):
        d = results["decoupling"]
        out += ["## Decoupling", "",
                f"Linear probes (`decouple.metrics.linear_probe`, as `stages.ccrl_probes` / "
                f"`stages.cerl_probes`) fitted on training speakers' frames and tested on the "
                f"held-out speakers; chance = the majority-class rate of the test labels; "
                f"{d['seeds']} full-CDRL run(s).", "", _decoupling_table(results), ""]
    if "embeddings" in images:
        out += [f"![embeddings]({images['embeddings']})", ""]
    grids = [k for k in images if k.startswith("grid-")]
    if grids:
        first = SETTING_NAMES[results["settings_run"][0]]
        out += ["## Frames", "", f"Middle frames of {first} pairs, one target per row: source | "
                "reference | output | ground truth" + (" (MEAD: none)" if corpus == "mead"
                                                      else "") + ".", ""]  # fmt: skip
        for k in grids:
            row = k.removeprefix("grid-")
            out += [f"**{results['rows'][row]['name']}**", "", f"![{row}]({images[k]})", ""]
    if results.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------- writing


def _json_results(results: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    keep = {k: v for k, v in results.items() if k not in ("examples", "embeddings")}
    keep["rows"] = {r: {k: v for k, v in row.items() if k != "pairs"}
                    for r, row in results["rows"].items()}  # fmt: skip
    keep["goals"] = check_goals(results)
    keep["images"] = dict(images)
    return json_ready(keep)


def _write_text(path: Path, text: str) -> Path:
    from decouple.data.io import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_docs(metrics: Mapping[str, Any], docs: str | Path, images_from: str | Path) -> Path:
    """The documentation page from a metrics.json and the run's image folder.

    Args:
        metrics: The metrics.json content.
        docs: The page (e.g. `docs/results.md`).
        images_from: The folder of the run's PNGs (`<out>/img`).

    Returns:
        The page; its images are copied to `<page's folder>/img/results/`.
    """
    docs = Path(docs)
    target = docs.parent / "img" / "results"
    target.mkdir(parents=True, exist_ok=True)
    images = {}
    for name, rel in (metrics.get("images") or {}).items():
        src = Path(images_from) / Path(rel).name
        if src.is_file():
            shutil.copyfile(src, target / src.name)
            images[name] = f"img/results/{src.name}"
    text = render_markdown(metrics, images, title="Results: the SPFEM benchmark"
                           if metrics.get("corpus") == "synthtalk" else "Results: MEAD")
    text += ("\nGenerated by `recipes/spfem/report.py` from the run's metrics.json (committed "
             "next to this page, same name, `.json`).\n")  # fmt: skip
    _write_text(docs.with_suffix(".json"), json.dumps(metrics, indent=1, ensure_ascii=False)
                + "\n")  # fmt: skip
    return _write_text(docs, text)


def write_report(results: Mapping[str, Any], out_dir: str | Path, *,
                 docs: str | Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Write the report, the JSON files, the figures and optionally the docs page.

    Args:
        results: `evaluate.evaluate`'s results (plus `stamp`).
        out_dir: The output folder.
        docs: The documentation page to write (None: none).

    Returns:
        `{"report", "metrics", "pairs", "docs"?: path}`.
    """
    out_dir = Path(out_dir)
    paths = write_images(results, out_dir / "img")
    images = {k: f"img/{v.name}" for k, v in paths.items()}
    metrics = _json_results(results, images)
    written = {
        "metrics": _write_text(out_dir / "metrics.json",
                               json.dumps(metrics, indent=1, ensure_ascii=False) + "\n"),
        "pairs": _write_text(out_dir / "pairs.json", json.dumps(json_ready(
            {r: row.get("pairs", {}) for r, row in results["rows"].items()})) + "\n"),
        "report": _write_text(out_dir / "report.md", render_markdown(metrics, images)),
    }  # fmt: skip
    if docs is not None:
        written["docs"] = write_docs(metrics, docs, out_dir / "img")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: remake the documentation page from a run's metrics.json.

    Args:
        argv: Arguments (None: `sys.argv[1:]`).

    Returns:
        0, or 2 after an error.
    """
    p = argparse.ArgumentParser(prog="report.py", description=__doc__.splitlines()[0])
    p.add_argument("--metrics", required=True, help="<out>/metrics.json of an evaluation")
    p.add_argument("--docs", required=True, help="the page to write, e.g. docs/results.md")
    args = p.parse_args(argv)
    path = Path(args.metrics)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        print(f"report.py: error: {path}: {err}", file=sys.stderr)
        return 2
    if metrics.get("format") != "spfem-evaluation":
        print(f"report.py: error: {path}: not an evaluate.py metrics.json", file=sys.stderr)
        return 2
    print(f"wrote {write_docs(metrics, args.docs, path.parent / 'img')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
