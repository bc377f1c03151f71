"""Check a split of shards and report every problem with its shard and key.

```
python -m decouple.data.validate ROOT SPLIT [--decode]
```
prints one line per problem (`shard:key: message`) and exits with status 1 when there is
one, 0 otherwise. [validate_shards][decouple.data.validate.validate_shards] does the same from
Python and returns the problems.

Checks, in this order:

1. The index: present, valid, of the supported schema version (if not, that is the only
   problem reported: nothing else can be checked without it).
2. Index against files: every listed shard exists and has the listed size; no unlisted
   `{split}-NNNNNN.tar` and no temporary file left by an interrupted write.
3. Each shard is a complete tar (not truncated or corrupt), with as many samples and groups
   as the index says, and (when the index lists them) the frame counts the index lists.
4. Each sample: a valid key, unique in the split; the required members `json`, `mp4`, `flac`
   and no unknown member; metadata that follows the schema, with fps and sample rate equal to
   the index's and an emotion and id from the index's emotion set; arrays that load without
   pickle; per-frame arrays with `num_frames` rows; extras (`NAME.json`) that are JSON objects.
5. Each parallel group: contiguous and in one shard, one reference that is a member, and a
   valid `align.npy` (monotone, in range, from `(0, 0)` to the last frames of the reference
   and the clip) on every member of a group of two or more.
6. With `decode=True` (`--decode`): the video and audio decode, with `num_frames` frames at
   the stated fps and `num_samples` samples at the stated sample rate (slower: every clip is
   decoded).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decouple.data.schema import (
    ALIGN,
    ARRAY_SUFFIX,
    AUDIO,
    EXTRA_SUFFIX,
    META,
    VIDEO,
    Clip,
    ClipMeta,
    SchemaError,
    SchemaVersionError,
    ShardError,
    check_key,
    decode_array,
    decode_extra,
    member_problems,
)
from decouple.data.shards import (
    ShardIndex,
    clip_problems,
    group_problems,
    index_path,
    iter_samples,
    read_index,
)

__all__ = ["Problem", "main", "validate_shards"]


@dataclass(frozen=True)
class Problem:
    """One problem found in a split.

    Attributes:
        shard: File name of the shard (or of the index) the problem is in.
        key: Key of the sample, or `""` for a problem of the whole file.
        message: What is wrong, and what was expected.

    Examples:
        >>> print(Problem("train-000003.tar", "M003-angry-3-001", "missing member mp4"))
        train-000003.tar:M003-angry-3-001: missing member mp4
        >>> print(Problem("train-000004.tar", "", "missing: listed in the index, not on disk"))
        train-000004.tar: missing: listed in the index, not on disk
    """

    shard: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.shard}:{self.key}" if self.key else self.shard
        return f"{where}: {self.message}"


class _Checker:
    def __init__(self, index: ShardIndex, decode: bool) -> None:
        self.index = index
        self.decode = decode
        self.problems: list[Problem] = []
        self.keys: dict[str, str] = {}  # key -> shard where first seen
        self.groups_done: dict[str, str] = {}  # group id -> shard where it was
        self.group: list[tuple[str, Clip]] = []  # (shard, clip) of the group being read
        self.frames: list[tuple[str, int | None]] = []  # (key, num_frames) of the shard's samples

    def add(self, shard: str, key: str, message: str) -> None:
        self.problems.append(Problem(shard, key, message))

    # -------------------------------------------------------------- shards

    def check_files(self) -> None:
        root = self.index.root
        split = self.index.split
        listed = {s.name for s in self.index.shards}
        pattern = re.compile(re.escape(split) + r"-\d{6}\.tar")
        for p in sorted(root.glob(f"{split}-*.tar")):
            if pattern.fullmatch(p.name) and p.name not in listed:
                self.add(p.name, "", "shard file is not listed in the index (left from "
                                     "another run?)")
        for p in sorted(root.glob(f".{split}-*.tmp")):
            self.add(p.name, "", "temporary file left by an interrupted write")

    def check_shard(self, number: int) -> None:
        info = self.index.shards[number]
        path = self.index.root / info.name
        if not path.is_file():
            self.add(info.name, "", "missing: listed in the index but not on disk")
            return
        size = path.stat().st_size
        if size != info.bytes:
            self.add(info.name, "", f"{size} bytes on disk, the index says {info.bytes}")
        samples = 0
        groups: set[str] = set()
        self.frames = []
        try:
            for sample in iter_samples(path):
                samples += 1
                gid = self.check_sample(info.name, sample)
                if gid:
                    groups.add(gid)
        except ShardError as err:
            self.add(info.name, "", err.detail)
            self.end_group()
            return
        self.end_group()
        if samples != info.samples:
            self.add(info.name, "", f"{samples} samples, the index says {info.samples}")
        if len(groups) != info.groups:
            self.add(info.name, "", f"{len(groups)} groups, the index says {info.groups}")
        if info.frames is not None and samples == info.samples:
            for (key, found), listed in zip(self.frames, info.frames, strict=True):
                if found is not None and found != listed:
                    self.add(info.name, key, f"field 'num_frames' says {found}, the index's "
                                             f"'frames' list says {listed} (the reader plans "
                                             "windows from the index)")

    # -------------------------------------------------------------- samples

    def check_sample(self, shard: str, sample: dict[str, Any]) -> str:
        """Check one sample; return its group id ("" if none or unreadable)."""
        key = sample["__key__"]
        where = f"{shard}:{key}"
        try:
            check_key(key, where)
        except SchemaError as err:
            self.add(shard, key, err.detail)
        if key in self.keys:
            self.add(shard, key, f"duplicate key (first seen in {self.keys[key]})")
        else:
            self.keys[key] = shard
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        problems = member_problems(key, members)
        for field, message in problems:
            self.add(shard, key, f"field '{field}': {message}")
        bad = {field for field, _ in problems}
        arrays: dict[str, np.ndarray] = {}
        for ext, blob in members.items():
            if ext.endswith(ARRAY_SUFFIX) and ext not in bad:
                try:
                    arrays[ext[: -len(ARRAY_SUFFIX)]] = decode_array(blob, where, ext)
                except SchemaError as err:
                    self.add(shard, key, err.detail)
            elif ext != META and ext.endswith(EXTRA_SUFFIX) and ext not in bad:
                try:
                    decode_extra(blob, where, ext)
                except SchemaError as err:
                    self.add(shard, key, err.detail)
        meta = None
        if META in members and META not in bad:
            try:
                meta = ClipMeta.from_bytes(members[META], where)
            except SchemaError as err:
                self.add(shard, key, err.detail)
        self.frames.append((key, None if meta is None else meta.num_frames))
        if meta is None:
            return ""  # unreadable metadata: reported above; the group checks skip it
        clip = Clip(key, meta, b"", b"", arrays)  # media are not kept in memory
        for field, message in clip_problems(clip, self.index.emotion_set, self.index.fps,
                                            self.index.sample_rate):
            self.add(shard, key, f"field '{field}': {message}")
        if self.decode:
            self.check_media(shard, key, meta, members)
        self.track_group(shard, clip)
        return meta.group

    def check_media(self, shard: str, key: str, meta: ClipMeta, members: dict) -> None:
        from decouple.data.io import read_audio, read_video

        where = f"{shard}:{key}"
        if members.get(VIDEO):
            try:
                video = read_video(members[VIDEO], name=f"{where}.{VIDEO}")
            except Exception as err:
                self.add(shard, key, f"video cannot be decoded ({err})")
            else:
                if video.num_frames != meta.num_frames:
                    self.add(shard, key, f"video has {video.num_frames} frames, field "
                                         f"'num_frames' says {meta.num_frames}")
                if not math.isclose(video.fps, meta.fps, rel_tol=1e-3):
                    self.add(shard, key, f"video is at {video.fps:g} fps, field 'fps' says "
                                         f"{meta.fps:g}")
        if members.get(AUDIO):
            try:
                audio = read_audio(members[AUDIO], sample_rate=None, name=f"{where}.{AUDIO}")
            except Exception as err:
                self.add(shard, key, f"audio cannot be decoded ({err})")
            else:
                if audio.sample_rate != meta.sample_rate:
                    self.add(shard, key, f"audio is at {audio.sample_rate} Hz, field "
                                         f"'sample_rate' says {meta.sample_rate}")
                if audio.num_samples != meta.num_samples:
                    self.add(shard, key, f"audio has {audio.num_samples} samples, field "
                                         f"'num_samples' says {meta.num_samples}")

    # -------------------------------------------------------------- groups

    def track_group(self, shard: str, clip: Clip) -> None:
        gid = clip.meta.group
        if self.group and gid != self.group[0][1].meta.group:
            self.end_group()
        if gid == "":
            self.report_group([(shard, clip)])  # a clip on its own
            return
        if not self.group and gid in self.groups_done:
            self.add(shard, clip.key,
                     f"group {gid!r} is not contiguous: it also appears earlier, in "
                     f"{self.groups_done[gid]} (a group is written whole, in one shard)")
        self.group.append((shard, clip))

    def end_group(self) -> None:
        members, self.group = self.group, []
        if members:
            self.groups_done.setdefault(members[0][1].meta.group, members[0][0])
            self.report_group(members)

    def report_group(self, members: list[tuple[str, Clip]]) -> None:
        shard_of = {clip.key: shard for shard, clip in members}
        for shard, clip in members:
            align = clip.arrays.get(ALIGN)
            if align is not None and align.dtype != np.int32:
                self.add(shard, clip.key, f"field 'align.npy': dtype {align.dtype}, expected "
                                          "int32")
        for key, field, message in group_problems([clip for _, clip in members]):
            key = key or members[0][1].key
            self.add(shard_of[key], key, f"field '{field}': {message}")


def validate_shards(root: str | Path, split: str, *, decode: bool = False) -> list[Problem]:
    """Check a split and return every problem found (an empty list when it is valid).

    Args:
        root: Directory of the shards and the index.
        split: Split name.
        decode: Also decode every video and audio member and compare frame and sample counts
            with the metadata (slow: use it once after a conversion).

    Returns:
        The problems, in reading order, each with its shard and key.

    Examples:
        >>> import tempfile
        >>> for problem in validate_shards(tempfile.mkdtemp(), "train"):
        ...     print(problem)
        train-index.json: no index for split 'train' (index files there: none)
    """
    path = index_path(root, split)
    try:
        index = read_index(root, split)
    except (FileNotFoundError, SchemaVersionError) as err:
        return [Problem(path.name, "", str(err).removeprefix(f"{path}: "))]
    except SchemaError as err:
        return [Problem(path.name, "", err.detail)]
    checker = _Checker(index, decode)
    checker.check_files()
    for number in range(len(index.shards)):
        checker.check_shard(number)
    return checker.problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m decouple.data.validate ROOT SPLIT [--decode]`.

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 when the split is valid, 1 when there is a problem.

    Examples:
        >>> import tempfile
        >>> main([tempfile.mkdtemp(), "train"])
        train-index.json: no index for split 'train' (index files there: none)
        1 problem in split 'train' of ...
        1
    """
    parser = argparse.ArgumentParser(
        prog="python -m decouple.data.validate",
        description="Check the shards of a split; print every problem with its shard and key.",
    )
    parser.add_argument("root", help="directory of the shards and {split}-index.json")
    parser.add_argument("split", help="split name, e.g. train")
    parser.add_argument("--decode", action="store_true",
                        help="also decode every video and audio and check frame/sample counts")
    args = parser.parse_args(argv)
    problems = validate_shards(args.root, args.split, decode=args.decode)
    for problem in problems:
        print(problem)
    if problems:
        n = len(problems)
        print(f"{n} problem{'s' if n > 1 else ''} in split {args.split!r} of {args.root}")
        return 1
    index = read_index(args.root, args.split)
    print(f"ok: split {args.split!r} of {args.root}: {index.num_samples} samples, "
          f"{index.num_groups} groups in {len(index.shards)} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
