"""What every corpus converter shares: the plan, per-clip processing, groups, resumable writing.

A converter (`mead`, `ravdess`, `cremad`) only parses its corpus layout into a
[CorpusPlan][decouple.data.convert.common.CorpusPlan]: work units (one parallel group, or one
clip without parallel renditions), each assigned to a split, plus the files it skipped while
parsing and why. [run_conversion][decouple.data.convert.common.run_conversion] does the rest:

1. **Per clip** ([process_clip][decouple.data.convert.common.process_clip], in worker
   processes): decode the video resampled to `fps` and the audio at 16 kHz mono
   (`decouple.data.io`), crop the faces (`decouple.data.faces.crop_faces`), cut or pad the
   audio to the video's duration, and encode (H.264 mp4 + FLAC).
2. **Per group** ([assemble_unit][decouple.data.convert.common.assemble_unit], in the main
   process): pick the reference (the neutral rendition if there is one, else the first), align
   every rendition to it from the audio (`decouple.data.align.align_audio`) and store the path
   as `align.npy`.
3. **Writing**: one `ShardWriter` per split (`{split}-%06d.tar` + `{split}-index.json`), in the
   main process, in plan order whatever the number of workers (the output does not depend on
   `workers`).
4. **Resume**: `convert-state.json` in the output directory lists the finished shards and the
   work units they hold (rewritten atomically each time a shard is finished). A re-run reads
   it and skips the finished work; see
   [run_conversion][decouple.data.convert.common.run_conversion].
5. **Summary**: clips written, clips skipped per reason (with every skipped file), printed and
   saved as `convert-summary.json`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decouple.data.io import atomic_write_bytes
from decouple.data.registry import EmotionSet
from decouple.data.schema import ALIGN, Clip, ClipMeta, SchemaError, ShardError
from decouple.data.shards import ShardWriter, index_path, iter_samples

__all__ = [
    "AUDIO_SUFFIXES",
    "DUPLICATE",
    "EVENT_AUDIO_FROM_STREAM",
    "EVENT_FIXED_CROP",
    "EXCLUDED_BY_OPTION",
    "MISSING_AUDIO",
    "MISSING_VIDEO",
    "NOT_IN_EMOTION_SET",
    "PROCESSING_ERROR",
    "SKIP_REASONS",
    "STATE_FILE",
    "SUMMARY_FILE",
    "UNPARSABLE",
    "UNREADABLE_AUDIO",
    "UNREADABLE_VIDEO",
    "VIDEO_SUFFIXES",
    "ClipSource",
    "ConvertOptions",
    "CorpusPlan",
    "ProcessedClip",
    "Skip",
    "Unit",
    "assemble_unit",
    "check_speaker_list",
    "format_summary",
    "make_units",
    "media_files",
    "pick_reference",
    "process_clip",
    "relative_posix",
    "run_conversion",
    "speaker_split",
    "unit_signature",
]

STATE_FILE = "convert-state.json"
"""Resume state, next to the shards
([run_conversion][decouple.data.convert.common.run_conversion] describes it)."""
SUMMARY_FILE = "convert-summary.json"
"""The summary of the last run, next to the shards."""

# Skip reasons: stable strings, the keys of `skipped_by_reason` in the summary.
UNPARSABLE = "unparsable path"
"""A media file whose path or name does not follow the corpus layout."""
MISSING_AUDIO = "missing audio"
"""A video without an audio stream and without a separate audio file."""
MISSING_VIDEO = "missing video"
"""Audio without a video (for MEAD: none in the chosen camera view)."""
UNREADABLE_VIDEO = "unreadable video"
"""A video file that cannot be decoded (corrupt, truncated, empty)."""
UNREADABLE_AUDIO = "unreadable audio"
"""A separate audio file that cannot be decoded."""
NOT_IN_EMOTION_SET = "emotion not in the emotion set"
"""A clip whose emotion the chosen emotion set leaves out (contempt with `mead7`)."""
DUPLICATE = "duplicate file"
"""A second file for a clip already found (another container, or a copy in another folder)."""
EXCLUDED_BY_OPTION = "excluded by an option"
"""A clip an option leaves out (RAVDESS songs without `--vocal song|both`)."""
PROCESSING_ERROR = "processing error"
"""Anything else that went wrong with a clip (a bug or an environment problem)."""
SKIP_REASONS = (UNPARSABLE, DUPLICATE, MISSING_AUDIO, MISSING_VIDEO, UNREADABLE_VIDEO,
                UNREADABLE_AUDIO, NOT_IN_EMOTION_SET, EXCLUDED_BY_OPTION, PROCESSING_ERROR)
"""Every skip reason, in the order summaries list them."""

EVENT_FIXED_CROP = "fixed crop (no face found)"
"""Event: the detector found no face in a clip, the fixed centre crop was used."""
EVENT_AUDIO_FROM_STREAM = "audio from the video's own stream"
"""Event: the separate audio file was missing, the video's audio stream was used."""

VIDEO_SUFFIXES = frozenset({".mp4", ".flv", ".avi", ".mov", ".mkv", ".m4v", ".webm"})
"""File suffixes read as video."""
AUDIO_SUFFIXES = frozenset({".m4a", ".wav", ".flac", ".aac", ".mp3", ".ogg"})
"""File suffixes read as audio."""

_STATE_FORMAT = "decouple-convert-state"
_STATE_VERSION = 1
_FACES = ("haar", "dlib", "fixed")
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


# ----------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClipSource:
    """One clip to convert: where its media are and what it is.

    Attributes:
        key: Sample key (`decouple.data.schema.make_key`), unique in the corpus.
        speaker: Speaker (actor) id.
        emotion: Canonical emotion name.
        intensity: Intensity as the corpus numbers it (0 = unspecified).
        sentence: Sentence id (the parallel sentence for grouped clips).
        video: Video file, relative to the corpus root (POSIX separators).
        audio: Separate audio file relative to the corpus root, or None.
        prefer_audio_file: Read the audio from `audio` when it is given (MEAD's `.m4a`);
            otherwise the video's own audio stream comes first and `audio` is the fallback.

    Examples:
        >>> ClipSource("cremad-1001-DFA-ANG-XX", "1001", "angry", 0, "DFA",
        ...            "VideoFlash/1001_DFA_ANG_XX.flv").audio is None
        True
    """

    key: str
    speaker: str
    emotion: str
    intensity: int
    sentence: str
    video: str
    audio: str | None = None
    prefer_audio_file: bool = False


@dataclass(frozen=True)
class Unit:
    """A unit of work: one parallel group, or one clip without parallel renditions.

    Attributes:
        uid: Unit id, unique within its split: the group id, or the clip key.
        split: Split the unit is written to.
        group: Parallel group id, `""` for a single clip.
        clips: The clips, reference candidates first-come (sorted by the converter).

    Examples:
        >>> c = ClipSource("k1", "01", "happy", 1, "01", "a.mp4")
        >>> Unit("k1", "all", "", (c,)).uid
        'k1'
    """

    uid: str
    split: str
    group: str
    clips: tuple[ClipSource, ...]


@dataclass(frozen=True)
class Skip:
    """A file or clip left out, and why.

    Attributes:
        source: The file, relative to the corpus root.
        reason: One of [SKIP_REASONS][decouple.data.convert.common.SKIP_REASONS].
        detail: What exactly was wrong (the decoder's message, say).
        key: The clip's key when it was known.

    Examples:
        >>> Skip("M003/video/front/angry/level_1/002.mp4", MISSING_AUDIO).reason
        'missing audio'
    """

    source: str
    reason: str
    detail: str = ""
    key: str = ""

    def to_json(self) -> dict[str, str]:
        """The skip as a JSON object (summary and state files).

        Returns:
            `{"source", "reason", "detail", "key"}`.

        Examples:
            >>> Skip("a.mp4", UNREADABLE_VIDEO, "truncated").to_json()["detail"]
            'truncated'
        """
        return asdict(self)


@dataclass
class CorpusPlan:
    """What a converter found in a corpus: the units to convert and what it skipped.

    Attributes:
        dataset: Corpus name (`mead`, `ravdess`, `cremad`), the `dataset` field of every clip.
        root: Corpus root; clip paths are relative to it.
        emotion_set: The emotion set whose ids the clips get.
        units: Work units, in writing order.
        skipped: Files skipped while parsing.
        notes: Remarks for the summary (an actor without the chosen view, say).
        params: The corpus options that shaped the plan (recorded in the resume state, so a
            re-run with other options is refused instead of mixing outputs).

    Examples:
        >>> from decouple.data.registry import CREMAD
        >>> CorpusPlan("cremad", Path("."), CREMAD, [], []).num_clips
        0
    """

    dataset: str
    root: Path
    emotion_set: EmotionSet
    units: list[Unit]
    skipped: list[Skip]
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_clips(self) -> int:
        """Clips in the units."""
        return sum(len(u.clips) for u in self.units)

    @property
    def splits(self) -> list[str]:
        """The splits the units go to, sorted."""
        return sorted({u.split for u in self.units})


def pick_reference(clips: Sequence[ClipSource]) -> int:
    """Index of a group's reference clip: the neutral one (lowest intensity), else the first.

    Args:
        clips: The clips of a group.

    Returns:
        The index in `clips`.

    Examples:
        >>> cs = [ClipSource(k, "s", e, i, "001", k + ".mp4")
        ...       for k, e, i in (("a", "angry", 1), ("n", "neutral", 1), ("h", "happy", 2))]
        >>> pick_reference(cs), pick_reference(cs[:1] + cs[2:])
        (1, 0)
    """
    if not clips:
        raise ValueError("pick_reference: a group needs at least one clip")
    neutral = [i for i, c in enumerate(clips) if c.emotion == "neutral"]
    if neutral:
        return min(neutral, key=lambda i: (clips[i].intensity, i))
    return 0


def make_units(
    groups: Mapping[tuple[str, str], Sequence[ClipSource]],
    singles: Iterable[tuple[str, ClipSource]],
    emotion_set: EmotionSet,
) -> list[Unit]:
    """Build the units of a plan from parallel groups and single clips, in a stable order.

    A group with one clip becomes a single clip (group `""`). Clips in a group are sorted by
    emotion id, intensity and key; units by split, speaker and id.

    Args:
        groups: `(split, group id) -> clips` of each parallel group.
        singles: `(split, clip)` of each clip without parallel renditions.
        emotion_set: Set giving the emotion order.

    Returns:
        The units.

    Examples:
        >>> from decouple.data.registry import RAVDESS
        >>> a = ClipSource("k-angry", "01", "angry", 1, "01", "a.mp4")
        >>> n = ClipSource("k-neutral", "01", "neutral", 1, "01", "n.mp4")
        >>> units = make_units({("all", "g1"): [a, n]}, [("all", a)], RAVDESS)
        >>> [(u.uid, [c.key for c in u.clips]) for u in units]
        [('g1', ['k-neutral', 'k-angry']), ('k-angry', ['k-angry'])]
    """
    def order(c: ClipSource) -> tuple[int, int, str]:
        return (emotion_set.id(c.emotion), c.intensity, c.key)

    units: list[Unit] = []
    for (split, gid), clips in groups.items():
        ordered = tuple(sorted(clips, key=order))
        if len(ordered) == 1:
            units.append(Unit(ordered[0].key, split, "", ordered))
        elif ordered:
            units.append(Unit(gid, split, gid, ordered))
    for split, clip in singles:
        units.append(Unit(clip.key, split, "", (clip,)))
    units.sort(key=lambda u: (u.split, u.clips[0].speaker, u.uid))
    seen: dict[tuple[str, str], Unit] = {}
    for u in units:
        if (u.split, u.uid) in seen:
            raise ValueError(f"two work units of split {u.split!r} share the id {u.uid!r}")
        seen[(u.split, u.uid)] = u
    return units


def speaker_split(speaker: str, test_speakers: Iterable[str] | None) -> str:
    """The split of a speaker: `test` if listed, else `train`; `all` when no list is given.

    Args:
        speaker: Speaker id.
        test_speakers: Speakers of the test split, or None for a single split.

    Returns:
        `all`, `train` or `test`.

    Examples:
        >>> speaker_split("M003", ["M003", "W015"]), speaker_split("M005", ["M003"])
        ('test', 'train')
        >>> speaker_split("M005", None)
        'all'
    """
    if test_speakers is None:
        return "all"
    return "test" if speaker in set(test_speakers) else "train"


def unit_signature(root: str | Path, unit: Unit) -> str:
    """A fingerprint of a unit's inputs: its clips' keys, files and file sizes.

    A resumed run redoes a unit whose signature changed (a file was added, removed or
    replaced by one of another size). Modification times are left out, so a copied corpus
    (new times, same files) is still recognised.

    Args:
        root: Corpus root.
        unit: The unit.

    Returns:
        A hex SHA-1.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "a.mp4").write_bytes(b"12345")
        >>> u = Unit("k", "all", "", (ClipSource("k", "s", "sad", 1, "1", "a.mp4"),))
        >>> s1 = unit_signature(root, u)
        >>> _ = (root / "a.mp4").write_bytes(b"123456")
        >>> s1 == unit_signature(root, u), len(s1)
        (False, 40)
    """
    root = Path(root)

    def size(rel: str | None) -> int | None:
        if rel is None:
            return None
        try:
            return (root / rel).stat().st_size
        except OSError:
            return -1

    items = [[unit.group, unit.split]] + [
        [c.key, c.video, size(c.video), c.audio, size(c.audio), c.emotion, c.intensity,
         c.sentence, c.speaker, c.prefer_audio_file]
        for c in unit.clips
    ]
    return hashlib.sha1(json.dumps(items).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ConvertOptions:
    """How clips are processed and written (the corpus-specific options live in the plan).

    Attributes:
        fps: Output video frame rate (frames are resampled by nearest timestamp).
        sample_rate: Output audio sample rate (Hz), mono.
        face: Face detector for the crops: `haar`, `dlib` or `fixed` (centre crop).
        size: Side of the square face crops in pixels (even: H.264 yuv420p).
        margin: Margin around the detected face box (`crop_faces`).
        detect_every: Detect faces every this many frames (`crop_faces(every=...)`).
        crf: H.264 constant rate factor of the crops (0 lossless, 18 visually lossless).
        preset: x264 speed preset (None: the encoder's default, `medium`).
        max_samples: Most clips per shard (a larger group gets a shard of its own).
        max_bytes: Approximate size limit of a shard in bytes.
        workers: Worker processes decoding and cropping clips; 0 or 1 = in this process.
        overwrite: Start over: delete the splits, state and summary of an earlier run.
        progress: Show a progress bar (tqdm, on stderr).

    Examples:
        >>> ConvertOptions(face="fixed", size=64).settings()["size"]
        64
        >>> ConvertOptions(size=127)
        Traceback (most recent call last):
        ...
        ValueError: size must be an even int >= 2 (H.264 yuv420p needs even sides), got 127
    """

    fps: float = 25.0
    sample_rate: int = 16000
    face: str = "haar"
    size: int = 128
    margin: float = 0.25
    detect_every: int = 5
    crf: int = 18
    preset: str | None = None
    max_samples: int = 256
    max_bytes: int = 1 << 30
    workers: int = 0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, int | float) and not isinstance(self.fps, bool)
                and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        for name in ("sample_rate", "max_samples", "max_bytes", "detect_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if self.face not in _FACES:
            raise ValueError(f"face must be one of {_FACES}, got {self.face!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 2 or (
            self.size % 2
        ):
            raise ValueError(
                f"size must be an even int >= 2 (H.264 yuv420p needs even sides), got {self.size!r}"
            )
        if not (isinstance(self.margin, int | float) and math.isfinite(self.margin)
                and self.margin >= 0):
            raise ValueError(f"margin must be a number >= 0, got {self.margin!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be an int in [0, 51], got {self.crf!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")

    def settings(self) -> dict[str, Any]:
        """The options that shape the output (recorded in the resume state).

        Returns:
            Everything but `workers`, `overwrite` and `progress`.

        Examples:
            >>> sorted(ConvertOptions().settings())[:3]
            ['crf', 'detect_every', 'face']
        """
        d = asdict(self)
        for name in ("workers", "overwrite", "progress"):
            d.pop(name)
        d["fps"] = float(d["fps"])
        return d


# ----------------------------------------------------------------------------- per clip


@dataclass
class ProcessedClip:
    """A converted clip, before its group is assembled.

    Attributes:
        source: What was converted.
        video: Encoded face-crop video (mp4), `(t, 3, size, size)` once decoded.
        audio: Encoded audio (FLAC), `(s,)` once decoded.
        waveform: The audio (s,) float32, for the alignment.
        num_frames: Video frames t.
        events: Remarks (see `EVENT_*`), e.g. the fixed-crop fallback.
    """

    source: ClipSource
    video: bytes
    audio: bytes
    waveform: np.ndarray
    num_frames: int
    events: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        """Audio samples s."""
        return int(self.waveform.shape[0])


def process_clip(root: str | Path, src: ClipSource, options: ConvertOptions
                 ) -> ProcessedClip | Skip:
    """Decode, resample, crop and encode one clip (runs in the worker processes).

    The video is resampled to `options.fps` by nearest timestamp, the audio to
    `options.sample_rate` mono. The audio is then cut or zero-padded to exactly
    `round(num_frames * sample_rate / fps)` samples, the duration of the video, so that sample
    `round(i / fps * sample_rate)` belongs to frame `i`.

    Never raises for a bad clip: it returns a [Skip][decouple.data.convert.common.Skip] with
    the reason (missing or unreadable audio, unreadable video, any other error as
    `processing error`).

    Args:
        root: Corpus root.
        src: The clip.
        options: Processing options.

    Returns:
        The processed clip, or why it was skipped.

    Examples:
        >>> import tempfile
        >>> from decouple.data.io import write_av
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = write_av(root / "c.mp4", torch.zeros(15, 3, 32, 48, dtype=torch.uint8), 30,
        ...              torch.zeros(8000), 16000)
        >>> src = ClipSource("k", "s", "sad", 1, "1", "c.mp4")
        >>> out = process_clip(root, src, ConvertOptions(face="fixed", size=16))
        >>> out.num_frames, out.num_samples
        (13, 8320)
        >>> process_clip(root, ClipSource("k", "s", "sad", 1, "1", "x.mp4"),
        ...              ConvertOptions()).reason
        'unreadable video'
    """
    try:
        return _process_clip(Path(root), src, options)
    except Exception as err:  # a clip must never stop the conversion: report it
        return Skip(src.video, PROCESSING_ERROR, f"{type(err).__name__}: {err}", src.key)


def _process_clip(root: Path, src: ClipSource, options: ConvertOptions) -> ProcessedClip | Skip:
    from decouple.data.faces import NoFaceWarning, crop_faces
    from decouple.data.io import MediaError, read_audio, read_av, read_video

    events: list[str] = []
    audio_file = root / src.audio if src.audio is not None else None
    use_file = audio_file is not None and src.prefer_audio_file and audio_file.is_file()
    readable = (MediaError, OSError, RuntimeError)
    try:
        if use_file:
            video, audio = read_video(root / src.video, fps=options.fps), None
        else:
            video, audio = read_av(root / src.video, fps=options.fps,
                                   sample_rate=options.sample_rate)
    except readable as err:
        return Skip(src.video, UNREADABLE_VIDEO, _detail(err, root, src.video), src.key)
    if audio is None:
        if audio_file is None or not audio_file.is_file():
            detail = "the video has no audio stream" + (
                f" and {src.audio} does not exist" if src.audio else " and no audio file matches"
            )
            return Skip(src.video, MISSING_AUDIO, detail, src.key)
        try:
            audio = read_audio(audio_file, sample_rate=options.sample_rate)
        except readable as err:
            rel = src.audio or src.video
            return Skip(rel, UNREADABLE_AUDIO, _detail(err, root, rel), src.key)
    elif src.prefer_audio_file:  # the separate file was wanted but is missing
        events.append(EVENT_AUDIO_FROM_STREAM)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoFaceWarning)
        crops, _ = crop_faces(video.frames, options.size, detector=options.face,
                              margin=options.margin, every=options.detect_every)
    if any(issubclass(w.category, NoFaceWarning) for w in caught):
        events.append(EVENT_FIXED_CROP)
    t = int(crops.shape[0])
    n = max(1, round(t * options.sample_rate / options.fps))
    wave = audio.waveform.to(torch.float32)[:n]
    if wave.shape[0] < n:
        wave = torch.nn.functional.pad(wave, (0, n - wave.shape[0]))
    from decouple.data.io import encode_audio, encode_video

    video_bytes = encode_video(crops, options.fps, crf=options.crf, preset=options.preset)
    audio_bytes = encode_audio(wave, options.sample_rate, format="flac")
    return ProcessedClip(src, video_bytes, audio_bytes, wave.numpy().copy(), t, events)


def _detail(err: BaseException, root: Path, rel: str) -> str:
    """An error message without the file name (the skip names it) and with relative paths."""
    text = str(err).replace(f"{root}{os.sep}", "")
    return text.removeprefix(f"{rel}: ")


# ----------------------------------------------------------------------------- per group


def assemble_unit(
    dataset: str,
    unit: Unit,
    outcomes: Sequence[ProcessedClip | Skip],
    emotion_set: EmotionSet,
    options: ConvertOptions,
) -> tuple[list[Clip], list[Skip]]:
    """Turn a unit's processed clips into shard samples, aligning a group to its reference.

    With two or more clips left, the group's reference is picked with
    [pick_reference][decouple.data.convert.common.pick_reference] among them (so a corrupt
    neutral clip hands the role on), written first, and every clip gets `align.npy`: the DTW
    path `(l, 2)` from the reference's frames (column 0) to its own (column 1), computed from
    the audio with `decouple.data.align.align_audio` (the reference's own path is the
    diagonal). A group left with one clip is written as a single clip (group `""`).

    Args:
        dataset: The `dataset` field of the clips.
        unit: The unit.
        outcomes: One result of [process_clip][decouple.data.convert.common.process_clip] per
            clip of the unit, in the unit's order.
        emotion_set: Set giving the emotion ids.
        options: The conversion options (fps, sample rate).

    Returns:
        The clips to write as one group (empty if every clip was skipped), and the skips.

    Examples:
        >>> from decouple.data.registry import RAVDESS
        >>> src = ClipSource("k1", "01", "calm", 1, "01", "a.mp4")
        >>> done = ProcessedClip(src, b"mp4", b"flac", np.zeros(640, np.float32), 1)
        >>> clips, skips = assemble_unit("ravdess", Unit("k1", "all", "", (src,)), [done],
        ...                              RAVDESS, ConvertOptions())
        >>> clips[0].meta.emotion_id, clips[0].meta.group, skips
        (1, '', [])
    """
    from decouple.data.align import align_audio
    from decouple.data.io import Audio

    if len(outcomes) != len(unit.clips):
        raise ValueError(f"unit {unit.uid!r}: {len(outcomes)} outcomes for {len(unit.clips)} clips")
    done = [o for o in outcomes if isinstance(o, ProcessedClip)]
    skips = [o for o in outcomes if isinstance(o, Skip)]
    if not done:
        return [], skips
    grouped = bool(unit.group) and len(done) >= 2
    if grouped:
        r = pick_reference([d.source for d in done])
        done = [done[r]] + done[:r] + done[r + 1 :]
    ref = done[0]
    clips = []
    for d in done:
        s = d.source
        meta = ClipMeta(
            dataset=dataset, speaker=s.speaker, emotion=s.emotion,
            emotion_id=emotion_set.id(s.emotion), intensity=s.intensity, sentence=s.sentence,
            group=unit.group if grouped else "", fps=float(options.fps),
            sample_rate=options.sample_rate, num_frames=d.num_frames, num_samples=d.num_samples,
            source=s.video, reference=ref.source.key if grouped else "",
        )  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        if grouped:
            if d is ref:
                path = np.stack([np.arange(d.num_frames)] * 2, axis=1)
            else:
                path = align_audio(
                    Audio(torch.from_numpy(ref.waveform), options.sample_rate),
                    Audio(torch.from_numpy(d.waveform), options.sample_rate),
                    ref.num_frames, d.num_frames, float(options.fps),
                ).numpy()  # fmt: skip
            arrays[ALIGN] = path.astype(np.int32)
        clips.append(Clip(s.key, meta, d.video, d.audio, arrays))
    return clips, skips


# ----------------------------------------------------------------------------- state


def _atomic_json(path: Path, obj: Any, *, compact: bool = False) -> None:
    layout: dict[str, Any] = {"separators": (",", ":")} if compact else {"indent": 1}
    data = json.dumps(obj, ensure_ascii=False, allow_nan=False, **layout).encode("utf-8")
    atomic_write_bytes(path, data + b"\n")


def _read_state(path: Path) -> dict[str, Any] | None:
    """The resume state, validated; None when there is none."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    hint = "delete it or run with --overwrite to start over"
    try:
        d = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); {hint}") from None
    if not isinstance(d, dict) or d.get("format") != _STATE_FORMAT:
        raise ValueError(f"{path}: field 'format': expected {_STATE_FORMAT!r}; {hint}")
    if d.get("version") != _STATE_VERSION:
        raise ValueError(f"{path}: field 'version': {d.get('version')!r}, this code reads "
                         f"{_STATE_VERSION}; {hint}")
    for name, kind in (("dataset", str), ("settings", dict), ("complete", bool),
                       ("splits", dict)):
        if not isinstance(d.get(name), kind):
            raise ValueError(f"{path}: field {name!r}: expected {kind.__name__}, got "
                             f"{d.get(name)!r}; {hint}")
    for split, s in d["splits"].items():
        where = f"splits.{split}"
        if not isinstance(s, dict) or not isinstance(s.get("shards"), list) or not isinstance(
            s.get("units"), dict
        ):
            raise ValueError(f"{path}: field {where!r}: expected 'shards' (list) and 'units' "
                             f"(object); {hint}")
        for i, entry in enumerate(s["shards"]):
            ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                  and isinstance(entry.get("bytes"), int) and isinstance(entry.get("units"), list))
            if not ok:
                raise ValueError(f"{path}: field '{where}.shards[{i}]': expected name, bytes, "
                                 f"units; {hint}")
            for uid in entry["units"]:
                if uid not in s["units"]:
                    raise ValueError(f"{path}: field '{where}.shards[{i}].units': unit {uid!r} "
                                     f"has no record in '{where}.units'; {hint}")
        for uid, rec in s["units"].items():
            ok = (isinstance(rec, dict) and isinstance(rec.get("signature"), str)
                  and isinstance(rec.get("keys"), list) and isinstance(rec.get("skipped"), list)
                  and isinstance(rec.get("events"), dict)
                  and (rec.get("shard") is None or isinstance(rec.get("shard"), str)))
            if not ok:
                raise ValueError(f"{path}: field '{where}.units.{uid}': expected signature, "
                                 f"shard, keys, skipped, events; {hint}")
    return d


class _SplitOutput:
    """One split being written: its ShardWriter, the replay of finished shards, the records."""

    def __init__(self, out: Path, split: str, plan: CorpusPlan, options: ConvertOptions,
                 old: dict[str, Any] | None, overwrite: bool) -> None:
        self.out = out
        self.split = split
        self.writer = ShardWriter(
            out, split, plan.emotion_set, max_samples=options.max_samples,
            max_bytes=options.max_bytes, fps=float(options.fps),
            sample_rate=options.sample_rate, overwrite=overwrite,
        )  # fmt: skip
        self.old: dict[str, Any] = old or {"shards": [], "units": {}}
        self.shards: list[dict[str, Any]] = []  # finished in this run: name, bytes, units
        self.units: dict[str, dict[str, Any]] = {}  # finished units: records
        self.pending: list[tuple[str, dict[str, Any]]] = []  # in the shard in progress
        self.done: set[str] = set()
        self.replayed_clips = 0

    # -- writing -------------------------------------------------------------------------------

    def write(self, uid: str, record: dict[str, Any], clips: Sequence[Clip]) -> bool:
        """Write a unit; True when a shard was finished (the state should be saved)."""
        self.done.add(uid)
        if not clips:
            self.units[uid] = {**record, "shard": None, "keys": []}
            return False
        before = len(self.writer.shards)
        name = self.writer.write_group(clips)
        finished = self._commit(before)
        self.pending.append((uid, {**record, "shard": name, "keys": [c.key for c in clips]}))
        return finished

    def _commit(self, before: int) -> bool:
        infos = self.writer.shards[before:]
        for info in infos:
            members = [(u, r) for u, r in self.pending if r["shard"] == info.name]
            self.shards.append({"name": info.name, "bytes": info.bytes,
                                "units": [u for u, _ in members]})
            for u, r in members:
                self.units[u] = r
            self.pending = [(u, r) for u, r in self.pending if r["shard"] != info.name]
        return bool(infos)

    def close(self) -> None:
        before = len(self.writer.shards)
        self.writer.close()
        self._commit(before)

    def snapshot(self) -> dict[str, Any]:
        """State of this split: the shards finished in this run, then the earlier run's
        finished shards whose files this run has not replaced yet (a resume checks them)."""
        shards = list(self.shards)
        units = dict(self.units)
        for pos, entry in enumerate(self.old["shards"]):
            if pos < len(self.shards):
                continue
            shards.append(entry)
            for uid in entry["units"]:
                units.setdefault(uid, self.old["units"][uid])
        return {"shards": shards, "units": units}

    # -- replay --------------------------------------------------------------------------------

    def replay(self, units: Mapping[str, Unit], signatures: Mapping[str, str]) -> None:
        """Take over the earlier run's finished work that is still valid.

        Units without clips (all skipped) are taken over from their records; finished shards
        are read back in order and their units rewritten through the writer (no decoding).
        Replay stops at the first shard that is missing, of another size, unreadable, or
        whose samples differ from the state; its units and the later ones are redone.
        """
        def valid(uid: str) -> bool:
            rec = self.old["units"].get(uid)
            return (uid in units and uid not in self.done and rec is not None
                    and rec["signature"] == signatures[uid])

        for uid, rec in self.old["units"].items():
            if rec.get("shard") is None and valid(uid):
                self.done.add(uid)
                self.units[uid] = rec
        for entry in self.old["shards"]:
            if not self._replay_shard(entry, valid):
                break

    def _replay_shard(self, entry: dict[str, Any], valid: Any) -> bool:
        path = self.out / entry["name"]
        try:
            if path.stat().st_size != entry["bytes"]:
                return False
        except OSError:
            return False
        samples = iter_samples(path)
        try:
            for uid in entry["units"]:
                rec = self.old["units"][uid]
                raw = [next(samples) for _ in rec["keys"]]
                if [s["__key__"] for s in raw] != rec["keys"]:
                    return False
                if not valid(uid):
                    continue
                clips = [Clip.from_members(s["__key__"], s, f"{entry['name']}:{s['__key__']}")
                         for s in raw]
                self.write(uid, {k: v for k, v in rec.items() if k not in ("shard", "keys")},
                           clips)
                self.replayed_clips += len(clips)
        except (StopIteration, ShardError, SchemaError, KeyError):
            return False
        finally:
            samples.close()
        return True


def _existing_split_files(out: Path, split: str) -> list[Path]:
    pattern = re.compile(re.escape(split) + r"-\d{6}\.tar")
    found = [p for p in out.glob(f"{split}-*.tar") if pattern.fullmatch(p.name)]
    if index_path(out, split).exists():
        found.append(index_path(out, split))
    return found


def _remove_split(out: Path, split: str) -> None:
    for p in _existing_split_files(out, split):
        p.unlink()


def _remove_temporaries(out: Path, splits: Iterable[str]) -> None:
    """Temporary shard files left by a killed run (`.{split}-NNNNNN.tar.XXXX.tmp`)."""
    for split in splits:
        pattern = re.compile(r"\." + re.escape(split) + r"-\d{6}\.tar\..+\.tmp")
        for p in out.glob(f".{split}-*.tmp"):
            if pattern.fullmatch(p.name):
                p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- scheduling


def _init_worker() -> None:
    """Worker processes: one thread each (the parallelism is across processes)."""
    torch.set_num_threads(1)
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Worker processes are never forked from this process (torch and the decoders hold
    threads and locks a fork would copy in an unknown state): `forkserver` where it exists,
    with the media stack imported once in the server so each worker starts fast; else
    `spawn`."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["decouple.data.convert.common", "decouple.data.io",
                                    "decouple.data.faces"])
        return ctx
    return multiprocessing.get_context("spawn")


def _outcomes(
    units: Sequence[Unit],
    root: Path,
    options: ConvertOptions,
    executor: ProcessPoolExecutor | None,
    progress: Any,
) -> Iterator[tuple[Unit, list[ProcessedClip | Skip]]]:
    """Process the clips of `units` and yield each unit with its outcomes, in unit order.

    With an executor, clips are submitted a unit at a time while fewer than four clips per
    worker are in flight; finished units wait until the units before them are done, so the
    output order does not depend on timing.
    """
    if executor is None:
        for unit in units:
            outcomes = []
            for c in unit.clips:
                outcomes.append(process_clip(root, c, options))
                progress.update(1)
            yield unit, outcomes
        return
    window = 4 * max(1, options.workers)
    todo = deque(units)
    queue: deque[tuple[Unit, list[Future]]] = deque()
    pending: set[Future] = set()

    def fill() -> None:
        while todo and len(pending) < window:
            unit = todo.popleft()
            futures = [executor.submit(process_clip, root, c, options) for c in unit.clips]
            queue.append((unit, futures))
            pending.update(futures)

    fill()
    while queue:
        if pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                pending.discard(f)
                progress.update(1)
        while queue and all(f.done() for f in queue[0][1]):
            unit, futures = queue.popleft()
            yield unit, [f.result() for f in futures]
        fill()


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- the run


def run_conversion(plan: CorpusPlan, out: str | Path, options: ConvertOptions) -> dict[str, Any]:
    """Convert a planned corpus into shards, resumably, and return the summary.

    **Output** (in `out`): per split `{split}-%06d.tar` and `{split}-index.json`
    (`decouple.data.shards`), `convert-state.json` and `convert-summary.json`.

    **Resume.** Each time a shard is finished (renamed to its final name) the state file is
    rewritten atomically: the settings (processing options and corpus options), and per split
    the finished shards in order, each with the work units it holds, and per unit the
    signature of its input files ([unit_signature][decouple.data.convert.common.unit_signature]),
    its sample keys, its skipped clips and its events. When the run ends the indexes are
    written and the state is marked complete. A new run with the same `out`:

    - refuses other settings (`ValueError` naming them; `overwrite=True` starts over);
    - finds nothing to do when the state is complete, every index and shard is in place with
      its recorded size, and every planned unit is recorded with an unchanged signature: it
      writes nothing but the summary;
    - otherwise deletes the indexes (a split whose index exists is complete), deletes
      temporary files of a killed run, takes over units whose clips were all skipped,
      and **replays** the finished shards in order: their samples are read back and rewritten
      through a new `ShardWriter` (tar copying, no decoding, byte-identical shards), dropping
      units whose inputs changed or left the corpus; replay stops at the first shard that is
      missing, has another size or does not hold the recorded samples. Then the remaining
      units are converted. Units in the shard that was in progress when a run stopped are
      converted again.

    An exception (or Ctrl-C) aborts the writers (the shard in progress is deleted, finished
    shards stay) and saves the state, so the next run resumes.

    Args:
        plan: The units, from a converter's `scan_*`.
        out: Output directory (created).
        options: Processing and writing options.

    Returns:
        The summary (also saved as `convert-summary.json`): `dataset`, `source`, `output`,
        `settings`, `splits` (clips, groups, shards per split), `clips_written`,
        `groups_written`, `clips_converted` (in this run), `clips_reused` (taken over from an
        earlier run), `clips_skipped`, `skipped_by_reason`, `skipped` (every skipped file with
        its reason and detail), `events`, `notes`, `nothing_to_do`, `seconds`.

    Raises:
        ImportError: The face detector's package (OpenCV, dlib) is not installed.
        ValueError: Another conversion's state in `out` (other settings or corpus) or an
            unreadable state file.
        FileExistsError: `out` holds shards of a split but no resume state (not written by a
            converter, or the state was deleted) and `overwrite` is False.

    Examples:
        >>> import tempfile
        >>> from decouple.data.io import write_av
        >>> from decouple.data.registry import CREMAD
        >>> root, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> for code in ("NEU", "ANG"):
        ...     _ = write_av(root / f"1001_DFA_{code}_XX.mp4",
        ...                  torch.zeros(8, 3, 32, 32, dtype=torch.uint8), 25,
        ...                  torch.zeros(5120), 16000)
        >>> clips = [ClipSource(f"k{code}", "1001", name, 0, "DFA", f"1001_DFA_{code}_XX.mp4")
        ...          for code, name in (("NEU", "neutral"), ("ANG", "angry"))]
        >>> plan = CorpusPlan("cremad", root, CREMAD, [Unit("g", "all", "g", tuple(clips))], [])
        >>> opts = ConvertOptions(face="fixed", size=16, progress=False)
        >>> s = run_conversion(plan, out, opts)
        >>> s["clips_written"], s["groups_written"], s["clips_converted"]
        (2, 1, 2)
        >>> run_conversion(plan, out, opts)["nothing_to_do"]  # a re-run does no work
        True
    """
    start = time.monotonic()
    _check_face_backend(options.face)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"dataset": plan.dataset, "emotion_set": plan.emotion_set.to_json(),
                **options.settings(), "corpus": plan.params}
    settings = json.loads(json.dumps(settings))  # as it reads back from the state file
    state_path = out / STATE_FILE
    splits = plan.splits

    state = None if options.overwrite else _read_state(state_path)
    if options.overwrite:
        old = None
        with contextlib.suppress(ValueError):
            old = _read_state(state_path)
        for split in set(old["splits"] if old else ()) | set(splits):
            _remove_split(out, split)
        state_path.unlink(missing_ok=True)
        (out / SUMMARY_FILE).unlink(missing_ok=True)
    if state is not None and (state["dataset"] != plan.dataset or state["settings"] != settings):
        diff = sorted(k for k in set(settings) | set(state["settings"])
                      if settings.get(k) != state["settings"].get(k))
        raise ValueError(
            f"{state_path}: an earlier conversion of {state['dataset']!r} with other settings "
            f"({', '.join(diff)} differ) is in {out}; run with the same options to resume, "
            "or with --overwrite to start over"
        )
    if state is None:
        for split in splits:
            found = _existing_split_files(out, split)
            if found:
                raise FileExistsError(
                    f"{out}: split {split!r} already exists ({found[0].name}, ...) but there is "
                    f"no {STATE_FILE} to resume from; run with --overwrite to replace it"
                )

    by_split: dict[str, list[Unit]] = {s: [] for s in splits}
    for u in plan.units:
        by_split[u.split].append(u)
    signatures = {s: {u.uid: unit_signature(plan.root, u) for u in us}
                  for s, us in by_split.items()}

    if state is not None and _nothing_to_do(state, out, by_split, signatures):
        summary = _summary(plan, out, options, settings, state["splits"], converted=0,
                           reused=sum(len(r["keys"]) for s in splits
                                      for r in state["splits"][s]["units"].values()),
                           seconds=time.monotonic() - start, nothing_to_do=True)
        _atomic_json(out / SUMMARY_FILE, summary)
        return summary

    old_splits = dict(state["splits"]) if state is not None else {}
    if state is not None:
        # Incomplete from now on: no index may claim a split this run is rewriting, and a
        # split the corpus no longer has is removed.
        for split in [s for s in old_splits if s not in by_split]:
            _remove_split(out, split)
            del old_splits[split]
        state["splits"] = old_splits
        state["complete"] = False
        _atomic_json(state_path, state, compact=True)
        for split in old_splits:
            index_path(out, split).unlink(missing_ok=True)
    _remove_temporaries(out, splits)

    outputs: dict[str, _SplitOutput] = {}

    def save(complete: bool) -> None:
        snap = {s: o.snapshot() for s, o in outputs.items()}
        for s, old in old_splits.items():  # splits not opened yet keep their records
            snap.setdefault(s, old)
        _atomic_json(state_path, {"format": _STATE_FORMAT, "version": _STATE_VERSION,
                                  "dataset": plan.dataset, "settings": settings,
                                  "complete": complete, "splits": snap}, compact=True)

    if options.progress:
        from tqdm.auto import tqdm

        progress: Any = tqdm(total=plan.num_clips, unit="clip", desc=f"convert {plan.dataset}",
                             dynamic_ncols=True)
    else:
        progress = _NoProgress()
    converted = 0
    executor = None
    try:
        for split in splits:
            exists = bool(_existing_split_files(out, split))
            outputs[split] = _SplitOutput(out, split, plan, options, old_splits.get(split),
                                          overwrite=exists)
            units = {u.uid: u for u in by_split[split]}
            outputs[split].replay(units, signatures[split])
            progress.update(sum(len(units[u].clips) for u in outputs[split].done))
        todo = [u for u in plan.units if u.uid not in outputs[u.split].done]
        if options.workers > 1 and todo:
            executor = ProcessPoolExecutor(max_workers=options.workers,
                                           mp_context=_worker_context(),
                                           initializer=_init_worker)
        for unit, outcomes in _outcomes(todo, plan.root, options, executor, progress):
            clips, skips = assemble_unit(plan.dataset, unit, outcomes, plan.emotion_set, options)
            events = Counter(e for o in outcomes if isinstance(o, ProcessedClip)
                             for e in o.events)
            converted += sum(isinstance(o, ProcessedClip) for o in outcomes)
            record = {"signature": signatures[unit.split][unit.uid],
                      "skipped": [s.to_json() for s in skips], "events": dict(events)}
            if outputs[unit.split].write(unit.uid, record, clips):
                save(complete=False)
        for o in outputs.values():
            o.close()
    except BaseException:
        for o in outputs.values():
            o.writer.abort()
        save(complete=False)
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        progress.close()
    save(complete=True)
    final = {s: o.snapshot() for s, o in outputs.items()}
    summary = _summary(plan, out, options, settings, final, converted=converted,
                       reused=sum(o.replayed_clips for o in outputs.values()),
                       seconds=time.monotonic() - start, nothing_to_do=False)
    _atomic_json(out / SUMMARY_FILE, summary)
    return summary


def _check_face_backend(face: str) -> None:
    """Fail before any work when the detector's package is missing (rather than skipping
    every clip as a processing error)."""
    import importlib.util

    need = {"haar": ("cv2", "opencv-python-headless>=4.8,<5 (pip install 'decouple[data]')"),
            "dlib": ("dlib", "dlib (pip install dlib-bin; it is in no extra of decouple)")}
    if face in need and importlib.util.find_spec(need[face][0]) is None:
        raise ImportError(f"--face {face} needs {need[face][1]}; or use --face fixed")


def _nothing_to_do(state: dict[str, Any], out: Path, by_split: Mapping[str, list[Unit]],
                   signatures: Mapping[str, Mapping[str, str]]) -> bool:
    if not state["complete"] or set(state["splits"]) != set(by_split):
        return False
    for split, units in by_split.items():
        recorded = state["splits"][split]
        if set(recorded["units"]) != {u.uid for u in units}:
            return False
        if any(recorded["units"][u.uid]["signature"] != signatures[split][u.uid] for u in units):
            return False
        if not index_path(out, split).is_file():
            return False
        for entry in recorded["shards"]:
            try:
                if (out / entry["name"]).stat().st_size != entry["bytes"]:
                    return False
            except OSError:
                return False
    return True


def _summary(plan: CorpusPlan, out: Path, options: ConvertOptions, settings: dict[str, Any],
             splits: Mapping[str, Mapping[str, Any]], *, converted: int, reused: int,
             seconds: float, nothing_to_do: bool) -> dict[str, Any]:
    skipped = [s.to_json() for s in plan.skipped]
    events: Counter[str] = Counter()
    per_split = {}
    for split in plan.splits:
        units = splits[split]["units"]
        keys = [k for r in units.values() for k in r["keys"]]
        groups = sum(1 for r in units.values() if len(r["keys"]) >= 2)
        per_split[split] = {"clips": len(keys), "groups": groups,
                            "shards": len(splits[split]["shards"])}
        for r in units.values():
            skipped.extend(r["skipped"])
            events.update(r["events"])
    by_reason = Counter(s["reason"] for s in skipped)
    order = {r: i for i, r in enumerate(SKIP_REASONS)}
    return {
        "dataset": plan.dataset,
        "source": str(Path(plan.root).resolve()),
        "output": str(out.resolve()),
        "settings": settings,
        "splits": per_split,
        "clips_written": sum(s["clips"] for s in per_split.values()),
        "groups_written": sum(s["groups"] for s in per_split.values()),
        "clips_converted": converted,
        "clips_reused": reused,
        "clips_skipped": len(skipped),
        "skipped_by_reason": dict(sorted(by_reason.items(),
                                         key=lambda kv: (order.get(kv[0], 99), kv[0]))),
        "skipped": sorted(skipped, key=lambda s: (s["source"], s["reason"])),
        "events": dict(sorted(events.items())),
        "notes": list(plan.notes),
        "nothing_to_do": nothing_to_do,
        "seconds": round(seconds, 3),
    }


def format_summary(summary: Mapping[str, Any], *, max_listed: int = 20) -> str:
    """The summary as text for the terminal.

    Args:
        summary: What [run_conversion][decouple.data.convert.common.run_conversion] returned.
        max_listed: Skipped files listed by name (the rest are counted; the JSON has all).

    Returns:
        Several lines of text.

    Examples:
        >>> s = {"dataset": "cremad", "output": "/out", "splits": {"all": {"clips": 2,
        ...      "groups": 1, "shards": 1}}, "clips_written": 2, "groups_written": 1,
        ...      "clips_converted": 2, "clips_reused": 0, "clips_skipped": 1,
        ...      "skipped_by_reason": {"missing audio": 1}, "events": {}, "notes": [],
        ...      "nothing_to_do": False, "seconds": 1.5,
        ...      "skipped": [{"source": "x.mp4", "reason": "missing audio", "detail": "",
        ...                   "key": ""}]}
        >>> print(format_summary(s))  # doctest: +NORMALIZE_WHITESPACE
        cremad -> /out: 2 clips written (1 parallel groups), 2 converted now, 0 reused, 1.5 s
          split all: 2 clips, 1 groups, 1 shards
        1 clips skipped:
          missing audio: 1
            x.mp4
    """
    lines = []
    if summary.get("nothing_to_do"):
        lines.append(f"{summary['dataset']} -> {summary['output']}: nothing to do, "
                     f"{summary['clips_written']} clips already converted")
    else:
        lines.append(
            f"{summary['dataset']} -> {summary['output']}: {summary['clips_written']} clips "
            f"written ({summary['groups_written']} parallel groups), "
            f"{summary['clips_converted']} converted now, {summary['clips_reused']} reused, "
            f"{summary['seconds']:g} s"
        )
    for split, s in summary["splits"].items():
        lines.append(f"  split {split}: {s['clips']} clips, {s['groups']} groups, "
                     f"{s['shards']} shards")
    if summary["clips_skipped"]:
        lines.append(f"{summary['clips_skipped']} clips skipped:")
        listed = 0
        for reason, n in summary["skipped_by_reason"].items():
            lines.append(f"  {reason}: {n}")
            for s in summary["skipped"]:
                if s["reason"] == reason and listed < max_listed:
                    detail = f"  ({s['detail']})" if s.get("detail") else ""
                    lines.append(f"    {s['source']}{detail}")
                    listed += 1
        if summary["clips_skipped"] > listed:
            lines.append(f"  ... {summary['clips_skipped'] - listed} more in {SUMMARY_FILE}")
    for name, n in summary.get("events", {}).items():
        lines.append(f"note: {name}: {n} clip(s)")
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def check_speaker_list(speakers: Iterable[str], where: str) -> tuple[str, ...]:
    """Validate a list of speaker ids (used for `--test-speakers`).

    Args:
        speakers: Speaker ids.
        where: Option or file name for errors.

    Returns:
        The ids, sorted and unique.

    Raises:
        ValueError: An empty list or an id that is not `[A-Za-z0-9_-]+`.

    Examples:
        >>> check_speaker_list(["M003", "W015", "M003"], "--test-speakers")
        ('M003', 'W015')
    """
    ids = sorted(set(speakers))
    if not ids:
        raise ValueError(f"{where}: expected at least one speaker id")
    bad = [s for s in ids if not _KEY_RE.fullmatch(s)]
    if bad:
        raise ValueError(f"{where}: invalid speaker ids {bad} (expected [A-Za-z0-9_-]+)")
    return tuple(ids)


def relative_posix(path: Path, root: Path) -> str:
    """`path` relative to `root`, with `/` separators (the `source` field of clips).

    Args:
        path: A file under `root`.
        root: The corpus root.

    Returns:
        The relative path.

    Examples:
        >>> relative_posix(Path("/data/mead/M003/audio/x.m4a"), Path("/data/mead"))
        'M003/audio/x.m4a'
    """
    return path.relative_to(root).as_posix()


def media_files(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """Every file under `root` with one of the suffixes (case-insensitive), sorted.

    Hidden files and folders (a leading dot, such as converter temporaries) are left out.

    Args:
        root: Corpus root.
        suffixes: Suffixes with the dot, e.g. `{".mp4", ".wav"}`.

    Returns:
        The files.

    Raises:
        FileNotFoundError: `root` is not a directory.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("a/x.MP4", "a/.hidden.mp4", "b/notes.txt"):
        ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (root / name).write_bytes(b"")
        >>> [relative_posix(p, root) for p in media_files(root, {".mp4"})]
        ['a/x.MP4']
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus root is not a directory")
    wanted = {s.lower() for s in suffixes}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in wanted:
                found.append(Path(dirpath) / name)
    return sorted(found)

