"""Captions of SynthTalk clips from their ground truth, for training a small vision-language prior.

A caption joins a description of the speaker
([SpeakerParams.describe][decouple.data.synthtalk.speakers.SpeakerParams.describe], e.g. "a young
speaker with an oval face and short red hair") and a phrase for the emotion at its intensity
([EMOTION_PHRASES][decouple.data.synthtalk.captions.EMOTION_PHRASES], e.g. level 3 happy:
"smiling broadly with raised cheeks") with one of several templates
([TEMPLATES][decouple.data.synthtalk.captions.TEMPLATES]). The template and the phrase variant
are drawn from a seed, so a caption is deterministic given `(speaker, emotion, intensity,
seed)`, and different seeds give a corpus of varied wordings of the same facts.

The phrases describe what the renderer draws for each emotion (the action table of
`decouple.data.synthtalk.expressions`): brows, lids, cheeks, lip corners, nose and jaw.

Examples:
    >>> from decouple.data.synthtalk.speakers import sample_speakers
    >>> sp = sample_speakers(1, seed=0)[0]
    >>> caption(sp, "happy", 3, seed=0) == caption(sp, "happy", 3, seed=0)
    True
    >>> emotion_phrase("happy", 3)
    'smiling broadly with raised cheeks'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from decouple.data.synthtalk.expressions import check_emotion_level

if TYPE_CHECKING:
    from decouple.data.synthtalk.speakers import SpeakerParams

__all__ = ["EMOTION_PHRASES", "TEMPLATES", "caption", "emotion_phrase"]

EMOTION_PHRASES: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType({
    "neutral": MappingProxyType({
        1: ("with a neutral expression", "with a calm, relaxed face", "looking neutral"),
    }),
    "angry": MappingProxyType({
        1: ("slightly annoyed, brows a little lowered", "a little irritated"),
        2: ("angry, with lowered brows and pressed lips", "frowning angrily"),
        3: ("furious, brows drawn down hard and lips pressed tight",
            "very angry, glaring with narrowed eyes"),
    }),
    "contempt": MappingProxyType({
        1: ("with a faint one-sided smirk", "slightly contemptuous"),
        2: ("smirking on one side", "looking contemptuous"),
        3: ("with a strong one-sided sneer", "full of contempt, one lip corner pulled up"),
    }),
    "disgusted": MappingProxyType({
        1: ("slightly disgusted, nose a little wrinkled", "mildly put off"),
        2: ("disgusted, wrinkling the nose", "looking disgusted"),
        3: ("deeply disgusted, nose wrinkled and lip corners pulled down",
            "revolted, with a wrinkled nose"),
    }),
    "fear": MappingProxyType({
        1: ("a little worried", "slightly fearful, brows raised"),
        2: ("afraid, with raised brows and wide eyes", "looking scared"),
        3: ("terrified, eyes wide open and mouth stretched", "very frightened"),
    }),
    "happy": MappingProxyType({
        1: ("smiling slightly", "with a small smile"),
        2: ("smiling", "happy, with a clear smile"),
        3: ("smiling broadly with raised cheeks", "beaming with joy"),
    }),
    "sad": MappingProxyType({
        1: ("a little sad", "slightly downcast"),
        2: ("sad, with the inner brows raised", "looking sad, lip corners down"),
        3: ("very sad, inner brows raised and lip corners pulled down", "deeply unhappy"),
    }),
    "surprised": MappingProxyType({
        1: ("slightly surprised", "with raised brows"),
        2: ("surprised, brows raised and eyes wide", "looking surprised"),
        3: ("astonished, brows high and jaw dropped", "utterly amazed, eyes wide open"),
    }),
})
"""Emotion -> level -> phrase variants (the first is the canonical one). Neutral has level 1
only, like MEAD."""

TEMPLATES: tuple[str, ...] = (
    "{speaker}, {emotion}",
    "a face of {speaker}, {emotion}",
    "{speaker} talking, {emotion}",
    "a close-up of {speaker} speaking, {emotion}",
    "{emotion}: {speaker}",
)
"""Caption templates; `{speaker}` is the speaker description, `{emotion}` the emotion phrase."""


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"caption seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng([int(seed), 0xCA])


def emotion_phrase(emotion: str, intensity: int, *, seed: int | None = None) -> str:
    """A phrase for an emotion at an intensity level.

    Args:
        emotion: One of MEAD's eight emotions (canonical name).
        intensity: Level 1-3 (neutral: 1).
        seed: Picks one of the phrase variants; None gives the canonical (first) one.

    Returns:
        The phrase, e.g. `"frowning angrily"`.

    Raises:
        KeyError: Unknown emotion.
        ValueError: Invalid level, or a negative seed.

    Examples:
        >>> emotion_phrase("sad", 1)
        'a little sad'
        >>> emotion_phrase("neutral", 2)
        Traceback (most recent call last):
        ...
        ValueError: SynthTalk intensity: neutral has level 1 only, got 2
    """
    check_emotion_level(emotion, intensity)
    options = EMOTION_PHRASES[emotion][int(intensity)]
    if seed is None:
        return options[0]
    return options[int(_rng(seed).integers(len(options)))]


def caption(speaker: SpeakerParams, emotion: str, intensity: int, *, seed: int = 0) -> str:
    """A caption for a speaker showing an emotion at an intensity.

    The template ([TEMPLATES][decouple.data.synthtalk.captions.TEMPLATES]) and the phrase
    variant are drawn from `seed`; the speaker part is
    [SpeakerParams.describe][decouple.data.synthtalk.speakers.SpeakerParams.describe].

    Args:
        speaker: The identity.
        emotion: One of MEAD's eight emotions.
        intensity: Level 1-3 (neutral: 1).
        seed: Non-negative int; the same seed gives the same caption.

    Returns:
        The caption.

    Raises:
        KeyError: Unknown emotion.
        ValueError: Invalid level or seed.

    Examples:
        >>> from decouple.data.synthtalk.speakers import sample_speakers
        >>> sp = sample_speakers(1, seed=0)[0]
        >>> text = caption(sp, "surprised", 3, seed=4)
        >>> sp.describe() in text
        True
        >>> len({caption(sp, "angry", 2, seed=s) for s in range(20)}) > 3
        True
    """
    check_emotion_level(emotion, intensity)
    rng = _rng(seed)
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    options = EMOTION_PHRASES[emotion][int(intensity)]
    phrase = options[int(rng.integers(len(options)))]
    return template.format(speaker=speaker.describe(), emotion=phrase)
