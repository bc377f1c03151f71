"""The emotion registry: one canonical list of emotion names, and the ids each corpus uses.

Every emotion label in `decouple` is one of nine canonical lower-case names
([CANONICAL_EMOTIONS][decouple.data.registry.CANONICAL_EMOTIONS]). A corpus (or an
evaluation protocol) uses an ordered subset of them, an
[EmotionSet][decouple.data.registry.EmotionSet]; an emotion's id is its position in that
set. Converters map each corpus's own codes to canonical names with the code maps below,
shard indexes store the set in use (`EmotionSet.to_json()`), and priors and metrics read the
names from there rather than assuming an order.

- [MEAD][decouple.data.registry.MEAD] (`mead`): neutral, angry, contempt, disgusted, fear,
  happy, sad, surprised.
- [MEAD_SPFEM][decouple.data.registry.MEAD_SPFEM] (`mead7`): MEAD without contempt, the
  SPFEM papers' protocol.
- [RAVDESS][decouple.data.registry.RAVDESS] (`ravdess`): neutral, calm, happy, sad, angry,
  fear, disgusted, surprised (codes 01..08).
- [CREMAD][decouple.data.registry.CREMAD] (`cremad`): angry, disgusted, fear, happy, neutral,
  sad (codes ANG DIS FEA HAP NEU SAD).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "CANONICAL_EMOTIONS",
    "CREMAD",
    "CREMAD_CODES",
    "EMOTION_ALIASES",
    "MEAD",
    "MEAD_FOLDERS",
    "MEAD_SPFEM",
    "RAVDESS",
    "RAVDESS_CODES",
    "EmotionSet",
    "canonical_emotion",
    "get_emotion_set",
    "known_emotion_sets",
    "register_emotion_set",
]

CANONICAL_EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgusted",
    "surprised",
    "contempt",
)
"""The nine canonical emotion names, lower case. Every label in every set is one of them."""

EMOTION_ALIASES: Mapping[str, str] = MappingProxyType({
    "anger": "angry",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "fearful": "fear",
    "afraid": "fear",
    "disgust": "disgusted",
    "surprise": "surprised",
    "contemptuous": "contempt",
})
"""Other spellings found in corpora and papers -> canonical name (used by
[canonical_emotion][decouple.data.registry.canonical_emotion])."""


def canonical_emotion(name: str) -> str:
    """The canonical name of an emotion, accepting case differences and common aliases.

    Args:
        name: An emotion name such as `"Fearful"`, `"disgust"` or `"happy"`.

    Returns:
        One of [CANONICAL_EMOTIONS][decouple.data.registry.CANONICAL_EMOTIONS].

    Raises:
        KeyError: Unknown name (the message lists the canonical names).

    Examples:
        >>> canonical_emotion("Fearful"), canonical_emotion("disgust"), canonical_emotion("sad")
        ('fear', 'disgusted', 'sad')
    """
    if not isinstance(name, str):
        raise TypeError(f"an emotion name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = EMOTION_ALIASES.get(key, key)
    if key not in CANONICAL_EMOTIONS:
        raise KeyError(
            f"unknown emotion {name!r}; canonical names: {', '.join(CANONICAL_EMOTIONS)} "
            f"(aliases: {', '.join(sorted(EMOTION_ALIASES))})"
        )
    return key


@dataclass(frozen=True)
class EmotionSet:
    """An ordered set of canonical emotion names; an emotion's id is its position.

    Attributes:
        name: Name of the set (`mead`, `mead7`, `ravdess`, `cremad`, or your own).
        names: Canonical emotion names in id order (unique, at least one).

    Examples:
        >>> s = EmotionSet("mine", ("neutral", "happy", "sad"))
        >>> len(s), s.id("happy"), s.name_of(2), "angry" in s
        (3, 1, 'sad', False)
        >>> s.to_json()
        {'name': 'mine', 'names': ['neutral', 'happy', 'sad']}
    """

    name: str
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"EmotionSet.name must be a non-empty str, got {self.name!r}")
        if isinstance(self.names, str) or not isinstance(self.names, Iterable):
            raise ValueError(
                f"EmotionSet {self.name!r}: names must be a sequence of str, got {self.names!r}"
            )
        names = tuple(self.names)
        if not names:
            raise ValueError(f"EmotionSet {self.name!r}: names is empty")
        bad = [n for n in names if not isinstance(n, str) or n not in CANONICAL_EMOTIONS]
        if bad:
            raise ValueError(
                f"EmotionSet {self.name!r}: {bad} not canonical emotion names; expected names "
                f"from {', '.join(CANONICAL_EMOTIONS)} (see canonical_emotion for aliases)"
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"EmotionSet {self.name!r}: repeated names {dupes}")
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def id(self, name: str) -> int:
        """The id (position) of an emotion in this set.

        Args:
            name: Canonical emotion name.

        Returns:
            Its id, in `[0, len(self))`.

        Raises:
            KeyError: The name is not in the set (the message lists the valid names).

        Examples:
            >>> MEAD.id("contempt"), RAVDESS.id("calm")
            (2, 1)
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"emotion {name!r} is not in the set {self.name!r}; valid names: "
                f"{', '.join(self.names)}"
            ) from None

    def name_of(self, i: int) -> str:
        """The emotion name of an id.

        Args:
            i: Id in `[0, len(self))`.

        Returns:
            The canonical name.

        Raises:
            IndexError: The id is out of range.

        Examples:
            >>> CREMAD.name_of(0)
            'angry'
        """
        if isinstance(i, bool):
            raise TypeError("an emotion id must be an int, got bool")
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"an emotion id must be an int, got {type(i).__name__}") from None
        if not 0 <= i < len(self.names):
            raise IndexError(
                f"emotion id {i} is out of range for the set {self.name!r} "
                f"({len(self.names)} emotions: ids 0..{len(self.names) - 1})"
            )
        return self.names[i]

    def subset(self, names: Iterable[str], name: str) -> EmotionSet:
        """A new set holding some of these emotions, in this set's order.

        Ids are re-numbered from 0 in the order of this set, whatever the order of `names`,
        so a subset of a subset is the same as the direct subset.

        Args:
            names: Emotions to keep; each must be in this set.
            name: Name of the new set.

        Returns:
            The subset.

        Raises:
            KeyError: A name is not in this set.

        Examples:
            >>> MEAD.subset(["sad", "neutral"], "two").names
            ('neutral', 'sad')
        """
        if isinstance(names, str):
            raise TypeError("names must be a collection of emotion names, not one str")
        keep = set()
        for n in names:
            self.id(n)  # raises KeyError naming the valid names
            keep.add(n)
        return EmotionSet(name, tuple(n for n in self.names if n in keep))

    def to_json(self) -> dict[str, Any]:
        """The set as a JSON-ready dict `{"name": ..., "names": [...]}` (stored in shard indexes).

        Returns:
            The dict.

        Examples:
            >>> MEAD_SPFEM.to_json()["names"][:3]
            ['neutral', 'angry', 'disgusted']
        """
        return {"name": self.name, "names": list(self.names)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "emotion set") -> EmotionSet:
        """Rebuild a set from [to_json][decouple.data.registry.EmotionSet.to_json], validated.

        Args:
            d: A dict with `name` (str) and `names` (list of canonical names).
            where: What the dict came from, for error messages (a shard index path, say).

        Returns:
            The set.

        Raises:
            ValueError: Missing or malformed fields (the message names `where` and the field).

        Examples:
            >>> EmotionSet.from_json({"name": "mead", "names": list(MEAD.names)}) == MEAD
            True
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object with 'name' and 'names', got "
                             f"{type(d).__name__}")
        extra = sorted(set(d) - {"name", "names"})
        if extra:
            raise ValueError(f"{where}: unknown fields {extra} (expected 'name' and 'names')")
        if not isinstance(d.get("name"), str):
            raise ValueError(f"{where}: field 'name' must be a str, got {d.get('name')!r}")
        names = d.get("names")
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{where}: field 'names' must be a list of str, got {names!r}")
        try:
            return cls(d["name"], tuple(names))
        except ValueError as err:
            raise ValueError(f"{where}: field 'names': {err}") from None


MEAD = EmotionSet(
    "mead", ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
)
"""MEAD's eight emotions (with contempt)."""

MEAD_SPFEM = MEAD.subset([n for n in MEAD.names if n != "contempt"], "mead7")
"""The SPFEM papers' seven MEAD emotions: MEAD without contempt (protocol subset `mead7`)."""

RAVDESS = EmotionSet(
    "ravdess", ("neutral", "calm", "happy", "sad", "angry", "fear", "disgusted", "surprised")
)
"""RAVDESS's eight emotions, in the order of its codes 01..08."""

CREMAD = EmotionSet("cremad", ("angry", "disgusted", "fear", "happy", "neutral", "sad"))
"""CREMA-D's six emotions, in the order of its codes ANG DIS FEA HAP NEU SAD."""

RAVDESS_CODES: Mapping[str, str] = MappingProxyType(
    {f"{i + 1:02d}": name for i, name in enumerate(RAVDESS.names)}
)
"""RAVDESS file-name emotion code (third field, `01`..`08`) -> canonical name."""

CREMAD_CODES: Mapping[str, str] = MappingProxyType(
    dict(zip(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"), CREMAD.names, strict=True))
)
"""CREMA-D file-name emotion code (third field) -> canonical name."""

MEAD_FOLDERS: Mapping[str, str] = MappingProxyType({n: n for n in sorted(MEAD.names)})
"""MEAD emotion folder name (`angry`, `contempt`, ... `surprised`) -> canonical name.
MEAD's folders already use the canonical spellings; converters match them lower-cased."""

_REGISTRY: dict[str, EmotionSet] = {s.name: s for s in (MEAD, MEAD_SPFEM, RAVDESS, CREMAD)}


def get_emotion_set(name: str) -> EmotionSet:
    """A registered emotion set by name.

    Args:
        name: `mead`, `mead7`, `ravdess`, `cremad`, or a name registered with
            [register_emotion_set][decouple.data.registry.register_emotion_set].

    Returns:
        The set.

    Raises:
        KeyError: Unknown name (the message lists the known sets).

    Examples:
        >>> len(get_emotion_set("mead7"))
        7
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown emotion set {name!r}; known sets: {', '.join(sorted(_REGISTRY))}"
        ) from None


def register_emotion_set(s: EmotionSet) -> EmotionSet:
    """Register a set under its name (for a new corpus or protocol).

    Registering the same names again is a no-op; another set under a taken name is an error,
    so ids can never silently change meaning.

    Args:
        s: The set.

    Returns:
        The registered set.

    Raises:
        ValueError: A different set is already registered under that name.

    Examples:
        >>> s = register_emotion_set(EmotionSet("doc-example", ("happy", "sad")))
        >>> get_emotion_set("doc-example") is s
        True
    """
    if not isinstance(s, EmotionSet):
        raise TypeError(f"expected an EmotionSet, got {type(s).__name__}")
    old = _REGISTRY.get(s.name)
    if old is not None and old.names != s.names:
        raise ValueError(
            f"an emotion set named {s.name!r} is already registered with names {old.names}; "
            f"cannot register {s.names} under the same name"
        )
    if old is not None:
        return old
    _REGISTRY[s.name] = s
    return s


def known_emotion_sets() -> list[str]:
    """Names of the registered emotion sets, sorted.

    Returns:
        The names.

    Examples:
        >>> [n for n in known_emotion_sets() if n in ("cremad", "mead", "mead7", "ravdess")]
        ['cremad', 'mead', 'mead7', 'ravdess']
    """
    return sorted(_REGISTRY)
