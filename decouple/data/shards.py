"""Writing and reading the shards of a split: `{split}-%06d.tar` plus `{split}-index.json`.

- [ShardWriter][decouple.data.shards.ShardWriter] writes clips a parallel group at a time; a
  group never straddles two shards. Each shard is written under a temporary name in the same
  directory and renamed when complete, and the index is written last, also atomically: a split
  whose index exists is complete.
- [read_index][decouple.data.shards.read_index] reads and validates the index (and refuses
  any other schema version at once).
- [iter_samples][decouple.data.shards.iter_samples] yields the raw members of each sample of
  one tar, in order, and raises [ShardError][decouple.data.schema.ShardError] naming the shard
  when the tar is missing, truncated or corrupt (after yielding every complete sample before
  the damage), so that a reader can skip the rest of it with a warning.

The per-sample schema is in `decouple.data.schema`; the format is described on the data-format
page of the docs.
"""

from __future__ import annotations

import json
import math
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from decouple.data.align import check_path
from decouple.data.registry import EmotionSet, get_emotion_set
from decouple.data.schema import (
    ALIGN,
    SCHEMA_VERSION,
    Clip,
    SchemaError,
    SchemaVersionError,
    ShardError,
    _is_int,
    _is_number,
    check_key,
)

__all__ = [
    "ShardIndex",
    "ShardInfo",
    "ShardWriter",
    "clip_problems",
    "group_problems",
    "index_path",
    "iter_samples",
    "read_index",
    "shard_name",
]

_BLOCK = 512
_INDEX_FIELDS = (
    "schema_version", "split", "emotion_set", "fps", "sample_rate", "shards", "num_samples",
    "num_groups",
)  # fmt: skip
_SHARD_FIELDS = ("name", "samples", "groups", "bytes")
_SHARD_OPTIONAL = ("frames",)


def shard_name(split: str, number: int) -> str:
    """File name of shard `number` of a split.

    Args:
        split: Split name (`[A-Za-z0-9_-]+`).
        number: Shard number, from 0.

    Returns:
        `{split}-%06d.tar`.

    Examples:
        >>> shard_name("train", 12)
        'train-000012.tar'
    """
    return f"{split}-{number:06d}.tar"


def index_path(root: str | Path, split: str) -> Path:
    """Path of the index file of a split.

    Args:
        root: Directory of the shards.
        split: Split name.

    Returns:
        `root / f"{split}-index.json"`.

    Examples:
        >>> index_path("/data/mead", "train").as_posix()
        '/data/mead/train-index.json'
    """
    return Path(root) / f"{split}-index.json"


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the index lists it.

    Attributes:
        name: File name, `{split}-%06d.tar`.
        samples: Samples (clips) in the shard.
        groups: Parallel groups (distinct non-empty `group` ids) in the shard.
        bytes: File size in bytes.
        frames: Video frames (`num_frames`) of each sample, in shard order, or None (an
            index written before the field existed). Readers use it to count training
            windows per clip before reading any shard.
    """

    name: str
    samples: int
    groups: int
    bytes: int
    frames: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ShardIndex:
    """The index of a split: what `{split}-index.json` holds.

    Attributes:
        root: Directory of the shards (not stored in the file).
        split: Split name.
        emotion_set: The emotion names and ids the clips' `emotion_id` refer to.
        fps: Video frame rate of every clip.
        sample_rate: Audio sample rate of every clip.
        shards: The shards, in writing order.
        schema_version: Format version ([SCHEMA_VERSION][decouple.data.schema.SCHEMA_VERSION]).

    Examples:
        >>> from decouple.data.registry import get_emotion_set
        >>> index = ShardIndex(Path("/data"), "train", get_emotion_set("mead"), 25.0, 16000,
        ...                    (ShardInfo("train-000000.tar", 10, 3, 40960),))
        >>> index.num_samples, index.num_groups, index.paths[0].as_posix()
        (10, 3, '/data/train-000000.tar')
    """

    root: Path
    split: str
    emotion_set: EmotionSet
    fps: float
    sample_rate: int
    shards: tuple[ShardInfo, ...]
    schema_version: int = SCHEMA_VERSION

    @property
    def num_samples(self) -> int:
        """Samples in the split."""
        return sum(s.samples for s in self.shards)

    @property
    def num_groups(self) -> int:
        """Parallel groups in the split."""
        return sum(s.groups for s in self.shards)

    @property
    def paths(self) -> list[Path]:
        """Paths of the shards, in index order."""
        return [self.root / s.name for s in self.shards]

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the index file.

        Returns:
            A dict with the fields of the index file, in the documented order.

        Examples:
            >>> from decouple.data.registry import get_emotion_set
            >>> index = ShardIndex(Path("."), "test", get_emotion_set("cremad"), 25.0, 16000, ())
            >>> list(index.to_json())
            ['schema_version', 'split', 'emotion_set', 'fps', 'sample_rate', 'shards', 'num_samples', 'num_groups']
        """  # noqa: E501
        return {
            "schema_version": self.schema_version,
            "split": self.split,
            "emotion_set": self.emotion_set.to_json(),
            "fps": float(self.fps),
            "sample_rate": self.sample_rate,
            "shards": [
                {"name": s.name, "samples": s.samples, "groups": s.groups, "bytes": s.bytes}
                | ({} if s.frames is None else {"frames": list(s.frames)})
                for s in self.shards
            ],
            "num_samples": self.num_samples,
            "num_groups": self.num_groups,
        }


def read_index(root: str | Path, split: str) -> ShardIndex:
    """Read and validate `{split}-index.json` in `root`.

    The schema version is checked first: a file of another version raises
    [SchemaVersionError][decouple.data.schema.SchemaVersionError] before anything else is
    read, so a reader fails at once with a clear message instead of misreading fields.

    Args:
        root: Directory of the shards.
        split: Split name.

    Returns:
        The index.

    Raises:
        FileNotFoundError: If the index file does not exist (the message lists the index
            files that do).
        SchemaVersionError: If `schema_version` is not
            [SCHEMA_VERSION][decouple.data.schema.SCHEMA_VERSION].
        SchemaError: Naming the file and field when the JSON is invalid, a field is missing,
            unknown or wrong, or the totals disagree with the shard list.

    Examples:
        >>> import tempfile
        >>> read_index(tempfile.mkdtemp(), "train")
        Traceback (most recent call last):
        ...
        FileNotFoundError: .../train-index.json: no index for split 'train' (index files there: none)
    """  # noqa: E501
    check_key(split, "read_index", "split")
    path = index_path(root, split)
    where = str(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        others = sorted(p.name for p in Path(root).glob("*-index.json"))
        raise FileNotFoundError(
            f"{path}: no index for split {split!r} (index files there: "
            f"{', '.join(others) if others else 'none'})"
        ) from None
    try:
        d = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(where, "", f"not valid JSON ({err})") from None
    if not isinstance(d, dict):
        raise SchemaError(where, "", f"expected a JSON object, got {type(d).__name__}")
    if "schema_version" not in d:
        raise SchemaError(where, "schema_version", "missing")
    version = d["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError(where, "schema_version", f"expected an integer, got {version!r}")
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(where, version, SCHEMA_VERSION)
    _check_fields(d, _INDEX_FIELDS, where, "")
    if d["split"] != split:
        raise SchemaError(where, "split", f"expected {split!r}, got {d['split']!r}")
    try:
        emotion_set = EmotionSet.from_json(d["emotion_set"], "")
    except (ValueError, KeyError, TypeError) as err:
        raise SchemaError(where, "emotion_set", str(err).lstrip(": ")) from None
    fps = d["fps"]
    if not _is_number(fps) or not (math.isfinite(fps) and fps > 0):
        raise SchemaError(where, "fps", f"expected a positive number, got {fps!r}")
    sample_rate = d["sample_rate"]
    if not _is_int(sample_rate) or sample_rate <= 0:
        raise SchemaError(where, "sample_rate", f"expected a positive integer, got {sample_rate!r}")
    if not isinstance(d["shards"], list):
        raise SchemaError(where, "shards", f"expected a list, got {type(d['shards']).__name__}")
    name_re = re.compile(re.escape(split) + r"-\d{6}\.tar")
    shards: list[ShardInfo] = []
    for i, s in enumerate(d["shards"]):
        field = f"shards[{i}]"
        if not isinstance(s, dict):
            raise SchemaError(where, field, f"expected an object, got {s!r}")
        _check_fields(s, _SHARD_FIELDS, where, field + ".", _SHARD_OPTIONAL)
        if not isinstance(s["name"], str) or not name_re.fullmatch(s["name"]):
            raise SchemaError(where, field + ".name",
                              f"expected '{split}-NNNNNN.tar', got {s['name']!r}")
        for key, low in (("samples", 1), ("groups", 0), ("bytes", 1)):
            if not _is_int(s[key]) or s[key] < low:
                raise SchemaError(where, f"{field}.{key}",
                                  f"expected an integer >= {low}, got {s[key]!r}")
        if s["groups"] > s["samples"]:
            raise SchemaError(where, field + ".groups",
                              f"{s['groups']} groups but only {s['samples']} samples")
        frames = s.get("frames")
        if frames is not None:
            if (not isinstance(frames, list) or len(frames) != s["samples"]
                    or not all(_is_int(n) and n >= 1 for n in frames)):
                raise SchemaError(where, field + ".frames",
                                  f"expected {s['samples']} integers >= 1 (one per sample), "
                                  f"got {str(frames)[:80]}")
            frames = tuple(frames)
        shards.append(ShardInfo(s["name"], s["samples"], s["groups"], s["bytes"], frames))
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SchemaError(where, "shards", f"shard {dup!r} is listed twice")
    index = ShardIndex(Path(root), split, emotion_set, float(fps), sample_rate, tuple(shards))
    for total in ("num_samples", "num_groups"):
        if d[total] != getattr(index, total):
            raise SchemaError(where, total,
                              f"{d[total]!r} but the shards add up to {getattr(index, total)}")
    return index


def iter_samples(path: str | Path) -> Iterator[dict[str, Any]]:
    """The raw samples of one tar shard, in order.

    Members are grouped by key (the name up to the first dot of its last path component, as
    WebDataset does); a sample is yielded once the next key starts, so a sample cut by damage
    is never yielded. Nothing is decoded.

    Args:
        path: The shard file.

    Yields:
        One dict per sample: `"__key__"` (the key), `"__shard__"` (the shard's file name) and
        the bytes of each member by extension (`"json"`, `"mp4"`, `"flac"`, `"align.npy"`).

    Raises:
        ShardError: Naming the shard (and the last good key) when the file is missing, is not
            a tar archive, is truncated (also exactly at a member boundary: the end-of-archive
            marker is required), has a corrupt header, or repeats a member within a sample.

    Examples:
        >>> import io, tarfile, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x-000000.tar")
        >>> with tarfile.open(path, "w") as tar:
        ...     for name in ("a.json", "a.mp4", "b.json"):
        ...         info = tarfile.TarInfo(name); info.size = 2
        ...         tar.addfile(info, io.BytesIO(b"{}"))
        >>> [(s["__key__"], sorted(k for k in s if not k.startswith("__")))
        ...  for s in iter_samples(path)]
        [('a', ['json', 'mp4']), ('b', ['json'])]
        >>> with open(path, "r+b") as f:
        ...     _ = f.truncate(1024)
        >>> list(iter_samples(path))
        Traceback (most recent call last):
        ...
        decouple.data.schema.ShardError: .../x-000000.tar: truncated or corrupt: ...
    """
    path = Path(path)
    shard = str(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ShardError(shard, "missing: no such file") from None
    except OSError as err:
        raise ShardError(shard, f"cannot be opened ({err})") from None
    with f:
        try:
            tar = tarfile.open(fileobj=f, mode="r:")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ShardError(shard, f"not a readable tar archive ({err})") from None
        current: dict[str, Any] | None = None
        last_key = ""
        while True:
            try:
                info = tar.next()
                if info is None:
                    break
                if not info.isfile():
                    continue
                member = tar.extractfile(info)
                data = member.read() if member is not None else b""
            except (tarfile.TarError, EOFError, OSError) as err:
                raise ShardError(shard, f"truncated or corrupt: {err}", key=last_key) from None
            key, ext = _split_member(info.name)
            if current is not None and current["__key__"] != key:
                yield current
                last_key = current["__key__"]
                current = None
            if current is None:
                current = {"__key__": key, "__shard__": path.name}
            if ext in current:
                raise ShardError(shard, f"member {info.name!r} appears twice in sample {key!r}",
                                 key=last_key)
            current[ext] = data
        # tarfile stops quietly at a missing or invalid header: require the end-of-archive
        # marker (a zero block) where the members end, so a cut or damaged file is caught.
        f.seek(tar.offset)
        block = f.read(_BLOCK)
        if len(block) < _BLOCK or block.count(0) != _BLOCK:
            what = "ends" if len(block) < _BLOCK else "has a damaged header"
            raise ShardError(
                shard,
                f"truncated or corrupt: the archive {what} at byte {tar.offset} without the "
                "end-of-archive marker",
                key=last_key,
            )
        if current is not None:
            yield current


def clip_problems(
    clip: Clip, emotion_set: EmotionSet, fps: float, sample_rate: int
) -> list[tuple[str, str]]:
    """What is wrong with one clip against its split (the writer and validator share this).

    Checks that `fps` and `sample_rate` equal the split's, that the emotion is in
    `emotion_set` with the stored id, and that every array but `align` is per-frame (its
    first axis has `num_frames` entries). Metadata types and values are already guaranteed by
    [ClipMeta][decouple.data.schema.ClipMeta].

    Args:
        clip: The clip.
        emotion_set: The split's emotion set.
        fps: The split's video frame rate.
        sample_rate: The split's audio sample rate.

    Returns:
        `(field, message)` pairs, empty when the clip is valid.

    Examples:
        >>> from decouple.data.registry import MEAD
        >>> from decouple.data.schema import ClipMeta
        >>> meta = ClipMeta("mead", "M003", "angry", 2, 3, "001", "", 30.0, 16000, 2, 1280,
        ...                 "a.mp4", "")
        >>> for field, message in clip_problems(Clip("k", meta, b"v", b"a"), MEAD, 25.0, 16000):
        ...     print(field, "-", message)
        fps - 30 differs from the split's 25
        emotion_id - 2 but 'angry' has id 1 in emotion set 'mead'
    """
    meta = clip.meta
    out: list[tuple[str, str]] = []
    if not math.isclose(meta.fps, fps, rel_tol=1e-6):
        out.append(("fps", f"{meta.fps:g} differs from the split's {fps:g}"))
    if meta.sample_rate != sample_rate:
        out.append(("sample_rate", f"{meta.sample_rate} differs from the split's {sample_rate}"))
    if meta.emotion not in emotion_set:
        out.append(("emotion", f"{meta.emotion!r} is not in emotion set {emotion_set.name!r} "
                               f"{list(emotion_set.names)}"))
    elif emotion_set.id(meta.emotion) != meta.emotion_id:
        out.append(("emotion_id", f"{meta.emotion_id} but {meta.emotion!r} has id "
                                  f"{emotion_set.id(meta.emotion)} in emotion set "
                                  f"{emotion_set.name!r}"))
    for name in sorted(clip.arrays):
        if name == ALIGN:
            continue
        shape = np.shape(clip.arrays[name])
        if len(shape) == 0 or shape[0] != meta.num_frames:
            out.append((f"{name}.npy", f"per-frame arrays need {meta.num_frames} rows "
                                       f"(num_frames), got shape {shape}"))
    return out


def group_problems(clips: Sequence[Clip]) -> list[tuple[str, str, str]]:
    """What is wrong with one parallel group (the writer and validator share this).

    The rules:

    - a clip with `group == ""` stands alone (a "group" of one) and has no `align.npy`;
    - otherwise every clip has the same non-empty `group` and the same `reference`, which is
      the key of one of them, and keys are distinct;
    - in a group of two or more every clip has `align.npy`, and any `align.npy` is a valid
      path ([check_path][decouple.data.align.check_path]) of integers from the reference's
      `num_frames` to the clip's `num_frames`.

    Args:
        clips: The clips of the group, in order.

    Returns:
        `(key, field, message)` triples (key `""` for the whole group), empty when the group
        is valid.

    Examples:
        >>> from decouple.data.schema import ClipMeta
        >>> meta = ClipMeta("mead", "M003", "angry", 1, 3, "001", "g1", 25.0, 16000, 2, 1280,
        ...                 "a.mp4", "ref")
        >>> group_problems([Clip("k1", meta, b"v", b"a")])
        [('k1', 'reference', "'ref' is not a clip of group 'g1' (clips: ['k1'])")]
    """
    if len(clips) == 0:
        return [("", "", "a group needs at least one clip")]
    out: list[tuple[str, str, str]] = []
    gid = clips[0].meta.group
    keys = [c.key for c in clips]
    for k in sorted({k for k in keys if keys.count(k) > 1}):
        out.append((k, "key", f"appears {keys.count(k)} times in group {gid!r}"))
    for clip in clips[1:]:
        if clip.meta.group != gid:
            out.append((clip.key, "group", f"{clip.meta.group!r} differs from {gid!r} of the "
                                           "clips before it"))
    if gid == "" and len(clips) > 1:
        out.append(("", "group", f"{len(clips)} clips without a group id; a parallel group "
                                 "needs one"))
    ref_key = clips[0].meta.reference
    for clip in clips[1:]:
        if clip.meta.reference != ref_key:
            out.append((clip.key, "reference", f"{clip.meta.reference!r} differs from "
                                               f"{ref_key!r} of the other clips of group "
                                               f"{gid!r}"))
    by_key = {c.key: c for c in clips}
    ref = by_key.get(ref_key)
    if gid != "" and ref is None:
        out.append((keys[0], "reference", f"{ref_key!r} is not a clip of group {gid!r} "
                                          f"(clips: {keys})"))
    for clip in clips:
        align = clip.arrays.get(ALIGN)
        if align is None:
            if len(clips) > 1:
                out.append((clip.key, "align.npy", f"missing; every clip of a group of "
                                                   f"{len(clips)} needs one"))
        elif gid == "":
            out.append((clip.key, "align.npy", "a clip without a group has no alignment"))
        elif ref is not None:
            try:
                check_path(align, ref.meta.num_frames, clip.meta.num_frames)
            except ValueError as err:
                out.append((clip.key, "align.npy", f"not a valid path from reference "
                                                   f"{ref_key!r}: {err}"))
    return out


class ShardWriter:
    """Write clips into `{split}-%06d.tar` shards and `{split}-index.json`.

    A group's clips are written contiguously into one shard: a new shard starts when the
    group would take the current one past `max_samples` or `max_bytes` (a group larger than
    the limits gets a shard of its own; a group is never split). Each shard is written to a
    hidden temporary file in `out_dir` and renamed when complete; [close][decouple.data.shards.ShardWriter.close]
    writes the index atomically, so a split whose index exists is complete. Used as a context
    manager, an exception aborts: the shard in progress is deleted and no index is written.

    Every clip is checked before anything of its group is written: key rules and unique keys
    across the split, metadata, `fps` / `sample_rate` equal to the writer's, the emotion
    and its id in `emotion_set` ([clip_problems][decouple.data.shards.clip_problems]), and the
    group rules of [group_problems][decouple.data.shards.group_problems]. `align.npy` is
    stored as int32.

    Args:
        out_dir: Directory of the shards (created if needed).
        split: Split name (`[A-Za-z0-9_-]+`), the prefix of the file names.
        emotion_set: The emotion set (or its registered name) the clips' ids refer to; its
            names are stored in the index.
        max_samples: Most samples per shard (except for a single larger group).
        max_bytes: Approximate size limit per shard in bytes (tar headers and padding are
            counted; the final padding can add up to 10 KiB).
        fps: Video frame rate of every clip.
        sample_rate: Audio sample rate of every clip.
        overwrite: Replace a split that already has shards or an index in `out_dir`: its
            old index is deleted at once (so the split reads as absent while it is rewritten)
            and its old shards beyond the new ones after the new index is written. Without it
            an existing split is an error.

    Raises:
        FileExistsError: If the split already exists in `out_dir` and `overwrite` is False.
        ValueError: For an invalid split name, limit, fps or sample rate.

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> from decouple.data.schema import ClipMeta
        >>> def clip(key, emotion, eid, frames):
        ...     meta = ClipMeta("mead", "M003", emotion, eid, 1, "001", "M003-001", 25.0,
        ...                     16000, frames, frames * 640, "src.mp4", "n")
        ...     path = np.stack([np.arange(frames)] * 2, axis=1)  # reference = itself
        ...     return Clip(key, meta, b"mp4 bytes", b"flac bytes", {"align": path})
        >>> root = tempfile.mkdtemp()
        >>> with ShardWriter(root, "train", "mead", fps=25.0, max_samples=2) as writer:
        ...     writer.write_group([clip("n", "neutral", 0, 3), clip("a", "angry", 1, 3)])
        'train-000000.tar'
        >>> index = read_index(root, "train")
        >>> index.num_samples, index.num_groups, index.emotion_set.names[:2]
        (2, 1, ('neutral', 'angry'))
        >>> [s["__key__"] for s in iter_samples(index.paths[0])]
        ['n', 'a']
    """  # noqa: E501

    def __init__(
        self,
        out_dir: str | Path,
        split: str,
        emotion_set: EmotionSet | str,
        *,
        max_samples: int = 256,
        max_bytes: int = 1 << 30,
        fps: float,
        sample_rate: int = 16000,
        overwrite: bool = False,
    ) -> None:
        try:
            check_key(split, "ShardWriter", "split")
        except SchemaError as err:
            raise ValueError(str(err)) from None
        if not _is_int(max_samples) or max_samples < 1:
            raise ValueError(f"max_samples must be an integer >= 1, got {max_samples!r}")
        if not _is_int(max_bytes) or max_bytes < 1:
            raise ValueError(f"max_bytes must be an integer >= 1, got {max_bytes!r}")
        if not _is_number(fps) or not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not _is_int(sample_rate) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        self.out_dir = Path(out_dir)
        self.split = split
        self.emotion_set = (
            get_emotion_set(emotion_set) if isinstance(emotion_set, str) else emotion_set
        )
        if not isinstance(self.emotion_set, EmotionSet):
            raise TypeError(f"emotion_set must be an EmotionSet or a registered name, got "
                            f"{type(emotion_set).__name__}")
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.fps = float(fps)
        self.sample_rate = sample_rate
        self.overwrite = overwrite
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = self._existing_shards()
        if index_path(self.out_dir, split).exists():
            existing.append(index_path(self.out_dir, split))
        if existing and not overwrite:
            names = ", ".join(sorted(p.name for p in existing)[:5])
            raise FileExistsError(
                f"{self.out_dir}: split {split!r} already exists ({names}"
                f"{', ...' if len(existing) > 5 else ''}); pass overwrite=True to replace it"
            )
        index_path(self.out_dir, split).unlink(missing_ok=True)
        self._shards: list[ShardInfo] = []
        self._keys: set[str] = set()
        self._groups: set[str] = set()
        self._file: IO[bytes] | None = None
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._samples = 0
        self._frames: list[int] = []  # num_frames of each sample of the shard in progress
        self._group_count = 0
        self._closed = False

    # ------------------------------------------------------------------ public

    @property
    def shards(self) -> list[ShardInfo]:
        """The shards completed so far."""
        return list(self._shards)

    @property
    def num_samples(self) -> int:
        """Samples written so far (including the shard in progress)."""
        return sum(s.samples for s in self._shards) + self._samples

    def write_group(self, clips: Sequence[Clip]) -> str:
        """Write one parallel group (or one clip without a group) contiguously into a shard.

        Args:
            clips: The clips of the group; the reference clip may be anywhere in it.

        Returns:
            The file name of the shard the group went to.

        Raises:
            SchemaError: Naming the split, group, clip and field of the first rule a clip
                breaks (nothing of the group is written then).
            RuntimeError: If the writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"ShardWriter for split {self.split!r} is closed")
        clips = list(clips)
        where = f"split {self.split!r}"
        for clip in clips:
            if not isinstance(clip, Clip):
                raise SchemaError(where, "", f"expected Clip objects, got {type(clip).__name__}")
        gid = clips[0].meta.group if clips else ""
        where += f", group {gid!r}"
        problems = group_problems(clips)
        if problems:
            key, field, message = problems[0]
            raise SchemaError(f"{where}, clip {key!r}" if key else where, field, message)
        if gid and gid in self._groups:
            raise SchemaError(where, "group",
                              "this group was already written (a group is written once, whole)")
        encoded: list[tuple[str, dict[str, bytes]]] = []
        for clip in clips:
            cw = f"{where}, clip {clip.key!r}"
            if clip.key in self._keys:
                raise SchemaError(cw, "key", "already written in this split (keys are unique)")
            clip_errors = clip_problems(clip, self.emotion_set, self.fps, self.sample_rate)
            if clip_errors:
                raise SchemaError(cw, *clip_errors[0])
            if ALIGN in clip.arrays:
                arrays = dict(clip.arrays)
                arrays[ALIGN] = np.asarray(arrays[ALIGN]).astype(np.int32)
                clip = Clip(clip.key, clip.meta, clip.video, clip.audio, arrays, clip.extras)
            encoded.append((clip.key, clip.to_members()))

        size = sum(_member_size(f"{k}.{ext}", len(b)) for k, m in encoded for ext, b in m.items())
        if self._tar is not None and (
            self._samples + len(clips) > self.max_samples
            or self._tell() + size + 2 * _BLOCK > self.max_bytes
        ):
            self._finish_shard()
        if self._tar is None:
            self._start_shard()
        assert self._tar is not None
        for key, members in encoded:
            for ext, blob in members.items():
                self._add(f"{key}.{ext}", blob)
            self._keys.add(key)
        self._samples += len(clips)
        self._frames += [clip.meta.num_frames for clip in clips]
        if gid:
            self._groups.add(gid)
            self._group_count += 1
        return shard_name(self.split, len(self._shards))

    def close(self) -> ShardIndex:
        """Finish the shard in progress and write the index atomically.

        With `overwrite=True`, shards of an earlier run numbered beyond the new ones are then
        deleted. Closing twice is harmless.

        Returns:
            The index as written.
        """
        index = self._index()
        if self._closed:
            return index
        self._finish_shard()
        index = self._index()
        # Imported here: reading shards and indexes does not need the media stack.
        from decouple.data.io import atomic_write_bytes

        data = json.dumps(index.to_json(), indent=1, allow_nan=False).encode("utf-8") + b"\n"
        atomic_write_bytes(index_path(self.out_dir, self.split), data)
        self._closed = True
        if self.overwrite:
            listed = {s.name for s in self._shards}
            for stale in self._existing_shards():
                if stale.name not in listed:
                    stale.unlink()
        return index

    def abort(self) -> None:
        """Stop without writing the index; the shard in progress is deleted.

        Shards already completed stay (they are whole), but the split has no index, so it
        reads as absent.
        """
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._file = self._tar = self._tmp = None
        self._closed = True

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ------------------------------------------------------------------ internals

    def _existing_shards(self) -> list[Path]:
        pattern = re.compile(re.escape(self.split) + r"-\d{6}\.tar")
        return [p for p in self.out_dir.glob(f"{self.split}-*.tar") if pattern.fullmatch(p.name)]

    def _index(self) -> ShardIndex:
        return ShardIndex(self.out_dir, self.split, self.emotion_set, self.fps,
                          self.sample_rate, tuple(self._shards))

    def _tell(self) -> int:
        assert self._file is not None
        return self._file.tell()

    def _start_shard(self) -> None:
        name = shard_name(self.split, len(self._shards))
        from decouple.data.io import temp_file_for

        fd, self._tmp = temp_file_for(self.out_dir / name)
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        self._samples = 0
        self._frames = []
        self._group_count = 0

    def _add(self, name: str, data: bytes) -> None:
        assert self._tar is not None
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0  # reproducible bytes: the same clips give the same shard
        info.mode = 0o444
        info.uname = info.gname = ""
        self._tar.addfile(info, _Reader(data))

    def _finish_shard(self) -> None:
        if self._tar is None:
            return
        assert self._file is not None and self._tmp is not None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        name = shard_name(self.split, len(self._shards))
        final = self.out_dir / name
        os.replace(self._tmp, final)
        self._shards.append(ShardInfo(name, self._samples, self._group_count,
                                      final.stat().st_size, tuple(self._frames)))
        self._file = self._tar = self._tmp = None
        self._samples = 0
        self._frames = []
        self._group_count = 0


# ----------------------------------------------------------------------------- helpers


class _Reader:
    """A minimal file object over bytes for `TarFile.addfile` (no copy)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._pos + size)
        out = self._view[self._pos : end].tobytes()
        self._pos = end
        return out


def _member_size(name: str, size: int) -> int:
    """Bytes a member takes in a PAX tar: header, padded data, and a PAX header if needed."""
    extra = 3 * _BLOCK if len(name.encode("utf-8")) > 100 else 0
    return _BLOCK + -(-size // _BLOCK) * _BLOCK + extra


def _split_member(name: str) -> tuple[str, str]:
    """`dir/key.ext.more` -> (`dir/key`, `ext.more`), as WebDataset splits member names."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext


def _check_fields(
    d: dict[str, Any], names: Sequence[str], where: str, prefix: str,
    optional: Sequence[str] = (),
) -> None:  # fmt: skip
    for name in names:
        if name not in d:
            raise SchemaError(where, prefix + name, "missing")
    unknown = sorted(set(d) - set(names) - set(optional))
    if unknown:
        raise SchemaError(where, prefix + str(unknown[0]),
                          f"unknown field (known fields: {', '.join([*names, *optional])})")
