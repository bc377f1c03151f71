"""Score SPFEM runs on held-out speakers: the SynthTalk benchmark, or the papers' MEAD table.

    python recipes/spfem/evaluate.py --runs full=runs/benchmark-s0,runs/benchmark-s1,... \\
        baseline=DIR,... content_only=DIR,... emotion_only=DIR,... \\
        [--evaluators DIR] [--out DIR] [--docs docs/results.md] [--max-sources N]
    python recipes/spfem/evaluate.py --runs full=runs/mead --arcface ARCFACE.pth \\
        --syncnet syncnet_v2.model --emotion-model EfficientFace.pth.tar   # MEAD

`--runs` takes one `METHOD=DIR[,DIR...]` item per method, one run folder per seed (the
methods are the `spfem.variant`s: `full`, `baseline`, `content_only`, `emotion_only`; a
method may be left out, and an item may be repeated to add seeds). Every run must be trained
on the same shards (their `prepare/info.json` root).

What it does (see docs/recipes/evaluate.md for the definitions):

1. The pairs ([protocol][protocol]): the held-out speakers' neutral clips, the other emotions
   at level 3, intra-ID / cross-ID references and label-driven rows.
2. The rows. `copy` (the source itself, no edit); each method (the run's generator, per
   seed, with the target code of `generate.target_code`: the reference's emotion-encoder
   code, or the label's prompt-prior row); on SynthTalk also `ground_truth` (the
   counterfactual render of the source in the target emotion at the clip's nuisance seed,
   `decouple.data.synthtalk.corpus.render`: the ceiling) and `floor` (the same render with
   other nuisance seeds: how far two equally right answers are apart).
3. The metrics, per pair and row, with `decouple.metrics` and independent judges. SynthTalk:
   the evaluators of `evaluators.py` (trained on the corpus's train split only, cached in
   `--evaluators`, default `<out>/evaluators`): target-emotion accuracy, mouth error
   (mean |R(output) - m_true|, m_true the counterfactual's mouth parameters), PSNR / SSIM of
   the face and the mouth box against the counterfactual, identity similarity to the source,
   LSE-D / LSE-C with the SynthTalk sync model and the source audio, the Frechet distance of
   the identity embedding to real frames of the target emotions, generation frames/s. MEAD:
   FAD (ArcFace), LSE-D / LSE-C (SyncNet v2), emotion-feature similarity (EfficientFace
   features, the papers' "CSIM"), identity similarity (ArcFace), EfficientFace accuracy.
4. Means over pairs per run, then mean and spread over seeds (the sample standard deviation,
   ddof = 1, over the seeds' means; 0 with one seed).
5. SynthTalk's decoupling table: `stages.ccrl_probes` / `stages.cerl_probes` (linear probes
   on held-out speakers) on every `full` run.
6. `report.write_report`: `<out>/report.md`, `<out>/metrics.json`, plots in `<out>/img/`;
   with `--docs FILE` also the documentation page (images in `<FILE's folder>/img/results/`).

Nothing is trained here except the evaluators (once, when their folder is empty), and
nothing reaches the network.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_RECIPE = Path(__file__).resolve().parent
if str(_RECIPE) not in sys.path:  # imported from elsewhere (tests)
    sys.path.insert(0, str(_RECIPE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from generate import (  # noqa: E402
    GenerateError,
    edit_crops,
    load_run,
    sample_frames,
    target_code,
    to_uint8,
)
from model import Models, read_run_info  # noqa: E402
from protocol import (  # noqa: E402
    SETTINGS,
    Pair,
    Protocol,
    ProtocolError,
    load_clips,
    mead_protocol,
    synthtalk_protocol,
)
from torch import Tensor  # noqa: E402

from decouple.checkpoint import CheckpointError  # noqa: E402

__all__ = [
    "FD_FRAMES",
    "METHODS",
    "ROWS",
    "ROW_NAMES",
    "EvaluateError",
    "HeldOut",
    "MeadScorer",
    "Metric",
    "RunSpec",
    "SynthTalkScorer",
    "arcface_layers",
    "edit_frames",
    "evaluate",
    "main",
    "metrics_for",
    "mouth_box",
    "mouth_error",
    "parse_runs",
    "parser",
    "summarize",
]

METHODS: tuple[str, ...] = ("baseline", "content_only", "emotion_only", "full")
"""The generator variants (`spfem.variant`), in table order."""
ROWS: tuple[str, ...] = ("copy", *METHODS, "ground_truth", "floor")
"""Every row of the tables, in order (`ground_truth` and `floor` on SynthTalk only)."""
ROW_NAMES: Mapping[str, str] = {
    "copy": "copy the source (no edit)",
    "baseline": "generator without CDRL",
    "content_only": "content supervision only",
    "emotion_only": "emotion supervision only",
    "full": "full CDRL",
    "ground_truth": "counterfactual ground truth (ceiling)",
    "floor": "ground truth, other nuisance seeds (floor)",
}
"""How the report names the rows."""
FD_FRAMES = 16
"""Frames per clip (evenly spaced, `generate.sample_frames`) in the Frechet distance sets."""
FLOOR_SEEDS = 2
"""Default number of other nuisance seeds of the floor row."""
BOX_PAD = 2
"""Pixels added around the mouth landmarks' box."""
MIN_BOX = 11
"""Smallest mouth-box side (SSIM's 11-pixel window must fit)."""
ARCFACE_ARCHS: Mapping[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}
"""insightface `arcface_torch` IResNet depths (blocks per layer) by name (`--arcface-arch`)."""


class EvaluateError(RuntimeError):
    """A user-facing error: the message names the argument or file (exit 2)."""


@dataclass(frozen=True)
class Metric:
    """One column of the tables.

    Attributes:
        key: Name in metrics.json.
        name: Column header.
        better: `higher` or `lower`.
        pooled: Computed once over all pairs of a setting (a distance between frame sets),
            not averaged over pairs.
    """

    key: str
    name: str
    better: str
    pooled: bool = False


SYNTHTALK_METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "target-emotion accuracy", "higher"),
    Metric("mouth_error", "mouth error", "lower"),
    Metric("psnr", "PSNR (face)", "higher"),
    Metric("ssim", "SSIM (face)", "higher"),
    Metric("mouth_psnr", "PSNR (mouth)", "higher"),
    Metric("mouth_ssim", "SSIM (mouth)", "higher"),
    Metric("identity", "identity similarity", "higher"),
    Metric("lse_d", "LSE-D", "lower"),
    Metric("lse_c", "LSE-C", "higher"),
    Metric("frechet", "Frechet distance", "lower", pooled=True),
    Metric("fps", "generation frames/s", "higher", pooled=True),
)
"""The SynthTalk columns."""
MEAD_METRICS: tuple[Metric, ...] = (
    Metric("fad", "FAD", "lower", pooled=True),
    Metric("lse_d", "LSE-D", "lower"),
    Metric("lse_c", "LSE-C", "higher"),
    Metric("emotion_similarity", "emotion-feature similarity (CSIM)", "higher"),
    Metric("identity", "identity similarity", "higher"),
    Metric("accuracy", "EfficientFace accuracy", "higher"),
    Metric("fps", "generation frames/s", "higher", pooled=True),
)
"""The MEAD columns (the papers' table: FAD, LSE-D, LSE-C, CSIM; plus identity, accuracy)."""


def metrics_for(corpus: str) -> tuple[Metric, ...]:
    """The columns of a corpus.

    Args:
        corpus: `synthtalk` or `mead`.

    Returns:
        The metrics.

    Examples:
        >>> [m.key for m in metrics_for("mead")][:3]
        ['fad', 'lse_d', 'lse_c']
    """
    return MEAD_METRICS if corpus == "mead" else SYNTHTALK_METRICS


# --------------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class RunSpec:
    """One run folder of a method.

    Attributes:
        method: `full`, `baseline`, `content_only` or `emotion_only`.
        run_dir: The run folder.
    """

    method: str
    run_dir: Path


def parse_runs(items: Sequence[str]) -> list[RunSpec]:
    """Parse `--runs` items `METHOD=DIR[,DIR...]` (repeated methods add seeds).

    Args:
        items: The items.

    Returns:
        The runs, methods in table order, seeds in the order given.

    Raises:
        EvaluateError: A malformed item, an unknown method, a folder given twice.

    Examples:
        >>> [(r.method, r.run_dir.name) for r in parse_runs(["full=a,b", "baseline=c"])]
        [('baseline', 'c'), ('full', 'a'), ('full', 'b')]
        >>> parse_runs(["cdrl=a"])
        Traceback (most recent call last):
        ...
        evaluate.EvaluateError: --runs cdrl=a: unknown method 'cdrl'; expected one of baseline, content_only, emotion_only, full
    """  # noqa: E501
    by_method: dict[str, list[Path]] = {}
    for item in items:
        method, sep, dirs = item.partition("=")
        if not sep or not method or not dirs.strip(","):
            raise EvaluateError(f"--runs {item}: expected METHOD=DIR[,DIR...] (one run folder "
                                "per seed)")  # fmt: skip
        if method not in METHODS:
            raise EvaluateError(f"--runs {item}: unknown method {method!r}; expected one of "
                                f"{', '.join(METHODS)}")  # fmt: skip
        by_method.setdefault(method, []).extend(Path(d) for d in dirs.split(",") if d)
    runs = [RunSpec(m, d) for m in METHODS for d in by_method.get(m, [])]
    seen: dict[Path, str] = {}
    for r in runs:
        key = r.run_dir.resolve()
        if key in seen:
            raise EvaluateError(f"--runs: {r.run_dir} is given twice ({seen[key]} and "
                                f"{r.method})")  # fmt: skip
        seen[key] = r.method
    if not runs:
        raise EvaluateError("--runs: give at least one METHOD=DIR")
    return runs


def _run_facts(runs: Sequence[RunSpec]) -> dict[str, Any]:
    """The shard facts shared by every run (root, corpus, emotions, fps, size)."""
    facts: dict[str, Any] | None = None
    first: Path | None = None
    for r in runs:
        if not r.run_dir.is_dir():
            raise EvaluateError(f"{r.run_dir}: no such run folder (--runs {r.method}=...)")
        try:
            info = read_run_info(r.run_dir)
        except FileNotFoundError as err:
            raise EvaluateError(str(err)) from err
        mine = {"root": str(Path(info["root"]).resolve()), "corpus": info.get("corpus", ""),
                "emotion_names": list(info["emotion_names"]), "fps": float(info["fps"]),
                "sample_rate": int(info["sample_rate"]), "size": int(info["size"])}  # fmt: skip
        if facts is None:
            facts, first = mine, r.run_dir
        elif mine != facts:
            diff = [k for k in mine if mine[k] != facts[k]]
            raise EvaluateError(
                f"{r.run_dir}: trained on other data than {first} ({', '.join(diff)}: "
                f"{[mine[k] for k in diff]} vs {[facts[k] for k in diff]}); every run must "
                "share the shards")
    assert facts is not None
    return facts


def _seed_of(run_dir: Path) -> int | None:
    try:
        from config import Config
        from configlib import load_config

        return int(load_config(Config, run_dir / "config.yaml").seed)
    except Exception:  # a run folder without a readable config: no seed label
        return None


# ----------------------------------------------------------------------------------- media


@dataclass
class HeldOut:
    """The decoded held-out media a protocol needs.

    Attributes:
        protocol: The protocol.
        fps: Video frame rate of the shards.
        size: Frame side.
        sources: Source frames (t, 3, s, s) uint8 by key.
        audio: Source waveform (s,) and sample rate by key.
        params: SynthTalk's `synthtalk` extra by source key (empty for MEAD).
        references: Reference frames by key: at most `generate.CODE_FRAMES`, evenly spaced
            (what `generate.target_code` averages).
        real: Real frames of the target emotions (the Frechet sets), `fd_frames` per clip.
        real_keys: The clips of `real`.
        fd_frames: Frames per clip (evenly spaced) in the Frechet sets, real and generated.
        max_frames: Sources are cut to their first `max_frames` frames (None: whole clips).
    """

    protocol: Protocol
    fps: float
    size: int
    sources: dict[str, Tensor] = field(default_factory=dict)
    audio: dict[str, tuple[Tensor, int]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    references: dict[str, Tensor] = field(default_factory=dict)
    real: list[Tensor] = field(default_factory=list)
    real_keys: list[str] = field(default_factory=list)
    fd_frames: int = FD_FRAMES
    max_frames: int | None = None

    @classmethod
    def load(cls, protocol: Protocol, fps: float, size: int, fd_frames: int = FD_FRAMES,
             max_frames: int | None = None) -> HeldOut:  # fmt: skip
        """Read and decode every clip the protocol uses (one pass over the split).

        Real sets: every clip of the protocol's speakers in a target emotion at the target
        level (neutral: 1).

        Args:
            protocol: The protocol.
            fps: Frame rate of the shards.
            size: Frame side.
            fd_frames: Frames per clip in the Frechet sets.
            max_frames: Cut the sources to their first frames (a quick look; None: whole).

        Returns:
            The media.
        """
        from decouple.data.io import read_audio, read_video

        p = protocol
        sources = list(dict.fromkeys(pr.source for pr in p.pairs))
        refs = list(dict.fromkeys(pr.reference for pr in p.pairs if pr.reference))
        real = [c.key for c in p.clips.values() if c.speaker in p.speakers
                and c.emotion in p.targets
                and c.level == (1 if c.emotion == "neutral" else p.level)]  # fmt: skip
        clips = load_clips(p.root, p.split, [*sources, *refs, *real])
        out = cls(p, fps, size, real_keys=real, fd_frames=fd_frames, max_frames=max_frames)
        for key in sources:
            clip = clips[key]
            out.sources[key] = read_video(clip.video, name=f"{key}.mp4").frames[:max_frames]
            a = read_audio(clip.audio, sample_rate=None, name=f"{key}.flac")
            out.audio[key] = (a.waveform, a.sample_rate)
            if "synthtalk" in clip.extras:
                out.params[key] = clip.extras["synthtalk"]
        for key in refs:
            out.references[key] = sample_frames(read_video(clips[key].video,
                                                           name=f"{key}.mp4").frames)
        for key in real:
            out.real.append(sample_frames(read_video(clips[key].video, name=f"{key}.mp4").frames,
                                          fd_frames))  # fmt: skip
        return out


def mouth_box(*landmarks: Any, size: int, pad: int = BOX_PAD,
              min_side: int = MIN_BOX) -> tuple[int, int, int, int]:  # fmt: skip
    """The pixel box `(x0, y0, x1, y1)` (x1, y1 exclusive) around the mouth landmarks.

    The box of the 20 mouth points (`decouple.metrics.landmarks.MOUTH`) of every frame given,
    padded by `pad` pixels, grown about its centre to at least `min_side` pixels per side
    (SSIM's window), and kept inside the frame.

    Args:
        *landmarks: (t, 68, 2) arrays of (x, y) pixel coordinates.
        size: Frame side.
        pad: Padding in pixels.
        min_side: Smallest side.

    Returns:
        The box.

    Examples:
        >>> pts = np.zeros((1, 68, 2)); pts[0, 48:68] = [[10, 20], [14, 23]] * 10
        >>> mouth_box(pts, size=64, min_side=1)
        (8, 18, 17, 26)
        >>> mouth_box(pts, size=64)
        (7, 17, 18, 28)
    """
    from decouple.metrics.landmarks import MOUTH

    pts = np.concatenate([np.asarray(lm, dtype=np.float64)[:, list(MOUTH)].reshape(-1, 2)
                          for lm in landmarks])  # fmt: skip
    lo = np.floor(pts.min(0)).astype(int) - pad
    hi = np.ceil(pts.max(0)).astype(int) + pad + 1
    box = []
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        grow = max(0, min_side - (b - a))
        a, b = a - grow // 2, b + grow - grow // 2
        a, b = max(0, min(a, size - min_side)), min(size, max(b, min_side))
        box.append((a, b))
    (x0, x1), (y0, y1) = box
    return x0, y0, x1, y1


def mouth_error(model: Callable[[Tensor], Tensor], frames: Tensor, true: Tensor | np.ndarray,
                *, batch_size: int = 64) -> float:  # fmt: skip
    """Mean |R(frames) - m_true| over frames and mouth parameters.

    Args:
        model: The mouth regressor R: frames (b, 3, h, w) -> (b, k) mouth parameters.
        frames: (t, 3, h, w) frames, uint8 or float in [0, 1].
        true: (t, k) true mouth parameters.
        batch_size: Frames per call.

    Returns:
        The error (float64).

    Examples:
        >>> mouth_error(lambda x: x.mean((2, 3))[:, :2], torch.zeros(3, 3, 4, 4),
        ...             np.ones((3, 2)))
        1.0
    """
    from decouple.metrics._batching import iter_embeddings

    pred = torch.cat(list(iter_embeddings(frames, model, batch_size=batch_size,
                                          where="mouth_error")))  # fmt: skip
    true = torch.as_tensor(np.asarray(true), dtype=torch.float64)
    if pred.shape != true.shape:
        raise ValueError(f"mouth_error: the model gave {tuple(pred.shape)} mouth parameters for "
                         f"{tuple(true.shape)} true ones")  # fmt: skip
    return float((pred - true).abs().mean())


def edit_frames(models: Models, frames: Tensor, code: Tensor, *, batch: int = 16
                ) -> tuple[Tensor, float]:  # fmt: skip
    """The generator's edit of model-size frames with one code, and the time it took.

    `generate.py`'s edit loop (`edit_crops`) on frames that are already model-size crops:
    `G(frames / 255, code)` in batches, rounded to uint8.

    Args:
        models: The run's models (generator on its device).
        frames: (t, 3, s, s) uint8.
        code: (1, D) target code.
        batch: Frames per generator call.

    Returns:
        The edited frames (t, 3, s, s) uint8 on the CPU, and the generator's wall time in
        seconds (transfers included; CUDA synchronised).
    """
    gen = models.generator
    assert gen is not None
    device = next(gen.parameters()).device
    out = torch.empty_like(frames)

    def keep(i: int, j: int, x: Tensor, y: Tensor) -> None:
        out[i:j] = to_uint8(y)

    t0 = time.perf_counter()
    edit_crops(gen, frames, code, keep, batch=batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def _trim(*xs: Tensor) -> list[Tensor]:
    n = min(len(x) for x in xs)
    return [x[:n] for x in xs]


def _windows_at_25(frames: int, fps: float) -> int:
    from decouple.data.io import resample_indices

    if abs(fps - 25.0) < 1e-9:
        n = frames
    else:
        n = len(resample_indices(np.arange(frames) / fps, 25.0, src_fps=fps))
    return n - 4


# ---------------------------------------------------------------------------------- scorers


@dataclass
class Truth:
    """SynthTalk's counterfactual of one job.

    Attributes:
        frames: The render in the target emotion at the clip's nuisance seed (t, 3, s, s).
        mouth: The true mouth parameters (t, 4).
        box: The mouth box (source and counterfactual landmarks).
        params: The source's `synthtalk` extra.
    """

    frames: Tensor
    mouth: np.ndarray
    box: tuple[int, int, int, int]
    params: dict[str, Any]


class SynthTalkScorer:
    """Scores outputs on SynthTalk with the independent evaluators and the counterfactuals.

    Args:
        evaluators: The `evaluators.Evaluators` (on the device to use).
        data: The held-out media.
        max_offset: Lip-sync offsets +-N (25 fps windows).
        padding: `lip_sync` padding (`valid` or `zeros`).
        batch: Frames per model call.
        floor_seeds: Other nuisance seeds of the floor row.
        stride: Score every stride-th frame of an output (lip sync: every frame).
    """

    corpus = "synthtalk"
    pooled_key = "frechet"
    fixed_rows = ("copy", "ground_truth", "floor")

    def __init__(self, evaluators: Any, data: HeldOut, *, max_offset: int = 10,
                 padding: str = "valid", batch: int = 64, floor_seeds: int = FLOOR_SEEDS,
                 stride: int = 1) -> None:  # fmt: skip
        from decouple.metrics.frechet import embedding_statistics

        plain = [k for k in data.sources if k not in data.params]
        if plain:
            raise EvaluateError(f"{data.protocol.root}: clip {plain[0]} has no 'synthtalk' "
                                "extra (not a SynthTalk corpus: no counterfactual ground "
                                "truth); for MEAD shards pass --corpus mead")  # fmt: skip
        missing = [e for e in data.protocol.targets if e not in evaluators.emotion_names]
        if missing:
            raise EvaluateError(f"the evaluators know {list(evaluators.emotion_names)}, not the "
                                f"target emotion(s) {missing}")  # fmt: skip
        self.ev = evaluators
        self.data = data
        self.max_offset = max_offset
        self.padding = padding
        self.batch = batch
        self.floor_seeds = floor_seeds
        self.stride = stride
        self.real_stats = embedding_statistics(data.real, evaluators.embed, batch_size=batch)
        self.skipped_sync = 0

    def truth(self, job: tuple[str, str]) -> Truth:
        """The counterfactual of a (source, target) job.

        Args:
            job: (source key, target emotion).

        Returns:
            The [Truth][evaluate.Truth].
        """
        from decouple.data.synthtalk.corpus import render

        key, target = job
        params = self.data.params[key]
        level = self.data.protocol.level
        n = len(self.data.sources[key])  # the source's frames (all, or --max-frames)
        cf = render(params, emotion=target, intensity=1 if target == "neutral" else level)
        source_landmarks = render(params).landmarks
        box = mouth_box(source_landmarks[:n], cf.landmarks[:n], size=int(cf.frames.shape[-1]))
        return Truth(cf.frames[:n], cf.arrays["mouth"][:n], box, params)

    def fixed_outputs(self, job: tuple[str, str], truth: Truth | None) -> dict[str, list[Tensor]]:
        """The outputs of the rows without a model: copy, ground truth, floor.

        Args:
            job: (source key, target emotion).
            truth: Its counterfactual.

        Returns:
            `{row: [frames, ...]}` (the floor: one render per other nuisance seed).
        """
        from decouple.data.synthtalk.corpus import render

        assert truth is not None
        key, target = job
        level = self.data.protocol.level
        seed = int(truth.params["nuisance_seed"])
        n = len(truth.frames)
        floors = [render(truth.params, emotion=target, intensity=1 if target == "neutral"
                         else level, nuisance_seed=(seed + 7919 * (k + 1)) % 2**31).frames[:n]
                  for k in range(self.floor_seeds)]  # fmt: skip
        return {"copy": [self.data.sources[key]], "ground_truth": [truth.frames],
                "floor": floors}

    def score(self, out: Tensor, job: tuple[str, str], truth: Truth | None) -> dict[str, Any]:
        """The per-pair metrics of one output that depend on the job only.

        Args:
            out: Output frames (t, 3, s, s) uint8.
            job: (source key, target emotion).
            truth: Its counterfactual.

        Returns:
            `accuracy`, `mouth_error`, `psnr`, `ssim`, `mouth_psnr`, `mouth_ssim`,
            `identity`, `lse_d`, `lse_c`, `offset` (None when the clip is too short for the
            offsets).
        """
        from decouple.metrics.image import psnr, ssim
        from decouple.metrics.similarity import emotion_accuracy, identity_similarity

        assert truth is not None
        key, target = job
        ev, b = self.ev, self.batch
        out, gt, source = _trim(out, truth.frames, self.data.sources[key])
        every = slice(None, None, self.stride)
        o, g, src = out[every], gt[every], source[every]
        mouth = truth.mouth[: len(out)][every]
        tid = ev.emotion_names.index(target)
        rec: dict[str, Any] = {
            "accuracy": emotion_accuracy(ev.emotion, o, [tid] * len(o), batch_size=b),
            "mouth_error": mouth_error(ev.mouth, o, mouth, batch_size=b),
            "psnr": psnr(o, g), "ssim": ssim(o, g),
            "mouth_psnr": psnr(o, g, box=truth.box), "mouth_ssim": ssim(o, g, box=truth.box),
            "identity": identity_similarity(src, o, ev.embed, batch_size=b),
        }  # fmt: skip
        rec.update(self._sync(out, key))
        return rec

    def _sync(self, out: Tensor, key: str) -> dict[str, Any]:
        from decouple.metrics.sync import lip_sync

        wave, sr = self.data.audio[key]
        if self.padding == "valid" and _windows_at_25(len(out), self.data.fps) <= self.max_offset:
            self.skipped_sync += 1
            return {"lse_d": None, "lse_c": None, "offset": None}
        s = lip_sync(self.sync_model, out, wave, fps=self.data.fps, sample_rate=sr,
                     max_offset=self.max_offset, padding=self.padding, batch_size=self.batch)
        return {"lse_d": s.lse_d, "lse_c": s.lse_c, "offset": s.offset}

    @property
    def sync_model(self) -> Any:
        """The lip-sync model (the evaluators' SynthTalk sync model)."""
        return self.ev.sync

    def score_pair(self, out: Tensor, pair: Pair) -> dict[str, Any]:
        """Metrics that depend on the pair's reference (none on SynthTalk).

        Args:
            out: Output frames.
            pair: The pair.

        Returns:
            `{}`.
        """
        return {}

    def pooled(self, frames: list[Tensor]) -> float:
        """The Frechet distance of the evaluators' identity embedding between the real frames
        of the target emotions and the given output frames.

        Args:
            frames: Output frames (`fd_frames` per clip).

        Returns:
            The distance.
        """
        from decouple.metrics.frechet import embedding_statistics, frechet_distance

        gen = embedding_statistics(frames, self.ev.embed, batch_size=self.batch)
        return frechet_distance(self.real_stats, gen)


class MeadScorer(SynthTalkScorer):
    """Scores outputs on MEAD with the papers' metric models (no ground truth).

    Args:
        arcface: An IResNet-50 with `stop_at="embedding"` (FAD, identity similarity).
        sync: A SyncNet v2 (`decouple.metrics.sync.syncnet`).
        emotion_model: An EfficientFace (`decouple.encoders.efficientface`).
        data: The held-out media.
        max_offset: Lip-sync offsets +-N (25 fps windows).
        padding: `lip_sync` padding.
        batch: Frames per model call.
        stride: Score every stride-th frame of an output (lip sync: every frame).
    """

    corpus = "mead"
    pooled_key = "fad"
    fixed_rows = ("copy",)

    def __init__(self, arcface: Any, sync: Any, emotion_model: Any, data: HeldOut, *,
                 max_offset: int = 10, padding: str = "valid", batch: int = 64,
                 stride: int = 1) -> None:  # fmt: skip
        from decouple.data.registry import canonical_emotion
        from decouple.metrics.frechet import embedding_statistics

        self.arcface = arcface
        self.sync = sync
        self.emotion_model = emotion_model
        self.data = data
        self.max_offset = max_offset
        self.padding = padding
        self.batch = batch
        self.stride = stride
        self.skipped_sync = 0
        self.names = tuple(canonical_emotion(n) for n in emotion_model.emotion_names)
        self.real_stats = embedding_statistics(data.real, arcface, batch_size=batch)
        intra: dict[tuple[str, str], str] = {}
        for p in data.protocol.pairs:  # the label rows' "real" frames: the intra reference
            if p.reference is not None and p.setting == "intra":
                intra.setdefault((p.source, p.target), p.reference)
        for p in data.protocol.pairs:
            if p.reference is not None:
                intra.setdefault((p.source, p.target), p.reference)
        self.real_of = intra

    @property
    def sync_model(self) -> Any:
        """The lip-sync model (SyncNet v2)."""
        return self.sync

    def truth(self, job: tuple[str, str]) -> None:
        """MEAD has no counterfactual ground truth.

        Args:
            job: (source key, target emotion).

        Returns:
            None.
        """
        return None

    def fixed_outputs(self, job: tuple[str, str], truth: Truth | None) -> dict[str, list[Tensor]]:
        """The copy row.

        Args:
            job: (source key, target emotion).
            truth: None.

        Returns:
            `{"copy": [source frames]}`.
        """
        return {"copy": [self.data.sources[job[0]]]}

    def score(self, out: Tensor, job: tuple[str, str], truth: Truth | None) -> dict[str, Any]:
        """LSE-D / LSE-C, identity similarity to the source, EfficientFace accuracy.

        Args:
            out: Output frames.
            job: (source key, target emotion).
            truth: None.

        Returns:
            `lse_d`, `lse_c`, `offset`, `identity`, `accuracy` (None when EfficientFace has
            no class of the target).
        """
        from decouple.metrics.similarity import emotion_accuracy, identity_similarity

        key, target = job
        out, source = _trim(out, self.data.sources[key])
        every = slice(None, None, self.stride)
        o = out[every]
        rec: dict[str, Any] = {"identity": identity_similarity(source[every], o, self.arcface,
                                                               batch_size=self.batch)}
        if target in self.names:
            tid = self.names.index(target)
            rec["accuracy"] = emotion_accuracy(self.emotion_model, o, [tid] * len(o),
                                               batch_size=self.batch)  # fmt: skip
        else:
            rec["accuracy"] = None
        rec.update(self._sync(out, key))
        return rec

    def score_pair(self, out: Tensor, pair: Pair) -> dict[str, Any]:
        """Emotion-feature similarity between the output and real frames of the target: the
        pair's reference (label rows: the intra-ID reference), frames paired by evenly
        spaced indices.

        Args:
            out: Output frames.
            pair: The pair.

        Returns:
            `{"emotion_similarity": value}` (None without any reference).
        """
        from decouple.metrics.similarity import emotion_feature_similarity

        ref_key = pair.reference or self.real_of.get((pair.source, pair.target))
        if ref_key is None:
            return {"emotion_similarity": None}
        ref = self.data.references[ref_key]
        o = out[:: self.stride]
        idx = torch.linspace(0, len(ref) - 1, len(o)).round().long()
        value = emotion_feature_similarity(ref[idx], o, self.emotion_model.features,
                                           batch_size=self.batch)  # fmt: skip
        return {"emotion_similarity": value}

    def pooled(self, frames: list[Tensor]) -> float:
        """FAD: the Frechet distance of ArcFace embeddings (not normalised) between real frames
        of the target emotions and the output frames (`decouple.metrics.frechet.fad`).

        Args:
            frames: Output frames.

        Returns:
            The distance.
        """
        from decouple.metrics.frechet import embedding_statistics, frechet_distance

        gen = embedding_statistics(frames, self.arcface, batch_size=self.batch)
        return frechet_distance(self.real_stats, gen)


# ------------------------------------------------------------------------------ aggregation


def _mean(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return float(np.mean(np.asarray(vals, dtype=np.float64)))


def _spread(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample std (ddof 1; None for one value) and count of the values given; equal
    values (inf included) have std 0, unequal ones with an inf have std nan."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None, 0
    a = np.asarray(vals, dtype=np.float64)
    if len(a) == 1:
        return float(a[0]), None, 1
    if np.all(a == a[0]):
        return float(a[0]), 0.0, len(a)
    if not np.all(np.isfinite(a)):
        return float(a.mean()), float("nan"), len(a)
    return float(a.mean()), float(a.std(ddof=1)), len(a)


def summarize(per_seed: Sequence[Mapping[str, Any]], metrics: Sequence[Metric]) -> dict[str, Any]:
    """Mean and spread over seeds of per-seed means.

    Args:
        per_seed: One `{metric key: value}` per seed (None = not measured).
        metrics: The metrics to summarise.

    Returns:
        `{"seeds": n, "mean": {k: v}, "std": {k: v}}`; std is the sample standard deviation
        (ddof = 1) over seeds, None with one seed.

    Examples:
        >>> m = [Metric("accuracy", "acc", "higher")]
        >>> s = summarize([{"accuracy": 0.5}, {"accuracy": 0.7}, {"accuracy": 0.9}], m)
        >>> round(s["mean"]["accuracy"], 6), round(s["std"]["accuracy"], 6), s["seeds"]
        (0.7, 0.2, 3)
    """
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for m in metrics:
        mu, sd, _ = _spread([s.get(m.key) for s in per_seed])
        mean[m.key], std[m.key] = mu, sd
    return {"seeds": len(per_seed), "mean": mean, "std": std}


def _seed_means(records: Sequence[Mapping[str, Any]], metrics: Sequence[Metric],
                targets: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"pairs": len(records)}
    for m in metrics:
        if not m.pooled:
            out[m.key] = _mean(r.get(m.key) for r in records)
    out["per_emotion"] = {t: _mean(r.get("accuracy") for r in records if r["target"] == t)
                          for t in targets}  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- running


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="pair", disable=not enabled, leave=False)


def _middle(frames: Tensor) -> Tensor:
    return frames[len(frames) // 2]


def _pair_record(pair: Pair, protocol: Protocol) -> dict[str, Any]:
    return {"setting": pair.setting, "source": pair.source, "target": pair.target,
            "reference": pair.reference, "speaker": protocol.clips[pair.source].speaker}


def _score_fixed(scorer: SynthTalkScorer, data: HeldOut, truths: dict[tuple[str, str], Any],
                 progress: bool) -> tuple[dict[str, dict[str, list[dict[str, Any]]]],
                                          dict[str, dict[str, list[Tensor]]],
                                          dict[tuple[str, str], dict[str, Tensor]]]:  # fmt: skip
    """Records and Frechet frames of the rows without a model, per setting, and each job's
    middle output frame per row (for the frame grids)."""
    p = data.protocol
    by_job: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in scorer.fixed_rows}
    pool_job: dict[str, dict[tuple[str, str], list[Tensor]]] = {r: {} for r in scorer.fixed_rows}
    outputs: dict[tuple[str, str], dict[str, list[Tensor]]] = {}
    bar = _progress(len(p.jobs()), "reference rows", progress)
    for job in p.jobs():
        outs = scorer.fixed_outputs(job, truths.get(job))
        outputs[job] = {row: [o] for row, (o, *_) in outs.items()}
        for row, frames in outs.items():
            recs = [scorer.score(o, job, truths.get(job)) for o in frames]
            by_job[row][job] = {k: _mean(r[k] for r in recs) for k in recs[0]}
            pool_job[row][job] = [sample_frames(o, data.fd_frames) for o in frames]
        bar.update(1)
    bar.close()
    records: dict[str, dict[str, list[dict[str, Any]]]] = {r: {} for r in scorer.fixed_rows}
    pools: dict[str, dict[str, list[Tensor]]] = {r: {} for r in scorer.fixed_rows}
    for row in scorer.fixed_rows:
        for setting in p.settings():
            recs, frames = [], []
            for pair in p.of(setting):
                job = (pair.source, pair.target)
                first = outputs[job][row][0]
                recs.append({**_pair_record(pair, p), **by_job[row][job],
                             **scorer.score_pair(first, pair)})
                frames += pool_job[row][job]
            records[row][setting], pools[row][setting] = recs, frames
    middles = {job: {row: _middle(o[0]) for row, o in rows.items()}
               for job, rows in outputs.items()}  # fmt: skip
    return records, pools, middles


def _pooled(scorer: SynthTalkScorer, frames: list[Tensor], where: str,
            notes: list[str]) -> float | None:  # fmt: skip
    """The scorer's pooled distance, or None (and a note) when the statistics cannot give
    one (e.g. far fewer frames than embedding dimensions)."""
    try:
        return scorer.pooled(frames)
    except ValueError as err:
        notes.append(f"{scorer.pooled_key} not computed for {where} "
                     f"({sum(len(f) for f in frames)} frames): {err}")  # fmt: skip
        return None


def _score_run(scorer: SynthTalkScorer, data: HeldOut, truths: dict[tuple[str, str], Any],
               models: Models, *, batch: int, desc: str, progress: bool,
               keep: set[tuple[str, str, str]]) -> dict[str, Any]:  # fmt: skip
    """Generate and score every pair with one run."""
    p = data.protocol
    device = next(models.generator.parameters()).device  # type: ignore[union-attr]
    codes: dict[str, Tensor] = {}
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in p.settings()}
    pools: dict[str, list[Tensor]] = {s: [] for s in p.settings()}
    examples: dict[tuple[str, str, str], Tensor] = {}
    frames_done, seconds = 0, 0.0
    bar = _progress(len(p.pairs), desc, progress)
    for pair in p.pairs:
        if pair.reference is None:
            code = target_code(models, emotion=pair.target)
        else:
            if pair.reference not in codes:
                codes[pair.reference] = target_code(
                    models, reference=data.references[pair.reference].to(device))
            code = codes[pair.reference]
        job = (pair.source, pair.target)
        out, dt = edit_frames(models, data.sources[pair.source], code, batch=batch)
        frames_done += len(out)
        seconds += dt
        rec = {**_pair_record(pair, p), **scorer.score(out, job, truths.get(job)),
               **scorer.score_pair(out, pair)}  # fmt: skip
        records[pair.setting].append(rec)
        pools[pair.setting].append(sample_frames(out, data.fd_frames))
        if (pair.setting, *job) in keep:
            examples[(pair.setting, *job)] = _middle(out)
        bar.update(1)
    bar.close()
    return {"records": records, "pools": pools, "fps": frames_done / max(seconds, 1e-9),
            "frames": frames_done, "seconds": seconds, "examples": examples}


def _decoupling(run_dir: Path, models: Models, device: torch.device, windows: int | None,
                embed_windows: int) -> dict[str, Any]:  # fmt: skip
    """The CCRL / CERL probes of a run (`stages.ccrl_probes`, `stages.cerl_probes`) and, when
    `embed_windows` > 0, held-out embeddings for the 2D projection."""
    from stages import Context, ccrl_probes, cerl_probes, probe_windows

    from decouple.data.synthtalk.visemes import VISEMES

    info = read_run_info(run_dir)
    cfg = models.config
    ctx = Context(cfg, run_dir, Path(info["root"]), info, 0, 1, device)
    out: dict[str, Any] = {
        "content": ccrl_probes(ctx, models.content_encoder, models.audio_prior,
                               windows or cfg.ccrl.probe_windows),
        "emotion": cerl_probes(ctx, models.emotion_encoder, windows or cfg.cerl.probe_windows),
    }  # fmt: skip
    if embed_windows > 0:
        zc, ze, emo, vis = [], [], [], []
        with torch.no_grad():
            for split, batch in probe_windows(ctx, cfg.ccrl.window, embed_windows):
                if split != cfg.data.test_split:
                    continue
                video = batch["video"].to(device)
                t = video.shape[1]
                feats = models.audio_prior(batch["audio"].to(device).float(), ctx.sample_rate, t,
                                           ctx.fps)  # fmt: skip
                zc.append(models.content_encoder(video.flatten(0, 1), feats.flatten(0, 1)).cpu())
                ze.append(models.emotion_encoder(video.flatten(0, 1)).cpu())
                emo += [models.emotion_names[int(e)] for e in batch["emotion"]
                        for _ in range(t)]  # fmt: skip
                vis += [VISEMES[int(v)] for v in batch["viseme_id"].flatten()]
        if zc:
            out["embeddings"] = {"content": torch.cat(zc).double().numpy(),
                                 "emotion": torch.cat(ze).double().numpy(),
                                 "emotion_label": emo, "content_label": vis}  # fmt: skip
    return out


def _decoupling_table(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and spread over seeds of the probe accuracies (and their chance rates)."""
    probes = {("content", "content_probe"): ("content", "viseme_probe"),
              ("content", "emotion_probe"): ("content", "emotion_probe"),
              ("emotion", "content_probe"): ("emotion", "viseme_probe"),
              ("emotion", "sentence_probe"): ("emotion", "sentence_probe"),
              ("emotion", "emotion_probe"): ("emotion", "emotion_probe")}  # fmt: skip
    table: dict[str, Any] = {"seeds": len(per_seed), "content": {}, "emotion": {}}
    for (emb, name), (part, key) in probes.items():
        acc = [s[part].get(key, {}).get("accuracy") for s in per_seed]
        chance = [s[part].get(key, {}).get("chance") for s in per_seed]
        mu, sd, n = _spread(acc)
        table[emb][name] = {"accuracy": mu, "std": sd, "chance": _spread(chance)[0], "n": n,
                            "per_seed": acc}  # fmt: skip
    return table


def _stamp(argv: Sequence[str] | None, seconds: float) -> dict[str, Any]:
    repo = _RECIPE.parents[1]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                               timeout=20, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "decouple", "recipes")
    command = "python recipes/spfem/evaluate.py" + ("" if argv is None
                                                    else " " + shlex.join(argv))  # fmt: skip
    return {"command": command, "git_commit": commit, "git_dirty": bool(dirty),
            "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "machine": _machine(), "wall_seconds": round(seconds, 1)}


def _machine() -> str:
    """bench/_machine.py's machine() when the repository's bench folder is there, else the
    same facts from platform and /proc/cpuinfo."""
    path = _RECIPE.parents[1] / "bench" / "_machine.py"
    if path.is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location("_bench_machine", path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                return str(module.machine())
            except Exception:  # fall back to the minimal line below
                pass
    import os

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def arcface_layers(arch: str) -> tuple[int, ...]:
    """Blocks per layer of an ArcFace IResNet: a name of `ARCFACE_ARCHS` or `a,b,c,d`.

    Args:
        arch: `r18`, `r34`, `r50`, `r100`, or four comma-separated block counts.

    Returns:
        The block counts.

    Raises:
        EvaluateError: Anything else.

    Examples:
        >>> arcface_layers("r50"), arcface_layers("1,1,1,1")
        ((3, 4, 14, 3), (1, 1, 1, 1))
    """
    if arch in ARCFACE_ARCHS:
        return ARCFACE_ARCHS[arch]
    try:
        layers = tuple(int(v) for v in arch.split(","))
    except ValueError:
        layers = ()
    if len(layers) != 4 or min(layers) < 1:
        raise EvaluateError(f"--arcface-arch {arch}: expected one of {', '.join(ARCFACE_ARCHS)} "
                            "or four block counts a,b,c,d")  # fmt: skip
    return layers


def _check_files(arcface: str | Path | None, syncnet: str | Path | None,
                 emotion_model: str | Path | None) -> None:  # fmt: skip
    missing = [flag for flag, v in (("--arcface", arcface), ("--syncnet", syncnet),
                                    ("--emotion-model", emotion_model)) if not v]  # fmt: skip
    if missing:
        raise EvaluateError(f"MEAD needs local weights of the papers' metric models: "
                            f"{', '.join(missing)} FILE (ArcFace IResNet-50 backbone.pth, "
                            "syncnet_v2.model, EfficientFace checkpoint)")  # fmt: skip
    for flag, v in (("--arcface", arcface), ("--syncnet", syncnet),
                    ("--emotion-model", emotion_model)):  # fmt: skip
        if not Path(str(v)).is_file():
            raise EvaluateError(f"{v}: no such file ({flag})")


def _load_mead_models(arcface: str | Path | None, syncnet: str | Path | None,
                      emotion_model: str | Path | None, device: torch.device,
                      arch: str = "r50") -> tuple[Any, Any, Any]:  # fmt: skip
    _check_files(arcface, syncnet, emotion_model)
    from decouple.checkpoint import read_weights
    from decouple.encoders import IResNet
    from decouple.encoders.efficientface import efficientface
    from decouple.metrics.sync import syncnet as build_syncnet

    state, _ = read_weights(str(arcface), what="an insightface ArcFace backbone")
    fc = state.get("fc.weight")  # the embedding size (512 for insightface's backbones)
    width = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 512
    net = IResNet(arcface_layers(arch), stop_at="embedding",  # type: ignore[arg-type]
                  num_features=width)  # fmt: skip
    net = net.load_insightface(state).to(device).eval()
    sync = build_syncnet(syncnet).to(device).eval()
    return net, sync, efficientface(emotion_model).to(device).eval()


def _evaluators(root: str | Path, folder: Path, *, seed: int, scale: float,
                device: torch.device, progress: bool) -> Any:  # fmt: skip
    from evaluators import train_evaluators

    return train_evaluators(root, folder, seed=seed, scale=scale, device=device,
                            progress=progress).to(device)  # fmt: skip


def evaluate(
    runs: Sequence[RunSpec],
    out_dir: str | Path,
    *,
    corpus: str | None = None,
    split: str = "test",
    max_sources: int | None = None,
    evaluators: Any = None,
    evaluator_seed: int = 1234,
    evaluator_scale: float = 1.0,
    arcface: str | Path | None = None,
    arcface_arch: str = "r50",
    syncnet: str | Path | None = None,
    emotion_model: str | Path | None = None,
    mead_sources: Sequence[str] = ("neutral",),
    settings: Sequence[str] | None = None,
    max_offset: int = 10,
    padding: str = "valid",
    floor_seeds: int = FLOOR_SEEDS,
    stride: int = 1,
    fd_frames: int = FD_FRAMES,
    max_frames: int | None = None,
    probe_windows: int | None = None,
    embed_windows: int = 32,
    examples: int = 4,
    device: str | torch.device = "cpu",
    batch: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the runs on the protocol; returns everything the report needs.

    Args:
        runs: The runs ([parse_runs][evaluate.parse_runs]).
        out_dir: Output folder (the evaluators are cached in `<out_dir>/evaluators` unless
            given).
        corpus: `synthtalk` or `mead`; None: from the runs' `prepare/info.json`.
        split: The held-out split.
        max_sources: At most this many sources per held-out speaker.
        evaluators: SynthTalk: an `evaluators.Evaluators`, or its folder (trained there when
            it is not complete); None: `<out_dir>/evaluators`.
        evaluator_seed: Seed of the evaluators' training.
        evaluator_scale: Scale of their training steps (`train_evaluators(scale=)`).
        arcface: MEAD: insightface ArcFace IResNet weights (FAD, identity similarity).
        arcface_arch: Its depth ([arcface_layers][evaluate.arcface_layers]; default r50).
        syncnet: MEAD: SyncNet v2 weights (`syncnet_v2.model`).
        emotion_model: MEAD: EfficientFace checkpoint (emotion-feature similarity, accuracy).
        mead_sources: MEAD source emotions (default neutral).
        settings: The settings (None: intra, cross and label on SynthTalk; intra and cross
            on MEAD, as the papers).
        max_offset: Lip-sync offsets +-N.
        padding: Lip-sync padding (`valid`, `zeros`).
        floor_seeds: Other nuisance seeds of the floor row (SynthTalk).
        stride: Score every stride-th frame of each output (all per-frame metrics; lip sync
            always uses every frame).
        fd_frames: Frames per clip (evenly spaced) in the Frechet sets.
        max_frames: Use only the first `max_frames` frames of every source (a quick look;
            None: whole clips; the audio is cut to the frames by `lip_sync`).
        probe_windows: Windows per split of the decoupling probes (None: the run's config;
            0: no decoupling table).
        embed_windows: Held-out windows embedded for the 2D projection (0: none).
        examples: Pairs shown in the frame grids (intra-ID, one target each).
        device: Torch device.
        batch: Frames per model call (metric models; the generator uses min(batch, 16)).
        progress: Show progress bars.

    Returns:
        The results (see `report.write_report`): `protocol`, `rows`, `metrics`,
        `decoupling`, `runs`, `notes`, and in-memory `examples` / `embeddings` (not JSON).

    Raises:
        EvaluateError: Bad arguments, runs on other data, missing metric weights.
        ProtocolError: The shards cannot give the protocol.
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    facts = _run_facts(runs)
    corpus = corpus or facts["corpus"] or "synthtalk"
    if corpus not in ("synthtalk", "mead"):
        raise EvaluateError(f"--corpus: the protocol exists for synthtalk and mead, got "
                            f"{corpus!r}")  # fmt: skip
    root = facts["root"]
    if corpus == "synthtalk":
        protocol = synthtalk_protocol(root, split, max_sources=max_sources,
                                      settings=settings or SETTINGS)  # fmt: skip
    else:
        protocol = mead_protocol(root, split, source_emotions=tuple(mead_sources),
                                 max_sources=max_sources,
                                 settings=settings or ("intra", "cross"))  # fmt: skip
    if corpus == "mead":  # the weight files first: a missing one is an error before any work
        _check_files(arcface, syncnet, emotion_model)
    data = HeldOut.load(protocol, facts["fps"], facts["size"], fd_frames, max_frames)
    metrics = metrics_for(corpus)
    if corpus == "synthtalk":
        if evaluators is None or isinstance(evaluators, str | Path):
            folder = Path(evaluators) if evaluators is not None else out_dir / "evaluators"
            evaluators = _evaluators(root, folder, seed=evaluator_seed, scale=evaluator_scale,
                                     device=device, progress=progress)  # fmt: skip
        scorer: SynthTalkScorer = SynthTalkScorer(evaluators, data, max_offset=max_offset,
                                                  padding=padding, batch=batch,
                                                  floor_seeds=floor_seeds,
                                                  stride=stride)  # fmt: skip
    else:
        net, sync, emo = _load_mead_models(arcface, syncnet, emotion_model, device, arcface_arch)
        scorer = MeadScorer(net, sync, emo, data, max_offset=max_offset, padding=padding,
                            batch=batch, stride=stride)  # fmt: skip

    truths = {job: scorer.truth(job) for job in protocol.jobs()}
    shown: list[Pair] = []  # the frame grids: the first pair per target of the first setting
    for target in protocol.targets:
        first = next((p for p in protocol.of(protocol.settings()[0]) if p.target == target),
                     None)  # fmt: skip
        if first is not None and len(shown) < examples:
            shown.append(first)
    keep = {(p.setting, p.source, p.target) for p in shown}

    rows: dict[str, Any] = {}
    pooled_notes: list[str] = []
    fixed, fixed_pools, fixed_middles = _score_fixed(scorer, data, truths, progress)
    for row in scorer.fixed_rows:
        per_setting = {}
        for s in protocol.settings():
            seed_rec = _seed_means(fixed[row][s], metrics, protocol.targets)
            seed_rec[scorer.pooled_key] = _pooled(scorer, fixed_pools[row][s], f"{row}, {s}",
                                                  pooled_notes)  # fmt: skip
            per_setting[s] = {"per_seed": [seed_rec], **summarize([seed_rec], metrics)}
        rows[row] = {"name": ROW_NAMES[row], "runs": [], "seeds": [], "settings": per_setting,
                     "pairs": fixed[row]}  # fmt: skip
    example_frames: dict[str, list[Tensor]] = {}
    for row in scorer.fixed_rows:
        example_frames[row] = [fixed_middles[(p.source, p.target)][row] for p in shown]

    decoupling_seeds: list[dict[str, Any]] = []
    embeddings = None
    gen_batch = min(batch, 16)
    for method in METHODS:
        mine = [r for r in runs if r.method == method]
        if not mine:
            continue
        per_seed: dict[str, list[dict[str, Any]]] = {s: [] for s in protocol.settings()}
        pairs: dict[str, list[dict[str, Any]]] = {s: [] for s in protocol.settings()}
        speed = []
        for i, spec in enumerate(mine):
            try:
                models = load_run(spec.run_dir).to(device)
            except GenerateError as err:
                raise EvaluateError(f"--runs {method}=...: {err}") from err
            result = _score_run(scorer, data, truths, models, batch=gen_batch,
                                desc=f"{method} seed {i}", progress=progress, keep=keep)
            speed.append(result["fps"])
            for s in protocol.settings():
                seed_rec = _seed_means(result["records"][s], metrics, protocol.targets)
                seed_rec[scorer.pooled_key] = _pooled(scorer, result["pools"][s],
                                                      f"{method} seed {i}, {s}", pooled_notes)
                seed_rec["fps"] = result["fps"]
                per_seed[s].append(seed_rec)
                pairs[s] += [{**r, "seed_index": i} for r in result["records"][s]]
            if i == 0:
                example_frames[method] = [result["examples"][(p.setting, p.source, p.target)]
                                          for p in shown]  # fmt: skip
            if method == "full" and corpus == "synthtalk" and probe_windows != 0:
                d = _decoupling(spec.run_dir, models, device, probe_windows,
                                embed_windows if embeddings is None else 0)
                if embeddings is None:
                    embeddings = d.pop("embeddings", None)
                decoupling_seeds.append(d)
            del models
        rows[method] = {
            "name": ROW_NAMES[method], "runs": [str(r.run_dir) for r in mine],
            "seeds": [_seed_of(r.run_dir) for r in mine],
            "settings": {s: {"per_seed": per_seed[s], **summarize(per_seed[s], metrics)}
                         for s in protocol.settings()},
            "pairs": pairs, "fps_per_seed": speed,
        }  # fmt: skip

    rows = {r: rows[r] for r in ROWS if r in rows}
    notes = list(protocol.notes) + pooled_notes
    if scorer.skipped_sync:
        notes.append(f"{scorer.skipped_sync} output(s) too short for lip-sync offsets "
                     f"+-{max_offset} (need more than {max_offset} 5-frame windows): no LSE")
    if probe_windows != 0 and corpus == "mead":
        notes.append("no decoupling table on MEAD (no frame-level content labels)")
    seeds_given = {m: len(rows[m]["runs"]) for m in METHODS if m in rows}
    if seeds_given and min(seeds_given.values()) < 3:
        notes.append(f"fewer than 3 seeds for some method ({seeds_given}): the spread is not "
                     "meaningful")  # fmt: skip
    return {
        "format": "spfem-evaluation", "version": 1, "corpus": corpus, "root": root,
        "split": split, "fps": facts["fps"], "size": facts["size"],
        "protocol": protocol.to_json(),
        "metrics": [{"key": m.key, "name": m.name, "better": m.better, "pooled": m.pooled}
                    for m in metrics],
        "rows": rows,
        "decoupling": _decoupling_table(decoupling_seeds) if decoupling_seeds else None,
        "settings_run": protocol.settings(),
        "options": {"max_sources": max_sources, "max_offset": max_offset, "padding": padding,
                    "floor_seeds": floor_seeds if corpus == "synthtalk" else None,
                    "stride": stride,
                    "fd_frames_per_clip": fd_frames, "max_frames": max_frames,
                    "real_clips": len(data.real_keys),
                    "evaluators": getattr(evaluators, "summary", None)
                    if corpus == "synthtalk" else None,
                    "device": str(device), "batch": batch},
        "notes": notes,
        "examples": {"pairs": [[p.setting, p.source, p.target, p.reference] for p in shown],
                     "source": [_middle(data.sources[p.source]) for p in shown],
                     "reference": [_middle(data.references[p.reference]) if p.reference
                                   else None for p in shown],
                     "rows": example_frames},
        "embeddings": embeddings,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    """The command line.

    Returns:
        The parser.

    Examples:
        >>> a = parser().parse_args(["--runs", "full=a,b", "baseline=c", "--max-sources", "2"])
        >>> a.runs, a.max_sources, a.max_offset, a.corpus
        (['full=a,b', 'baseline=c'], 2, 10, None)
    """
    p = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Score SPFEM runs on held-out speakers (SynthTalk benchmark, or the MEAD "
                    "table of the SPFEM papers) and write a report.",
    )  # fmt: skip
    p.add_argument("--runs", nargs="+", required=True, metavar="METHOD=DIR[,DIR...]",
                   help=f"run folders per method, one per seed; methods: {', '.join(METHODS)}")
    p.add_argument("--corpus", choices=("synthtalk", "mead"), default=None,
                   help="default: the runs' prepare/info.json")
    p.add_argument("--split", default="test", help="held-out split (default test)")
    p.add_argument("--max-sources", type=int, default=None,
                   help="at most N source clips per held-out speaker (default: all)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <first full run>/evaluation)")
    p.add_argument("--docs", default=None,
                   help="also write this documentation page (e.g. docs/results.md; images in "
                        "its folder's img/results/)")
    p.add_argument("--evaluators", default=None,
                   help="SynthTalk evaluator folder (trained there when incomplete; default "
                        "<out>/evaluators)")
    p.add_argument("--evaluator-seed", type=int, default=1234)
    p.add_argument("--evaluator-scale", type=float, default=1.0,
                   help="scale of the evaluators' training steps")
    p.add_argument("--settings", default=None,
                   help="comma list of intra, cross, label (default: all three on SynthTalk, "
                        "intra,cross on MEAD)")
    p.add_argument("--arcface", default=None,
                   help="MEAD: insightface arcface_torch backbone.pth (FAD, identity)")
    p.add_argument("--arcface-arch", default="r50",
                   help=f"its depth: {', '.join(ARCFACE_ARCHS)} or a,b,c,d (default r50)")
    p.add_argument("--syncnet", default=None, help="MEAD: SyncNet v2 weights (syncnet_v2.model)")
    p.add_argument("--emotion-model", default=None, help="MEAD: EfficientFace checkpoint")
    p.add_argument("--mead-sources", choices=("neutral", "all"), default="neutral",
                   help="MEAD source clips: neutral (default) or every one of the 7 emotions")
    p.add_argument("--max-offset", type=int, default=10, help="lip-sync offsets +-N (10)")
    p.add_argument("--padding", choices=("valid", "zeros"), default="valid",
                   help="lip-sync padding (zeros: syncnet_python's)")
    p.add_argument("--floor-seeds", type=int, default=FLOOR_SEEDS,
                   help="other nuisance seeds of the floor row")
    p.add_argument("--stride", type=int, default=1,
                   help="score every N-th frame of each output (lip sync: every frame)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="only the first N frames of each source (a quick look)")
    p.add_argument("--fd-frames", type=int, default=FD_FRAMES,
                   help=f"frames per clip in the Frechet / FAD sets ({FD_FRAMES})")
    p.add_argument("--probe-windows", type=int, default=None,
                   help="windows per split of the decoupling probes (default: the run's "
                        "config; 0: no decoupling table)")
    p.add_argument("--device", default=None, help="default: cuda when available")
    p.add_argument("--batch", type=int, default=64, help="frames per metric-model call")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (None: `sys.argv[1:]`).

    Returns:
        0, or 2 after an error (printed to stderr).
    """
    from report import write_report

    args = parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.max_sources is not None and args.max_sources < 1:
            raise EvaluateError(f"--max-sources: expected an integer >= 1, got "
                                f"{args.max_sources}")  # fmt: skip
        if args.max_frames is not None and args.max_frames < 5:
            raise EvaluateError(f"--max-frames: expected an integer >= 5 (a lip-sync window), "
                                f"got {args.max_frames}")  # fmt: skip
        if args.fd_frames < 1:
            raise EvaluateError(f"--fd-frames: expected an integer >= 1, got {args.fd_frames}")
        if args.stride < 1:
            raise EvaluateError(f"--stride: expected an integer >= 1, got {args.stride}")
        if args.floor_seeds < 1:
            raise EvaluateError(f"--floor-seeds: expected an integer >= 1, got {args.floor_seeds}")
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EvaluateError(f"--device {args.device}: CUDA is not available here")
        runs = parse_runs(args.runs)
        first = next((r for r in runs if r.method == "full"), runs[0])
        out = Path(args.out) if args.out else first.run_dir / "evaluation"
        if args.mead_sources == "all":
            from decouple.data.registry import MEAD_SPFEM

            sources: tuple[str, ...] = tuple(MEAD_SPFEM.names)
        else:
            sources = ("neutral",)
        settings = None
        if args.settings:
            settings = [x for x in args.settings.split(",") if x]
            bad = [x for x in settings if x not in SETTINGS]
            if bad:
                raise EvaluateError(f"--settings {args.settings}: unknown {bad}; expected "
                                    f"a comma list of {', '.join(SETTINGS)}")  # fmt: skip
        results = evaluate(
            runs, out, corpus=args.corpus, split=args.split, max_sources=args.max_sources,
            evaluators=args.evaluators, evaluator_seed=args.evaluator_seed,
            evaluator_scale=args.evaluator_scale, arcface=args.arcface,
            arcface_arch=args.arcface_arch, settings=settings, syncnet=args.syncnet,
            emotion_model=args.emotion_model, mead_sources=sources, max_offset=args.max_offset,
            padding=args.padding, floor_seeds=args.floor_seeds, stride=args.stride,
            fd_frames=args.fd_frames, max_frames=args.max_frames,
            probe_windows=args.probe_windows, device=device, batch=args.batch,
            progress=args.progress,
        )  # fmt: skip
        results["stamp"] = _stamp(list(sys.argv[1:]) if argv is None else list(argv),
                                  time.perf_counter() - start)  # fmt: skip
        written = write_report(results, out, docs=args.docs)
    except (EvaluateError, ProtocolError, FileNotFoundError, CheckpointError) as err:
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {written['report']} and {written['metrics']}"
          + (f"; docs: {written['docs']}" if "docs" in written else "")
          + f" ({results['stamp']['wall_seconds']:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
