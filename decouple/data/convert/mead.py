"""MEAD: parse `ACTOR/video/<view>/<emotion>/level_<k>/<NNN>.mp4` and `ACTOR/audio/...m4a`.

MEAD (60 actors, 8 emotions, levels 1-3 with neutral at level 1 only, 7 camera views, 30 fps)
ships each actor as `video` and `audio` trees:

```
M003/video/front/angry/level_3/001.mp4
M003/audio/angry/level_3/001.m4a
```

[parse_mead_path][decouple.data.convert.mead.parse_mead_path] reads the emotion, the level and
the clip number **from the end of the path** (the last `level_<k>` folder, the folder before
it, the file name), the actor from the folder before the first `video`/`audio` folder, and the
view from the folders between `video` and the emotion (the last known view name among them),
so extra folder levels (a corpus unpacked into `MEAD/part1/`, a doubled `video/video/`, a
folder under `level_<k>`) do not matter.

**Parallel groups.** Only clips 001-003 are the same sentence in every emotion of an actor;
they form the group `mead-<actor>-<NNN>` (all emotions and levels). Other clip numbers mean
different sentences in different emotions (and the correspondences between neutral 021-040
and the emotional sentences differ per actor), so they are not paired unless a **mapping
file** says which clips share a sentence (see
[load_mapping][decouple.data.convert.mead.load_mapping]); unpaired clips are single samples
(group `""`, sentence `<emotion>-<NNN>`).

**Audio** comes from the `.m4a` of the same actor, emotion, level and clip; when it is
missing, from the video's own audio stream (counted as an event); when both are missing the
clip is skipped (`missing audio`). Audio without a video in the chosen view is skipped
(`missing video`), and an actor without that view at all is named in the summary's notes.

**Splits** (`split=`): `none` (one split, `all`), `official` (MEAD's test split: per actor,
emotion and level, the last 10 neutral sentences (031-040) and the last 6 emotional ones
(025-030) go to `test`, the rest to `train`; a parallel group is cut along the split, never
leaking a sentence), `spfem` (the SPFEM papers' test actors
[SPFEM_TEST_ACTORS][decouple.data.convert.mead.SPFEM_TEST_ACTORS] are `test`, the others
`train`), and `speakers` (`test_speakers=` are `test`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from decouple.data.convert.common import (
    AUDIO_SUFFIXES,
    DUPLICATE,
    MISSING_VIDEO,
    NOT_IN_EMOTION_SET,
    UNPARSABLE,
    VIDEO_SUFFIXES,
    ClipSource,
    CorpusPlan,
    Skip,
    check_speaker_list,
    make_units,
    media_files,
    relative_posix,
    speaker_split,
)
from decouple.data.registry import MEAD_FOLDERS, canonical_emotion, get_emotion_set
from decouple.data.schema import make_key

__all__ = [
    "MEAD_SENTENCES",
    "MEAD_VIEWS",
    "OFFICIAL_TEST_LAST",
    "PARALLEL_CLIPS",
    "SPFEM_TEST_ACTORS",
    "SPLITS",
    "MeadFile",
    "load_mapping",
    "parse_mead_path",
    "scan_mead",
]

MEAD_VIEWS = ("front", "down", "left_30", "left_60", "right_30", "right_60", "top")
"""MEAD's seven camera views."""
PARALLEL_CLIPS = ("001", "002", "003")
"""Clip numbers that are the same sentence in every emotion of an actor."""
SPFEM_TEST_ACTORS = ("M003", "M009", "W029", "M012", "M030", "W015")
"""The six actors the SPFEM papers evaluate on (`split="spfem"` puts them in `test`)."""
MEAD_SENTENCES = {"neutral": 40, "emotional": 30}
"""Sentences per actor: 40 neutral, 30 per emotion and level (numbered from 001)."""
OFFICIAL_TEST_LAST = (10, 6)
"""MEAD's official test split: the last 10 neutral and the last 6 emotional sentences."""
SPLITS = ("none", "official", "spfem", "speakers")
"""Split protocols `scan_mead` accepts."""

_LEVEL = re.compile(r"level_?(\d+)", re.IGNORECASE)
_CLIP = re.compile(r"\d{1,3}")
_MODALITIES = ("video", "audio")


@dataclass(frozen=True)
class MeadFile:
    """What a MEAD path says.

    Attributes:
        actor: Actor id, e.g. `M003`.
        modality: `video` or `audio`.
        view: Camera view (`front`, ...) of a video; `""` for audio.
        emotion: Canonical emotion name.
        level: Intensity level (1-3).
        clip: Clip number, three digits (`001`).
    """

    actor: str
    modality: str
    view: str
    emotion: str
    level: int
    clip: str


def _emotion(folder: str) -> str:
    name = folder.strip().lower()
    if name in MEAD_FOLDERS:
        return MEAD_FOLDERS[name]
    return canonical_emotion(name)


def parse_mead_path(path: str | PurePosixPath) -> MeadFile:
    """Parse a MEAD file path (relative to the corpus root, or any path ending like one).

    Args:
        path: E.g. `M003/video/front/angry/level_3/001.mp4`.

    Returns:
        The parsed fields.

    Raises:
        ValueError: Naming the path and the part that does not follow the layout.

    Examples:
        >>> parse_mead_path("M003/video/front/angry/level_3/001.mp4")
        MeadFile(actor='M003', modality='video', view='front', emotion='angry', level=3, clip='001')
        >>> parse_mead_path("MEAD/M005/video/video/front/neutral/level_1/extra/12.mp4").clip
        '012'
        >>> parse_mead_path("W015/audio/surprised/level_2/030.m4a").view
        ''
        >>> parse_mead_path("M003/video/front/angry/001.mp4")
        Traceback (most recent call last):
        ...
        ValueError: M003/video/front/angry/001.mp4: no 'level_<k>' folder in the path
    """
    p = PurePosixPath(path)
    parts = p.parts
    stem = PurePosixPath(parts[-1]).stem if parts else ""
    if not _CLIP.fullmatch(stem):
        raise ValueError(f"{p}: the file name must be a clip number like 001, got {stem!r}")
    clip = f"{int(stem):03d}"
    levels = [i for i in range(len(parts) - 1) if _LEVEL.fullmatch(parts[i])]
    if not levels:
        raise ValueError(f"{p}: no 'level_<k>' folder in the path")
    li = levels[-1]
    level = int(_LEVEL.fullmatch(parts[li]).group(1))  # type: ignore[union-attr]
    if li < 1:
        raise ValueError(f"{p}: no emotion folder before {parts[li]!r}")
    try:
        emotion = _emotion(parts[li - 1])
    except KeyError:
        raise ValueError(f"{p}: {parts[li - 1]!r} is not an emotion folder (MEAD folders: "
                         f"{', '.join(sorted(MEAD_FOLDERS))})") from None
    mods = [i for i in range(li - 1) if parts[i].lower() in _MODALITIES]
    if not mods:
        raise ValueError(f"{p}: no 'video' or 'audio' folder before the emotion folder")
    mi = mods[0]
    if mi < 1:
        raise ValueError(f"{p}: no actor folder before {parts[mi]!r}")
    actor = parts[mi - 1]
    modality = parts[mi].lower()
    view = ""
    if modality == "video":
        middle = [x.lower() for x in parts[mi + 1 : li - 1] if x.lower() not in _MODALITIES]
        known = [x for x in middle if x in MEAD_VIEWS]
        if known:
            view = known[-1]
        elif middle:
            view = middle[-1]
        else:
            raise ValueError(f"{p}: no camera view folder between 'video' and the emotion")
    return MeadFile(actor, modality, view, emotion, level, clip)


def load_mapping(path: str | Path) -> dict[str, dict[str, str]]:
    """Read a parallel-sentence mapping file.

    The file is a JSON object `{actor: {clip: sentence}}`: clips mapped to the same sentence
    id of the same actor form one parallel group. A clip is written `NNN` (every emotion and
    level), `<emotion>/NNN` (every level of that emotion) or `<emotion>/level_<k>/NNN`; the
    most specific entry wins. Sentence ids use `[A-Za-z0-9_-]`. Entries for 001-003 override
    the default pairing by number.

    ```json
    {"M003": {"neutral/031": "s31", "angry/021": "s31", "happy/021": "s31"}}
    ```

    Args:
        path: The JSON file.

    Returns:
        `{actor: {normalised clip: sentence}}` with clips written `NNN`, `emotion/NNN` or
        `emotion/level_k/NNN`.

    Raises:
        ValueError: Naming the file and the entry that is malformed.

    Examples:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "map.json")
        >>> _ = open(f, "w").write('{"M003": {"Angry/level_1/21": "s31", "31": "s31"}}')
        >>> load_mapping(f)
        {'M003': {'angry/level_1/021': 's31', '031': 's31'}}
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: mapping file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected an object {{actor: {{clip: sentence}}}}, got "
                         f"{type(d).__name__}")
    out: dict[str, dict[str, str]] = {}
    for actor, entries in d.items():
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: field {actor!r}: expected an object {{clip: sentence}}")
        table: dict[str, str] = {}
        for clip, sentence in entries.items():
            where = f"{path}: field '{actor}.{clip}'"
            if not isinstance(sentence, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", sentence):
                raise ValueError(f"{where}: the sentence id must be a string of "
                                 f"[A-Za-z0-9_-], got {sentence!r}")
            table[_mapping_key(str(clip), where)] = sentence
        out[str(actor)] = table
    return out


def _mapping_key(clip: str, where: str) -> str:
    parts = clip.strip().strip("/").split("/")
    if not _CLIP.fullmatch(parts[-1]):
        raise ValueError(f"{where}: expected NNN, <emotion>/NNN or <emotion>/level_<k>/NNN")
    number = f"{int(parts[-1]):03d}"
    if len(parts) == 1:
        return number
    try:
        emotion = _emotion(parts[0])
    except KeyError:
        raise ValueError(f"{where}: {parts[0]!r} is not an emotion") from None
    if len(parts) == 2:
        return f"{emotion}/{number}"
    m = _LEVEL.fullmatch(parts[1])
    if len(parts) != 3 or m is None:
        raise ValueError(f"{where}: expected NNN, <emotion>/NNN or <emotion>/level_<k>/NNN")
    return f"{emotion}/level_{int(m.group(1))}/{number}"


def _sentence(mapping: dict[str, str], f: MeadFile) -> str | None:
    for key in (f"{f.emotion}/level_{f.level}/{f.clip}", f"{f.emotion}/{f.clip}", f.clip):
        if key in mapping:
            return mapping[key]
    return f.clip if f.clip in PARALLEL_CLIPS else None


def _official_split(f: MeadFile, last: tuple[int, int]) -> str:
    number = int(f.clip)
    if f.emotion == "neutral":
        return "test" if number > MEAD_SENTENCES["neutral"] - last[0] else "train"
    return "test" if number > MEAD_SENTENCES["emotional"] - last[1] else "train"


def scan_mead(
    src: str | Path,
    *,
    view: str = "front",
    emotion_set: str = "mead",
    split: str = "none",
    mapping: str | Path | dict[str, dict[str, str]] | None = None,
    test_speakers: list[str] | tuple[str, ...] | None = None,
    official_last: tuple[int, int] = OFFICIAL_TEST_LAST,
) -> CorpusPlan:
    """Find the MEAD clips under `src` and plan their conversion.

    Args:
        src: Corpus root (the folder holding the actor folders, at any depth).
        view: Camera view to convert (`front` by default).
        emotion_set: `mead` (8 emotions) or `mead7` (without contempt, the SPFEM papers'
            protocol; contempt clips are skipped as `emotion not in the emotion set`), or any
            registered set.
        split: `none`, `official`, `spfem` or `speakers` (module docstring).
        mapping: Parallel-sentence mapping, a file for
            [load_mapping][decouple.data.convert.mead.load_mapping] or its result.
        test_speakers: Test actors for `split="speakers"` (and to override the SPFEM list).
        official_last: `(neutral, emotional)` sentences at the end of each list that go to
            `test` with `split="official"`.

    Returns:
        The plan for [run_conversion][decouple.data.convert.common.run_conversion].

    Raises:
        FileNotFoundError: `src` is not a directory, or the mapping file is missing.
        ValueError: An unknown view, split or emotion set, a bad mapping file, or
            `split="speakers"` without `test_speakers`.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for rel in ("M003/video/front/neutral/level_1/001.mp4",
        ...             "M003/video/front/angry/level_2/001.mp4",
        ...             "M003/video/front/angry/level_2/017.mp4",
        ...             "M003/audio/angry/level_2/017.m4a",
        ...             "M003/audio/happy/level_1/001.m4a"):
        ...     (root / rel).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (root / rel).write_bytes(b"")
        >>> plan = scan_mead(root)
        >>> [(u.uid, [c.key for c in u.clips]) for u in plan.units]
        [('mead-M003-001', ['mead-M003-neutral-1-001', 'mead-M003-angry-2-001']), ('mead-M003-angry-2-017', ['mead-M003-angry-2-017'])]
        >>> [(s.source, s.reason) for s in plan.skipped]
        [('M003/audio/happy/level_1/001.m4a', 'missing video')]
    """  # noqa: E501
    root = Path(src)
    if view not in MEAD_VIEWS:
        raise ValueError(f"view must be one of {MEAD_VIEWS}, got {view!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for MEAD, got {split!r}")
    eset = get_emotion_set(emotion_set)
    if isinstance(mapping, str | Path):
        mapping_table = load_mapping(mapping)
    else:
        mapping_table = {a: dict(t) for a, t in (mapping or {}).items()}
    if split == "speakers" and test_speakers is None:
        raise ValueError("split='speakers' needs test_speakers (the actors of the test split)")
    tests = None
    if split == "spfem":
        tests = check_speaker_list(test_speakers or SPFEM_TEST_ACTORS, "test_speakers")
    elif split == "speakers":
        tests = check_speaker_list(test_speakers or (), "test_speakers")
    if len(official_last) != 2 or any(not isinstance(n, int) or n < 0 for n in official_last):
        raise ValueError(f"official_last must be two ints >= 0, got {official_last!r}")

    skipped: list[Skip] = []
    videos: dict[tuple[str, str, int, str], dict[str, str]] = defaultdict(dict)
    audios: dict[tuple[str, str, int, str], str] = {}
    views: dict[str, set[str]] = defaultdict(set)
    actors_with_audio: set[str] = set()
    for file in media_files(root, VIDEO_SUFFIXES | AUDIO_SUFFIXES):
        rel = relative_posix(file, root)
        try:
            f = parse_mead_path(rel)
        except ValueError as err:
            skipped.append(Skip(rel, UNPARSABLE, str(err).removeprefix(f"{rel}: ")))
            continue
        suffixes = VIDEO_SUFFIXES if f.modality == "video" else AUDIO_SUFFIXES
        if file.suffix.lower() not in suffixes:
            skipped.append(Skip(rel, UNPARSABLE, f"a {file.suffix} file in a {f.modality} folder"))
            continue
        k = (f.actor, f.emotion, f.level, f.clip)
        if f.modality == "video":
            views[f.actor].add(f.view)
            if f.view in videos[k]:
                skipped.append(Skip(rel, DUPLICATE, f"same clip as {videos[k][f.view]}"))
                continue
            videos[k][f.view] = rel
        else:
            actors_with_audio.add(f.actor)
            if k in audios:
                skipped.append(Skip(rel, DUPLICATE, f"same clip as {audios[k]}"))
                continue
            audios[k] = rel

    notes = []
    for actor in sorted(views):
        if view not in views[actor]:
            notes.append(f"{actor}: no '{view}' videos (views found: "
                         f"{', '.join(sorted(views[actor]))})")
    for actor in sorted(set(views) - actors_with_audio):
        notes.append(f"{actor}: no audio files; audio is read from the videos' own streams")

    groups: dict[tuple[str, str], list[ClipSource]] = defaultdict(list)
    singles: list[tuple[str, ClipSource]] = []
    for k in sorted(set(videos) | set(audios)):
        actor, emotion, level, clip = k
        rel_video = videos.get(k, {}).get(view)
        if rel_video is None and k not in audios:
            continue  # another view of a clip: not a clip of this conversion
        f = MeadFile(actor, "video", view, emotion, level, clip)
        if emotion not in eset:
            skipped.append(Skip(rel_video or audios[k], NOT_IN_EMOTION_SET,
                                f"{emotion!r} is not in {eset.name!r}"))
            continue
        if rel_video is None:
            others = sorted(videos.get(k, {}))
            detail = f"no '{view}' video" + (f" (views: {', '.join(others)})" if others else "")
            skipped.append(Skip(audios[k], MISSING_VIDEO, detail))
            continue
        sentence = _sentence(mapping_table.get(actor, {}), f)
        source = ClipSource(
            key=make_key("mead", actor, emotion, level, clip), speaker=actor, emotion=emotion,
            intensity=level, sentence=sentence or f"{emotion}-{clip}", video=rel_video,
            audio=audios.get(k), prefer_audio_file=True,
        )  # fmt: skip
        if split == "official":
            which = _official_split(f, official_last)
        else:
            which = speaker_split(actor, tests)
        if sentence is None:
            singles.append((which, source))
        else:
            groups[(which, make_key("mead", actor, sentence))].append(source)

    params: dict[str, Any] = {
        "view": view, "split": split, "test_speakers": list(tests) if tests else None,
        "official_last": list(official_last) if split == "official" else None,
        "mapping": hashlib.sha1(json.dumps(mapping_table, sort_keys=True).encode()).hexdigest()
        if mapping_table else None,
    }  # fmt: skip
    return CorpusPlan("mead", root, eset, make_units(groups, singles, eset), skipped, notes,
                      params)
