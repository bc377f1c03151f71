"""RAVDESS: parse `Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4` (and the `03-...wav` audio-only files).

Each RAVDESS file name holds seven two-digit fields:

| field | meaning |
|---|---|
| `MM` modality | `01` audio+video (mp4), `02` video only (mp4), `03` audio only (wav) |
| `VV` vocal channel | `01` speech, `02` song |
| `EE` emotion | `01`..`08` (`RAVDESS_CODES`): neutral, calm, happy, sad, angry, fear, ... |
| `II` intensity | `01` normal, `02` strong (neutral has normal only) |
| `SS` statement | `01` "Kids are talking by the door", `02` "Dogs are sitting by the door" |
| `RR` repetition | `01`, `02` |
| `AA` actor | `01`..`24` (odd male, even female) |

Only the file name is parsed (the folder may be anything, at any depth). One clip is the
combination of every field but the modality: its video is the `01` file (audio+video) if
there is one, else the `02` file (video only); its audio is the video's own audio stream, or
else the matching `03` WAV. A clip with neither is skipped (`missing audio`); a `03` WAV
without a video is skipped (`missing video`).

**Parallel groups**: the same actor, vocal channel, statement and repetition across emotions
and intensities (up to 15 clips: neutral + 7 emotions x 2 intensities), id
`ravdess-<actor>-<speech|song>-s<SS>-r<RR>`. The reference is the neutral clip.

**Splits**: `none` (one split, `all`), `spfem` (actors 01-06, the SPFEM papers' RAVDESS test
actors, are `test`), `speakers` (`test_speakers=`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decouple.data.convert.common import (
    AUDIO_SUFFIXES,
    DUPLICATE,
    EXCLUDED_BY_OPTION,
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
from decouple.data.registry import RAVDESS_CODES, get_emotion_set
from decouple.data.schema import make_key

__all__ = [
    "SPFEM_TEST_ACTORS",
    "SPLITS",
    "VOCAL",
    "RavdessFile",
    "parse_ravdess_name",
    "scan_ravdess",
]

SPFEM_TEST_ACTORS = ("01", "02", "03", "04", "05", "06")
"""RAVDESS actors the SPFEM papers evaluate on (`split="spfem"` puts them in `test`)."""
SPLITS = ("none", "spfem", "speakers")
"""Split protocols `scan_ravdess` accepts."""
VOCAL = ("speech", "song", "both")
"""Vocal channels `scan_ravdess` can keep."""

_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_VOCAL = {"01": "speech", "02": "song"}


@dataclass(frozen=True)
class RavdessFile:
    """The fields of a RAVDESS file name (two-digit strings, emotion as a canonical name).

    Attributes:
        modality: `01` audio+video, `02` video only, `03` audio only.
        vocal: `speech` or `song`.
        emotion: Canonical emotion name.
        intensity: 1 (normal) or 2 (strong).
        statement: `01` or `02`.
        repetition: `01` or `02`.
        actor: `01`..`24`.
    """

    modality: str
    vocal: str
    emotion: str
    intensity: int
    statement: str
    repetition: str
    actor: str

    @property
    def clip_id(self) -> tuple[str, str, int, str, str, str]:
        """Every field but the modality: the clip the file belongs to."""
        return (self.actor, self.vocal, self.intensity, self.emotion, self.statement,
                self.repetition)


def parse_ravdess_name(name: str) -> RavdessFile:
    """Parse a RAVDESS file name (the folders, if any, are ignored).

    Args:
        name: E.g. `01-01-03-02-01-02-12.mp4` or `Actor_12/01-01-03-02-01-02-12.mp4`.

    Returns:
        The fields.

    Raises:
        ValueError: Naming the file and the field that is out of range.

    Examples:
        >>> parse_ravdess_name("Actor_12/01-01-03-02-01-02-12.mp4")
        RavdessFile(modality='01', vocal='speech', emotion='happy', intensity=2, statement='01', repetition='02', actor='12')
        >>> parse_ravdess_name("03-01-09-01-01-01-01.wav")
        Traceback (most recent call last):
        ...
        ValueError: 03-01-09-01-01-01-01.wav: field 'emotion': expected 01..08, got '09'
    """  # noqa: E501
    stem = Path(name).stem
    m = _NAME.fullmatch(stem)
    if m is None:
        raise ValueError(f"{name}: expected a name MM-VV-EE-II-SS-RR-AA (seven two-digit fields)")
    mm, vv, ee, ii, ss, rr, aa = m.groups()
    checks = (("modality", mm, ("01", "02", "03")), ("vocal channel", vv, tuple(_VOCAL)),
              ("emotion", ee, tuple(RAVDESS_CODES)), ("intensity", ii, ("01", "02")),
              ("statement", ss, ("01", "02")), ("repetition", rr, ("01", "02")))
    for field, value, allowed in checks:
        if value not in allowed:
            span = f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 2 else " or ".join(allowed)
            raise ValueError(f"{name}: field {field!r}: expected {span}, got {value!r}")
    if aa == "00":
        raise ValueError(f"{name}: field 'actor': expected 01 or more, got '00'")
    return RavdessFile(mm, _VOCAL[vv], RAVDESS_CODES[ee], int(ii), ss, rr, aa)


def scan_ravdess(
    src: str | Path,
    *,
    split: str = "none",
    vocal: str = "speech",
    emotion_set: str = "ravdess",
    test_speakers: list[str] | tuple[str, ...] | None = None,
) -> CorpusPlan:
    """Find the RAVDESS clips under `src` and plan their conversion.

    Args:
        src: Corpus root (the `Actor_NN` folders may be at any depth).
        split: `none`, `spfem` or `speakers` (module docstring).
        vocal: Keep `speech` (default), `song` or `both`; the others are skipped as
            `excluded by an option`.
        emotion_set: Emotion set of the ids (`ravdess`, or any registered set; clips whose
            emotion it lacks are skipped).
        test_speakers: Test actors (`01`..`24`) for `split="speakers"` or to override the
            SPFEM list.

    Returns:
        The plan for [run_conversion][decouple.data.convert.common.run_conversion].

    Raises:
        FileNotFoundError: `src` is not a directory.
        ValueError: An unknown split, vocal channel or emotion set.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for rel in ("Actor_01/01-01-01-01-01-01-01.mp4", "Actor_01/02-01-03-02-01-01-01.mp4",
        ...             "Actor_01/03-01-03-02-01-01-01.wav", "Actor_01/01-02-03-01-01-01-01.mp4"):
        ...     (root / rel).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (root / rel).write_bytes(b"")
        >>> plan = scan_ravdess(root)
        >>> unit = plan.units[0]
        >>> unit.uid, [(c.emotion, c.video, c.audio) for c in unit.clips]
        ('ravdess-01-speech-s01-r01', [('neutral', 'Actor_01/01-01-01-01-01-01-01.mp4', None), ('happy', 'Actor_01/02-01-03-02-01-01-01.mp4', 'Actor_01/03-01-03-02-01-01-01.wav')])
        >>> [(s.source, s.reason) for s in plan.skipped]
        [('Actor_01/01-02-03-01-01-01-01.mp4', 'excluded by an option')]
    """  # noqa: E501
    root = Path(src)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for RAVDESS, got {split!r}")
    if vocal not in VOCAL:
        raise ValueError(f"vocal must be one of {VOCAL}, got {vocal!r}")
    if split == "speakers" and test_speakers is None:
        raise ValueError("split='speakers' needs test_speakers (the actors of the test split)")
    eset = get_emotion_set(emotion_set)
    tests = None
    if split == "spfem":
        tests = check_speaker_list(test_speakers or SPFEM_TEST_ACTORS, "test_speakers")
    elif split == "speakers":
        tests = check_speaker_list(test_speakers or (), "test_speakers")

    skipped: list[Skip] = []
    files: dict[tuple[str, str, int, str, str, str], dict[str, str]] = defaultdict(dict)
    parsed: dict[tuple[str, str, int, str, str, str], RavdessFile] = {}
    for file in media_files(root, VIDEO_SUFFIXES | AUDIO_SUFFIXES):
        rel = relative_posix(file, root)
        try:
            f = parse_ravdess_name(file.name)
        except ValueError as err:
            skipped.append(Skip(rel, UNPARSABLE, str(err).removeprefix(f"{file.name}: ")))
            continue
        wanted = AUDIO_SUFFIXES if f.modality == "03" else VIDEO_SUFFIXES
        if file.suffix.lower() not in wanted:
            skipped.append(Skip(rel, UNPARSABLE,
                                f"modality {f.modality} but a {file.suffix} file"))
            continue
        if f.modality in files[f.clip_id]:
            skipped.append(Skip(rel, DUPLICATE, f"same file as {files[f.clip_id][f.modality]}"))
            continue
        files[f.clip_id][f.modality] = rel
        parsed.setdefault(f.clip_id, f)

    groups: dict[tuple[str, str], list[ClipSource]] = defaultdict(list)
    for cid in sorted(files):
        f, found = parsed[cid], files[cid]
        first = found.get("01") or found.get("02") or found["03"]
        if vocal != "both" and f.vocal != vocal:
            skipped.append(Skip(first, EXCLUDED_BY_OPTION,
                                f"{f.vocal} (vocal channel {vocal!r} selected)"))
            continue
        if f.emotion not in eset:
            skipped.append(Skip(first, NOT_IN_EMOTION_SET, f"{f.emotion!r} is not in "
                                                           f"{eset.name!r}"))
            continue
        video = found.get("01") or found.get("02")
        if video is None:
            skipped.append(Skip(found["03"], MISSING_VIDEO,
                                "audio-only file without a matching 01 or 02 video"))
            continue
        source = ClipSource(
            key=make_key("ravdess", f.actor, f.vocal, f.emotion, f.intensity,
                         f"s{f.statement}", f"r{f.repetition}"),
            speaker=f.actor, emotion=f.emotion, intensity=f.intensity, sentence=f.statement,
            video=video, audio=found.get("03"), prefer_audio_file=False,
        )  # fmt: skip
        gid = make_key("ravdess", f.actor, f.vocal, f"s{f.statement}", f"r{f.repetition}")
        groups[(speaker_split(f.actor, tests), gid)].append(source)

    params: dict[str, Any] = {"split": split, "vocal": vocal,
                              "test_speakers": list(tests) if tests else None}
    return CorpusPlan("ravdess", root, eset, make_units(groups, [], eset), skipped, [], params)
