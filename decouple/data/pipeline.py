"""`ShardDataset`: stream decoded, windowed clips (or parallel groups) from a split's shards.

The dataset is an `IterableDataset` that splits the epoch by rank and by DataLoader worker
itself ([decouple.data.split][]), so it must **not** be passed through `accelerator.prepare`
(which would re-shard or broadcast it and lose data). Give each rank a plain
`torch.utils.data.DataLoader(dataset, batch_size=dataset.batch_size, num_workers=...)`.

Each epoch:

* the shard order is reshuffled from `(seed, epoch)` before splitting;
* the tail below one global batch (`batch_size * world_size` units) is dropped and reported
  ([epoch_summary][decouple.data.pipeline.ShardDataset.epoch_summary]);
* raw samples pass through a seeded shuffle buffer (per rank and worker), then are decoded and
  windowed with per-unit seeded randomness, so the whole stream is a function of
  `(seed, epoch)`;
* [skip][decouple.data.pipeline.ShardDataset.skip] resumes after the first n delivered batches
  exactly (the skipped samples are read but not decoded).

A missing, truncated or corrupted shard, or an unreadable sample, is skipped with a warning
naming it; the rest is still read (the epoch then has fewer batches on that rank).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from decouple.data.features import (
    DEFAULT_FEATURES,
    AudioFeatureConfig,
    frame_to_video,
    log_mel,
    num_feature_frames,
)
from decouple.data.features import mfcc as mfcc_features
from decouple.data.io import read_audio, read_video
from decouple.data.schema import ALIGN, Clip, SchemaError, ShardError
from decouple.data.shards import ShardIndex, iter_samples, read_index
from decouple.data.split import WorkerPlan, plan_worker, resume_counts, resume_rotation

__all__ = ["DataWarning", "ShardDataset", "decode_clip", "video_features", "window_starts"]

UNITS = ("sample", "group")
_log = logging.getLogger("decouple.data")


class DataWarning(UserWarning):
    """A shard or sample was skipped (missing, truncated, corrupted or too short).

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warnings.warn(DataWarning("train-000003.tar: truncated"))
        >>> caught[0].category.__name__
        'DataWarning'
    """


def decode_clip(
    clip: Clip,
    *,
    features: str | None = "mel",
    context: int = 4,
    config: AudioFeatureConfig = DEFAULT_FEATURES,
    start: int = 0,
    stop: int | None = None,
) -> dict[str, Any]:
    """Decode one clip (or the frames [start, stop) of it): video, audio and audio features.

    With a frame range only that range of video is decoded and converted (the decoder seeks
    to the keyframe before `start`), the audio is cut to the samples of those frames and the
    features are those of those frames, computed from only the audio they need (their
    context included; the same values as computing the whole clip's features and cutting).

    Args:
        clip: An encoded clip (from the shards).
        features: "mel", "mfcc" or None (no features).
        context: Audio-feature frames per video frame.
        config: Audio feature parameters.
        start: First video frame.
        stop: One past the last video frame; None = the whole clip.

    Returns:
        `video` (t, 3, h, w) uint8, `audio` (s,) float32 at the clip's sample rate (the
        samples of those frames, zero-padded if the audio is a little short), `features`
        (t, context, f) float32 (when asked), `meta` (the ClipMeta) and `arrays`.

    Examples:
        >>> from decouple.data.io import encode_audio, encode_video
        >>> from decouple.data.schema import ClipMeta
        >>> meta = ClipMeta("synth", "s0", "happy", 5, 1, "001", "", 25.0, 16000, 4, 2560,
        ...                 "synthetic", "")
        >>> frames = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
        >>> clip = Clip("k", meta, encode_video(frames, 25.0), encode_audio(torch.zeros(2560),
        ...             16000))
        >>> d = decode_clip(clip)
        >>> tuple(d["video"].shape), tuple(d["features"].shape)
        ((4, 3, 16, 16), (4, 4, 80))
    """
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"{clip.key}: need 0 <= start < stop, got start={start}, stop={stop}")
    if start == 0 and stop is None:
        return _decode_windows(clip, None, None, features, context, config)[0]
    window = None if stop is None else stop - start
    return _decode_windows(clip, [start], window, features, context, config, short_ok=True)[0]


def _decode_windows(
    clip: Clip,
    starts: list[int] | None,
    window: int | None,
    features: str | None,
    context: int,
    config: AudioFeatureConfig,
    *,
    short_ok: bool = False,
) -> list[dict[str, Any] | None]:
    """Decode the span of a clip covering several windows once, and cut the windows.

    `starts` None: the whole clip as one window (decoded as a whole stream). Otherwise one
    dict per start, windows of `window` frames (None: one start, to the end of the video); a
    window the decoded video does not fully cover is None (`short_ok`: cut to the frames
    there are).
    """
    meta = clip.meta
    if features not in ("mel", "mfcc", None):
        raise ValueError(f"features must be 'mel', 'mfcc' or None, got {features!r}")
    if starts is None:
        video = read_video(clip.video, name=f"{clip.key}.mp4", threads=1)
        first, spans = 0, [(0, video.num_frames)]
    else:
        first = min(starts)
        last = None if window is None else max(starts) + window
        video = read_video(clip.video, name=f"{clip.key}.mp4", start=first, stop=last,
                           threads=1)  # fmt: skip
        if window is None:
            window = video.num_frames
        spans = [(a, a + window) for a in starts]
    audio = read_audio(clip.audio, sample_rate=meta.sample_rate, name=f"{clip.key}.flac")
    wav = audio.waveform
    feats_wav = wav
    if features is not None and meta.sample_rate != config.sample_rate:
        feats_wav = read_audio(clip.audio, sample_rate=config.sample_rate).waveform
    decoded_stop = first + video.num_frames
    out: list[dict[str, Any] | None] = []
    if short_ok:
        spans = [(a, min(b, decoded_stop)) for a, b in spans]
    for a, b in spans:
        if b > decoded_stop:
            out.append(None)
            continue
        if starts is None:
            clip_audio = wav
        else:  # the samples of frames [a, b)
            n = round((b - a) * meta.sample_rate / meta.fps)
            a0 = round(a * meta.sample_rate / meta.fps)
            clip_audio = wav[a0 : a0 + n]
            if clip_audio.shape[0] < n:  # audio a little shorter than the video: zero-pad
                clip_audio = torch.nn.functional.pad(clip_audio, (0, n - clip_audio.shape[0]))
        d: dict[str, Any] = {
            "video": video.frames[a - first : b - first],
            "audio": clip_audio,
            "meta": meta,
            "arrays": clip.arrays,
        }
        out.append(d)
    if features is not None:
        valid = [(a, b) for (a, b), d in zip(spans, out, strict=True) if d is not None]
        if valid:
            lo, hi = min(a for a, _ in valid), max(b for _, b in valid)
            framed = video_features(feats_wav, meta.num_frames, meta.fps, lo, hi,
                                    features=features, context=context, config=config)
            for (a, b), d in zip(spans, out, strict=True):
                if d is not None:
                    d["features"] = framed[a - lo : b - lo]
    return out


def video_features(
    waveform: torch.Tensor,
    num_frames: int,
    fps: float,
    start: int,
    stop: int,
    *,
    features: str = "mel",
    context: int = 4,
    config: AudioFeatureConfig = DEFAULT_FEATURES,
) -> torch.Tensor:
    """Audio features of video frames [start, stop), computed from only the audio they need.

    Equal (up to float rounding) to `frame_to_video(log_mel(waveform), num_frames, fps,
    context=context)[start:stop]` (or MFCC), but the STFT runs only over the samples those
    frames' feature windows reach (plus a margin so that no frame in use sees the segment's
    own padding), which makes a short window's features several times cheaper.

    Args:
        waveform: The whole clip's audio (s,) at `config.sample_rate`.
        num_frames: Video frames of the clip.
        fps: Video frame rate.
        start: First video frame.
        stop: One past the last video frame.
        features: "mel" or "mfcc".
        context: Feature frames per video frame.
        config: Feature parameters.

    Returns:
        Features (stop - start, context, f).

    Examples:
        >>> wave = torch.randn(16000) * 0.1  # 1 s, 25 video frames
        >>> full = frame_to_video(log_mel(wave), 25, 25.0, context=4)
        >>> part = video_features(wave, 25, 25.0, 10, 14)
        >>> tuple(part.shape), bool(torch.allclose(part, full[10:14], atol=1e-4))
        ((4, 4, 80), True)
    """
    if not 0 <= start < stop:
        raise ValueError(f"need 0 <= start < stop, got start={start}, stop={stop}")
    compute = log_mel if features == "mel" else mfcc_features
    s = waveform.shape[-1]
    hop, half = config.hop_length, config.n_fft // 2
    a = num_feature_frames(s, config)
    # The feature frames frame_to_video picks for these video frames (its own formula).
    picks = frame_to_video(torch.arange(a, dtype=torch.float64)[:, None], num_frames, fps,
                           context=context, config=config)[start:stop].long()  # fmt: skip
    j0, j1 = int(picks.min()), int(picks.max())
    # Frame j of the whole clip is centred on sample j * hop and reads `half` samples either
    # side. A segment starting at sample (j0 - m) * hop gives the same frames from its m-th
    # on; m * hop > half keeps the segment's own reflect padding out of them.
    m = half // hop + 1
    lo_frame = j0 - m if j0 - m > 0 else 0
    lo, hi = lo_frame * hop, j1 * hop + half + 1
    if lo == 0 and hi >= s:
        feats = compute(waveform, config)
    else:
        feats = compute(waveform[lo : min(hi, s)], config)[j0 - lo_frame : j1 - lo_frame + 1]
        feats = torch.nn.functional.pad(feats, (0, 0, j0, 0))  # rows j0.. at their index
    return feats[picks.reshape(-1)].reshape(picks.shape[0], context, feats.shape[-1])


class ShardDataset(IterableDataset):
    """Decoded clips or parallel groups from `{split}-*.tar` shards, split by rank and worker.

    With `unit="sample"` each item is one training window of `window` frames cut from a clip:

    * `video` (t, 3, h, w) uint8, `audio` (s,) float32 (the samples of those frames),
      `features` (t, context, f) float32 log-mel or MFCC framed to the video (if asked),
    * `emotion` (int, id in `index.emotion_set`), `intensity` (int), `frame` (t,) int64 frame
      numbers in the clip, `speaker`, `sentence`, `group`, `key` (str),
    * every per-frame array of the clip (`NAME.npy`, e.g. landmarks or ground truth) cut to
      the same window, under its name.

    `windows_per_clip` sets how many windows one decode of a clip yields (as PyTorchVideo's
    `clips_per_video`): k = min(windows_per_clip, t // window) non-overlapping windows at
    random positions for a clip of t frames ("all": k = t // window), so k is known from the
    index before anything is read and the epoch plan counts windows exactly. The clip's
    video is decoded once over the span of its windows and the windows are spread through
    the shuffle buffer (one window each time the buffer hands out that clip), so neighbouring
    items of a batch rarely come from one clip. Decoding is what a window costs; with k > 1 it
    is paid once per clip instead of once per window (see docs/benchmarks/data.md).

    Decoding runs on one thread (FFmpeg's and swscale's threads off; with `num_workers=0`,
    torch's intra-op threads are set to one while a clip is decoded and restored before the
    item is yielded): parallelism comes from DataLoader workers.

    With `unit="group"` each item is one parallel group (the same speaker and sentence in
    several emotions): `{"group": str, "clips": [decode_clip(...) + "key"], "seed": int}` with
    whole clips; pass `transform=decouple.data.batches.ParallelWindows(...)` to cut aligned
    windows (it draws its choices from `seed`). With `lazy=True` the clips are not decoded:
    each is `{"key", "meta", "arrays", "decode", "waveform"}`, where `decode(start, stop)`
    gives `decode_clip(clip, start=start, stop=stop)` (with this dataset's features) and
    `waveform()` the whole clip's audio; the transform decodes only what it uses
    (ParallelWindows: the aligned frames of the renditions it picks, the same values as
    cutting them from whole clips). A clip that fails to decode there skips its group with a
    DataWarning, as in the eager reader.

    Args:
        root: Directory of the shards and the index.
        split: Split name (`{split}-index.json`).
        batch_size: Local batch size (units per batch on this rank); the DataLoader must use
            the same value.
        unit: "sample" (windows of clips) or "group" (parallel groups).
        window: Frames per window (`unit="sample"`); a clip shorter than that gives no window.
        windows_per_clip: Most windows per clip (`unit="sample"`): an int >= 1 or "all"
            (every non-overlapping window). Needs the per-clip frame counts of the index
            (written by [ShardWriter][decouple.data.shards.ShardWriter]); for an index without
            them they are read from the shards' metadata once, at construction.
        features: "mel", "mfcc" or None.
        context: Audio-feature frames per video frame.
        feature_config: Audio feature parameters.
        seed: Run seed: the stream is a function of (seed, epoch).
        shuffle: Reshuffle the shard order every epoch and shuffle units in a buffer.
        shuffle_buffer: Units held by the shuffle buffer (per worker): windows with
            `unit="sample"` (raw, not yet decoded), groups otherwise.
        rank: This process's rank (default: `RANK` from the environment, else 0).
        world_size: Number of ranks (default: `WORLD_SIZE` from the environment, else 1).
        transform: Applied to every decoded item; an item mapped to None is skipped (counted).
        lazy: `unit="group"` only: hand the transform undecoded clips (see above), for
            transforms that use a few frames of a few renditions of each group.

    Examples:
        >>> import tempfile
        >>> from decouple.data.io import encode_audio, encode_video
        >>> from decouple.data.schema import ClipMeta
        >>> from decouple.data.shards import ShardWriter
        >>> root = tempfile.mkdtemp()
        >>> with ShardWriter(root, "train", "mead", fps=25.0) as writer:
        ...     for i in range(5):
        ...         meta = ClipMeta("demo", "s0", "happy", 5, 1, f"{i:03d}", "", 25.0, 16000,
        ...                         8, 5120, f"clip{i}.mp4", "")
        ...         video = encode_video(torch.zeros(8, 3, 16, 16, dtype=torch.uint8), 25.0)
        ...         _ = writer.write_group([Clip(f"c{i}", meta, video,
        ...                                      encode_audio(torch.zeros(5120), 16000))])
        >>> ds = ShardDataset(root, "train", batch_size=2, window=4)
        >>> ds.epoch_summary()  # 5 windows (one per clip), batches of 2 on one rank: 1 dropped
        {'units': 5, 'batches': 2, 'dropped': 1}
        >>> batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
        >>> tuple(batch["video"].shape), tuple(batch["features"].shape)
        ((2, 4, 3, 16, 16), (2, 4, 4, 80))
        >>> ShardDataset(root, "train", batch_size=2, window=4,
        ...              windows_per_clip="all").epoch_summary()  # 8 frames: 2 windows a clip
        {'units': 10, 'batches': 5, 'dropped': 0}
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        batch_size: int,
        unit: str = "sample",
        window: int = 16,
        windows_per_clip: int | str = 1,
        features: str | None = "mel",
        context: int = 4,
        feature_config: AudioFeatureConfig = DEFAULT_FEATURES,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        lazy: bool = False,
    ) -> None:
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if batch_size < 1 or window < 1 or shuffle_buffer < 1:
            raise ValueError("batch_size, window and shuffle_buffer must be >= 1")
        if windows_per_clip != "all" and (
            isinstance(windows_per_clip, bool) or not isinstance(windows_per_clip, int)
            or windows_per_clip < 1
        ):
            raise ValueError(f"windows_per_clip must be an int >= 1 or 'all', got "
                             f"{windows_per_clip!r}")  # fmt: skip
        if unit == "group" and windows_per_clip != 1:
            raise ValueError("windows_per_clip applies to unit='sample' (groups are whole)")
        if lazy and unit != "group":
            raise ValueError("lazy applies to unit='group' (windows of clips are cut as read)")
        self.index: ShardIndex = read_index(root, split)
        self.batch_size = int(batch_size)
        self.unit = unit
        self.window = int(window)
        self.windows_per_clip = windows_per_clip
        self.features = features
        self.context = int(context)
        self.feature_config = feature_config
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.shuffle_buffer = int(shuffle_buffer)
        self.rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
        self.world_size = (
            int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
        )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside [0, world_size={self.world_size})")
        self.transform = transform
        self.lazy = bool(lazy)
        self.epoch = 0
        self._skip_batches = 0
        self._one_thread = False
        # Frames of every clip, per shard: from the index, else (windows_per_clip > 1) from
        # the shards' metadata; None = one window per clip assumed (an old index).
        self._frames: list[tuple[int, ...] | None] = [s.frames for s in self.index.shards]
        if unit == "sample" and windows_per_clip != 1:
            for i, info in enumerate(self.index.shards):
                if info.frames is None:
                    self._frames[i] = _frames_from_metadata(self.index.paths[i])

    # -- epoch control -------------------------------------------------------------------------

    def clip_windows(self, num_frames: int) -> int:
        """Windows a clip of `num_frames` frames yields (`unit="sample"`).

        Args:
            num_frames: The clip's video frames t.

        Returns:
            min(windows_per_clip, t // window) (t // window for "all").
        """
        fit = num_frames // self.window
        return fit if self.windows_per_clip == "all" else min(int(self.windows_per_clip), fit)

    @property
    def shard_units(self) -> list[int]:
        """Units per shard in index order (windows, or parallel groups)."""
        if self.unit == "group":
            return [s.groups for s in self.index.shards]
        return [
            s.samples if f is None else sum(self.clip_windows(t) for t in f)
            for s, f in zip(self.index.shards, self._frames, strict=True)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (its shard order and randomness); clears any pending skip.

        Args:
            epoch: Epoch number.
        """
        self.epoch = int(epoch)
        self._skip_batches = 0

    def skip(self, batches: int) -> None:
        """Resume the current epoch after the first `batches` batches this rank delivered.

        Call it before creating the DataLoader iterator (workers get a copy of the dataset).
        The skipped units are read from the tar but not decoded.

        Args:
            batches: Batches already delivered on this rank in this epoch.

        Raises:
            ValueError: When the epoch has fewer batches.
        """
        resume_counts(self._batches_per_worker(self._num_workers()), batches)
        self._skip_batches = int(batches)

    def epoch_summary(self, num_workers: int = 0) -> dict[str, int]:
        """What the current epoch delivers (the same on every rank).

        Args:
            num_workers: DataLoader workers (0 = in the main process).

        Returns:
            `units` in the epoch, `batches` per rank, `dropped` units (the tail below one global
            batch).
        """
        plans = [self._plan(w, max(1, num_workers)) for w in range(max(1, num_workers))]
        return {
            "units": plans[0].epoch_units,
            "batches": sum(p.num_batches for p in plans),
            "dropped": plans[0].dropped,
        }

    def __len__(self) -> int:
        """Units this rank delivers in the current epoch (whole batches only)."""
        return self.epoch_summary()["batches"] * self.batch_size

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        loader_worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        # After skip(n), DataLoader worker p plays worker (p + rotation) of the interrupted run.
        counts = self._batches_per_worker(num_workers)
        rotation = resume_rotation(counts, self._skip_batches)
        worker = (loader_worker + rotation) % num_workers
        plan = self._plan(worker, num_workers)
        if worker == 0 and self.rank == 0:
            _log.info(
                "epoch %d: %d %ss, %d dropped (the tail below one global batch of %d)",
                self.epoch, plan.epoch_units, "window" if self.unit == "sample" else self.unit,
                plan.dropped, self.batch_size * self.world_size,
            )
        skip_units = resume_counts(counts, self._skip_batches)[worker] * self.batch_size
        rng = random.Random(self._seed_for("buffer", worker))
        # Decoding runs on one thread: FFmpeg's and swscale's threads are off (io.py) and, in
        # the main process, torch's intra-op threads too while a clip is decoded (restored
        # before the item is yielded). DataLoader workers already run torch on one thread.
        self._one_thread = info is None
        if self.unit == "group":
            items = self._groups(plan, rng, skip_units, worker)
        else:
            items = self._windows(plan, rng, skip_units)
        for item in items:
            if self.transform is not None:
                name = item.get("key", item.get("group", "?"))
                try:  # lazy groups decode in the transform: on one thread, as above
                    with _single_thread(self._one_thread and self.lazy):
                        item = self.transform(item)
                except _LazyDecodeError as err:
                    warnings.warn(DataWarning(f"skipping group {name}: {err}"), stacklevel=2)
                    continue
                if item is None:
                    warnings.warn(DataWarning(f"{name}: dropped by the transform"), stacklevel=2)
                    continue
            yield item

    # -- internals -----------------------------------------------------------------------------

    def _num_workers(self) -> int:
        info = get_worker_info()
        return 1 if info is None else info.num_workers

    def _plan(self, worker: int, num_workers: int) -> WorkerPlan:
        return plan_worker(
            self.shard_units, batch_size=self.batch_size, rank=self.rank,
            world_size=self.world_size, worker=worker, num_workers=num_workers,
            seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
        )  # fmt: skip

    def _batches_per_worker(self, num_workers: int) -> list[int]:
        return [self._plan(w, num_workers).num_batches for w in range(num_workers)]

    def _seed_for(self, what: str, *parts: int) -> int:
        """A seed that depends only on its arguments (not on Python's per-process hashing)."""
        text = repr((what, self.seed, self.epoch, self.rank, *parts)).encode()
        return zlib.crc32(text)

    def _shuffled(self, units: Iterator[Any], rng: random.Random) -> Iterator[Any]:
        if not self.shuffle or self.shuffle_buffer == 1:
            yield from units
            return
        buffer: list[Any] = []
        for unit in units:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(unit)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], unit = unit, buffer[i]
            yield unit
        rng.shuffle(buffer)
        yield from buffer

    # ---- groups

    def _groups(
        self, plan: WorkerPlan, rng: random.Random, skip_units: int, worker: int
    ) -> Iterator[dict[str, Any]]:
        units = self._shuffled(self._raw_groups(plan), rng)
        for position, unit in enumerate(units):
            if position < skip_units:
                continue
            with _single_thread(self._one_thread):
                item = self._decode_group(unit, position, worker)
            if item is not None:
                yield item

    def _raw_groups(self, plan: WorkerPlan) -> Iterator[list[dict[str, Any]]]:
        """The raw samples of each planned parallel group."""
        for seg in plan.segments:
            path = self.index.paths[seg.shard]
            try:
                for n, unit in enumerate(_groups_of_shard(path)):
                    if n >= seg.stop:
                        break
                    if n >= seg.start:
                        yield unit
            except ShardError as err:
                warnings.warn(DataWarning(f"skipping the rest of {path.name}: {err}"), stacklevel=2)

    def _decode_group(
        self, unit: list[dict[str, Any]], position: int, worker: int
    ) -> dict[str, Any] | None:
        opts = {"features": self.features, "context": self.context, "config": self.feature_config}
        try:
            clips = [_to_clip(s) for s in unit]
            if self.lazy:
                decoded = [_lazy_clip(c, _unit_name([s]), opts)
                           for c, s in zip(clips, unit, strict=True)]  # fmt: skip
            else:
                decoded = [decode_clip(c, **opts) | {"key": c.key} for c in clips]
        except _DECODE_ERRORS as err:
            warnings.warn(DataWarning(f"skipping {_unit_name(unit)}: {err}"), stacklevel=2)
            return None
        seed = self._seed_for("window", worker, position)
        return {"group": clips[0].meta.group, "clips": decoded, "seed": seed}

    # ---- windows of clips

    def _window_refs(self, plan: WorkerPlan) -> Iterator[_WindowRef]:
        """The planned windows, in plan order: each clip's windows in this worker's range."""
        for seg in plan.segments:
            path = self.index.paths[seg.shard]
            frames = self._frames[seg.shard]
            first = 0  # the clip's first window, counted in the shard
            try:
                for n, sample in enumerate(iter_samples(path)):
                    if first >= seg.stop or (frames is not None and n >= len(frames)):
                        break
                    t = None if frames is None else frames[n]
                    k = 1 if t is None else self.clip_windows(t)
                    lo, hi = max(seg.start, first), min(seg.stop, first + k)
                    if lo < hi:
                        clip = _ClipRef(sample, seg.shard, n, t, k, tuple(range(lo - first,
                                                                                hi - first)))
                        for j in clip.planned:
                            yield _WindowRef(clip, j)
                    first += k
            except ShardError as err:
                warnings.warn(DataWarning(f"skipping the rest of {path.name}: {err}"), stacklevel=2)

    def _windows(
        self, plan: WorkerPlan, rng: random.Random, skip_units: int
    ) -> Iterator[dict[str, Any]]:
        # A clip is decoded when the buffer hands out its first window that is not skipped:
        # once, over the span of its windows still to come; they wait in `ready` until the
        # buffer hands them out (at most the windows of the clips in the buffer).
        ready: dict[tuple[int, int], dict[int, dict[str, Any] | None]] = {}
        done: dict[tuple[int, int], set[int]] = {}
        for position, ref in enumerate(self._shuffled(self._window_refs(plan), rng)):
            clip = ref.clip
            cid = (clip.shard, clip.number)
            seen = done.setdefault(cid, set())
            seen.add(ref.j)
            if len(seen) == len(clip.planned):
                del done[cid]
            if position < skip_units:
                continue
            if cid not in ready:
                todo = [j for j in clip.planned if j not in seen or j == ref.j]
                with _single_thread(self._one_thread):
                    ready[cid] = self._decode_clip_windows(clip, todo)
            item = ready[cid].pop(ref.j)
            if not ready[cid] and cid not in done:
                del ready[cid]
            if item is not None:
                yield item

    def _decode_clip_windows(
        self, ref: _ClipRef, todo: list[int]
    ) -> dict[int, dict[str, Any] | None]:
        """Decode a clip once and cut its windows `todo` (None for a window it cannot give)."""
        lost: dict[int, dict[str, Any] | None] = dict.fromkeys(todo)
        name = _unit_name([ref.sample])
        try:
            clip = _to_clip(ref.sample)
            t = clip.meta.num_frames if ref.frames is None else ref.frames
            if t < self.window:
                warnings.warn(DataWarning(f"skipping {name}: {t} frames < window {self.window}"),
                              stacklevel=3)  # fmt: skip
                return lost
            starts = window_starts(t, ref.windows, self.window,
                                   seed=self._clip_seed(ref.shard, ref.number))  # fmt: skip
            chosen = [starts[j] for j in todo]
            decoded = _decode_windows(clip, chosen, self.window, self.features, self.context,
                                      self.feature_config)  # fmt: skip
        except _DECODE_ERRORS as err:
            warnings.warn(DataWarning(f"skipping {name}: {err}"), stacklevel=3)
            return lost
        out: dict[int, dict[str, Any] | None] = {}
        for j, start, d in zip(todo, chosen, decoded, strict=True):
            if d is None:
                warnings.warn(DataWarning(
                    f"skipping window {j} of {name}: its video has fewer frames than "
                    f"{'the index' if ref.frames is not None else 'its metadata'} says ({t})"),
                    stacklevel=3)  # fmt: skip
                out[j] = None
            else:
                out[j] = self._window(d | {"key": clip.key}, start)
        return out

    def _clip_seed(self, shard: int, number: int) -> int:
        """Seed of a clip's window positions: the same on every rank and worker reading it."""
        return zlib.crc32(repr(("windows", self.seed, self.epoch, shard, number)).encode())

    def _window(self, d: dict[str, Any], start: int) -> dict[str, Any]:
        meta = d["meta"]
        stop = start + self.window
        item: dict[str, Any] = {
            "video": d["video"],
            "audio": d["audio"],
            "emotion": meta.emotion_id,
            "intensity": meta.intensity,
            "frame": torch.arange(start, stop),
            "speaker": meta.speaker,
            "sentence": meta.sentence,
            "group": meta.group,
            "key": d["key"],
        }
        if "features" in d:
            item["features"] = d["features"]
        for name, array in d["arrays"].items():
            if name != ALIGN:  # per-frame arrays (landmarks, ground truth): the same window
                item[name] = torch.from_numpy(np.ascontiguousarray(array[start:stop]))
        return item


def window_starts(num_frames: int, windows: int, window: int, *, seed: int) -> list[int]:
    """First frames of `windows` non-overlapping windows of `window` frames in a clip.

    The `num_frames - windows * window` frames left over are split into `windows + 1` gaps
    (before, between and after the windows) uniformly at random, so the windows spread over
    the clip; with one window its start is uniform over every possible start.

    Args:
        num_frames: The clip's frames t.
        windows: Windows k (k * window <= t).
        window: Frames per window.
        seed: Seed of the choice.

    Returns:
        k increasing starts, each at least `window` after the previous one.

    Examples:
        >>> starts = window_starts(50, 3, 16, seed=0)  # 2 frames left over
        >>> len(starts), all(b - a >= 16 for a, b in zip(starts, starts[1:])), starts[-1] <= 34
        (3, True, True)
        >>> window_starts(48, 3, 16, seed=5)
        [0, 16, 32]
    """
    slack = num_frames - windows * window
    if windows < 1 or window < 1 or slack < 0:
        raise ValueError(f"cannot place {windows} windows of {window} frames in {num_frames}")
    # Stars and bars: k sorted draws from slack + k positions give the gaps before windows.
    picks = sorted(random.Random(seed).sample(range(slack + windows), windows))
    return [p - j + j * window for j, p in enumerate(picks)]


@dataclass(frozen=True, eq=False)
class _ClipRef:
    """A raw clip and the windows of it this worker delivers (`planned`, of `windows`)."""

    sample: dict[str, Any]
    shard: int
    number: int
    frames: int | None
    windows: int
    planned: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class _WindowRef:
    """Window j of a clip, not yet decoded (what the shuffle buffer holds)."""

    clip: _ClipRef
    j: int


@contextlib.contextmanager
def _single_thread(active: bool) -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (when `active`), then restore.

    Small ops (an STFT of a few seconds, a window's copy) gain nothing from threads, and on
    busy cores their synchronisation made them up to 7x slower.
    """
    threads = torch.get_num_threads()
    if not active or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _frames_from_metadata(path: Path) -> tuple[int, ...] | None:
    """`num_frames` of every clip of a shard from its metadata (an index without `frames`).

    Reads the whole shard once; a damaged shard gives the clips read before the damage (the
    reader warns about the damage when it reads the shard).
    """
    frames: list[int] = []
    try:
        for sample in iter_samples(path):
            try:
                frames.append(int(json.loads(sample["json"].decode("utf-8"))["num_frames"]))
            except (KeyError, ValueError, TypeError, AttributeError):
                frames.append(0)  # unreadable metadata: no window (skipped when read)
    except ShardError:
        pass
    return tuple(frames)


def _groups_of_shard(path: Path) -> Iterator[list[dict[str, Any]]]:
    current: list[dict[str, Any]] = []
    current_group = None
    for sample in iter_samples(path):
        group = _group_of(sample)
        if group is None:
            continue  # not part of a parallel group, or unreadable metadata
        if current and group != current_group:
            yield current
            current = []
        current_group = group
        current.append(sample)
    if current:
        yield current


class _LazyDecodeError(ValueError):
    """A clip of a lazy group failed to decode (its group is skipped with a DataWarning)."""


_DECODE_ERRORS = (SchemaError, ValueError, RuntimeError, OSError)


def _lazy_clip(clip: Clip, name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """An undecoded clip of a lazy group: metadata, arrays and the decoders of its parts."""
    return {"key": clip.key, "meta": clip.meta, "arrays": clip.arrays,
            "decode": functools.partial(_lazy_decode, clip, name, opts),
            "waveform": functools.partial(_lazy_waveform, clip, name)}  # fmt: skip


def _lazy_decode(clip: Clip, name: str, opts: dict[str, Any], start: int = 0,
                 stop: int | None = None) -> dict[str, Any]:  # fmt: skip
    try:
        return decode_clip(clip, start=start, stop=stop, **opts) | {"key": clip.key}
    except _DECODE_ERRORS as err:
        raise _LazyDecodeError(f"{name}: {err}") from err


def _lazy_waveform(clip: Clip, name: str) -> torch.Tensor:
    try:
        return read_audio(clip.audio, sample_rate=clip.meta.sample_rate,
                          name=f"{clip.key}.flac").waveform  # fmt: skip
    except _DECODE_ERRORS as err:
        raise _LazyDecodeError(f"{name}: {err}") from err


def _to_clip(sample: dict[str, Any]) -> Clip:
    members = {k: v for k, v in sample.items() if not k.startswith("__")}
    return Clip.from_members(sample["__key__"], members, _unit_name([sample]))


def _group_of(sample: dict[str, Any]) -> str | None:
    try:
        group = json.loads(sample["json"].decode("utf-8")).get("group", "")
    except (KeyError, ValueError, AttributeError):
        return None
    return group if isinstance(group, str) and group else None


def _unit_name(unit: list[dict[str, Any]]) -> str:
    first = unit[0]
    name = f"{first.get('__shard__', '?')}:{first.get('__key__', '?')}"
    return name if len(unit) == 1 else f"{name} (+{len(unit) - 1} clips)"
