"""The SPFEM evaluation protocol: which held-out clip is edited toward which emotion, driven by
which reference.

A **pair** is one edit: a source clip of a held-out speaker, a target emotion, and what gives
the target (a reference clip, or the label itself). Three **settings**, as in the SPFEM papers:

| setting | reference |
|---|---|
| `intra` (intra-ID) | a clip of the **same** speaker in the target emotion |
| `cross` (cross-ID) | a clip of **another** held-out speaker (a fixed map), target emotion |
| `label` (label-driven) | none: the target emotion's name (`model.emotion_code(label=...)`) |

Sources are the held-out speakers' clips in the source emotions (neutral), in sentence order
(`max_sources` keeps the first N per speaker); targets are the other emotions, referenced at
level 3 (neutral has level 1 only). A reference always says **another sentence** than its
source, so its mouth cannot be copied: of the reference speaker's clips in the target emotion
and level, the first (in sentence order) whose sentence comes after the source's, else the
first one (the next sentence, cyclically).

* **SynthTalk** ([synthtalk_protocol][protocol.synthtalk_protocol]): the corpus's `test` split
  (its held-out speakers), neutral sources, the 7 other emotions; the cross-ID map is cyclic
  over the held-out speakers in sorted order, each taking its references from the one before
  it (`S004 <- S019, S009 <- S004, ...`; [cyclic_map][protocol.cyclic_map]), so no speaker is
  its own reference. With a single held-out speaker there is no cross-ID setting (a note says
  so).
* **MEAD** ([mead_protocol][protocol.mead_protocol]): the six test actors of the SPFEM papers
  (`decouple.data.convert.mead.SPFEM_TEST_ACTORS`), their 7 emotions (contempt dropped, the
  `mead7` set) and their cross-ID map ([MEAD_CROSS_MAP][protocol.MEAD_CROSS_MAP]:
  M003 <- W015, M009 <- M003, W029 <- M009, M012 <- W029, M030 <- M012, W015 <- M030); intra-ID
  and cross-ID only by default (the papers' table). An actor missing from the shards is an
  error that names the shards and the actors found.

This is recipe code: import it from the recipe folder (`sys.path` holds it when a script there
runs).

Examples:
    >>> cyclic_map(["S009", "S004", "S014"])
    {'S004': 'S014', 'S009': 'S004', 'S014': 'S009'}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decouple.data.convert.mead import SPFEM_TEST_ACTORS

__all__ = [
    "MEAD_ACTORS",
    "MEAD_CROSS_MAP",
    "SETTINGS",
    "SETTING_NAMES",
    "TARGET_LEVEL",
    "ClipInfo",
    "Pair",
    "Protocol",
    "ProtocolError",
    "cyclic_map",
    "load_clips",
    "make_protocol",
    "mead_protocol",
    "pick_reference",
    "scan_split",
    "synthtalk_protocol",
]

SETTINGS: tuple[str, ...] = ("intra", "cross", "label")
"""The three settings, in report order."""
SETTING_NAMES: Mapping[str, str] = {"intra": "intra-ID", "cross": "cross-ID",
                                    "label": "label-driven"}  # fmt: skip
"""How the report names the settings."""
TARGET_LEVEL = 3
"""Intensity level of the references and counterfactual targets (neutral: 1)."""
MEAD_ACTORS: tuple[str, ...] = SPFEM_TEST_ACTORS
"""The six MEAD test actors of the SPFEM papers (`decouple.data.convert.mead.SPFEM_TEST_ACTORS`)."""
MEAD_CROSS_MAP: Mapping[str, str] = {"M003": "W015", "M009": "M003", "W029": "M009",
                                     "M012": "W029", "M030": "M012", "W015": "M030"}  # fmt: skip
"""MEAD cross-ID map of the SPFEM papers: source actor -> the actor its references come from."""


class ProtocolError(ValueError):
    """The shards cannot give the protocol (a missing actor, no source clip, ...)."""


@dataclass(frozen=True)
class ClipInfo:
    """What the protocol needs to know of a clip of the split (no media).

    Attributes:
        key: Sample key.
        speaker: Speaker (actor) id.
        emotion: Canonical emotion name.
        level: Intensity level (MEAD / SynthTalk 1-3).
        sentence: Sentence id (clips with the same id say the same sentence).
        num_frames: Video frames.
    """

    key: str
    speaker: str
    emotion: str
    level: int
    sentence: str
    num_frames: int


@dataclass(frozen=True)
class Pair:
    """One edit of the protocol.

    Attributes:
        setting: `intra`, `cross` or `label`.
        source: Key of the source clip.
        target: Target emotion name.
        reference: Key of the reference clip (None in the `label` setting).
    """

    setting: str
    source: str
    target: str
    reference: str | None


@dataclass(frozen=True)
class Protocol:
    """The pairs of an evaluation and how they were chosen.

    Attributes:
        corpus: `synthtalk` or `mead`.
        root: The shard directory.
        split: The held-out split.
        speakers: Held-out speakers, in protocol order.
        targets: Target emotions, in the corpus's order.
        source_emotions: Emotions of the source clips.
        level: Target / reference level (neutral: 1).
        cross_map: Source speaker -> the speaker its cross-ID references come from.
        clips: Every clip of the split by key.
        pairs: The pairs: per speaker, source (sentence order), target, setting.
        notes: What the protocol could not do (e.g. no cross-ID with one held-out speaker).
    """

    corpus: str
    root: str
    split: str
    speakers: tuple[str, ...]
    targets: tuple[str, ...]
    source_emotions: tuple[str, ...]
    level: int
    cross_map: Mapping[str, str]
    clips: Mapping[str, ClipInfo] = field(repr=False)
    pairs: tuple[Pair, ...] = field(repr=False)
    notes: tuple[str, ...] = ()

    def of(self, setting: str) -> list[Pair]:
        """The pairs of one setting.

        Args:
            setting: `intra`, `cross` or `label`.

        Returns:
            Its pairs, in protocol order.

        Raises:
            ValueError: An unknown setting.
        """
        if setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}")
        return [p for p in self.pairs if p.setting == setting]

    def settings(self) -> list[str]:
        """The settings that have pairs, in report order.

        Returns:
            Setting names.
        """
        return [s for s in SETTINGS if any(p.setting == s for p in self.pairs)]

    def jobs(self) -> list[tuple[str, str]]:
        """The distinct (source key, target emotion) of the pairs, in protocol order (the
        counterfactual ground truth and the copy row depend on these only).

        Returns:
            The jobs.
        """
        return list(dict.fromkeys((p.source, p.target) for p in self.pairs))

    def counts(self) -> dict[str, int]:
        """Pairs per setting.

        Returns:
            `{setting: pairs}` for every setting.
        """
        return {s: len(self.of(s)) for s in SETTINGS}

    def to_json(self) -> dict[str, Any]:
        """The protocol as JSON (for metrics.json): everything but the clip index.

        Returns:
            A JSON-ready dict.
        """
        return {"corpus": self.corpus, "root": self.root, "split": self.split,
                "speakers": list(self.speakers), "targets": list(self.targets),
                "source_emotions": list(self.source_emotions), "level": self.level,
                "cross_map": dict(self.cross_map), "counts": self.counts(),
                "sources": len({p.source for p in self.pairs}),
                "notes": list(self.notes),
                "pairs": [[p.setting, p.source, p.target, p.reference] for p in self.pairs]}


# ------------------------------------------------------------------------------------ reading


def scan_split(root: str | Path, split: str) -> list[ClipInfo]:
    """Every clip of a split, metadata only (the `KEY.json` members), in shard order.

    Args:
        root: The shard directory.
        split: Split name.

    Returns:
        The clips.

    Raises:
        FileNotFoundError: No index for the split (the message lists the index files).
    """
    from decouple.data.schema import ClipMeta
    from decouple.data.shards import iter_samples, read_index

    out = []
    for path in read_index(root, split).paths:
        for sample in iter_samples(path):
            key = sample["__key__"]
            meta = ClipMeta.from_json(json.loads(sample["json"].decode("utf-8")),
                                      f"{path.name}:{key}")  # fmt: skip
            out.append(ClipInfo(key, meta.speaker, meta.emotion, int(meta.intensity),
                                meta.sentence, int(meta.num_frames)))  # fmt: skip
    return out


def load_clips(root: str | Path, split: str, keys: Iterable[str]) -> dict[str, Any]:
    """The clips of a split with the given keys, in one pass over its shards.

    Args:
        root: The shard directory.
        split: Split name.
        keys: Keys to read.

    Returns:
        `{key: decouple.data.schema.Clip}` (media still encoded).

    Raises:
        KeyError: A key is not in the split (the message names them).
    """
    from decouple.data.schema import Clip
    from decouple.data.shards import iter_samples, read_index

    wanted = set(keys)
    out: dict[str, Any] = {}
    for path in read_index(root, split).paths:
        for sample in iter_samples(path):
            key = sample["__key__"]
            if key in wanted:
                out[key] = Clip.from_members(key, sample, f"{path.name}:{key}")
        if len(out) == len(wanted):
            break
    missing = sorted(wanted - set(out))
    if missing:
        raise KeyError(f"{root}: split {split!r} has no clip(s) {missing[:5]}")
    return out


# ------------------------------------------------------------------------------------ choices


def cyclic_map(speakers: Iterable[str]) -> dict[str, str]:
    """The cross-ID map over held-out speakers: in sorted order, each speaker's references come
    from the speaker before it (the first from the last).

    Args:
        speakers: The held-out speakers.

    Returns:
        `{speaker: reference speaker}`; empty for fewer than 2 speakers (no speaker is ever
        its own reference).

    Examples:
        >>> cyclic_map(["S004", "S009"])
        {'S004': 'S009', 'S009': 'S004'}
        >>> cyclic_map(["S004"])
        {}
    """
    order = sorted(dict.fromkeys(speakers))
    if len(order) < 2:
        return {}
    return {s: order[i - 1] for i, s in enumerate(order)}


def _level(emotion: str, level: int) -> int:
    return 1 if emotion == "neutral" else level


def pick_reference(clips: Sequence[ClipInfo], speaker: str, emotion: str, level: int,
                   sentence: str) -> ClipInfo | None:  # fmt: skip
    """The reference of a source: the speaker's clip in the emotion and level with the next
    other sentence.

    Of the speaker's clips in `emotion` at `level` (1 for neutral) whose sentence is not
    `sentence`, sorted by sentence: the first after `sentence`, else the first.

    Args:
        clips: The split's clips.
        speaker: The reference speaker.
        emotion: The target emotion.
        level: The target level.
        sentence: The source's sentence (never the reference's).

    Returns:
        The reference, or None when the speaker has no such clip.

    Examples:
        >>> cs = [ClipInfo(f"k{s}", "A", "happy", 3, s, 10) for s in ("001", "002", "003")]
        >>> [pick_reference(cs, "A", "happy", 3, s).sentence for s in ("001", "002", "003")]
        ['002', '003', '001']
        >>> pick_reference(cs, "B", "happy", 3, "001") is None
        True
    """
    lv = _level(emotion, level)
    found = sorted((c for c in clips if c.speaker == speaker and c.emotion == emotion
                    and c.level == lv and c.sentence != sentence),
                   key=lambda c: (c.sentence, c.key))  # fmt: skip
    if not found:
        return None
    later = [c for c in found if c.sentence > sentence]
    return later[0] if later else found[0]


def make_protocol(
    clips: Sequence[ClipInfo],
    *,
    corpus: str,
    root: str | Path,
    split: str,
    speakers: Sequence[str],
    targets: Sequence[str],
    cross_map: Mapping[str, str],
    source_emotions: Sequence[str] = ("neutral",),
    level: int = TARGET_LEVEL,
    max_sources: int | None = None,
    settings: Sequence[str] = SETTINGS,
    notes: Sequence[str] = (),
) -> Protocol:
    """Build the pairs of the three settings from a split's clips.

    Args:
        clips: The split's clips ([scan_split][protocol.scan_split]).
        corpus: Corpus name (for the report).
        root: The shard directory.
        split: The split.
        speakers: Held-out speakers to use as sources.
        targets: Target emotions (a source is never edited toward its own emotion).
        cross_map: Source speaker -> reference speaker of the cross-ID setting (speakers
            missing from it get no cross-ID pairs).
        source_emotions: Emotions of the source clips (sources at `level`, neutral at 1).
        level: Level of the references (and sources other than neutral).
        max_sources: At most this many sources per speaker (first in sentence order); None:
            all.
        settings: The settings to build (a subset of `SETTINGS`).
        notes: Notes carried into the protocol.

    Returns:
        The [Protocol][protocol.Protocol].

    Raises:
        ProtocolError: No source clip at all.
        ValueError: `max_sources` below 1, an unknown setting.
    """
    if max_sources is not None and max_sources < 1:
        raise ValueError(f"max_sources: expected an integer >= 1 or None, got {max_sources}")
    unknown = [x for x in settings if x not in SETTINGS]
    if unknown:
        raise ValueError(f"settings: unknown {unknown}; expected a subset of {SETTINGS}")
    notes = list(notes)
    by_key = {c.key: c for c in clips}
    pairs: list[Pair] = []
    missing: dict[str, int] = {}
    for speaker in speakers:
        sources = sorted((c for c in clips if c.speaker == speaker
                          and c.emotion in source_emotions
                          and c.level == _level(c.emotion, level)),
                         key=lambda c: (source_emotions.index(c.emotion), c.sentence, c.key))
        if max_sources is not None:
            sources = sources[:max_sources]
        if not sources:
            notes.append(f"speaker {speaker}: no source clip ({'/'.join(source_emotions)})")
        for src in sources:
            for target in targets:
                if target == src.emotion:
                    continue
                for setting in [x for x in SETTINGS if x in settings]:
                    if setting == "label":
                        pairs.append(Pair("label", src.key, target, None))
                        continue
                    ref_speaker = speaker if setting == "intra" else cross_map.get(speaker)
                    if ref_speaker is None:
                        continue
                    ref = pick_reference(clips, ref_speaker, target, level, src.sentence)
                    if ref is None:
                        what = f"{setting}: {ref_speaker} {target}"
                        missing[what] = missing.get(what, 0) + 1
                        continue
                    pairs.append(Pair(setting, src.key, target, ref.key))
    for what, n in missing.items():
        notes.append(f"{what} level {_level(what.split()[-1], level)}: no clip with another "
                     f"sentence; {n} pair(s) left out")  # fmt: skip
    if not pairs:
        raise ProtocolError(f"{root}: split {split!r} gives no pair (speakers {list(speakers)}, "
                            f"source emotions {list(source_emotions)}, targets {list(targets)})")
    return Protocol(corpus, str(root), split, tuple(speakers), tuple(targets),
                    tuple(source_emotions), level, dict(cross_map), by_key, tuple(pairs),
                    tuple(notes))  # fmt: skip


def _split_emotions(root: str | Path, split: str) -> tuple[str, ...]:
    from decouple.data.shards import read_index

    return tuple(read_index(root, split).emotion_set.names)


def synthtalk_protocol(root: str | Path, split: str = "test", *, level: int = TARGET_LEVEL,
                       max_sources: int | None = None,
                       settings: Sequence[str] = SETTINGS) -> Protocol:  # fmt: skip
    """The SynthTalk protocol: the held-out speakers' neutral clips toward every other emotion.

    Args:
        root: The SynthTalk shard directory.
        split: The held-out split (`test`: the speakers `split_speakers` holds out).
        level: Reference / counterfactual level.
        max_sources: At most this many neutral sources per speaker.
        settings: The settings to build.

    Returns:
        The protocol (cross-ID map: [cyclic_map][protocol.cyclic_map] of the split's speakers).

    Raises:
        ProtocolError: No neutral clip, or no other emotion at `level`.
    """
    clips = scan_split(root, split)
    speakers = sorted({c.speaker for c in clips})
    names = _split_emotions(root, split)
    present = {(c.emotion, c.level) for c in clips}
    targets = [e for e in names if e != "neutral" and (e, _level(e, level)) in present]
    notes = []
    absent = [e for e in names if e != "neutral" and e not in targets]
    if absent:
        notes.append(f"no level-{level} clips of {', '.join(absent)} in {split!r}: not targets")
    if not targets:
        raise ProtocolError(f"{root}: split {split!r} has no level-{level} clip of an emotion "
                            "other than neutral: nothing to edit toward")  # fmt: skip
    cross = cyclic_map(speakers)
    if not cross and "cross" in settings:
        notes.append(f"one held-out speaker ({', '.join(speakers)}): no cross-ID setting")
    return make_protocol(clips, corpus="synthtalk", root=root, split=split, speakers=speakers,
                         targets=targets, cross_map=cross, level=level,
                         max_sources=max_sources, settings=settings, notes=notes)  # fmt: skip


def mead_protocol(
    root: str | Path,
    split: str = "test",
    *,
    actors: Sequence[str] = MEAD_ACTORS,
    cross_map: Mapping[str, str] = MEAD_CROSS_MAP,
    source_emotions: Sequence[str] = ("neutral",),
    level: int = TARGET_LEVEL,
    max_sources: int | None = None,
    settings: Sequence[str] = ("intra", "cross"),
) -> Protocol:
    """The MEAD protocol: the six SPFEM test actors, the papers' 7 emotions and cross-ID map.

    Targets are the 7 emotions (each source's own excluded) that the split has at the
    reference level; the others are named in the notes. The papers report intra-ID and
    cross-ID only (the default `settings`); add `label` for label-driven rows.

    Args:
        root: MEAD shards (`python -m decouple.data.convert mead SRC OUT --split spfem
            --emotion-set mead7`).
        split: The split holding the test actors.
        actors: The actors (default: the papers' six).
        cross_map: Source actor -> reference actor (default: the papers' map).
        source_emotions: Emotions of the sources (default neutral; `mead7` names for every
            emotion as a source, each edited toward the 6 others).
        level: Reference level.
        max_sources: At most this many sources per actor.
        settings: The settings to build.

    Returns:
        The protocol.

    Raises:
        ProtocolError: An actor (or a mapped reference actor) is not in the split; an unknown
            emotion.
    """
    from decouple.data.registry import MEAD_SPFEM

    clips = scan_split(root, split)
    found = sorted({c.speaker for c in clips})
    need = list(dict.fromkeys([*actors, *(cross_map[a] for a in actors if a in cross_map)]))
    absent = [a for a in need if a not in found]
    if absent:
        raise ProtocolError(
            f"{root}: split {split!r} lacks MEAD actor(s) {', '.join(absent)} of the SPFEM "
            f"protocol (actors {', '.join(actors)}); it holds {', '.join(found) or 'no clip'}. "
            "Convert MEAD with --split spfem (the six test actors go to 'test')"
        )
    names = MEAD_SPFEM.names
    unknown = [e for e in source_emotions if e not in names]
    if unknown:
        raise ProtocolError(f"source emotions {unknown}: not in the protocol's 7 emotions "
                            f"{list(names)}")  # fmt: skip
    present = {(c.emotion, c.level) for c in clips if c.speaker in actors}
    wanted = [e for e in names if not (len(source_emotions) == 1 and e == source_emotions[0])]
    targets = [e for e in wanted if (e, _level(e, level)) in present]
    notes = []
    absent = [e for e in wanted if e not in targets]
    if absent:
        notes.append(f"no level-{level} clips of {', '.join(absent)} in {split!r}: not targets")
    if not targets:
        raise ProtocolError(f"{root}: split {split!r} has no level-{level} clip of a target "
                            f"emotion ({', '.join(wanted)})")  # fmt: skip
    return make_protocol(clips, corpus="mead", root=root, split=split, speakers=list(actors),
                         targets=targets, cross_map=cross_map, source_emotions=source_emotions,
                         level=level, max_sources=max_sources, settings=settings,
                         notes=notes)  # fmt: skip
