"""Benchmark the shard pipeline against a per-frame-file layout (one JPEG + one .npy per frame).

A deterministic synthetic corpus (moving shapes, a "mouth" that opens with the audio, sensor
noise; voiced audio with syllables) is generated once into a cache folder in two layouts:

* **shards**: `decouple.data.shards.ShardWriter` tar shards (H.264 mp4 + FLAC + JSON per clip,
  parallel groups of four emotions with their alignment paths), read by
  `decouple.data.pipeline.ShardDataset` (decode + random T-frame window + log-mel framed to
  the video);
* **per-frame files**, as peers keep MEAD: one JPEG per video frame and one `.npy` per frame
  holding that frame's log-mel context (the same features `decouple.data.features` computes),
  read by a map-style `Dataset` that opens only the files of a random T-frame window.

Both deliver the same batch: video (b, t, 3, h, w) uint8 and mel features (b, t, context,
n_mels) float32, through a `torch.utils.data.DataLoader` with the same batch size and worker
count. Every case (one reader, one worker count, one page-cache state) runs in a fresh process
forked from a forkserver that has imported torch; after an untimed warm-up it reads timed
epochs until its time budget is spent. The cases run in interleaved rounds (each round a fresh
process per case), so that a burst of other load hits every reader alike. A last case profiles
where the time of one clip goes.

Usage::

    .venv/bin/python bench/data.py --quick          # 24 short clips, warm cache: about a minute
    .venv/bin/python bench/data.py                  # 96 clips, warm and cold cache: ~6 minutes
    .venv/bin/python bench/data.py --write-docs     # also write docs/benchmarks/data.md
    .venv/bin/python bench/data.py --case shards:2:warm   # one case, JSON on stdout
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # decouple from this checkout, installed or not

from losses import BUSY_WARNING, busy_cpu_s, cpu_model, start_forkserver  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
DOCS_PAGE = REPO / "docs" / "benchmarks" / "data.md"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "decouple-bench"

FORMAT_VERSION = 1  # bump when the synthetic corpus changes: cached corpora are regenerated
SIZE = 128  # frame height and width (px)
FPS = 25.0
SAMPLE_RATE = 16000
EMOTIONS = ("neutral", "angry", "happy", "sad")  # one parallel group = these four renditions
SPEAKERS = 4
JPEG_QUALITY = 95  # OpenCV's imwrite default, which MEAD preprocessing scripts typically use
SHARD_SAMPLES = 16  # clips per shard (four parallel groups)
WINDOW = 16  # frames per delivered window (T)
CONTEXT = 4  # log-mel frames per video frame (ShardDataset's default)
BATCH_SIZE = 8
WORKER_COUNTS = (0, 2)
GOAL = 5.0  # shards must deliver at least this many times the clips/s of per-frame files
MAX_EPOCHS = 1000  # per process; epoch numbers of round r start at 1 + r * MAX_EPOCHS
MB = 1e6

READERS = {
    "shards": "shards: ShardDataset (decode + window + mel)",
    "frames-pil": "per-frame files: JPEG via PIL + .npy",
    "frames-tv": "per-frame files: JPEG via torchvision.io.decode_jpeg + .npy",
}
BASELINES = ("frames-pil", "frames-tv")
DEFAULT_START_METHOD = multiprocessing.get_all_start_methods()[0]  # the platform's default
CACHE_STATES = ("warm", "cold")


@dataclass(frozen=True)
class CorpusSpec:
    """Size of the synthetic corpus.

    Attributes:
        groups: Parallel groups (one speaker and sentence), each in every emotion of
            `EMOTIONS`: `groups * len(EMOTIONS)` clips.
        min_seconds: Shortest clip (the neutral rendition's length is drawn uniformly from
            [min_seconds, max_seconds]; the other renditions are up to 10 % longer or shorter).
        max_seconds: Longest clip.
        seed: Seed of everything random in the corpus.
    """

    groups: int
    min_seconds: float
    max_seconds: float
    seed: int = 0

    @property
    def num_clips(self) -> int:
        """Clips in the corpus."""
        return self.groups * len(EMOTIONS)

    @property
    def tag(self) -> str:
        """Folder name of this corpus in the cache."""
        return (
            f"v{FORMAT_VERSION}-{self.num_clips}clips-{self.min_seconds:g}-{self.max_seconds:g}s"
            f"-{SIZE}px-seed{self.seed}"
        )


FULL_CORPUS = CorpusSpec(groups=24, min_seconds=2.0, max_seconds=4.0)
QUICK_CORPUS = CorpusSpec(groups=6, min_seconds=2.0, max_seconds=3.0)


@dataclass
class LayoutInfo:
    """What one layout of the corpus takes on disk.

    Attributes:
        files: Number of files (shards and index, or frame images, .npy files and the list).
        bytes: Sum of the file sizes.
        disk_bytes: Space allocated on disk (`st_blocks * 512`): small files round up to the
            filesystem block.
    """

    files: int
    bytes: int
    disk_bytes: int


@dataclass(frozen=True)
class Case:
    """One throughput measurement.

    Attributes:
        reader: A key of `READERS`, or "profile" for the per-stage profile.
        workers: DataLoader workers (0 = in the main process).
        cache: "warm" (files in the page cache) or "cold" (evicted before every timed epoch).
    """

    reader: str
    workers: int
    cache: str

    @property
    def spec(self) -> str:
        """The ``--case`` argument of this case, e.g. ``shards:2:warm``."""
        return f"{self.reader}:{self.workers}:{self.cache}"

    @classmethod
    def parse(cls, spec: str) -> Case:
        """Build a case from its ``--case`` argument ``reader:workers:cache``.

        Raises:
            ValueError: On an unknown reader or cache state.
        """
        reader, workers, cache = spec.split(":")
        if reader not in (*READERS, "profile"):
            raise ValueError(f"unknown reader {reader!r}; choose from {[*READERS, 'profile']}")
        if cache not in CACHE_STATES:
            raise ValueError(f"unknown cache state {cache!r}; choose from {CACHE_STATES}")
        return cls(reader, int(workers), cache)


@dataclass
class Result:
    """The outcome of one case.

    Attributes:
        case: The case.
        status: "ok", "error" or "timeout".
        clips_per_s: Windows (clips) delivered per second over the timed epochs.
        clips: Windows delivered in the timed epochs.
        epochs: Timed epochs.
        timed_s: Sum of the timed epochs' wall times (each from creating the DataLoader
            iterator, which starts the workers, to its last batch).
        shapes: Shape and dtype of the first batch's `video` and `features`.
        profile: Stage -> mean milliseconds per clip ("profile" case only).
        detail: Why a case failed.
        wall_s: Wall time of the case's process.
        other_load: Share of all cores used by other processes while the case ran.
    """

    case: Case
    status: str
    clips_per_s: float | None = None
    clips: int = 0
    epochs: int = 0
    timed_s: float = 0.0
    shapes: dict[str, str] = field(default_factory=dict)
    profile: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    wall_s: float = 0.0
    other_load: float = 0.0

    @property
    def frames_per_s(self) -> float | None:
        """Video frames delivered per second (`WINDOW` per clip)."""
        return None if self.clips_per_s is None else self.clips_per_s * WINDOW


# --------------------------------------------------------------------------------------------
# The synthetic corpus.
# --------------------------------------------------------------------------------------------


def synth_clip(
    seed: int, num_frames: int, speaker: int, emotion: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic talking-shape clip: video frames and a voiced waveform.

    The audio is a harmonic tone (pitch set by speaker and emotion, with vibrato) under a
    syllable envelope of about 4 Hz, plus breath noise. The video shows a coloured gradient
    background with moving stripes, a "head" ellipse drifting around, a "mouth" whose opening
    follows the audio envelope, a square crossing the frame and per-frame Gaussian sensor
    noise (sigma 4), so that both codecs have real work to do.

    Args:
        seed: Seed of the clip's randomness.
        num_frames: Video frames t.
        speaker: Speaker number (colours and pitch).
        emotion: Emotion number (pitch, loudness and motion speed).

    Returns:
        `(frames, waveform)`: a (t, 3, SIZE, SIZE) uint8 tensor and a (s,) float32 tensor with
        s = t * SAMPLE_RATE / FPS samples in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    num_samples = round(num_frames * SAMPLE_RATE / FPS)
    time_s = np.arange(num_samples) / SAMPLE_RATE
    rate = 3.5 + rng.uniform(0.0, 1.5)
    phase = rng.uniform(0, 2 * np.pi)
    envelope = np.clip(np.sin(2 * np.pi * rate * time_s + phase), 0.0, None) ** 1.5
    f0 = 110.0 + 25.0 * speaker + 20.0 * emotion
    pitch = f0 * (1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * time_s))
    carrier_phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * carrier_phase) / k for k in range(1, 9))
    loudness = 0.25 + 0.05 * emotion
    wave = loudness * envelope * voice / 2.0 + 0.01 * rng.standard_normal(num_samples)
    waveform = torch.from_numpy(np.clip(wave, -1.0, 1.0).astype(np.float32))

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    tint = np.array([[0.9, 0.6, 0.5], [0.5, 0.8, 0.6], [0.6, 0.6, 0.9], [0.8, 0.8, 0.5]])
    colour = tint[speaker % len(tint)]
    frame_times = np.arange(num_frames) / FPS
    mouth_open = np.interp(frame_times, time_s, envelope)
    frames = np.empty((num_frames, SIZE, SIZE, 3), np.float32)
    speed = 1.0 + 0.5 * emotion
    for i, t in enumerate(frame_times):
        stripes = 20.0 * np.sin(2 * np.pi * (6.0 * xx + 3.0 * yy - 0.4 * speed * t))
        background = (60.0 + 120.0 * yy + stripes)[..., None] * colour
        img = np.broadcast_to(background, (SIZE, SIZE, 3)).copy()
        cx = 0.5 + 0.08 * np.sin(0.9 * speed * t + phase)
        cy = 0.5 + 0.05 * np.cos(0.7 * speed * t)
        head = ((xx - cx) / 0.28) ** 2 + ((yy - cy) / 0.36) ** 2 < 1.0
        img[head] = (220.0, 180.0, 150.0)
        mouth = (np.abs(xx - cx) < 0.09) & (np.abs(yy - cy - 0.16) < 0.01 + 0.05 * mouth_open[i])
        img[mouth] = (120.0, 30.0, 40.0)
        sx = (0.3 * speed * t + 0.1 * speaker) % 1.2 - 0.1
        square = (np.abs(xx - sx) < 0.06) & (np.abs(yy - 0.15) < 0.06)
        img[square] = (40.0, 90.0 + 30.0 * emotion, 200.0)
        frames[i] = img
    frames += rng.normal(0.0, 4.0, frames.shape).astype(np.float32)
    video = torch.from_numpy(np.clip(frames, 0, 255).astype(np.uint8)).permute(0, 3, 1, 2)
    return video.contiguous(), waveform


def linear_path(length_a: int, length_b: int) -> np.ndarray:
    """A monotone alignment path from frame 0 to the last frame of both sequences.

    The longer sequence advances one frame per step, the shorter one by 0 or 1 (a straight
    line), so every step is (1, 0), (0, 1) or (1, 1).

    Args:
        length_a: Frames of the reference.
        length_b: Frames of the other rendition.

    Returns:
        An (l, 2) int32 array, l = max(length_a, length_b).
    """
    steps = max(length_a, length_b)
    k = np.arange(steps)
    scale = max(steps - 1, 1)
    a = np.floor(k * (length_a - 1) / scale + 0.5)
    b = np.floor(k * (length_b - 1) / scale + 0.5)
    return np.stack([a, b], axis=1).astype(np.int32)


def disk_usage(root: Path) -> LayoutInfo:
    """Files, bytes and allocated bytes of every file below `root`."""
    files = size = allocated = 0
    for directory, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(directory, name))
            files += 1
            size += st.st_size
            allocated += st.st_blocks * 512
    return LayoutInfo(files, size, allocated)


def build_corpus(root: Path, spec: CorpusSpec, log: Callable[[str], None]) -> None:
    """Write the synthetic corpus in both layouts under `root` (which must not exist).

    Everything is written into a temporary sibling folder that is renamed to `root` once
    complete, so a corpus under its final name is always whole.

    Layout::

        root/shards/train-000000.tar ... train-index.json
        root/frames/<speaker>/<emotion>/level_1/<sentence>/00000.jpg ...
        root/frames/<speaker>/<emotion>/level_1/<sentence>/mel/00000.npy ...  (CONTEXT, 80)
        root/frames/clips.json      list of {dir, key, num_frames, emotion_id}
        root/corpus.json            the spec and the disk usage of both layouts

    Args:
        root: Destination folder.
        spec: Corpus size.
        log: Progress messages.
    """
    from decouple.data.features import frame_to_video, log_mel
    from decouple.data.io import encode_audio, encode_video, read_audio
    from decouple.data.registry import MEAD
    from decouple.data.schema import Clip, ClipMeta
    from decouple.data.shards import ShardWriter

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        start = time.monotonic()
        rng = np.random.default_rng(spec.seed)
        frames_root = tmp / "frames"
        listing = []
        with ShardWriter(tmp / "shards", "train", MEAD, max_samples=SHARD_SAMPLES, fps=FPS,
                         sample_rate=SAMPLE_RATE) as writer:  # fmt: skip
            for g in range(spec.groups):
                speaker, sentence = f"M{g % SPEAKERS:03d}", f"{g // SPEAKERS + 1:03d}"
                group, reference = f"{speaker}-{sentence}", f"{speaker}-neutral-1-{sentence}"
                base = rng.uniform(spec.min_seconds, spec.max_seconds)
                lengths = [
                    round(FPS * min(max(base * rng.uniform(0.9, 1.1), spec.min_seconds),
                                    spec.max_seconds)) if e else round(FPS * base)
                    for e in range(len(EMOTIONS))
                ]  # fmt: skip
                clips = []
                for e, emotion in enumerate(EMOTIONS):
                    key = f"{speaker}-{emotion}-1-{sentence}"
                    seed = zlib.crc32(f"{spec.seed}:{key}".encode())
                    video, wave = synth_clip(seed, lengths[e], g % SPEAKERS, e)
                    flac = encode_audio(wave, SAMPLE_RATE)
                    meta = ClipMeta(
                        "synthetic", speaker, emotion, MEAD.id(emotion), 1, sentence, group,
                        FPS, SAMPLE_RATE, lengths[e], wave.shape[0],
                        f"{speaker}/video/front/{emotion}/level_1/{sentence}.mp4", reference,
                    )  # fmt: skip
                    path = linear_path(lengths[0], lengths[e])
                    clips.append(Clip(key, meta, encode_video(video, FPS), flac, {"align": path}))
                    # Per-frame layout: the same frames as JPEG, the same features as .npy.
                    clip_dir = Path(speaker) / emotion / "level_1" / sentence
                    (frames_root / clip_dir / "mel").mkdir(parents=True)
                    audio = read_audio(flac, sample_rate=SAMPLE_RATE).waveform
                    mel = frame_to_video(log_mel(audio), lengths[e], FPS, context=CONTEXT)
                    hwc = video.permute(0, 2, 3, 1).numpy()
                    for i in range(lengths[e]):
                        Image.fromarray(hwc[i]).save(
                            frames_root / clip_dir / f"{i:05d}.jpg", quality=JPEG_QUALITY
                        )
                        np.save(frames_root / clip_dir / "mel" / f"{i:05d}.npy", mel[i].numpy())
                    listing.append(
                        {
                            "dir": clip_dir.as_posix(),
                            "key": key,
                            "num_frames": lengths[e],
                            "emotion_id": MEAD.id(emotion),
                        }
                    )
                writer.write_group(clips)
                log(f"corpus: group {g + 1}/{spec.groups} written "
                    f"({time.monotonic() - start:.0f} s)")  # fmt: skip
        (frames_root / "clips.json").write_text(json.dumps(listing, indent=1))
        os.sync()  # flushed pages can be evicted from the page cache for the cold runs
        info = {
            "spec": asdict(spec),
            "format_version": FORMAT_VERSION,
            "layouts": {
                "shards": asdict(disk_usage(tmp / "shards")),
                "frames": asdict(disk_usage(frames_root)),
            },
            "seconds_to_build": time.monotonic() - start,
        }
        (tmp / "corpus.json").write_text(json.dumps(info, indent=1))
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_corpus(cache_dir: Path, spec: CorpusSpec, regenerate: bool) -> Path:
    """The corpus folder for `spec`, generated first if it is not in the cache.

    Args:
        cache_dir: Cache folder.
        spec: Corpus size.
        regenerate: Delete a cached corpus and write it again.

    Returns:
        The corpus folder.
    """
    root = cache_dir / spec.tag
    if regenerate and root.exists():
        shutil.rmtree(root)
    if not (root / "corpus.json").exists():
        print(f"generating the corpus in {root} ...", file=sys.stderr)
        build_corpus(root, spec, lambda m: print(m, file=sys.stderr))
    return root


def layout_info(root: Path) -> dict[str, LayoutInfo]:
    """Disk usage of both layouts, as recorded when the corpus was built."""
    layouts = json.loads((root / "corpus.json").read_text())["layouts"]
    return {name: LayoutInfo(**d) for name, d in layouts.items()}


# --------------------------------------------------------------------------------------------
# The per-frame-file reader (the peers' layout).
# --------------------------------------------------------------------------------------------


def decode_jpeg_pil(path: str) -> torch.Tensor:
    """Decode a JPEG file with PIL to a (3, h, w) uint8 RGB tensor."""
    with Image.open(path) as img:
        array = np.array(img.convert("RGB") if img.mode != "RGB" else img)
    return torch.from_numpy(array).permute(2, 0, 1)


def decode_jpeg_torchvision(path: str) -> torch.Tensor:
    """Decode a JPEG file with `torchvision.io.decode_jpeg` to a (3, h, w) uint8 RGB tensor."""
    return decode_jpeg(read_file(path), mode=ImageReadMode.RGB)


DECODERS: dict[str, Callable[[str], torch.Tensor]] = {
    "frames-pil": decode_jpeg_pil,
    "frames-tv": decode_jpeg_torchvision,
}


class PerFrameClips(Dataset):
    """Random T-frame windows read from one JPEG and one mel `.npy` file per frame.

    The clip list (`clips.json`) is read once; each item opens only the `window` images and
    `window` feature files of one random window, as a peer's MEAD loader does.

    Items: `video` (t, 3, h, w) uint8, `features` (t, context, n_mels) float32, `emotion`
    (int), `frame` (t,) int64 frame numbers, `key` (str).

    Args:
        root: The per-frame layout's folder.
        decoder: A key of `DECODERS`.
        window: Frames per window.
        seed: Seed of the window positions (with the epoch and the item index).
    """

    def __init__(self, root: Path, decoder: str, window: int = WINDOW, seed: int = 0) -> None:
        self.root = root
        self.clips = json.loads((root / "clips.json").read_text())
        self.decode = DECODERS[decoder]
        self.window = window
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: its shuffling and window positions."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        rng = random.Random(zlib.crc32(repr((self.seed, self.epoch, index)).encode()))
        start = rng.randrange(clip["num_frames"] - self.window + 1)
        folder = os.path.join(self.root, clip["dir"])
        frames = range(start, start + self.window)
        video = torch.stack([self.decode(os.path.join(folder, f"{i:05d}.jpg")) for i in frames])
        features = np.stack([
            np.load(os.path.join(folder, "mel", f"{i:05d}.npy"), allow_pickle=False)
            for i in frames
        ])  # fmt: skip
        return {
            "video": video,
            "features": torch.from_numpy(features),
            "emotion": clip["emotion_id"],
            "frame": torch.arange(start, start + self.window),
            "key": clip["key"],
        }


# --------------------------------------------------------------------------------------------
# Child side: one case in a fresh process.
# --------------------------------------------------------------------------------------------


def layout_files(root: Path) -> list[str]:
    """Every file below `root`."""
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]


def evict(paths: list[str]) -> None:
    """Drop the files' pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`).

    Clean pages are dropped without root rights; the next read goes to the disk (which, in a
    VM, may still be served from the host's cache).
    """
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def make_epoch(case: Case, corpus: Path) -> tuple[Callable[[int], Iterator[dict[str, Any]]], str]:
    """Build the case's dataset; return a function giving one epoch's DataLoader iterator.

    Args:
        case: The case (reader and workers).
        corpus: The corpus folder.

    Returns:
        `(epoch_iterator, layout)`: `epoch_iterator(epoch)` sets the epoch and returns a new
        iterator over a new DataLoader (workers start with it); `layout` is the folder the
        reader reads.
    """
    if case.reader == "shards":
        from decouple.data.pipeline import ShardDataset

        shards = ShardDataset(corpus / "shards", "train", batch_size=BATCH_SIZE, window=WINDOW,
                              features="mel", context=CONTEXT, seed=0)  # fmt: skip

        def shard_epoch(epoch: int) -> Iterator[dict[str, Any]]:
            shards.set_epoch(epoch)
            return iter(DataLoader(shards, batch_size=BATCH_SIZE, num_workers=case.workers))

        return shard_epoch, str(corpus / "shards")

    frames = PerFrameClips(corpus / "frames", case.reader)

    def frame_epoch(epoch: int) -> Iterator[dict[str, Any]]:
        frames.set_epoch(epoch)
        generator = torch.Generator().manual_seed(epoch)
        loader = DataLoader(frames, batch_size=BATCH_SIZE, num_workers=case.workers,
                            shuffle=True, drop_last=True, generator=generator)  # fmt: skip
        return iter(loader)

    return frame_epoch, str(corpus / "frames")


def measure(case: Case, corpus: Path, budget_s: float, first_epoch: int = 1) -> dict[str, Any]:
    """Measure one reader's throughput in this process.

    Warm-up (untimed): with `cache == "warm"` every file of the layout is read once (into the
    page cache), then one batch of epoch 0 is read (imports and lazy initialisation). Then
    epochs `first_epoch`, `first_epoch + 1`, ... are timed, each from creating its DataLoader
    iterator (which starts the workers) to its last batch, until `budget_s` seconds (at least
    one epoch). With `cache == "cold"` every file of the layout is evicted from the page cache
    before each timed epoch (outside the timing).

    Args:
        case: The case.
        corpus: The corpus folder.
        budget_s: Least total time of the timed epochs.
        first_epoch: Number of the first timed epoch (every epoch has its own shuffle and
            windows).

    Returns:
        A JSON-ready dict: status "ok", clips_per_s, clips, epochs, timed_s, shapes.
    """
    epoch_iter, layout = make_epoch(case, corpus)
    files = layout_files(Path(layout))
    if case.cache == "warm":
        for path in files:
            Path(path).read_bytes()
    warm_up = epoch_iter(0)
    batch = next(warm_up)
    shapes = {k: f"{tuple(batch[k].shape)} {batch[k].dtype}".replace("torch.", "")
              for k in ("video", "features")}  # fmt: skip
    del warm_up, batch  # shuts its workers down
    clips, timed, epochs = 0, 0.0, 0
    while epochs < MAX_EPOCHS and (epochs == 0 or timed < budget_s):
        if case.cache == "cold":
            evict(files)
        start = time.perf_counter()
        for batch in epoch_iter(first_epoch + epochs):
            clips += len(batch["key"])
        timed += time.perf_counter() - start
        epochs += 1
    return {"status": "ok", "clips_per_s": clips / timed, "clips": clips, "epochs": epochs,
            "timed_s": timed, "shapes": shapes}  # fmt: skip


def _clock(times: dict[str, list[float]], name: str, start: float) -> float:
    """Append the time since `start` (ms) to `times[name]`; return the current time."""
    now = time.perf_counter()
    times.setdefault(name, []).append((now - start) * 1e3)
    return now


def _pyav_decode(data: bytes, *, convert: str, stop: int | None = None, first: int = 0) -> None:
    """Decode an mp4 with PyAV as `decouple.data.io` does (threads "AUTO"), for profiling.

    Args:
        data: The encoded video.
        convert: "none" (YUV frames only), "per-frame" (`frame.to_ndarray(format="rgb24")`
            on every frame, as io.py does) or "shared" (one `VideoReformatter` reused for
            every converted frame).
        stop: Stop decoding after this many frames (None: the whole clip).
        first: With "shared", convert only frames from this one on.
    """
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if convert == "per-frame":
                frame.to_ndarray(format="rgb24")
            elif convert == "shared" and i >= first:
                reformatter.reformat(frame, format="rgb24").to_ndarray()
            if stop is not None and i + 1 >= stop:
                break


def profile(corpus: Path, max_clips: int) -> dict[str, Any]:
    """Mean milliseconds per clip of each stage of both readers, in this process (no workers).

    Runs after an untimed pass over two clips (lazy initialisation); the throughput cases
    before it have read every file, so the page cache is warm.
    Each clip gets one random window of `WINDOW` frames, used by the window-only variants
    and by the per-frame reader.

    Args:
        corpus: The corpus folder.
        max_clips: Most clips to profile.

    Returns:
        A JSON-ready dict: status "ok", profile (stage -> ms per clip), clips.
    """
    from decouple.data.features import frame_to_video, log_mel
    from decouple.data.io import read_audio, read_video
    from decouple.data.pipeline import decode_clip
    from decouple.data.schema import Clip
    from decouple.data.shards import iter_samples, read_index

    index = read_index(corpus / "shards", "train")
    frames_root = corpus / "frames"
    folders = {c["key"]: frames_root / c["dir"]
               for c in json.loads((frames_root / "clips.json").read_text())}  # fmt: skip
    samples, tar_ms = [], []
    for path in index.paths:
        start = time.perf_counter()
        raw = list(iter_samples(path))
        tar_ms += [(time.perf_counter() - start) * 1e3 / len(raw)] * len(raw)
        samples += raw
    samples = samples[:max_clips]

    def one_pass(samples: list[dict[str, Any]], times: dict[str, list[float]]) -> None:
        rng = random.Random(0)
        for sample in samples:
            t = time.perf_counter()
            members = {k: v for k, v in sample.items() if not k.startswith("__")}
            clip = Clip.from_members(sample["__key__"], members, sample["__key__"])
            t = _clock(times, "parse", t)
            video = read_video(clip.video)
            t = _clock(times, "read_video", t)
            audio = read_audio(clip.audio, sample_rate=SAMPLE_RATE).waveform
            t = _clock(times, "read_audio", t)
            mel = log_mel(audio)
            t = _clock(times, "log_mel", t)
            frame_to_video(mel, video.num_frames, FPS, context=CONTEXT)
            t = _clock(times, "frame_to_video", t)
            decode_clip(clip, context=CONTEXT)
            _clock(times, "decode_clip", t)
            n = clip.meta.num_frames
            first = rng.randrange(n - WINDOW + 1)
            times.setdefault("frames", []).append(n)
            times.setdefault("window_end", []).append(first + WINDOW)
            t = time.perf_counter()
            _pyav_decode(clip.video, convert="none")
            t = _clock(times, "pyav_yuv", t)
            _pyav_decode(clip.video, convert="per-frame")
            t = _clock(times, "pyav_rgb_per_frame", t)
            _pyav_decode(clip.video, convert="shared")
            t = _clock(times, "pyav_rgb_shared", t)
            _pyav_decode(clip.video, convert="shared", stop=first + WINDOW, first=first)
            t = _clock(times, "pyav_window_shared", t)
            a0 = round((first - CONTEXT) * SAMPLE_RATE / FPS)
            a1 = round((first + WINDOW + CONTEXT) * SAMPLE_RATE / FPS)
            log_mel(audio[max(a0, 0) : a1])
            _clock(times, "log_mel_window", t)
            folder = folders[clip.key]
            jpegs = [str(folder / f"{i:05d}.jpg") for i in range(first, first + WINDOW)]
            t = time.perf_counter()
            for path in jpegs:
                Path(path).read_bytes()
            t = _clock(times, "jpeg_read", t)
            for path in jpegs:
                decode_jpeg_pil(path)
            t = _clock(times, "jpeg_pil", t)
            for path in jpegs:
                decode_jpeg_torchvision(path)
            t = _clock(times, "jpeg_tv", t)
            for i in range(first, first + WINDOW):
                np.load(folder / "mel" / f"{i:05d}.npy", allow_pickle=False)
            _clock(times, "npy", t)

    one_pass(samples[:2], {})  # warm-up: lazy initialisation (the cases before warmed the cache)
    times: dict[str, list[float]] = {"tar": tar_ms[: len(samples)]}
    one_pass(samples, times)
    return {"status": "ok", "clips": len(samples),
            "profile": {k: statistics.fmean(v) for k, v in times.items()}}  # fmt: skip


def run_case(
    case: Case, corpus: Path, budget_s: float, max_clips: int, first_epoch: int = 1
) -> dict[str, Any]:
    """Run a throughput case or the profile in this process."""
    if case.reader == "profile":
        return profile(corpus, max_clips)
    return measure(case, corpus, budget_s, first_epoch)


def child_entry(
    spec: str, corpus: str, budget_s: float, max_clips: int, first_epoch: int, conn: Connection
) -> None:
    """Body of a case's process: run the case and send its payload through `conn`.

    The payload's `cpu_s` counts this process and its finished children (the DataLoader
    workers, joined at the end of every epoch).
    """
    # A process started by the forkserver inherits its start method; give the DataLoader
    # workers the platform's default (fork on Linux before Python 3.14), as a training script
    # gets it, so that they are not started through the forkserver and counted as other load.
    multiprocessing.set_start_method(DEFAULT_START_METHOD, force=True)
    try:
        payload = run_case(Case.parse(spec), Path(corpus), budget_s, max_clips, first_epoch)
    except Exception as error:  # reported in the table; the other cases still run
        payload = {"status": "error", "detail": f"{type(error).__name__}: {error}"[:300]}
    cpu = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        cpu += usage.ru_utime + usage.ru_stime
    payload["cpu_s"] = cpu
    conn.send(payload)
    conn.close()


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


def run_in_subprocess(
    case: Case, corpus: Path, args: argparse.Namespace, context: BaseContext, round_: int = 0
) -> Result:
    """Run one case (one round of it) in a fresh process, with a time limit.

    Args:
        case: The case.
        corpus: The corpus folder.
        args: Parsed command line (budget, rounds, profile_clips, timeout).
        context: Multiprocessing context to start the process from.
        round_: Round number: the process times `args.budget / args.rounds` seconds of
            epochs numbered from `1 + round_ * MAX_EPOCHS`.

    Returns:
        The case's result, with the share of the CPU that other processes used meanwhile.
    """
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=child_entry, name=case.spec,
        args=(case.spec, str(corpus), args.budget / args.rounds, args.profile_clips,
              1 + round_ * MAX_EPOCHS, sender),
    )  # fmt: skip
    start, busy_start, own_start = time.monotonic(), busy_cpu_s(), time.process_time()
    process.start()
    sender.close()
    process.join(args.timeout)
    wall_s = time.monotonic() - start
    if process.is_alive():
        process.kill()
        process.join()
        return Result(case, "timeout", detail=f"over {args.timeout:g} s", wall_s=wall_s)
    if not receiver.poll():
        return Result(case, "error", detail=f"exit code {process.exitcode}", wall_s=wall_s)
    payload = receiver.recv()
    others_s = busy_cpu_s() - busy_start - payload.pop("cpu_s") - (time.process_time() - own_start)
    other_load = max(0.0, others_s / (wall_s * psutil.cpu_count()))
    return Result(case, wall_s=wall_s, other_load=other_load, **payload)


def plan(args: argparse.Namespace) -> list[Case]:
    """The cases of a run: per cache state and worker count, the baselines then the shards."""
    caches = ("warm",) if args.quick else tuple(args.cache.split(","))
    cases = [
        Case(reader, workers, cache)
        for cache in caches
        for workers in WORKER_COUNTS
        for reader in (*BASELINES, "shards")
    ]
    return [*cases, Case("profile", 0, "warm")]


def progress_line(result: Result, index: int, total: int) -> str:
    """One line describing a finished case."""
    head = f"[{index:2d}/{total}] {result.case.spec:<22}"
    if result.status != "ok":
        body = f"{result.status.upper()}: {result.detail}"
    elif result.case.reader == "profile":
        body = f"profiled {result.clips} clips"
    else:
        body = (f"{result.clips_per_s:8.1f} clips/s {result.frames_per_s:9.1f} frames/s "
                f"({result.epochs} epochs, {result.timed_s:.1f} s timed)")  # fmt: skip
    busy = f", others used {result.other_load:.0%} CPU" if result.other_load > BUSY_WARNING else ""
    return f"{head} {body}  [{result.wall_s:.1f} s{busy}]"


def merge(parts: list[Result]) -> Result:
    """One result from the rounds of a case: clips and timed seconds add up.

    Args:
        parts: The case's results, one per round.

    Returns:
        The first failed round if any, else the totals (other processes' CPU share weighted
        by wall time).
    """
    wall = sum(p.wall_s for p in parts)
    failed = next((p for p in parts if p.status != "ok"), None)
    if failed is not None:
        return Result(failed.case, failed.status, detail=failed.detail, wall_s=wall)
    if len(parts) == 1:
        return parts[0]
    clips, timed = sum(p.clips for p in parts), sum(p.timed_s for p in parts)
    return Result(
        parts[0].case, "ok", clips_per_s=clips / timed, clips=clips,
        epochs=sum(p.epochs for p in parts), timed_s=timed, shapes=parts[0].shapes,
        profile=parts[0].profile, wall_s=wall,
        other_load=sum(p.other_load * p.wall_s for p in parts) / max(wall, 1e-9),
    )  # fmt: skip


def run_all(cases: list[Case], corpus: Path, args: argparse.Namespace) -> list[Result]:
    """Run the throughput cases in `args.rounds` interleaved rounds, then the profile.

    Each round runs every throughput case once, in a fresh process, for `args.budget /
    args.rounds` timed seconds, so that a burst of other load on the machine hits all readers
    alike instead of one case. The profile runs once, last.

    Args:
        cases: The cases (the profile last).
        corpus: The corpus folder.
        args: Parsed command line.

    Returns:
        One merged result per case, in the order of `cases`.
    """
    context = start_forkserver()
    throughput = [c for c in cases if c.reader != "profile"]
    runs = [(r, c) for r in range(args.rounds) for c in throughput]
    runs += [(0, c) for c in cases if c.reader == "profile"]
    parts: dict[Case, list[Result]] = {c: [] for c in cases}
    for index, (round_, case) in enumerate(runs, 1):
        result = run_in_subprocess(case, corpus, args, context, round_)
        parts[case].append(result)
        line = progress_line(result, index, len(runs))
        print(f"{line} (round {round_ + 1}/{args.rounds})" if case.reader != "profile" else line,
              file=sys.stderr)  # fmt: skip
    return [merge(parts[c]) for c in cases]


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def find(results: list[Result], reader: str, workers: int, cache: str) -> Result | None:
    """The result of a case, or None if it was not run."""
    return next((r for r in results if r.case == Case(reader, workers, cache)), None)


def best_baseline(results: list[Result], workers: int, cache: str) -> Result | None:
    """The fastest per-frame-file reader at these workers and cache state (None if none ran)."""
    ok = [r for r in (find(results, b, workers, cache) for b in BASELINES)
          if r is not None and r.status == "ok"]  # fmt: skip
    return max(ok, key=lambda r: r.clips_per_s or 0.0, default=None)


def ratio(results: list[Result], result: Result) -> float | None:
    """Clips/s of `result` over the fastest per-frame-file reader's at the same settings."""
    base = best_baseline(results, result.case.workers, result.case.cache)
    if result.status != "ok" or base is None:
        return None
    assert result.clips_per_s is not None and base.clips_per_s is not None
    return result.clips_per_s / base.clips_per_s


def throughput_table(results: list[Result], layouts: dict[str, LayoutInfo]) -> list[str]:
    """The markdown table of the throughput cases."""
    lines = [
        "| reader | workers | page cache | clips/s | frames/s | vs per-frame files "
        "| layout on disk (MB) | files |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.case.reader == "profile":
            continue
        layout = layouts["shards" if r.case.reader == "shards" else "frames"]
        if r.status == "ok":
            speed = f"{r.clips_per_s:.1f} | {r.frames_per_s:.0f}"
        else:
            speed = f"{r.status.upper()} ({r.detail}) | -"
        x = ratio(results, r)
        name = READERS[r.case.reader]
        name = f"**{name}**" if r.case.reader == "shards" else name
        lines.append(
            f"| {name} | {r.case.workers} | {r.case.cache} | {speed} "
            f"| {'-' if x is None else f'{x:.2f}x'} | {layout.disk_bytes / MB:.1f} "
            f"| {layout.files} |"
        )
    return lines


def goal_lines(results: list[Result]) -> list[str]:
    """PASS / MISS per worker count and cache state: shards >= GOAL x per-frame files."""
    lines = []
    for cache in CACHE_STATES:
        for workers in WORKER_COUNTS:
            shards = find(results, "shards", workers, cache)
            if shards is None:
                continue
            what = (f"{workers} workers, {cache} cache: shards vs the fastest per-frame reader, "
                    f"goal >= {GOAL:g}x")  # fmt: skip
            x = ratio(results, shards)
            if x is None:
                lines.append(f"- n/a: {what} (not measured)")
            else:
                lines.append(f"- {'PASS' if x >= GOAL else 'MISS'}: {what}: {x:.2f}x")
    return lines


PROFILE_ROWS = (
    ("tar", "shards: read the tar (iter_samples, per clip)"),
    ("parse", "shards: Clip.from_members (JSON, checks, align.npy)"),
    ("read_video", "shards: read_video, whole clip (as decode_clip)"),
    ("read_audio", "shards: read_audio, FLAC, whole clip"),
    ("log_mel", "shards: log_mel, whole clip"),
    ("frame_to_video", "shards: frame_to_video"),
    ("decode_clip", "shards: decode_clip end to end (check: ~ the four above)"),
    ("pyav_yuv", "PyAV: decode the whole clip, no RGB conversion"),
    ("pyav_rgb_per_frame", "PyAV: whole clip + to_ndarray('rgb24') per frame (as io.py)"),
    ("pyav_rgb_shared", "PyAV: whole clip + RGB with one shared VideoReformatter"),
    ("pyav_window_shared", "PyAV: decode up to the window's end, RGB of the window only"),
    ("log_mel_window", "log_mel of the window's audio only (+ context)"),
    ("jpeg_read", "per-frame: read the window's JPEG bytes"),
    ("jpeg_pil", "per-frame: open + decode the window's JPEGs, PIL"),
    ("jpeg_tv", "per-frame: read + decode the window's JPEGs, torchvision"),
    ("npy", "per-frame: np.load the window's mel .npy files"),
)


def profile_lines(results: list[Result]) -> list[str]:
    """The per-stage profile table (empty if the profile did not run)."""
    prof = next((r for r in results if r.case.reader == "profile"), None)
    if prof is None or prof.status != "ok":
        detail = "not run" if prof is None else f"{prof.status}: {prof.detail}"
        return ["", f"Profile: {detail}."]
    p = prof.profile
    lines = [
        "",
        f"Where the time of one clip goes (mean ms per clip over {prof.clips} clips of "
        f"{p['frames']:.0f} frames on average, window of {WINDOW} ending at frame "
        f"{p['window_end']:.0f} on average; one process, no workers, warm cache):",
        "",
        "| stage | ms per clip |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {p[key]:.2f} |" for key, label in PROFILE_ROWS if key in p]
    return lines


def versions() -> str:
    """Versions of the packages the readers use."""
    names = ("torch", "torchvision", "torchaudio", "av", "soundfile", "pillow", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found) + f", Python {platform.python_version()}"


def render(
    results: list[Result], spec: CorpusSpec, layouts: dict[str, LayoutInfo],
    args: argparse.Namespace, wall_s: float,
) -> str:  # fmt: skip
    """The benchmark report in markdown: table, goals, profile and environment."""
    shapes = sorted({json.dumps(r.shapes, sort_keys=True) for r in results if r.shapes})
    if len(shapes) == 1:
        first = json.loads(shapes[0])
        same = (f"every reader delivered batches of video {first['video']} and features "
                f"{first['features']}")  # fmt: skip
    else:
        same = f"WARNING: the readers delivered different batches: {shapes}"
    lines = [
        *throughput_table(results, layouts),
        "",
        "Goals:",
        "",
        *goal_lines(results),
        *profile_lines(results),
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()} ({psutil.cpu_count()} logical cores)",
        f"- {versions()}",
        f"- corpus: {spec.num_clips} clips ({spec.groups} parallel groups x {len(EMOTIONS)} "
        f"emotions) of {spec.min_seconds:g}-{spec.max_seconds:g} s, {SIZE}x{SIZE} px, "
        f"{FPS:g} fps, {SAMPLE_RATE} Hz; H.264 crf 18 + FLAC in {layouts['shards'].files - 1} "
        f"shards vs JPEG quality {JPEG_QUALITY} + one ({CONTEXT}, 80) float32 .npy per frame",
        f"- batch {BATCH_SIZE}, window T = {WINDOW} frames, mel context {CONTEXT}; {same}",
        f"- mode: {'quick' if args.quick else 'full'}; per case {args.rounds} round(s) of "
        f"{args.budget / args.rounds:g} s of timed epochs (at least one epoch each; cases "
        f"interleaved, a fresh process per case and round); total wall time {wall_s:.0f} s",
        "",
        "vs per-frame files = clips/s of the row / clips/s of the fastest per-frame-file reader "
        "at the same workers and cache state (> 1 is faster). Frames/s = clips/s x T. "
        "Layout on disk = space allocated on disk (small files round up to the filesystem "
        f"block; file sizes add up to {layouts['shards'].bytes / MB:.1f} MB for the shards and "
        f"{layouts['frames'].bytes / MB:.1f} MB for the per-frame files).",
    ]
    busy = [r for r in results if r.other_load > BUSY_WARNING]
    if busy:
        cases = ", ".join(f"{r.case.spec} ({r.other_load:.0%})" for r in busy)
        lines += ["", f"Warning: other processes used the CPU during {cases}: those numbers "
                  "are too slow; rerun on an idle machine."]  # fmt: skip
    return "\n".join(lines) + "\n"


DOCS_INTRO = """\
# Data loading benchmark

This page compares the throughput of `decouple.data.pipeline.ShardDataset` with the per-frame-file
layout peers use for MEAD (one JPEG per video frame plus one `.npy` of audio features per frame).
A deterministic synthetic corpus (moving shapes with sensor noise and a mouth that follows the
audio; voiced audio) is written once in both layouts: tar shards of H.264 video, FLAC audio and
JSON metadata in parallel groups of four emotions, and a tree of JPEG files (quality 95) with one
log-mel `.npy` per frame (the same features `decouple.data.features` computes). Both readers
deliver the same batches through a `torch.utils.data.DataLoader` with the same batch size and
worker count: a random window of T frames per clip as video (b, t, 3, h, w) uint8 and mel
features (b, t, context, 80) float32. The shard reader decodes each whole clip (video and audio)
and computes the mel features of the whole clip before cutting its window; the per-frame reader
opens only the window's 2T files, decoding the JPEGs with PIL or with
`torchvision.io.decode_jpeg` (both are measured; the ratio is against the faster). Each case runs
in fresh processes on the CPU named below, in rounds interleaved with the other cases: an untimed
warm-up (one batch), then timed epochs, each from creating the DataLoader iterator (which starts
the workers) to its last batch. *Warm*: the files are in the page cache; *cold*: every file of
the layout is evicted from the page cache (`posix_fadvise(DONTNEED)`) before each timed epoch
(the VM's disk may still be cached by its host, so real disks and network filesystems cost
more). The last table profiles one clip's stages in one process. Reproduce with
`python bench/data.py --write-docs` (see `bench/README.md`).

"""


def write_reports(report: str, args: argparse.Namespace) -> list[Path]:
    """Write the report to bench/results/ and, with --write-docs, to the docs page."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    outputs = [(RESULTS_DIR / ("data-quick.md" if args.quick else "data.md"), report)]
    if args.write_docs:
        DOCS_PAGE.parent.mkdir(parents=True, exist_ok=True)
        outputs.append((DOCS_PAGE, DOCS_INTRO + report))
    for path, text in outputs:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    nav_entry = DOCS_PAGE.relative_to(REPO / "docs").as_posix()
    mkdocs = REPO / "mkdocs.yml"
    if args.write_docs and mkdocs.exists() and nav_entry not in mkdocs.read_text():
        print(f"warning: {nav_entry} is not in the nav of mkdocs.yml: `mkdocs build --strict` "
              "fails until it is added", file=sys.stderr)  # fmt: skip
    return [path for path, _ in outputs]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small corpus, warm cache only, one round of 2 s per case",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"also write {DOCS_PAGE}")
    parser.add_argument(
        "--cache",
        default="warm,cold",
        help="page-cache states to run in full mode: warm, cold or warm,cold",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="least timed seconds per case, over all rounds (default 12, --quick 2)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds of all cases (default 3, --quick 1)",
    )
    parser.add_argument(
        "--profile-clips",
        type=int,
        default=None,
        help="clips in the profile (default all, --quick 8)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="time limit per case, s")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where the corpus is generated once (default {DEFAULT_CACHE})",
    )
    parser.add_argument("--regenerate", action="store_true", help="write the cached corpus again")
    parser.add_argument(
        "--case",
        help="only run one case READER:WORKERS:CACHE in this process "
        f"and print its JSON; readers: {', '.join([*READERS, 'profile'])}",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.budget is None:
        args.budget = 2.0 if args.quick else 12.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.profile_clips is None:
        args.profile_clips = 8 if args.quick else 10**9
    unknown = set(args.cache.split(",")) - set(CACHE_STATES)
    if unknown:
        parser.error(f"--cache: unknown state(s) {sorted(unknown)}; use {CACHE_STATES}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus if needed, run the benchmark and write the report."""
    args = parse_args(argv)
    spec = QUICK_CORPUS if args.quick else FULL_CORPUS
    start = time.monotonic()
    corpus = ensure_corpus(args.cache_dir, spec, args.regenerate)
    if args.case:
        case = Case.parse(args.case)
        print(json.dumps(run_case(case, corpus, args.budget, args.profile_clips)))
        return
    results = run_all(plan(args), corpus, args)
    report = render(results, spec, layout_info(corpus), args, time.monotonic() - start)
    print(report)
    for path in write_reports(report, args):
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
