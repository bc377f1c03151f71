"""Real synthesised speech for SynthTalk: espeak-ng through ctypes, emotional prosody, timings.

[synthesize][decouple.data.synthtalk.speech.synthesize] speaks a sentence with espeak-ng
(the library and voice data shipped by the `espeakng-loader` wheel, called through ctypes),
resamples it from espeak's 22,050 Hz to 16 kHz mono float32 with
[resample_audio][decouple.data.io.resample_audio], and returns a
[Speech][decouple.data.synthtalk.speech.Speech] with the phoneme timeline (from espeak's
phoneme events, mapped to the inventory of `decouple.data.synthtalk.visemes`) and word
timings. [prosody][decouple.data.synthtalk.speech.prosody] gives pitch level, pitch range,
rate and volume for MEAD's eight emotions at levels 1-3
([EMOTION_PROSODY][decouple.data.synthtalk.speech.EMOTION_PROSODY]), and
[speak][decouple.data.synthtalk.speech.speak] combines the two.
[SENTENCES][decouple.data.synthtalk.speech.SENTENCES] holds SynthTalk's 40 sentences.

**Licence.** espeak-ng is GPL-3.0. It is the optional `speech` extra
(`pip install 'decouple[speech]'`), never a core dependency; only the functions that
synthesise need it (the tables and the sentence list do not).

**Determinism.** Two things make plain espeak-ng calls non-repeatable, both measured
here. (1) It keeps state from one utterance to the next that `espeak_Initialize` does not
reset (the phase of its pitch "flutter" is a function-static counter), so the same call
gives different samples, and phoneme times that differ by up to ~10 ms, depending on what
was spoken before. A fresh copy of the library has none of that history, so every
synthesis here loads a private instance (an in-memory copy of `libespeak-ng.so`,
`dlopen`-ed, initialised, used, terminated and `dlclose`-d). (2) Its noise generator
(breath noise of variants such as `f3`, `f5`, `whisper`) is seeded from the clock at
initialisation; each utterance reseeds it (`espeak_ng_SetRandSeed`) with a hash of its
inputs. The same inputs then give the same samples, in any order and any process.
This costs about 4 ms per utterance (a sentence takes 5-10 ms in all). Synthesis holds a
process-wide lock (espeak keeps global state); after `fork` the child gets a new lock and
its own library copy (the pid is recorded).

**Timings.** A phoneme starts at its event's `audio_position` (ms) and ends where the
next one starts; the last ends at the end of the audio; leading audio before the first
event is silence; zero-length phonemes are dropped and adjacent pauses merged. So the
timeline covers `[0, duration]` exactly, without gaps. One refinement from the audio:
espeak's event for a stop (p b t d k g ch jh) marks its burst, and the silent closure
before it (typically 30-40 ms) falls in the previous phoneme's interval; the stop's start
is moved back over that closure (the run of 5 ms hops right before the event whose RMS is
below 3 % of the utterance's loud level, the 95th percentile; at most 80 ms and half the
previous phoneme; not after a pause), so the lips close when the sound stops. espeak's
names are kept in `Speech.espeak_names`; a name the table does not know becomes `UNK` and
is counted in `Speech.unknown_names` (never an error).

Examples:
    >>> s = synthesize("Good news travels fast.")
    >>> s.sample_rate, s.waveform.dtype, s.phonemes[-1].end == s.duration
    (16000, torch.float32, True)
    >>> " ".join(p.name for p in s.phonemes)
    'sil G UH D N UW Z T R AE V L Z F AE S T sil'
    >>> [w.text for w in s.words]
    ['Good', 'news', 'travels', 'fast']
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from decouple.data.registry import MEAD, canonical_emotion
from decouple.data.synthtalk.visemes import SILENCE, UNKNOWN, Phoneme, phoneme_symbol

if TYPE_CHECKING:
    from decouple.data.io import Audio

__all__ = [
    "BASE_RANGE",
    "BASE_RATE",
    "BASE_VOLUME",
    "EMOTION_PROSODY",
    "INTENSITY_SCALE",
    "OUTPUT_GAIN",
    "PARAMETER_RANGES",
    "SAMPLE_RATE",
    "SENTENCES",
    "Prosody",
    "Sentence",
    "Speech",
    "Word",
    "available_variants",
    "prosody",
    "sentence",
    "speak",
    "synthesize",
]

SAMPLE_RATE = 16000
"""Sample rate of SynthTalk audio (espeak's 22,050 Hz output is resampled to it)."""

OUTPUT_GAIN = 0.5
"""Gain from espeak's 16-bit samples (full scale 1) to the output: espeak's loud settings
reach full scale, and the resampler's overshoot would then clip; half scale leaves 6 dB
of headroom, so relative loudness between emotions is kept."""

BASE_RATE = 175.0
"""espeak's normal speaking rate, words per minute (the neutral rate)."""
BASE_RANGE = 50.0
"""espeak's normal pitch range (0 = monotone, 100 = widest): the neutral range."""
BASE_VOLUME = 100.0
"""espeak's normal volume: the neutral loudness."""

PARAMETER_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "pitch": (0.0, 100.0),
    "pitch_range": (0.0, 100.0),
    "rate": (80.0, 450.0),
    "volume": (0.0, 200.0),
})
"""Valid values of the espeak prosody parameters: pitch level (0-100, 50 = the voice's
normal pitch; each 50 is about an octave), pitch range (0-100), rate (words per minute)
and volume (100 = normal). espeak takes integers: values are rounded."""


# --------------------------------------------------------------------------------------------
# sentences


@dataclass(frozen=True)
class Sentence:
    """One SynthTalk sentence.

    Attributes:
        id: Three-digit id, `"001"` .. `"040"` (like MEAD's clip names).
        text: The sentence.

    Examples:
        >>> SENTENCES[0]
        Sentence(id='001', text='The brown dog sleeps by the fire.')
    """

    id: str
    text: str


_TEXTS = (
    "The brown dog sleeps by the fire.",
    "Please pass me the warm bread.",
    "A cold wind blew over the hills.",
    "She found her keys in the garden.",
    "My mother bakes apple pie on Sundays.",
    "The ship sailed past the rocky shore.",
    "We heard music from the open window.",
    "Fresh milk tastes best in the morning.",
    "He paints boats with bright blue paint.",
    "The old clock stopped at noon.",
    "Put the books back on the shelf.",
    "Birds were singing in the tall trees.",
    "Her voice was soft and calm.",
    "The judge read the verdict aloud.",
    "Thick fog covered the whole valley.",
    "Move the chair closer to the table.",
    "A small boy threw the ball.",
    "The rain made the path muddy.",
    "Jump over the fence quickly.",
    "They watched the moon rise slowly.",
    "Bring a map and some water.",
    "The yellow kite flew very high.",
    "Fish swim beneath the frozen lake.",
    "Good news travels fast.",
    "Measure the rope before you cut it.",
    "The thin man wore a heavy coat.",
    "Lemons taste sour but smell sweet.",
    "Open the box with a knife.",
    "Our team won the final game.",
    "Big waves crashed against the pier.",
    "Keep your hands warm in winter.",
    "The baby smiled at her father.",
    "Each player got a new shirt.",
    "Time flies when you have fun.",
    "The farmer planted beans in May.",
    "Wash the plums before eating them.",
    "A quiet voice called from upstairs.",
    "The red pen is under the bed.",
    "Maybe we should leave early.",
    "Please share the pleasure of the view.",
)

SENTENCES: tuple[Sentence, ...] = tuple(
    Sentence(f"{i + 1:03d}", text) for i, text in enumerate(_TEXTS)
)
"""SynthTalk's 40 sentences (4-7 words each, written for this project in the spirit of
the Harvard sentences). Together they contain every phoneme of English (including
`ZH` in "measure" and "pleasure", `OY` in "voice", `TH`/`DH`, `NG`, `CH`, `JH`) and many
bilabials, which the mouth track makes visible."""

_SENTENCE_BY_ID = {s.id: s for s in SENTENCES}


def sentence(id: str) -> Sentence:
    """The sentence with a given id.

    Args:
        id: `"001"` .. `"040"`.

    Returns:
        The [Sentence][decouple.data.synthtalk.speech.Sentence].

    Raises:
        KeyError: Unknown id.

    Examples:
        >>> sentence("024").text
        'Good news travels fast.'
    """
    try:
        return _SENTENCE_BY_ID[id]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown sentence id {id!r}; ids are {SENTENCES[0].id} .. {SENTENCES[-1].id}"
        ) from None


# --------------------------------------------------------------------------------------------
# prosody


@dataclass(frozen=True)
class Prosody:
    """espeak prosody settings.

    Valid values: [PARAMETER_RANGES][decouple.data.synthtalk.speech.PARAMETER_RANGES].

    Attributes:
        pitch: Pitch level, 0-100.
        pitch_range: Pitch range, 0-100.
        rate: Speaking rate, words per minute, 80-450.
        volume: Volume, 0-200.

    Examples:
        >>> Prosody(50.0, 50.0, 175.0, 100.0).to_dict()
        {'pitch': 50.0, 'pitch_range': 50.0, 'rate': 175.0, 'volume': 100.0}
    """

    pitch: float
    pitch_range: float
    rate: float
    volume: float

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            _check_param(name, value)

    def to_dict(self) -> dict[str, float]:
        """The settings as a dict (keyword arguments of
        [synthesize][decouple.data.synthtalk.speech.synthesize]; JSON-ready).

        Returns:
            `{"pitch": ..., "pitch_range": ..., "rate": ..., "volume": ...}`.

        Examples:
            >>> sorted(prosody("sad", 3).to_dict())
            ['pitch', 'pitch_range', 'rate', 'volume']
        """
        return {k: float(v) for k, v in asdict(self).items()}


def _offsets(pitch: float, pitch_range: float, rate: float, volume: float
             ) -> Mapping[str, float]:
    return MappingProxyType(
        {"pitch": pitch, "pitch_range": pitch_range, "rate": rate, "volume": volume}
    )


EMOTION_PROSODY: Mapping[str, Mapping[str, float]] = MappingProxyType({
    # pitch: added to the speaker's level; range: added to 50; rate: factor; volume: added to 100
    #                     pitch  range  rate   volume
    "neutral":   _offsets(0.0,   0.0,   1.00,  0.0),
    "angry":     _offsets(6.0,   30.0,  1.18,  45.0),
    "contempt":  _offsets(-5.0,  8.0,   0.92,  -10.0),
    "disgusted": _offsets(-8.0,  10.0,  0.82,  -5.0),
    "fear":      _offsets(18.0,  -20.0, 1.18,  -15.0),
    "happy":     _offsets(14.0,  28.0,  1.08,  15.0),
    "sad":       _offsets(-12.0, -28.0, 0.72,  -35.0),
    "surprised": _offsets(24.0,  40.0,  1.00,  20.0),
})
"""Prosody of MEAD's eight emotions at level 3, relative to the speaker's neutral voice:
`pitch` is added to the speaker's pitch level, `pitch_range` to the normal range 50, `volume`
to the normal volume 100, and `rate` multiplies the normal rate (175 words/min). In the
spirit of the vocal-emotion literature (Scherer 2003; Banse and Scherer 1996): anger loud,
fast, wide range, slightly raised; sadness low, slow, quiet, narrow; happiness raised and
wide; surprise high and widest; fear raised, fast, narrow and a little quiet; disgust lower
and slow; contempt slightly lower, slower and quieter; neutral the base voice. Levels 1-3
scale every offset by [INTENSITY_SCALE][decouple.data.synthtalk.speech.INTENSITY_SCALE]."""

INTENSITY_SCALE: Mapping[int, float] = MappingProxyType({1: 0.5, 2: 0.75, 3: 1.0})
"""Fraction of an emotion's level-3 prosody offset used at each MEAD intensity level."""


def prosody(emotion: str, intensity: int = 1, base_pitch: float = 50.0, *,
            base_rate: float = BASE_RATE, base_range: float = BASE_RANGE,
            base_volume: float = BASE_VOLUME) -> Prosody:
    """The prosody of an emotion at an intensity level, for a speaker's base voice.

    Every setting is the base plus the emotion's offset from
    [EMOTION_PROSODY][decouple.data.synthtalk.speech.EMOTION_PROSODY] times
    [INTENSITY_SCALE][decouple.data.synthtalk.speech.INTENSITY_SCALE][intensity] (the rate
    by the factor `1 + scale * (factor - 1)`), clipped to
    [PARAMETER_RANGES][decouple.data.synthtalk.speech.PARAMETER_RANGES].

    Args:
        emotion: One of MEAD's eight emotions (`decouple.data.registry.MEAD`; aliases such
            as `"anger"` are accepted).
        intensity: Level 1, 2 or 3 (neutral: 1 only).
        base_pitch: The speaker's pitch level (`SpeakerParams.voice_pitch`), 0-100.
        base_rate: The speaker's neutral rate, words per minute.
        base_range: The speaker's neutral pitch range, 0-100.
        base_volume: The speaker's neutral volume, 0-200.

    Returns:
        The [Prosody][decouple.data.synthtalk.speech.Prosody].

    Raises:
        ValueError: Unknown emotion, an emotion outside MEAD's eight, an invalid level, or
            a base outside its range.

    Examples:
        >>> prosody("neutral", 1, 40.0)
        Prosody(pitch=40.0, pitch_range=50.0, rate=175.0, volume=100.0)
        >>> prosody("sad", 3, 40.0)
        Prosody(pitch=28.0, pitch_range=22.0, rate=126.0, volume=65.0)
        >>> prosody("neutral", 2)
        Traceback (most recent call last):
        ...
        ValueError: intensity 2 for neutral: neutral has level 1 only (MEAD)
    """
    name = _check_emotion(emotion)
    _check_intensity(name, intensity)
    for label, value, key in (("base_pitch", base_pitch, "pitch"),
                              ("base_rate", base_rate, "rate"),
                              ("base_range", base_range, "pitch_range"),
                              ("base_volume", base_volume, "volume")):
        _check_param(key, value, label=label)
    g = INTENSITY_SCALE[int(intensity)]
    off = EMOTION_PROSODY[name]

    def clip(key: str, value: float) -> float:
        lo, hi = PARAMETER_RANGES[key]
        return float(min(hi, max(lo, value)))

    return Prosody(
        pitch=clip("pitch", base_pitch + g * off["pitch"]),
        pitch_range=clip("pitch_range", base_range + g * off["pitch_range"]),
        rate=clip("rate", base_rate * (1.0 + g * (off["rate"] - 1.0))),
        volume=clip("volume", base_volume + g * off["volume"]),
    )


# --------------------------------------------------------------------------------------------
# speech


class Word(NamedTuple):
    """One word of an utterance.

    Attributes:
        text: The word as written in the input text.
        start: Start of its first phoneme, seconds.
        end: End of its last phoneme, seconds.

    Examples:
        >>> Word("fast", 0.9, 1.3).text
        'fast'
    """

    text: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Speech:
    """A synthesised utterance with its timings.

    Attributes:
        text: The text spoken.
        waveform: Samples `(s,)`, float32 in [-1, 1], mono (espeak's 16-bit output times
            [OUTPUT_GAIN][decouple.data.synthtalk.speech.OUTPUT_GAIN], resampled).
        sample_rate: Samples per second (16,000 by default).
        phonemes: The timeline: [Phoneme][decouple.data.synthtalk.visemes.Phoneme]
            `(name, start, end)` in seconds, inventory symbols, contiguous from 0 to
            `duration` (first start 0, each start the previous end, last end `duration`).
        espeak_names: espeak's own name(s) of each phoneme (parallel to `phonemes`;
            merged pauses are joined with a space; silence added before the first event
            is `""`).
        words: Word timings, in order (espeak times some unstressed words together with
            the previous one: such a `Word` holds both, e.g. `"on the"`).
        voice: The espeak voice used, e.g. `"en-us+f3"`.
        prosody: The prosody settings used.

    Examples:
        >>> s = synthesize("Open the box.", variant="f3")
        >>> s.voice, s.num_samples == s.waveform.shape[0], s.unknown_names
        ('en-us+f3', True, ())
        >>> s.audio.sample_rate
        16000
    """

    text: str
    waveform: Tensor
    sample_rate: int
    phonemes: tuple[Phoneme, ...]
    espeak_names: tuple[str, ...]
    words: tuple[Word, ...]
    voice: str
    prosody: Prosody = field(default_factory=lambda: Prosody(50.0, 50.0, BASE_RATE, 100.0))

    @property
    def num_samples(self) -> int:
        """Number of samples `s`."""
        return int(self.waveform.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds (`num_samples / sample_rate`), the end of the timeline."""
        return self.num_samples / self.sample_rate

    @property
    def unknown_names(self) -> tuple[str, ...]:
        """espeak names the phoneme table did not know (mapped to `UNK`), in order."""
        return tuple(raw for p, raw in zip(self.phonemes, self.espeak_names, strict=True)
                     if p.name == UNKNOWN)

    @property
    def audio(self) -> Audio:
        """The waveform as a [decouple.data.io.Audio][decouple.data.io.Audio]."""
        from decouple.data.io import Audio

        return Audio(self.waveform, self.sample_rate)

    def num_frames(self, fps: float) -> int:
        """Number of video frames that cover the audio: `ceil(duration * fps)`.

        Args:
            fps: Frames per second.

        Returns:
            The frame count (at least 1).

        Examples:
            >>> s = synthesize("Good news travels fast.")
            >>> s.num_frames(25) == math.ceil(s.duration * 25)
            True
        """
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        return max(1, math.ceil(self.duration * fps - 1e-9))

    def timing_json(self) -> dict[str, Any]:
        """The timings and settings as JSON-ready data (no waveform), for clip metadata.

        Returns:
            `{"text", "voice", "prosody", "sample_rate", "num_samples", "phonemes":
            [[name, start, end], ...], "espeak_names": [...], "words": [[text, start,
            end], ...]}`; `phonemes` can be passed back to the `visemes` functions.

        Examples:
            >>> j = synthesize("Jump over the fence.").timing_json()
            >>> j["phonemes"][0], j["words"][0][0]
            (['sil', 0.0, 0.012], 'Jump')
        """
        return {
            "text": self.text,
            "voice": self.voice,
            "prosody": self.prosody.to_dict(),
            "sample_rate": self.sample_rate,
            "num_samples": self.num_samples,
            "phonemes": [[p.name, p.start, p.end] for p in self.phonemes],
            "espeak_names": list(self.espeak_names),
            "words": [[w.text, w.start, w.end] for w in self.words],
        }


def synthesize(text: str, *, voice: str = "en-us", variant: str | None = None,
               pitch: float = 50.0, pitch_range: float = BASE_RANGE, rate: float = BASE_RATE,
               volume: float = BASE_VOLUME, sample_rate: int = SAMPLE_RATE) -> Speech:
    """Speak a text with espeak-ng: 16 kHz mono float32 audio and phoneme timings.

    Deterministic: the same arguments give the same samples (see the module docstring).

    Args:
        text: What to say (plain text, UTF-8; not SSML).
        voice: espeak language voice; the phoneme table is built for `"en-us"`
            (others work, their names may fall back to `UNK`).
        variant: A voice variant from espeak's `voices/!v` folder (e.g. `"m3"`, `"f3"`;
            [available_variants][decouple.data.synthtalk.speech.available_variants]), or None.
        pitch: Pitch level 0-100 (50 = the voice's normal pitch).
        pitch_range: Pitch range 0-100 (0 = monotone, 50 = normal).
        rate: Speaking rate, words per minute, 80-450 (175 = normal).
        volume: 0-200 (100 = normal; above ~150 espeak compresses peaks).
        sample_rate: Output sample rate.

    Returns:
        The [Speech][decouple.data.synthtalk.speech.Speech].

    Raises:
        ImportError: If `espeakng-loader` is not installed (`pip install 'decouple[speech]'`).
        ValueError: Empty text, an unknown voice or variant, a parameter out of range, or
            text that produces no speech.
        RuntimeError: If espeak-ng fails (the message has its status).

    Examples:
        >>> slow = synthesize("Time flies when you have fun.", rate=120)
        >>> fast = synthesize("Time flies when you have fun.", rate=240)
        >>> bool(slow.duration > 1.5 * fast.duration)
        True
        >>> synthesize("   ")
        Traceback (most recent call last):
        ...
        ValueError: text is empty (or only white space): nothing to synthesise
    """
    text = _check_text(text)
    settings = Prosody(pitch=float(pitch), pitch_range=float(pitch_range), rate=float(rate),
                       volume=float(volume))
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) \
            or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    name = _voice_name(voice, variant)
    pcm, native_sr, events = _synthesize_raw(text, name, settings)
    return _build_speech(text, name, settings, pcm, native_sr, events, int(sample_rate))


def speak(text: str, emotion: str = "neutral", intensity: int = 1, *,
          variant: str | None = None, base_pitch: float = 50.0, base_rate: float = BASE_RATE,
          voice: str = "en-us", sample_rate: int = SAMPLE_RATE) -> Speech:
    """Speak a text in an emotion.

    [prosody][decouple.data.synthtalk.speech.prosody] followed by
    [synthesize][decouple.data.synthtalk.speech.synthesize].

    Args:
        text: What to say.
        emotion: One of MEAD's eight emotions.
        intensity: Level 1-3 (neutral: 1).
        variant: The speaker's voice variant (`SpeakerParams.voice_variant`), or None.
        base_pitch: The speaker's pitch level (`SpeakerParams.voice_pitch`).
        base_rate: The speaker's neutral rate, words per minute.
        voice: espeak language voice.
        sample_rate: Output sample rate.

    Returns:
        The [Speech][decouple.data.synthtalk.speech.Speech].

    Raises:
        ImportError: If `espeakng-loader` is not installed.
        ValueError: As [prosody][decouple.data.synthtalk.speech.prosody] and
            [synthesize][decouple.data.synthtalk.speech.synthesize].

    Examples:
        >>> t = sentence("009").text
        >>> bool(speak(t, "sad", 3).duration > speak(t, "angry", 3).duration)
        True
    """
    p = prosody(emotion, intensity, base_pitch, base_rate=base_rate)
    return synthesize(text, voice=voice, variant=variant, sample_rate=sample_rate,
                      **p.to_dict())


def available_variants() -> tuple[str, ...]:
    """The voice variants espeak-ng's data provides (file names in `voices/!v`).

    Returns:
        Sorted variant names, e.g. `("Alex", ..., "f1", ..., "m1", ...)`.

    Raises:
        ImportError: If `espeakng-loader` is not installed.

    Examples:
        >>> {"m1", "m3", "f3", "f5"} <= set(available_variants())
        True
    """
    return tuple(sorted(p.name for p in _variant_dir().iterdir() if p.is_file()))


# --------------------------------------------------------------------------------------------
# validation


def _check_param(name: str, value: float, *, label: str | None = None) -> None:
    lo, hi = PARAMETER_RANGES[name]
    label = label or name
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{label} must be a number in [{lo:g}, {hi:g}], got {value!r}")


def _check_emotion(emotion: str) -> str:
    try:
        name = canonical_emotion(emotion)
    except (KeyError, TypeError):
        name = None
    if name is None or name not in MEAD.names:
        raise ValueError(
            f"unknown emotion {emotion!r}: SynthTalk has MEAD's eight emotions "
            f"({', '.join(MEAD.names)})"
        )
    return name


def _check_intensity(emotion: str, intensity: int) -> None:
    if isinstance(intensity, bool) or not isinstance(intensity, int | np.integer) \
            or int(intensity) not in INTENSITY_SCALE:
        raise ValueError(f"intensity must be the int 1, 2 or 3, got {intensity!r}")
    if emotion == "neutral" and int(intensity) != 1:
        raise ValueError(f"intensity {intensity} for neutral: neutral has level 1 only (MEAD)")


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if "\x00" in text:
        raise ValueError("text contains a NUL character")
    text = text.strip()
    if not text:
        raise ValueError("text is empty (or only white space): nothing to synthesise")
    if not any(c.isalnum() for c in text):
        raise ValueError(f"text {text!r} has no letter or digit: nothing to synthesise")
    return text


def _voice_name(voice: str, variant: str | None) -> str:
    if not isinstance(voice, str) or not voice or not all(c.isalnum() or c in "-_" for c in voice):
        raise ValueError(f"voice must be an espeak voice name such as 'en-us', got {voice!r}")
    if variant is None:
        return voice
    if not isinstance(variant, str) or not variant or "/" in variant or "\\" in variant \
            or variant.startswith(".") or "+" in variant:
        raise ValueError(f"variant must be a variant name such as 'f3', got {variant!r}")
    if not (_variant_dir() / variant).is_file():
        raise ValueError(
            f"unknown voice variant {variant!r}: not in {_variant_dir()} "
            f"(for example: {', '.join(v for v in available_variants() if len(v) == 2)})"
        )
    return f"{voice}+{variant}"


# --------------------------------------------------------------------------------------------
# espeak-ng through ctypes (layout of speak_lib.h, espeak-ng 1.52)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4}
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    """`espeak_EVENT`: an enum and five ints, a pointer, then an 8-byte union."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


class _RawEvent(NamedTuple):
    type: int
    audio_position: int  # ms
    sample: int
    text_position: int  # 1-based character index
    length: int
    name: str  # phoneme name (phoneme events), else ""


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.POINTER(_Event))


class _Sink:
    """Where the callback puts PCM chunks and events of the utterance in progress."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[_RawEvent] = []
        self.error: BaseException | None = None

    def reset(self) -> None:
        self.chunks, self.events, self.error = [], [], None


_SINK = _Sink()


def _on_synth(wav: Any, numsamples: int, events: Any) -> int:
    try:
        if wav and numsamples > 0:
            _SINK.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        if events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                e = events[i]
                name = e.id.string.decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
                _SINK.events.append(_RawEvent(int(e.type), int(e.audio_position), int(e.sample),
                                              int(e.text_position), int(e.length), name))
                i += 1
    except BaseException as err:  # never let an exception cross the C boundary
        _SINK.error = err
        return 1
    return 0


_CALLBACK = _SYNTH_CALLBACK(_on_synth)

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"pid": None, "library": None, "data": None, "keep": None}


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    if isinstance(_STATE["keep"], int):  # the parent's in-memory copy: the child makes its own
        os.close(_STATE["keep"])
    _STATE.update(pid=None, library=None, data=None, keep=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _loader() -> Any:
    try:
        import espeakng_loader
    except ImportError as err:
        raise ImportError(
            "SynthTalk speech needs espeak-ng from the espeakng-loader wheel: "
            "pip install 'decouple[speech]' (espeak-ng is GPL-3.0, hence an optional extra)"
        ) from err
    return espeakng_loader


def _variant_dir() -> Path:
    return Path(_loader().get_data_path()) / "voices" / "!v"


def _library_copy() -> tuple[str, bytes]:
    """This process's private copy of libespeak-ng (made once per pid) and the data path."""
    if _STATE["pid"] == os.getpid():
        return _STATE["library"], _STATE["data"]
    loader = _loader()
    src = Path(loader.get_library_path())
    data = str(loader.get_data_path()).encode()
    blob = src.read_bytes()
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("decouple-libespeak-ng")
        os.write(fd, blob)
        path, keep = f"/proc/self/fd/{fd}", fd
    else:  # no memfd (macOS, Windows): a temporary file removed at exit
        folder = tempfile.mkdtemp(prefix="decouple-espeak-")
        path = os.path.join(folder, src.name)
        with open(path, "wb") as f:
            f.write(blob)
        pid = os.getpid()
        atexit.register(lambda: os.getpid() == pid and shutil.rmtree(folder, True))
        keep = folder
    _STATE.update(pid=os.getpid(), library=path, data=data, keep=keep)
    return path, data


def _dlclose(handle: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - not run here
        ctypes.windll.kernel32.FreeLibrary(ctypes.c_void_p(handle))
    else:
        import _ctypes

        _ctypes.dlclose(handle)


def _declare(lib: Any) -> None:
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (_SYNTH_CALLBACK,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = ()
    lib.espeak_Terminate.restype = ctypes.c_int


def _noise_seed(text: str, voice: str, settings: Prosody) -> int:
    """A seed for espeak's noise generator that depends only on the utterance's inputs."""
    key = repr((text, voice, sorted(settings.to_dict().items()))).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def _synthesize_raw(text: str, voice: str, settings: Prosody
                    ) -> tuple[np.ndarray, int, list[_RawEvent]]:
    """int16 PCM at espeak's rate, that rate, and the events, from a fresh library instance."""
    with _LOCK:
        path, data = _library_copy()
        lib = ctypes.CDLL(path)
        try:
            _declare(lib)
            native_sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                              _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
            if native_sr <= 0:
                raise RuntimeError(f"espeak_Initialize failed ({native_sr}) with data {data!r}")
            try:
                lib.espeak_SetSynthCallback(_CALLBACK)
                # espeak seeds its noise generator from the clock: reseed it from the inputs
                lib.espeak_ng_SetRandSeed(_noise_seed(text, voice, settings))
                status = lib.espeak_SetVoiceByName(voice.encode())
                if status != 0:
                    raise ValueError(
                        f"espeak-ng has no voice {voice!r} (status {status}); SynthTalk uses "
                        "'en-us' with an optional variant"
                    )
                for key, code in _PARAM.items():
                    value = round(getattr(settings, key))
                    status = lib.espeak_SetParameter(code, value, 0)
                    if status != 0:
                        raise RuntimeError(f"espeak_SetParameter({key}={value}) failed ({status})")
                _SINK.reset()
                buf = text.encode("utf-8") + b"\x00"
                status = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                          None, None)
                if status != 0 or _SINK.error is not None:
                    raise RuntimeError(f"espeak_Synth failed (status {status}) for {text!r}"
                                       ) from _SINK.error
                chunks, events = _SINK.chunks, _SINK.events
                _SINK.reset()
            finally:
                lib.espeak_Terminate()
        finally:
            handle = lib._handle
            del lib
            _dlclose(handle)
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return pcm.astype(np.int16, copy=False), int(native_sr), events


_STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})
_HOP_S = 0.005  # closure search: 5 ms hops
_CLOSURE_LEVEL = 0.03  # "silent": RMS below 3 % of the utterance's loud level (95th percentile)
_CLOSURE_MAX_S = 0.08
_CLOSURE_MIN_S = 0.01


def _with_stop_closures(starts: np.ndarray, symbols: list[str], pcm: np.ndarray, sr: int
                        ) -> np.ndarray:
    """Move each stop's start back over the silent closure espeak puts before its burst."""
    hop = max(1, round(sr * _HOP_S))
    n = len(pcm) // hop
    if n == 0:
        return starts
    x = pcm[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(np.square(x), axis=1))
    silent = rms < _CLOSURE_LEVEL * max(float(np.percentile(rms, 95)), 1.0)
    out = starts.copy()
    for k in range(1, len(out)):
        if symbols[k] not in _STOPS or symbols[k - 1] == SILENCE:
            continue
        lower = max(out[k - 1] + 0.5 * (starts[k] - out[k - 1]), starts[k] - _CLOSURE_MAX_S)
        j = min(int(starts[k] * sr) // hop, n)
        while j > 0 and silent[j - 1] and (j - 1) * hop / sr >= lower:
            j -= 1
        onset = j * hop / sr
        if starts[k] - onset >= _CLOSURE_MIN_S:
            out[k] = onset
    return out


def _build_speech(text: str, voice: str, settings: Prosody, pcm: np.ndarray, native_sr: int,
                  events: list[_RawEvent], sample_rate: int) -> Speech:
    from decouple.data.io import resample_audio

    if pcm.size == 0 or not any(e.type == _EVENT_PHONEME for e in events):
        raise ValueError(f"espeak-ng produced no speech for {text!r}")
    wave = torch.from_numpy(pcm.astype(np.float32) * (OUTPUT_GAIN / 32768.0))
    wave = resample_audio(wave, native_sr, sample_rate).to(torch.float32).clamp(-1.0, 1.0)
    wave = wave.contiguous()
    duration = wave.shape[0] / sample_rate

    # phoneme events in order, each with the index of the word it belongs to
    names: list[str] = []
    starts: list[float] = []
    word_of: list[int] = []
    word_events: list[_RawEvent] = []
    for e in events:
        if e.type == _EVENT_WORD:
            word_events.append(e)
        elif e.type == _EVENT_PHONEME:
            names.append(e.name)
            starts.append(e.audio_position / 1000.0)
            word_of.append(len(word_events) - 1)
    t0 = np.clip(np.maximum.accumulate(np.array(starts)), 0.0, duration)
    if t0[0] > 0:  # audio before the first event: silence
        names.insert(0, "")
        word_of.insert(0, -1)
        t0 = np.concatenate([[0.0], t0])
    t0 = _with_stop_closures(t0, [phoneme_symbol(n) if n else SILENCE for n in names], pcm,
                             native_sr)
    t1 = np.append(t0[1:], duration)

    symbols: list[str] = []
    raws: list[str] = []
    seg_start: list[float] = []
    seg_end: list[float] = []
    seg_word: list[int] = []
    for raw, a, b, w in zip(names, t0.tolist(), t1.tolist(), word_of, strict=True):
        if b - a <= 0:
            continue  # zero-length: nothing to see or hear
        sym = SILENCE if raw == "" else phoneme_symbol(raw)
        if sym == SILENCE and symbols and symbols[-1] == SILENCE:
            seg_end[-1] = b  # merge adjacent pauses
            raws[-1] = f"{raws[-1]} {raw}".strip()
            continue
        symbols.append(sym)
        raws.append(raw)
        seg_start.append(a)
        seg_end.append(b)
        seg_word.append(w if sym != SILENCE else -1)
    # exact contiguity: starts are the previous ends, first 0, last the duration
    seg_start[0] = 0.0
    seg_end[-1] = duration
    phonemes = tuple(Phoneme(s, float(a), float(b))
                     for s, a, b in zip(symbols, seg_start, seg_end, strict=True))

    words: list[Word] = []
    for k, e in enumerate(word_events):
        idx = [i for i, w in enumerate(seg_word) if w == k]
        if not idx:
            continue
        begin = max(0, e.text_position - 1)
        # espeak joins some unstressed words to the previous one ("on the"): the word then
        # spans the text up to the next word event, up to its last letter or digit
        stop = word_events[k + 1].text_position - 1 if k + 1 < len(word_events) else len(text)
        span = text[begin:max(stop, begin + e.length)]
        last = max((i for i, c in enumerate(span) if c.isalnum()), default=e.length - 1)
        words.append(Word(span[:max(last + 1, e.length)], seg_start[idx[0]], seg_end[idx[-1]]))
    return Speech(text=text, waveform=wave, sample_rate=sample_rate, phonemes=phonemes,
                  espeak_names=tuple(raws), words=tuple(words), voice=voice, prosody=settings)
