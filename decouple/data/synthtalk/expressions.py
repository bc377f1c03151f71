"""Facial action parameters of MEAD's eight emotions, at intensity levels 1-3.

An expression is a vector of
[EXPRESSION_PARAMS][decouple.data.synthtalk.expressions.EXPRESSION_PARAMS], deviations from the
rest face (0 = neutral). The renderer
([render_frames][decouple.data.synthtalk.render.render_frames]) reads them as follows:

| code | parameter | range | what the renderer does |
|---|---|---|---|
| BR | `brow_raise` | 0..1 | both brows up (and forehead lines) |
| BL | `brow_lower` | 0..1 | brows down and towards the nose, inner ends most (frown) |
| BI | `brow_inner_raise` | 0..1 | inner brow ends up (sad / worried slant) |
| LO | `lid_open` | -1..1 | upper lid higher (+, wide eyes) or lower (-, narrowed eyes) |
| CR | `cheek_raise` | 0..1 | cheeks up and blush stronger; lower lids pushed up (squint) |
| CP | `lip_corner_pull` | 0..1 | lip corners up and out (smile) |
| CD | `lip_corner_depress` | 0..1 | lip corners down |
| NW | `nose_wrinkle` | 0..1 | nostrils up and wider, wrinkle lines, upper lip raised |
| LP | `lip_press` | 0..1 | lips thinner and pressed (smaller opening) |
| J | `jaw` | 0..1 | jaw drop: adds to the speech opening, chin down |
| LS | `lip_stretch` | 0..1 | mouth wider, corners slightly down (fear's horizontal stretch) |
| A | `lip_corner_asym` | -1..1 | share of the corner pull: +1 only the image-right corner |

The first ten are the interface's action set; `lip_stretch` and `lip_corner_asym` are added so
that fear's stretched mouth and contempt's one-sided smile have their own parameters.

Emotion table at level 3 (`EMOTION_TABLE`; blank = 0):

| emotion | BR | BL | BI | LO | CR | CP | CD | NW | LP | J | LS | A |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| neutral | | | | | | | | | | | | |
| angry | | 1.0 | | -0.6 | | | 0.3 | 0.3 | 0.8 | | | |
| contempt | | 0.2 | | -0.25 | | 0.8 | | | 0.3 | | | 1.0 |
| disgusted | | 0.6 | | -0.4 | 0.3 | | 0.7 | 1.0 | | 0.1 | | |
| fear | 0.7 | | 0.9 | 0.9 | | | 0.2 | | | 0.35 | 0.9 | |
| happy | | | | -0.1 | 1.0 | 1.0 | | | | 0.2 | | |
| sad | | 0.2 | 1.0 | -0.45 | | | 0.9 | | 0.25 | | | |
| surprised | 1.0 | | | 1.0 | | | | | | 0.8 | | |

Intensity scales the vector by `INTENSITY_SCALE` (level 1: 0.45, 2: 0.75, 3: 1.0), except
`lip_corner_asym` (which side smiles does not depend on the level); neutral exists at level 1
only (all zeros). Each speaker varies the table a little: every entry is multiplied by a factor
in [0.8, 1.2] drawn from the speaker's seed (one factor per speaker and parameter, the speaker's
style, times a smaller one per speaker, emotion and parameter), the same for every intensity
level, so levels stay ordered. The ranges above are nominal: a speaker's variation can exceed
them by up to 20 %.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from decouple.data.registry import MEAD

if TYPE_CHECKING:
    from decouple.data.synthtalk.speakers import SpeakerParams

__all__ = [
    "EMOTION_TABLE",
    "EXPRESSION_PARAMS",
    "INTENSITY_SCALE",
    "check_emotion_level",
    "expression",
]

EXPRESSION_PARAMS: tuple[str, ...] = (
    "brow_raise",
    "brow_lower",
    "brow_inner_raise",
    "lid_open",
    "cheek_raise",
    "lip_corner_pull",
    "lip_corner_depress",
    "nose_wrinkle",
    "lip_press",
    "jaw",
    "lip_stretch",
    "lip_corner_asym",
)
"""Names of the expression vector's entries, in order (see the module table)."""

_ROWS: dict[str, dict[str, float]] = {
    "neutral": {},
    "angry": {"brow_lower": 1.0, "lid_open": -0.6, "lip_corner_depress": 0.3,
              "nose_wrinkle": 0.3, "lip_press": 0.8},
    "contempt": {"brow_lower": 0.2, "lid_open": -0.25, "lip_corner_pull": 0.8, "lip_press": 0.3,
                 "lip_corner_asym": 1.0},
    "disgusted": {"brow_lower": 0.6, "lid_open": -0.4, "cheek_raise": 0.3,
                  "lip_corner_depress": 0.7, "nose_wrinkle": 1.0, "jaw": 0.1},
    "fear": {"brow_raise": 0.7, "brow_inner_raise": 0.9, "lid_open": 0.9,
             "lip_corner_depress": 0.2, "jaw": 0.35, "lip_stretch": 0.9},
    "happy": {"lid_open": -0.1, "cheek_raise": 1.0, "lip_corner_pull": 1.0, "jaw": 0.2},
    "sad": {"brow_lower": 0.2, "brow_inner_raise": 1.0, "lid_open": -0.45,
            "lip_corner_depress": 0.9, "lip_press": 0.25},
    "surprised": {"brow_raise": 1.0, "lid_open": 1.0, "jaw": 0.8},
}

EMOTION_TABLE: MappingProxyType[str, np.ndarray] = MappingProxyType({
    name: np.array([_ROWS[name].get(p, 0.0) for p in EXPRESSION_PARAMS], dtype=np.float32)
    for name in MEAD.names
})
"""MEAD emotion name -> its level-3 action vector (`(len(EXPRESSION_PARAMS),)` float32)."""

INTENSITY_SCALE: MappingProxyType[int, float] = MappingProxyType({1: 0.45, 2: 0.75, 3: 1.0})
"""Intensity level -> scale of the level-3 vector."""

for _v in EMOTION_TABLE.values():
    _v.setflags(write=False)


def check_emotion_level(emotion: str, intensity: int) -> None:
    """Raise a clear error unless `emotion` is one of MEAD's eight and `intensity` is valid for it.

    Args:
        emotion: Canonical MEAD emotion name (`decouple.data.registry.MEAD`).
        intensity: 1, 2 or 3; neutral has level 1 only.

    Raises:
        KeyError: Unknown emotion (the message lists MEAD's names).
        ValueError: Invalid level.

    Examples:
        >>> check_emotion_level("happy", 3)
        >>> check_emotion_level("neutral", 2)
        Traceback (most recent call last):
        ...
        ValueError: SynthTalk intensity: neutral has level 1 only, got 2
    """
    if emotion not in EMOTION_TABLE:
        raise KeyError(
            f"SynthTalk emotion: unknown emotion {emotion!r}; expected one of MEAD's "
            f"{', '.join(MEAD.names)}"
        )
    if not isinstance(intensity, (int, np.integer)) or isinstance(intensity, bool):
        raise ValueError(f"SynthTalk intensity: expected an int 1..3, got {intensity!r}")
    if emotion == "neutral" and intensity != 1:
        raise ValueError(f"SynthTalk intensity: neutral has level 1 only, got {intensity}")
    if intensity not in INTENSITY_SCALE:
        raise ValueError(f"SynthTalk intensity: expected 1, 2 or 3, got {intensity}")


def expression(emotion: str, intensity: int, speaker: SpeakerParams | None = None) -> np.ndarray:
    """The action vector of an emotion at an intensity, for one speaker.

    Args:
        emotion: Canonical MEAD emotion name.
        intensity: 1, 2 or 3 (neutral: 1).
        speaker: Whose variation to apply; `None` gives the plain table value.

    Returns:
        `(len(EXPRESSION_PARAMS),)` float32, ordered as `EXPRESSION_PARAMS`.

    Raises:
        KeyError: Unknown emotion.
        ValueError: Invalid level.

    Examples:
        >>> e = expression("happy", 3)
        >>> float(e[EXPRESSION_PARAMS.index("lip_corner_pull")])
        1.0
        >>> from decouple.data.synthtalk.speakers import sample_speakers
        >>> s = sample_speakers(1, seed=0)[0]
        >>> v = expression("happy", 3, s)
        >>> bool(0.8 <= v[5] <= 1.2), float(expression("neutral", 1, s).sum())
        (True, 0.0)
    """
    check_emotion_level(emotion, intensity)
    asym = EXPRESSION_PARAMS.index("lip_corner_asym")
    vec = EMOTION_TABLE[emotion] * np.float32(INTENSITY_SCALE[int(intensity)])
    vec[asym] = EMOTION_TABLE[emotion][asym]  # which side smiles does not depend on the level
    if speaker is not None:
        k = len(EXPRESSION_PARAMS)
        style = np.random.default_rng([speaker.seed, 0]).uniform(0.88, 1.12, k)
        own = np.random.default_rng([speaker.seed, 1 + MEAD.id(emotion)]).uniform(0.94, 1.06, k)
        factor = np.clip(style * own, 0.8, 1.2).astype(np.float32)
        factor[asym] = 1.0
        vec = vec * factor
    return vec.astype(np.float32)
