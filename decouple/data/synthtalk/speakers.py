"""SynthTalk speaker identities: face geometry, colours, hair, voice, and the train/test split.

A speaker is a [SpeakerParams][decouple.data.synthtalk.speakers.SpeakerParams]: every number the
renderer needs to draw that person's face (in frame fractions, so one speaker looks the same at
every frame size), the colours, a hair style, the espeak-ng voice variant and base pitch the speech
part uses, and a seed for the speaker's own small variation of the emotion table
([expression][decouple.data.synthtalk.expressions.expression]).

[sample_speakers][decouple.data.synthtalk.speakers.sample_speakers] draws speaker `i` from a random
generator seeded with `(seed, i)`, so speaker `i` is the same whatever the number of speakers asked
for. [split_speakers][decouple.data.synthtalk.speakers.split_speakers] is a fixed rule (no seed):
every fifth speaker (ids 4, 9, 14, ...) is held out for testing; with 2 to 4 speakers the last
one is.

Geometry ranges (frame fractions; the frame is the unit square, y downwards):

| field | range | what |
|---|---|---|
| `face_width`, `face_height` | 0.25-0.30, 0.28-0.32 | half axes of the skull ellipse |
| `jaw_width` | 0.62-0.92 | lower face width / upper (small: narrow chin, large: round) |
| `eye_y` | 0.44-0.47 | height of the eye line |
| `eye_spacing` | 0.105-0.125 | half distance between the eye centres |
| `eye_size` | 0.045-0.056 | half width of an eye |
| `nose_length`, `nose_width` | 0.095-0.125, 0.028-0.040 | eye line to nose tip; half width |
| `brow_thickness`, `brow_arch` | 0.013-0.026, 0.004-0.016 | brow thickness; arch height |
| `mouth_gap` | 0.075-0.095 | nose tip to mouth line |
| `mouth_width`, `lip_thickness` | 0.072-0.092, 0.013-0.020 | half mouth width; upper lip |
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "AGE_WORDS",
    "FACE_SHAPE_WORDS",
    "HAIR_COLOURS",
    "HAIR_STYLES",
    "IRIS_COLOURS",
    "VOICE_VARIANTS",
    "SpeakerParams",
    "sample_speakers",
    "split_speakers",
]

HAIR_STYLES: tuple[str, ...] = ("short", "side-swept", "long", "curly")
"""Hair style names by `hair_style` id."""

HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.09, 0.08, 0.08),
    "dark brown": (0.24, 0.15, 0.10),
    "brown": (0.42, 0.27, 0.15),
    "auburn": (0.55, 0.22, 0.11),
    "red": (0.78, 0.32, 0.12),
    "blonde": (0.88, 0.74, 0.45),
    "grey": (0.62, 0.62, 0.64),
    "white": (0.90, 0.90, 0.88),
}
"""Hair colour names (caption words) -> base RGB in [0, 1]; grey and white only for older faces."""

IRIS_COLOURS: dict[str, tuple[float, float, float]] = {
    "brown": (0.36, 0.22, 0.12),
    "hazel": (0.50, 0.40, 0.20),
    "green": (0.30, 0.50, 0.30),
    "blue": (0.30, 0.48, 0.72),
    "grey": (0.50, 0.55, 0.60),
}
"""Iris colour names -> RGB."""

_SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    (0.98, 0.87, 0.78),
    (0.95, 0.80, 0.68),
    (0.88, 0.70, 0.56),
    (0.78, 0.58, 0.42),
    (0.62, 0.44, 0.30),
    (0.45, 0.31, 0.21),
)

AGE_WORDS: tuple[str, ...] = ("young", "middle-aged", "older")
"""Age-ish caption words for `age` in [0, 1/3), [1/3, 2/3), [2/3, 1]."""

FACE_SHAPE_WORDS: tuple[str, ...] = ("narrow", "oval", "round")
"""Face shape caption words for `jaw_width` in thirds of its range."""

VOICE_VARIANTS: dict[str, str] = {
    "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m5": "male", "m6": "male",
    "m7": "male",
    "f1": "female", "f2": "female", "f3": "female", "f4": "female", "f5": "female",
    "linda": "female", "steph": "female",
}
"""The espeak-ng voice variants speakers are drawn from -> the gender the variant file declares.

All are present in `espeakng_loader`'s `espeak-ng-data/voices/!v` (listed by
[available_variants][decouple.data.synthtalk.speech.available_variants], the one home of that
listing); the robotic, whispering and novelty variants are left out."""

_JAW_RANGE = (0.62, 0.92)


RGB = tuple[float, float, float]


@dataclass(frozen=True)
class SpeakerParams:
    """One SynthTalk identity: everything needed to draw the face and to choose the voice.

    Lengths are frame fractions (the frame is the unit square, y downwards); colours are RGB in
    [0, 1]. See the module docstring for the ranges.

    Attributes:
        speaker_id: Index of the speaker in the corpus (0, 1, ...).
        seed: Seed of the speaker's own variation of the emotion table.
        face_width: Half width of the skull ellipse.
        face_height: Half height of the skull ellipse (the jaw below it follows the mouth).
        jaw_width: Lower face width relative to the upper (narrow chin ... round face).
        eye_y: Height of the eye line.
        eye_spacing: Half distance between the eye centres.
        eye_size: Half width of an eye.
        nose_length: Eye line to nose tip.
        nose_width: Half width of the nose.
        brow_thickness: Eyebrow thickness.
        brow_arch: Height of the eyebrow arch.
        mouth_gap: Nose tip to the line between the lips.
        mouth_width: Half width of the mouth at rest.
        lip_thickness: Upper lip thickness at rest (the lower lip is 1.3 times as thick).
        age: 0 (young) ... 1 (older); older faces get forehead lines and may have grey hair.
        skin: Skin RGB.
        hair: Hair RGB.
        hair_colour: Caption name of the hair colour (a key of `HAIR_COLOURS`).
        hair_style: Index into `HAIR_STYLES`.
        iris: Iris RGB.
        iris_colour: Caption name of the iris colour (a key of `IRIS_COLOURS`).
        lips: Lip RGB.
        blush: Opacity of the cheek blush at rest (0 ... 0.3).
        background: Background RGB.
        shirt: Shirt RGB.
        voice_variant: espeak-ng voice variant (a key of `VOICE_VARIANTS`).
        voice_pitch: espeak-ng base pitch (0 ... 100; espeak's default is 50).

    Examples:
        >>> s = sample_speakers(2, seed=0)[1]
        >>> s.speaker_id, s.name, s.voice_variant in VOICE_VARIANTS
        (1, 'S001', True)
        >>> SpeakerParams.from_json(s.to_json()) == s
        True
    """

    speaker_id: int
    seed: int
    face_width: float
    face_height: float
    jaw_width: float
    eye_y: float
    eye_spacing: float
    eye_size: float
    nose_length: float
    nose_width: float
    brow_thickness: float
    brow_arch: float
    mouth_gap: float
    mouth_width: float
    lip_thickness: float
    age: float
    skin: RGB
    hair: RGB
    hair_colour: str
    hair_style: int
    iris: RGB
    iris_colour: str
    lips: RGB
    blush: float
    background: RGB
    shirt: RGB
    voice_variant: str
    voice_pitch: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            where = f"SpeakerParams(speaker_id={self.speaker_id!r}).{f.name}"
            if f.type == "RGB":
                ok = (
                    isinstance(value, tuple)
                    and len(value) == 3
                    and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in value)
                )
                if not ok:
                    raise ValueError(f"{where}: expected 3 floats in [0, 1], got {value!r}")
            elif f.type == "float":
                if not isinstance(value, float) or not math.isfinite(value):
                    raise ValueError(f"{where}: expected a finite float, got {value!r}")
            elif f.type == "int":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{where}: expected a non-negative int, got {value!r}")
        if self.hair_style >= len(HAIR_STYLES):
            raise ValueError(
                f"SpeakerParams.hair_style: expected 0..{len(HAIR_STYLES) - 1}, "
                f"got {self.hair_style}"
            )
        for name, table in (("hair_colour", HAIR_COLOURS), ("iris_colour", IRIS_COLOURS),
                            ("voice_variant", VOICE_VARIANTS)):
            if getattr(self, name) not in table:
                raise ValueError(
                    f"SpeakerParams.{name}: expected one of {sorted(table)}, "
                    f"got {getattr(self, name)!r}"
                )
        if not 0.0 <= self.voice_pitch <= 100.0:
            raise ValueError(f"SpeakerParams.voice_pitch: expected 0..100, got {self.voice_pitch}")

    @property
    def name(self) -> str:
        """Speaker name used in shard metadata (`S000`, `S001`, ...).

        Examples:
            >>> sample_speakers(1, seed=3)[0].name
            'S000'
        """
        return f"S{self.speaker_id:03d}"

    @property
    def age_word(self) -> str:
        """`young`, `middle-aged` or `older` (from `age`).

        Examples:
            >>> sample_speakers(1, seed=3)[0].age_word in AGE_WORDS
            True
        """
        return AGE_WORDS[min(int(self.age * 3), 2)]

    @property
    def face_shape_word(self) -> str:
        """`narrow`, `oval` or `round` (from `jaw_width`).

        Examples:
            >>> sample_speakers(1, seed=3)[0].face_shape_word in FACE_SHAPE_WORDS
            True
        """
        lo, hi = _JAW_RANGE
        third = int((self.jaw_width - lo) / (hi - lo) * 3)
        return FACE_SHAPE_WORDS[min(max(third, 0), 2)]

    @property
    def hair_style_name(self) -> str:
        """The hair style's name (`HAIR_STYLES[hair_style]`).

        Examples:
            >>> sample_speakers(1, seed=3)[0].hair_style_name in HAIR_STYLES
            True
        """
        return HAIR_STYLES[self.hair_style]

    @property
    def voice_gender(self) -> str:
        """The gender the espeak-ng variant file declares (`male` / `female`).

        Examples:
            >>> sample_speakers(1, seed=3)[0].voice_gender in ("male", "female")
            True
        """
        return VOICE_VARIANTS[self.voice_variant]

    def describe(self) -> str:
        """A caption phrase for the identity.

        Returns:
            For example `"a young speaker with an oval face and short red hair"`.

        Examples:
            >>> sample_speakers(1, seed=3)[0].describe().startswith("a")
            True
        """
        article = "an" if self.face_shape_word[0] in "aeiou" else "a"
        return (
            f"{'an' if self.age_word[0] in 'aeiou' else 'a'} {self.age_word} speaker with "
            f"{article} {self.face_shape_word} face and {self.hair_style_name} "
            f"{self.hair_colour} hair"
        )

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict (floats round-trip exactly through `json`).

        Returns:
            `{field: value}`; colours as 3-element lists.

        Examples:
            >>> d = sample_speakers(1, seed=0)[0].to_json()
            >>> d["speaker_id"], len(d["skin"])
            (0, 3)
        """
        out = asdict(self)
        for f in fields(self):
            if f.type == "RGB":
                out[f.name] = list(out[f.name])
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> SpeakerParams:
        """Rebuild from [to_json][decouple.data.synthtalk.speakers.SpeakerParams.to_json].

        Args:
            data: The dict, or its JSON text.

        Returns:
            The speaker.

        Raises:
            ValueError: Missing or unknown fields, or a value of the wrong kind (the message
                names the field).

        Examples:
            >>> s = sample_speakers(1, seed=0)[0]
            >>> SpeakerParams.from_json(json.dumps(s.to_json())) == s
            True
        """
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError(f"SpeakerParams JSON: expected an object, got {type(data).__name__}")
        names = {f.name: f for f in fields(cls)}
        missing = sorted(set(names) - set(data))
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(
                f"SpeakerParams JSON: missing fields {missing}, unknown fields {unknown}"
            )
        kwargs: dict[str, Any] = {}
        for key, f in names.items():
            value = data[key]
            if f.type == "RGB":
                if not isinstance(value, (list, tuple)):
                    raise ValueError(
                        f"SpeakerParams JSON field {key!r}: expected a list of 3 floats"
                    )
                value = tuple(float(v) for v in value)
            elif f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[key] = value
        return cls(**kwargs)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _jitter(rng: np.random.Generator, rgb: tuple[float, ...], amount: float) -> RGB:
    out = np.clip(np.asarray(rgb) + rng.normal(0.0, amount, 3), 0.0, 1.0)
    return (float(out[0]), float(out[1]), float(out[2]))


def _sample_one(seed: int, speaker_id: int) -> SpeakerParams:
    rng = np.random.default_rng([seed, speaker_id])
    age = _uniform(rng, 0.0, 1.0)
    hair_names = list(HAIR_COLOURS)
    if age < 2 / 3:
        hair_names = [n for n in hair_names if n not in ("grey", "white")]
    hair_colour = hair_names[int(rng.integers(len(hair_names)))]
    iris_colour = list(IRIS_COLOURS)[int(rng.integers(len(IRIS_COLOURS)))]
    skin = _jitter(rng, _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], 0.02)
    lips = _jitter(rng, tuple(np.asarray(skin) * np.array([0.85, 0.55, 0.55])), 0.02)
    hue = rng.uniform(0.0, 1.0, 3)
    background = _jitter(rng, tuple(0.45 + 0.35 * hue), 0.0)
    shirt = _jitter(rng, tuple(rng.uniform(0.1, 0.8, 3)), 0.0)
    variant = list(VOICE_VARIANTS)[int(rng.integers(len(VOICE_VARIANTS)))]
    return SpeakerParams(
        speaker_id=speaker_id,
        seed=int(rng.integers(2**31 - 1)),
        face_width=_uniform(rng, 0.25, 0.30),
        face_height=_uniform(rng, 0.28, 0.32),
        jaw_width=_uniform(rng, *_JAW_RANGE),
        eye_y=_uniform(rng, 0.44, 0.47),
        eye_spacing=_uniform(rng, 0.105, 0.125),
        eye_size=_uniform(rng, 0.045, 0.056),
        nose_length=_uniform(rng, 0.095, 0.125),
        nose_width=_uniform(rng, 0.028, 0.040),
        brow_thickness=_uniform(rng, 0.013, 0.026),
        brow_arch=_uniform(rng, 0.004, 0.016),
        mouth_gap=_uniform(rng, 0.075, 0.095),
        mouth_width=_uniform(rng, 0.072, 0.092),
        lip_thickness=_uniform(rng, 0.013, 0.020),
        age=age,
        skin=skin,
        hair=_jitter(rng, HAIR_COLOURS[hair_colour], 0.03),
        hair_colour=hair_colour,
        hair_style=int(rng.integers(len(HAIR_STYLES))),
        iris=_jitter(rng, IRIS_COLOURS[iris_colour], 0.03),
        iris_colour=iris_colour,
        lips=lips,
        blush=_uniform(rng, 0.0, 0.3),
        background=background,
        shirt=shirt,
        voice_variant=variant,
        voice_pitch=_uniform(rng, 35.0, 65.0),
    )


def sample_speakers(n: int, seed: int) -> list[SpeakerParams]:
    """Draw `n` speakers; speaker `i` depends only on `(seed, i)`.

    Args:
        n: Number of speakers (at least 1).
        seed: Corpus seed (a non-negative int).

    Returns:
        Speakers with ids `0 .. n-1`.

    Raises:
        ValueError: If `n < 1` or `seed` is negative.

    Examples:
        >>> a, b = sample_speakers(2, seed=0)
        >>> a != b, sample_speakers(3, seed=0)[1] == b
        (True, True)
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"sample_speakers: n (number of speakers) must be an int >= 1, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"sample_speakers: seed must be a non-negative int, got {seed!r}")
    return [_sample_one(seed, i) for i in range(n)]


def split_speakers(n: int) -> tuple[list[int], list[int]]:
    """The fixed train/test split of speaker ids `0 .. n-1`.

    Every fifth speaker (ids 4, 9, 14, ...) is held out, about 20 %; with 2 to 4 speakers the
    last one is held out; a single speaker is train only.

    Args:
        n: Number of speakers (at least 1).

    Returns:
        `(train_ids, test_ids)`, sorted, disjoint, covering `0 .. n-1`.

    Raises:
        ValueError: If `n < 1`.

    Examples:
        >>> split_speakers(10)
        ([0, 1, 2, 3, 5, 6, 7, 8], [4, 9])
        >>> split_speakers(3), split_speakers(1)
        (([0, 1], [2]), ([0], []))
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"split_speakers: n (number of speakers) must be an int >= 1, got {n!r}")
    test = [i for i in range(n) if i % 5 == 4]
    if not test and n >= 2:
        test = [n - 1]
    train = [i for i in range(n) if i not in test]
    return train, test
