"""The sample schema of the shards (version 2): one WebDataset sample = one clip.

A sample is a run of tar members sharing a key, `KEY.EXT` (WebDataset's convention: the key is
the member name up to the first dot):

| member | content |
|---|---|
| `KEY.json` | [ClipMeta][decouple.data.schema.ClipMeta] as a UTF-8 JSON object (required) |
| `KEY.mp4` | the face-crop video, encoded (H.264 in mp4 by default) (required) |
| `KEY.flac` | the audio, mono, lossless, at the split's sample rate (required) |
| `KEY.NAME.npy` | optional arrays, `np.save(allow_pickle=False)`; `KEY.align.npy`: DTW path |
| `KEY.NAME.json` | optional JSON objects (version 2), e.g. a generator's per-clip parameters |

Keys, array and extra names use only `[A-Za-z0-9_-]` (no dots, so the member name splits into key
and extension without ambiguity; no slashes, so a key is never a path). Metadata is JSON and
arrays are `.npy`: nothing in a shard is ever unpickled.

Version history: 2 added the optional `KEY.NAME.json` members (extras); 1 was the first.

The index file and the writer and reader are in `decouple.data.shards`; the validator is
`decouple.data.validate`. The full description is on the data-format page of the docs.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "ALIGN",
    "ARRAY_SUFFIX",
    "AUDIO",
    "EXTRA_SUFFIX",
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "META",
    "SCHEMA_VERSION",
    "VIDEO",
    "Clip",
    "ClipMeta",
    "SchemaError",
    "SchemaVersionError",
    "ShardError",
    "check_key",
    "decode_array",
    "decode_extra",
    "encode_array",
    "make_key",
    "member_problems",
]

SCHEMA_VERSION = 2
"""Version of the sample and index format. Readers refuse any other version."""

META = "json"
"""Member extension of the clip metadata."""
VIDEO = "mp4"
"""Member extension of the encoded video."""
AUDIO = "flac"
"""Member extension of the encoded audio."""
ARRAY_SUFFIX = ".npy"
"""Extension suffix of optional arrays: member `KEY.NAME.npy` holds array `NAME`."""
EXTRA_SUFFIX = ".json"
"""Extension suffix of optional JSON extras: member `KEY.NAME.json` holds extra `NAME`."""
ALIGN = "align"
"""Array name of the DTW path from the group's reference clip to this clip."""

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
"""What a sample key, a group id and an array name may contain (matched in full)."""
MAX_KEY_LENGTH = 200
"""Longest key: `KEY.NAME.npy` must stay a valid file name (255 bytes) when extracted."""


class SchemaError(ValueError):
    """A sample, its metadata or an index file does not follow the schema.

    Attributes:
        where: What was being read: `shard:key` for a sample, the file for an index.
        field: The offending field or member ("" when the whole record is wrong).
        detail: The message without `where` (for reports that name the place themselves).

    Examples:
        >>> err = SchemaError("train-000000.tar:clip1", "fps", "expected a positive number, got 0")
        >>> str(err)
        "train-000000.tar:clip1: field 'fps': expected a positive number, got 0"
    """

    def __init__(self, where: str, field: str, message: str) -> None:
        self.where = where
        self.field = field
        self.detail = f"field '{field}': {message}" if field else message
        prefix = f"{where}: " if where else ""
        what = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{what}{message}")


class SchemaVersionError(RuntimeError):
    """An index file was written with a schema version this code does not read.

    Not a [SchemaError][decouple.data.schema.SchemaError]: a reader skips bad samples but must
    stop at once on a version mismatch.

    Attributes:
        path: The index file.
        found: The version in the file.
        supported: The version this code reads.

    Examples:
        >>> print(SchemaVersionError("data/train-index.json", 1, 2))
        data/train-index.json: schema_version 1 is not supported (this code reads version 2); ...
    """

    def __init__(self, path: str, found: object, supported: int = SCHEMA_VERSION) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: schema_version {found!r} is not supported (this code reads version "
            f"{supported}); convert the corpus again with this version of decouple, or use the "
            "version of decouple that wrote it"
        )


class ShardError(OSError):
    """A shard file is missing or cannot be read as a tar archive (truncated or corrupt).

    Samples before the damage have already been yielded by the reader; a pipeline skips the
    rest of the shard with a warning naming it.

    Attributes:
        shard: Path of the shard.
        key: Key of the last complete sample read before the problem ("" if none).
        detail: The message without the shard.

    Examples:
        >>> print(ShardError("train-000001.tar", "truncated: unexpected end of data", key="c7"))
        train-000001.tar: truncated: unexpected end of data (after sample 'c7')
    """

    def __init__(self, shard: str, message: str, *, key: str = "") -> None:
        self.shard = shard
        self.key = key
        after = f" (after sample '{key}')" if key else ""
        self.detail = f"{message}{after}"
        super().__init__(f"{shard}: {self.detail}")


def check_key(key: object, where: str = "", field: str = "key") -> str:
    """Check a sample key (also used for group ids, array names and split names).

    Args:
        key: The candidate.
        where: Context for the error (`shard:key`, a file, ...).
        field: Name of what is checked, for the error.

    Returns:
        The key.

    Raises:
        SchemaError: If it is not a non-empty string of `[A-Za-z0-9_-]` of at most
            `MAX_KEY_LENGTH` characters.

    Examples:
        >>> check_key("M003-angry-3-001")
        'M003-angry-3-001'
        >>> check_key("clip.1", "train-000000.tar")
        Traceback (most recent call last):
        ...
        decouple.data.schema.SchemaError: train-000000.tar: field 'key': expected ...
    """
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise SchemaError(
            where, field,
            f"expected 1 to {MAX_KEY_LENGTH} characters of [A-Za-z0-9_-] (no dots, slashes or "
            f"spaces), got {key!r}",
        )  # fmt: skip
    return key


def make_key(*parts: str | int) -> str:
    """Build a key from parts: joined with `-`, other characters than `[A-Za-z0-9_-]` -> `_`.

    Different parts can map to the same key (`"a.b"` and `"a_b"`); the shard writer refuses
    duplicate keys, so a collision is an error, never a silent overwrite.

    Args:
        *parts: Strings or integers (e.g. dataset, speaker, emotion, level, clip number).

    Returns:
        A valid key.

    Raises:
        SchemaError: If the result is empty or longer than `MAX_KEY_LENGTH`.

    Examples:
        >>> make_key("mead", "M003", "angry", "level_3", "001")
        'mead-M003-angry-level_3-001'
        >>> make_key("cremad", "1001 DFA", 3)
        'cremad-1001_DFA-3'
    """
    key = "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", str(p)) for p in parts)
    return check_key(key, "make_key")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# field -> (type name for errors, type test, value test or None, value rule for errors)
_RULES: dict[str, tuple[str, Any, Any, str]] = {
    "dataset": ("str", lambda v: isinstance(v, str), bool, "a non-empty string"),
    "speaker": ("str", lambda v: isinstance(v, str), bool, "a non-empty string"),
    "emotion": ("str", lambda v: isinstance(v, str), bool, "a non-empty emotion name"),
    "emotion_id": ("int", _is_int, lambda v: v >= 0, "an integer >= 0"),
    "intensity": ("int", _is_int, lambda v: v >= 0, "an integer >= 0 (0 = unspecified)"),
    "sentence": ("str", lambda v: isinstance(v, str), bool, "a non-empty string"),
    "group": ("str", lambda v: isinstance(v, str),
              lambda v: v == "" or (KEY_PATTERN.fullmatch(v) and len(v) <= MAX_KEY_LENGTH),
              "'' or a string of [A-Za-z0-9_-]"),
    "fps": ("float", _is_number, lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "sample_rate": ("int", _is_int, lambda v: v > 0, "a positive integer"),
    "num_frames": ("int", _is_int, lambda v: v >= 1, "an integer >= 1"),
    "num_samples": ("int", _is_int, lambda v: v >= 1, "an integer >= 1"),
    "source": ("str", lambda v: isinstance(v, str), None, "a string"),
    "reference": ("str", lambda v: isinstance(v, str),
                  lambda v: v == "" or (KEY_PATTERN.fullmatch(v) and len(v) <= MAX_KEY_LENGTH),
                  "'' or a sample key"),
}  # fmt: skip


def _check_meta(values: Mapping[str, Any], where: str) -> None:
    for name, (type_name, type_ok, value_ok, rule) in _RULES.items():
        v = values[name]
        if not type_ok(v):
            raise SchemaError(where, name, f"expected {type_name} ({rule}), got {v!r}")
        if value_ok is not None and not value_ok(v):
            raise SchemaError(where, name, f"expected {rule}, got {v!r}")
    if (values["group"] == "") != (values["reference"] == ""):
        raise SchemaError(
            where, "reference",
            "must be '' exactly when group is '' (a clip without parallel renditions), got "
            f"group={values['group']!r}, reference={values['reference']!r}",
        )  # fmt: skip


@dataclass
class ClipMeta:
    """Metadata of one clip: the `KEY.json` member of a sample.

    Every field is required; `from_json` rejects missing, unknown and mistyped fields.

    Attributes:
        dataset: Corpus name, e.g. `"mead"`, `"ravdess"`, `"cremad"`.
        speaker: Speaker (actor) id within the corpus, e.g. `"M003"`.
        emotion: Canonical emotion name (lower case, `decouple.data.registry`).
        emotion_id: Id of `emotion` in the split's emotion set (stored in the index).
        intensity: Intensity level as the corpus numbers it (MEAD 1-3, RAVDESS 1-2, CREMA-D
            LO/MD/HI = 1/2/3); 0 = unspecified.
        sentence: Sentence id within the corpus (e.g. MEAD `"001"`, CREMA-D `"DFA"`).
        group: Parallel group id (the same content in several emotions), `""` for a clip
            without parallel renditions. Same characters as a key.
        fps: Video frame rate (frames per second) of the `mp4` member.
        sample_rate: Audio sample rate (Hz) of the `flac` member.
        num_frames: Video frames `t` of the `mp4` member.
        num_samples: Audio samples `s` of the `flac` member.
        source: Source file the clip came from, relative to the corpus root.
        reference: Key of the group's reference clip (the one `align.npy` paths start from;
            `""` exactly when `group` is `""`).

    Examples:
        >>> meta = ClipMeta(dataset="mead", speaker="M003", emotion="angry", emotion_id=1,
        ...                 intensity=3, sentence="001", group="M003-001", fps=25.0,
        ...                 sample_rate=16000, num_frames=50, num_samples=32000,
        ...                 source="M003/video/front/angry/level_3/001.mp4",
        ...                 reference="M003-neutral-1-001")
        >>> ClipMeta.from_json(meta.to_json(), "train-000000.tar:x") == meta
        True
        >>> ClipMeta.from_json({**meta.to_json(), "fps": -1}, "train-000000.tar:x")
        Traceback (most recent call last):
        ...
        decouple.data.schema.SchemaError: train-000000.tar:x: field 'fps': expected a positive ...
    """

    dataset: str
    speaker: str
    emotion: str
    emotion_id: int
    intensity: int
    sentence: str
    group: str
    fps: float
    sample_rate: int
    num_frames: int
    num_samples: int
    source: str
    reference: str

    def __post_init__(self) -> None:
        _check_meta(self.__dict__, "ClipMeta")
        self.fps = float(self.fps)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (a dict of plain values, in field order).

        Returns:
            A dict that `json.dumps` accepts and `from_json` reads back.

        Examples:
            >>> meta = ClipMeta("ravdess", "01", "calm", 1, 2, "01", "", 30, 16000, 90, 48000,
            ...                 "Actor_01/01-01-02-02-01-01-01.mp4", "")
            >>> meta.to_json()["fps"], meta.to_json()["group"]
            (30.0, '')
        """
        return asdict(self)

    def to_bytes(self) -> bytes:
        """The `KEY.json` member: compact UTF-8 JSON.

        Returns:
            The encoded JSON object.

        Examples:
            >>> meta = ClipMeta("ravdess", "01", "calm", 1, 2, "01", "", 30, 16000, 90, 48000,
            ...                 "a.mp4", "")
            >>> meta.to_bytes()[:20]
            b'{"dataset":"ravdess"'
        """
        return json.dumps(
            self.to_json(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")

    @classmethod
    def from_json(cls, d: object, where: str) -> ClipMeta:
        """Read and validate a parsed JSON object.

        Args:
            d: The object (must be a dict with exactly the fields of `ClipMeta`).
            where: Context for errors, `shard:key`.

        Returns:
            The metadata.

        Raises:
            SchemaError: Naming `where` and the field: not an object, a missing or unknown
                field, a wrong type (booleans are not integers; integers are accepted for
                `fps`) or an invalid value.

        Examples:
            >>> ClipMeta.from_json({"dataset": "mead"}, "train-000000.tar:k")
            Traceback (most recent call last):
            ...
            decouple.data.schema.SchemaError: train-000000.tar:k: field 'speaker': missing ...
        """
        if not isinstance(d, dict):
            raise SchemaError(where, "", f"metadata must be a JSON object, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        for name in names:
            if name not in d:
                raise SchemaError(where, name, f"missing (required fields: {', '.join(names)})")
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise SchemaError(where, str(unknown[0]),
                              f"unknown field (known fields: {', '.join(names)})")
        _check_meta(d, where)
        return cls(**{name: d[name] for name in names})

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> ClipMeta:
        """Parse and validate a `KEY.json` member.

        Args:
            data: The member's bytes.
            where: Context for errors, `shard:key`.

        Returns:
            The metadata.

        Raises:
            SchemaError: If the bytes are not UTF-8 JSON, or as in `from_json`.

        Examples:
            >>> ClipMeta.from_bytes(b'{"dataset": "mead",', "train-000000.tar:k")
            Traceback (most recent call last):
            ...
            decouple.data.schema.SchemaError: train-000000.tar:k: field 'json': not valid JSON ...
        """
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SchemaError(where, META, f"not valid JSON ({err})") from None
        return cls.from_json(d, where)


@dataclass
class Clip:
    """One sample in memory: key, metadata, encoded media and optional arrays.

    Attributes:
        key: Sample key (`[A-Za-z0-9_-]+`, unique in the split).
        meta: The metadata (`KEY.json`).
        video: The encoded video (`KEY.mp4`), `(t, 3, h, w)` once decoded with
            `decouple.data.io.read_video`.
        audio: The encoded audio (`KEY.flac`), `(s,)` once decoded with
            `decouple.data.io.read_audio`.
        arrays: Optional arrays by name (`KEY.NAME.npy`); `"align"` is the `(l, 2)` int32 DTW
            path from the group's reference clip (column 0) to this clip (column 1).
        extras: Optional JSON objects by name (`KEY.NAME.json`), e.g. the parameters a
            synthetic corpus needs to re-render the clip. Values must be JSON-serialisable
            (finite numbers; no NaN).

    Examples:
        >>> import numpy as np
        >>> meta = ClipMeta("mead", "M003", "angry", 1, 3, "001", "", 25.0, 16000, 2, 1280,
        ...                 "a.mp4", "")
        >>> clip = Clip("k1", meta, b"video", b"audio", {"landmarks": np.zeros((2, 68, 2))})
        >>> members = clip.to_members()
        >>> sorted(members)
        ['flac', 'json', 'landmarks.npy', 'mp4']
        >>> Clip.from_members("k1", members, "train-000000.tar:k1").arrays["landmarks"].shape
        (2, 68, 2)
        >>> extra = Clip("k1", meta, b"video", b"audio", extras={"params": {"seed": 3}})
        >>> list(extra.to_members()), Clip.from_members("k1", extra.to_members(), "x").extras
        (['json', 'mp4', 'flac', 'params.json'], {'params': {'seed': 3}})
    """

    key: str
    meta: ClipMeta
    video: bytes
    audio: bytes
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_members(self) -> dict[str, bytes]:
        """The tar members of this sample by extension, in writing order.

        Metadata first, then video, audio, the arrays sorted by name and the extras sorted by
        name.

        Returns:
            `{"json": ..., "mp4": ..., "flac": ..., "NAME.npy": ..., "NAME.json": ...}`.

        Raises:
            SchemaError: If the key, an array or extra name is invalid, the media are empty,
                an array cannot be saved without pickling (object dtype), or an extra is not
                a JSON object of finite values.

        Examples:
            >>> meta = ClipMeta("mead", "M003", "angry", 1, 3, "001", "", 25.0, 16000, 2, 1280,
            ...                 "a.mp4", "")
            >>> list(Clip("k1", meta, b"v", b"a").to_members())
            ['json', 'mp4', 'flac']
        """
        where = f"clip {self.key!r}"
        check_key(self.key, where)
        if not isinstance(self.meta, ClipMeta):
            raise SchemaError(where, "meta", f"expected ClipMeta, got {type(self.meta).__name__}")
        for name, blob in ((VIDEO, self.video), (AUDIO, self.audio)):
            if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) == 0:
                raise SchemaError(where, name, "expected non-empty encoded bytes")
        members: dict[str, bytes] = {
            META: self.meta.to_bytes(), VIDEO: bytes(self.video), AUDIO: bytes(self.audio)
        }
        for name in sorted(self.arrays):
            check_key(name, where, "array name")
            members[name + ARRAY_SUFFIX] = encode_array(self.arrays[name], f"{where}.{name}")
        for name in sorted(self.extras):
            check_key(name, where, "extra name")
            if name + ARRAY_SUFFIX in members:
                raise SchemaError(where, name, "an array and an extra share this name")
            members[name + EXTRA_SUFFIX] = _encode_extra(self.extras[name], f"{where}.{name}")
        return members

    @classmethod
    def from_members(cls, key: str, members: Mapping[str, bytes], where: str) -> Clip:
        """Parse the members of one sample (as [iter_samples][decouple.data.shards.iter_samples]
        yields them; keys starting with `__` are ignored).

        Args:
            key: The sample key.
            members: Bytes by extension (`json`, `mp4`, `flac`, `NAME.npy`, `NAME.json`).
            where: Context for errors, `shard:key`.

        Returns:
            The clip (media still encoded; arrays loaded without pickle).

        Raises:
            SchemaError: Naming `where` and the member: a required member missing, an unknown
                member, invalid metadata, an array that is not a plain `.npy`, or an extra
                that is not a UTF-8 JSON object.

        Examples:
            >>> Clip.from_members("k1", {"json": b"{}"}, "train-000000.tar:k1")
            Traceback (most recent call last):
            ...
            decouple.data.schema.SchemaError: train-000000.tar:k1: field 'mp4': missing member ...
        """
        check_key(key, where)
        problems = member_problems(key, members)
        if problems:
            raise SchemaError(where, *problems[0])
        arrays = {
            ext[: -len(ARRAY_SUFFIX)]: decode_array(blob, where, ext)
            for ext, blob in members.items()
            if ext.endswith(ARRAY_SUFFIX)
        }
        extras = {
            ext[: -len(EXTRA_SUFFIX)]: decode_extra(blob, where, ext)
            for ext, blob in members.items()
            if ext != META and ext.endswith(EXTRA_SUFFIX)
        }
        meta = ClipMeta.from_bytes(members[META], where)
        return cls(key, meta, bytes(members[VIDEO]), bytes(members[AUDIO]), arrays, extras)


def _encode_extra(value: object, where: str) -> bytes:
    if not isinstance(value, Mapping):
        raise SchemaError(where, "extra", f"expected a JSON object (dict), got "
                                          f"{type(value).__name__}")  # fmt: skip
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise SchemaError(where, "extra", f"not JSON-serialisable with finite numbers: {err}"
                          ) from err  # fmt: skip
    return text.encode("utf-8")


def decode_extra(blob: bytes, where: str = "", member: str = "NAME.json") -> dict[str, Any]:
    """Parse the bytes of a `KEY.NAME.json` extra: a UTF-8 JSON object.

    Args:
        blob: The member's bytes.
        where: Context for errors, `shard:key`.
        member: The member's extension, for errors.

    Returns:
        The object.

    Raises:
        SchemaError: If the bytes are not UTF-8 JSON or not an object.

    Examples:
        >>> decode_extra(b'{"seed": 1}')
        {'seed': 1}
        >>> decode_extra(b'[1]', "t.tar:k", "p.json")
        Traceback (most recent call last):
        ...
        decouple.data.schema.SchemaError: t.tar:k: field 'p.json': expected a JSON object, got list
    """
    try:
        value = json.loads(bytes(blob).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SchemaError(where, member, f"not valid UTF-8 JSON: {err}") from err
    if not isinstance(value, dict):
        raise SchemaError(where, member, f"expected a JSON object, got {type(value).__name__}")
    return value


def member_problems(key: str, members: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """Missing, empty, unknown or misnamed members of one sample (their content is not read).

    Entries whose name starts with `__` (`__key__`, `__shard__`) are ignored. The reader
    ([Clip.from_members][decouple.data.schema.Clip.from_members]) raises the first problem;
    the validator reports them all.

    Args:
        key: The sample key (for the messages).
        members: Bytes by extension.

    Returns:
        `(member, message)` pairs, empty when the members are as the schema says.

    Examples:
        >>> member_problems("k1", {"json": b"{}", "mp4": b"", "txt": b"x"})
        [('flac', 'missing member k1.flac'), ('mp4', 'member k1.mp4 is empty'), ('txt', 'unknown member k1.txt (expected json, mp4, flac, NAME.npy or NAME.json)')]
    """  # noqa: E501
    out: list[tuple[str, str]] = []
    for ext in (META, VIDEO, AUDIO):
        if ext not in members:
            out.append((ext, f"missing member {key}.{ext}"))
    for ext, blob in members.items():
        if ext.startswith("__"):
            continue
        if ext in (META, VIDEO, AUDIO):
            if len(blob) == 0:
                out.append((ext, f"member {key}.{ext} is empty"))
        elif not ext.endswith((ARRAY_SUFFIX, EXTRA_SUFFIX)):
            out.append((ext, f"unknown member {key}.{ext} (expected json, mp4, flac, NAME.npy "
                             "or NAME.json)"))
        else:
            name = ext.rpartition(".")[0]
            if not KEY_PATTERN.fullmatch(name) or len(name) > MAX_KEY_LENGTH:
                what = "array" if ext.endswith(ARRAY_SUFFIX) else "extra"
                out.append((ext, f"{what} name {name!r} of {key}.{ext}: expected 1 to "
                                 f"{MAX_KEY_LENGTH} characters of [A-Za-z0-9_-]"))
    return out


def encode_array(array: object, where: str = "") -> bytes:
    """An array as `.npy` bytes (`np.save(..., allow_pickle=False)`).

    Args:
        array: A numpy array (or anything `np.asarray` turns into one without objects).
        where: Context for errors.

    Returns:
        The `.npy` file content.

    Raises:
        SchemaError: If the array has an object dtype (it would need pickling).

    Examples:
        >>> import numpy as np
        >>> decode_array(encode_array(np.arange(3, dtype=np.int32))).tolist()
        [0, 1, 2]
    """
    arr = np.asarray(array)
    buf = io.BytesIO()
    try:
        np.save(buf, arr, allow_pickle=False)
    except ValueError as err:
        raise SchemaError(where, "npy", f"cannot store dtype {arr.dtype} without pickle ({err})"
                          ) from None
    return buf.getvalue()


def decode_array(data: bytes, where: str = "", member: str = "npy") -> np.ndarray:
    """Load `.npy` bytes with `allow_pickle=False`.

    Args:
        data: The `.npy` file content.
        where: Context for errors (`shard:key`).
        member: The member, for errors.

    Returns:
        The array.

    Raises:
        SchemaError: If the bytes are not a `.npy` file, or hold objects (pickles).

    Examples:
        >>> decode_array(b"not an npy", "train-000000.tar:k", "align.npy")
        Traceback (most recent call last):
        ...
        decouple.data.schema.SchemaError: train-000000.tar:k: field 'align.npy': not a valid ...
    """
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise SchemaError(where, member, f"not a valid .npy array without pickle ({err})"
                          ) from None
