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

import json
import logging
import os
import random
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from decouple.data.features import DEFAULT_FEATURES, AudioFeatureConfig, frame_to_video, log_mel
from decouple.data.features import mfcc as mfcc_features
from decouple.data.io import read_audio, read_video
from decouple.data.schema import ALIGN, Clip, SchemaError, ShardError
from decouple.data.shards import ShardIndex, iter_samples, read_index
from decouple.data.split import WorkerPlan, plan_worker, resume_counts, resume_rotation

__all__ = ["DataWarning", "ShardDataset", "decode_clip"]

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
    features are those of those frames (computed with their context from the whole clip).

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
    meta = clip.meta
    if features not in ("mel", "mfcc", None):
        raise ValueError(f"features must be 'mel', 'mfcc' or None, got {features!r}")
    windowed = start > 0 or stop is not None
    video = read_video(clip.video, name=f"{clip.key}.mp4", start=start, stop=stop)
    audio = read_audio(clip.audio, sample_rate=meta.sample_rate, name=f"{clip.key}.flac")
    wav = audio.waveform
    if windowed:  # the samples of frames [start, start + t)
        n = round(video.num_frames * meta.sample_rate / meta.fps)
        a0 = round(start * meta.sample_rate / meta.fps)
        wav = wav[a0 : a0 + n]
        if wav.shape[0] < n:  # audio a little shorter than the video: pad with zeros
            wav = torch.nn.functional.pad(wav, (0, n - wav.shape[0]))
    out: dict[str, Any] = {
        "video": video.frames,
        "audio": wav,
        "meta": meta,
        "arrays": clip.arrays,
    }
    if features is not None:
        full = audio.waveform
        if meta.sample_rate != config.sample_rate:
            full = read_audio(clip.audio, sample_rate=config.sample_rate).waveform
        feats = log_mel(full, config) if features == "mel" else mfcc_features(full, config)
        framed = frame_to_video(feats, meta.num_frames, meta.fps, context=context, config=config)
        out["features"] = framed[start : start + video.num_frames]
    return out


class ShardDataset(IterableDataset):
    """Decoded clips or parallel groups from `{split}-*.tar` shards, split by rank and worker.

    With `unit="sample"` each item is one clip cut to a random window of `window` frames:

    * `video` (t, 3, h, w) uint8, `audio` (s,) float32 (the samples of those frames),
      `features` (t, context, f) float32 log-mel or MFCC framed to the video (if asked),
    * `emotion` (int, id in `index.emotion_set`), `intensity` (int), `frame` (t,) int64 frame
      numbers in the clip, `speaker`, `sentence`, `group`, `key` (str),
    * every per-frame array of the clip (`NAME.npy`, e.g. landmarks or ground truth) cut to
      the same window, under its name.

    With `unit="group"` each item is one parallel group (the same speaker and sentence in
    several emotions): `{"group": str, "clips": [decode_clip(...) + "key"], "seed": int}` with
    whole clips; pass `transform=decouple.data.batches.ParallelWindows(...)` to cut aligned
    windows (it draws its choices from `seed`).

    Args:
        root: Directory of the shards and the index.
        split: Split name (`{split}-index.json`).
        batch_size: Local batch size (units per batch on this rank); the DataLoader must use
            the same value.
        unit: "sample" (clips) or "group" (parallel groups).
        window: Frames per window (`unit="sample"`); clips shorter than that are skipped with a
            warning.
        features: "mel", "mfcc" or None.
        context: Audio-feature frames per video frame.
        feature_config: Audio feature parameters.
        seed: Run seed: the stream is a function of (seed, epoch).
        shuffle: Reshuffle the shard order every epoch and shuffle samples in a buffer.
        shuffle_buffer: Raw units held by the shuffle buffer (per worker).
        rank: This process's rank (default: `RANK` from the environment, else 0).
        world_size: Number of ranks (default: `WORLD_SIZE` from the environment, else 1).
        transform: Applied to every decoded item; an item mapped to None is skipped (counted).

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
        >>> ds.epoch_summary()  # 5 clips, batches of 2 on one rank: 1 clip dropped
        {'units': 5, 'batches': 2, 'dropped': 1}
        >>> batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
        >>> tuple(batch["video"].shape), tuple(batch["features"].shape)
        ((2, 4, 3, 16, 16), (2, 4, 4, 80))
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        batch_size: int,
        unit: str = "sample",
        window: int = 16,
        features: str | None = "mel",
        context: int = 4,
        feature_config: AudioFeatureConfig = DEFAULT_FEATURES,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if batch_size < 1 or window < 1 or shuffle_buffer < 1:
            raise ValueError("batch_size, window and shuffle_buffer must be >= 1")
        self.index: ShardIndex = read_index(root, split)
        self.batch_size = int(batch_size)
        self.unit = unit
        self.window = int(window)
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
        self.epoch = 0
        self._skip_batches = 0

    # -- epoch control -------------------------------------------------------------------------

    @property
    def shard_units(self) -> list[int]:
        """Units per shard in index order (samples, or parallel groups)."""
        if self.unit == "sample":
            return [s.samples for s in self.index.shards]
        return [s.groups for s in self.index.shards]

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
                self.epoch, plan.epoch_units, self.unit, plan.dropped,
                self.batch_size * self.world_size,
            )
        skip_units = resume_counts(counts, self._skip_batches)[worker] * self.batch_size
        rng = random.Random(self._seed_for("buffer", worker))
        units = self._shuffled(self._raw_units(plan), rng)
        for position, unit in enumerate(units):
            if position < skip_units:
                continue
            item = self._decode(unit, position, worker)
            if item is None:
                continue
            if self.transform is not None:
                item = self.transform(item)
                if item is None:
                    warnings.warn(
                        DataWarning(f"{_unit_name(unit)}: dropped by the transform"),
                        stacklevel=2,
                    )
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

    def _raw_units(self, plan: WorkerPlan) -> Iterator[list[dict[str, Any]]]:
        """The raw samples of each planned unit (one sample, or all samples of a group)."""
        for seg in plan.segments:
            path = self.index.paths[seg.shard]
            try:
                for n, unit in enumerate(self._units_of_shard(path)):
                    if n >= seg.stop:
                        break
                    if n >= seg.start:
                        yield unit
            except ShardError as err:
                warnings.warn(DataWarning(f"skipping the rest of {path.name}: {err}"), stacklevel=2)

    def _units_of_shard(self, path: Path) -> Iterator[list[dict[str, Any]]]:
        if self.unit == "sample":
            for sample in iter_samples(path):
                yield [sample]
            return
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

    def _shuffled(
        self, units: Iterator[list[dict[str, Any]]], rng: random.Random
    ) -> Iterator[list[dict[str, Any]]]:
        if not self.shuffle or self.shuffle_buffer == 1:
            yield from units
            return
        buffer: list[list[dict[str, Any]]] = []
        for unit in units:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(unit)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], unit = unit, buffer[i]
            yield unit
        rng.shuffle(buffer)
        yield from buffer

    def _decode(self, unit: list[dict[str, Any]], position: int, worker: int) -> Any:
        seed = self._seed_for("window", worker, position)
        opts = {"features": self.features, "context": self.context, "config": self.feature_config}
        try:
            clips = [_to_clip(s) for s in unit]
            if self.unit == "group":
                decoded = [decode_clip(c, **opts) | {"key": c.key} for c in clips]
                return {"group": clips[0].meta.group, "clips": decoded, "seed": seed}
            clip = clips[0]
            t = clip.meta.num_frames
            if t < self.window:
                warnings.warn(
                    DataWarning(f"skipping {_unit_name(unit)}: {t} frames < window {self.window}"),
                    stacklevel=2,
                )
                return None
            # Choose the window first, then decode only it.
            start = random.Random(seed).randrange(t - self.window + 1)
            d = decode_clip(clip, start=start, stop=start + self.window, **opts)
        except (SchemaError, ValueError, RuntimeError, OSError) as err:
            warnings.warn(DataWarning(f"skipping {_unit_name(unit)}: {err}"), stacklevel=2)
            return None
        if d["video"].shape[0] != self.window:
            warnings.warn(
                DataWarning(f"skipping {_unit_name(unit)}: its video has fewer frames than its "
                            f"metadata says ({clip.meta.num_frames})"),
                stacklevel=2,
            )
            return None
        return self._window(d | {"key": clip.key}, start)

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
