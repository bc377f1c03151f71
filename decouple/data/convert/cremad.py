"""CREMA-D: parse `AAAA_SSS_EEE_LL.flv` (video with audio; `AudioWAV/*.wav` as a fallback).

A CREMA-D file name holds four fields: the actor (`1001`..`1091`), the sentence (12 codes:
IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI), the emotion (ANG DIS FEA HAP NEU SAD,
`decouple.data.registry.CREMAD_CODES`) and the level (LO, MD, HI, or XX unspecified; stored
as intensity 1, 2, 3 and 0). Only the file name is parsed; the folders (`VideoFlash/`,
`AudioWAV/`, anything else) do not matter.

Each clip's video is its video file (`.flv` upstream; `.mp4` and the other video suffixes
are read too, and when a clip has several the first of `.flv`, `.mp4`, ... is used); its audio
is the video's own stream, or else `AudioWAV/<name>.wav` (or any `.wav`, `.flac` or `.mp3`
of the same name). FLV stores no AAC encoder delay, so audio decoded from an `.flv` starts with
the encoder's priming samples (about 23 ms at 44.1 kHz), as with any FFmpeg-based reader.

**Parallel groups**: the same actor and sentence in every emotion and level (id
`cremad-<actor>-<sentence>`); the reference is the neutral clip.

**Splits**: `none` (one split, `all`) or `speakers` (`test_speakers=`).
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
from decouple.data.registry import CREMAD_CODES, get_emotion_set
from decouple.data.schema import make_key

__all__ = ["LEVELS", "SENTENCES", "SPLITS", "CremadFile", "parse_cremad_name", "scan_cremad"]

SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
"""CREMA-D's twelve sentence codes."""
LEVELS = {"LO": 1, "MD": 2, "HI": 3, "XX": 0}
"""Emotion level code -> intensity (0 = unspecified)."""
SPLITS = ("none", "speakers")
"""Split protocols `scan_cremad` accepts."""

_NAME = re.compile(r"(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})")
_VIDEO_ORDER = (".flv", ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
_AUDIO_ORDER = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg")


@dataclass(frozen=True)
class CremadFile:
    """The fields of a CREMA-D file name.

    Attributes:
        actor: `1001`..`1091`.
        sentence: One of [SENTENCES][decouple.data.convert.cremad.SENTENCES].
        code: Emotion code (`ANG`, ...).
        emotion: Canonical emotion name.
        level: Level code (`LO`, `MD`, `HI`, `XX`).
        intensity: 1, 2, 3, or 0 for `XX`.
    """

    actor: str
    sentence: str
    code: str
    emotion: str
    level: str
    intensity: int


def parse_cremad_name(name: str) -> CremadFile:
    """Parse a CREMA-D file name (folders are ignored; codes are read case-insensitively).

    Args:
        name: E.g. `VideoFlash/1001_DFA_ANG_XX.flv`.

    Returns:
        The fields.

    Raises:
        ValueError: Naming the file and the field that is wrong.

    Examples:
        >>> parse_cremad_name("VideoFlash/1001_DFA_ANG_XX.flv")
        CremadFile(actor='1001', sentence='DFA', code='ANG', emotion='angry', level='XX', intensity=0)
        >>> parse_cremad_name("1001_DFA_XYZ_HI.flv")
        Traceback (most recent call last):
        ...
        ValueError: 1001_DFA_XYZ_HI.flv: field 'emotion': expected one of ANG, DIS, FEA, HAP, NEU, SAD, got 'XYZ'
    """  # noqa: E501
    stem = Path(name).stem
    m = _NAME.fullmatch(stem)
    if m is None:
        raise ValueError(f"{name}: expected a name AAAA_SSS_EEE_LL (actor, sentence, emotion, "
                         "level)")
    actor, sentence, code, level = m.group(1), *(g.upper() for g in m.groups()[1:])
    if sentence not in SENTENCES:
        raise ValueError(f"{name}: field 'sentence': expected one of {', '.join(SENTENCES)}, "
                         f"got {sentence!r}")
    if code not in CREMAD_CODES:
        raise ValueError(f"{name}: field 'emotion': expected one of {', '.join(CREMAD_CODES)}, "
                         f"got {code!r}")
    if level not in LEVELS:
        raise ValueError(f"{name}: field 'level': expected one of {', '.join(LEVELS)}, "
                         f"got {level!r}")
    return CremadFile(actor, sentence, code, CREMAD_CODES[code], level, LEVELS[level])


def _rank(path: str, order: tuple[str, ...]) -> tuple[int, str]:
    suffix = Path(path).suffix.lower()
    return (order.index(suffix) if suffix in order else len(order), path)


def scan_cremad(
    src: str | Path,
    *,
    split: str = "none",
    emotion_set: str = "cremad",
    test_speakers: list[str] | tuple[str, ...] | None = None,
) -> CorpusPlan:
    """Find the CREMA-D clips under `src` and plan their conversion.

    Args:
        src: Corpus root (e.g. the folder holding `VideoFlash/` and `AudioWAV/`).
        split: `none` or `speakers` (module docstring).
        emotion_set: Emotion set of the ids (`cremad`, or any registered set; clips whose
            emotion it lacks are skipped).
        test_speakers: Test actors for `split="speakers"`.

    Returns:
        The plan for [run_conversion][decouple.data.convert.common.run_conversion].

    Raises:
        FileNotFoundError: `src` is not a directory.
        ValueError: An unknown split or emotion set, or `split="speakers"` without
            `test_speakers`.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for rel in ("VideoFlash/1001_DFA_ANG_XX.flv", "VideoFlash/1001_DFA_NEU_XX.flv",
        ...             "AudioWAV/1001_DFA_NEU_XX.wav", "AudioWAV/1001_IEO_SAD_HI.wav"):
        ...     (root / rel).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (root / rel).write_bytes(b"")
        >>> plan = scan_cremad(root)
        >>> [(u.uid, [(c.key, c.audio) for c in u.clips]) for u in plan.units]
        [('cremad-1001-DFA', [('cremad-1001-DFA-ANG-XX', None), ('cremad-1001-DFA-NEU-XX', 'AudioWAV/1001_DFA_NEU_XX.wav')])]
        >>> [(s.source, s.reason) for s in plan.skipped]
        [('AudioWAV/1001_IEO_SAD_HI.wav', 'missing video')]
    """  # noqa: E501
    root = Path(src)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for CREMA-D, got {split!r}")
    if split == "speakers" and test_speakers is None:
        raise ValueError("split='speakers' needs test_speakers (the actors of the test split)")
    eset = get_emotion_set(emotion_set)
    tests = check_speaker_list(test_speakers or (), "test_speakers") if split == "speakers" \
        else None

    skipped: list[Skip] = []
    videos: dict[str, list[str]] = defaultdict(list)
    audios: dict[str, list[str]] = defaultdict(list)
    parsed: dict[str, CremadFile] = {}
    for file in media_files(root, VIDEO_SUFFIXES | AUDIO_SUFFIXES):
        rel = relative_posix(file, root)
        try:
            f = parse_cremad_name(file.name)
        except ValueError as err:
            skipped.append(Skip(rel, UNPARSABLE, str(err).removeprefix(f"{file.name}: ")))
            continue
        cid = f"{f.actor}_{f.sentence}_{f.code}_{f.level}"
        parsed.setdefault(cid, f)
        (videos if file.suffix.lower() in VIDEO_SUFFIXES else audios)[cid].append(rel)

    groups: dict[tuple[str, str], list[ClipSource]] = defaultdict(list)
    for cid in sorted(parsed):
        f = parsed[cid]
        vs = sorted(videos.get(cid, []), key=lambda p: _rank(p, _VIDEO_ORDER))
        aus = sorted(audios.get(cid, []), key=lambda p: _rank(p, _AUDIO_ORDER))
        if not vs:
            skipped.append(Skip(aus[0], MISSING_VIDEO, "audio file without a matching video"))
            continue
        skipped.extend(Skip(v, DUPLICATE, f"same clip as {vs[0]}") for v in vs[1:])
        if f.emotion not in eset:
            skipped.append(Skip(vs[0], NOT_IN_EMOTION_SET, f"{f.emotion!r} is not in "
                                                            f"{eset.name!r}"))
            continue
        source = ClipSource(
            key=make_key("cremad", f.actor, f.sentence, f.code, f.level), speaker=f.actor,
            emotion=f.emotion, intensity=f.intensity, sentence=f.sentence, video=vs[0],
            audio=aus[0] if aus else None, prefer_audio_file=False,
        )  # fmt: skip
        gid = make_key("cremad", f.actor, f.sentence)
        groups[(speaker_split(f.actor, tests), gid)].append(source)

    params: dict[str, Any] = {"split": split, "test_speakers": list(tests) if tests else None}
    return CorpusPlan("cremad", root, eset, make_units(groups, [], eset), skipped, [], params)
