"""Phonemes, visemes and the per-frame mouth track of SynthTalk (pure numpy, no espeak).

A sentence's timeline is a sequence of [Phoneme][decouple.data.synthtalk.visemes.Phoneme]
`(name, start, end)` in seconds, with names from the inventory
[PHONEMES][decouple.data.synthtalk.visemes.PHONEMES] (ARPAbet symbols, `sil` for silence and
pauses, `UNK` for a name the table does not know). The speech module builds it from
espeak-ng's phoneme events, mapping espeak's en-us mnemonics with
[ESPEAK_PHONEMES][decouple.data.synthtalk.visemes.ESPEAK_PHONEMES] (built from the names
espeak-ng 1.52 emits for the SynthTalk sentences and a word list covering every English
phoneme; see [phoneme_symbol][decouple.data.synthtalk.visemes.phoneme_symbol]).

Each phoneme shows one or two **visemes** (mouth shapes,
[VISEMES][decouple.data.synthtalk.visemes.VISEMES], 15 classes; a diphthong such as `AY`
moves from `AA` to `IY`, its first 55 % showing the first shape). Each viseme has a
**mouth target**, four parameters ([MOUTH_PARAMS][decouple.data.synthtalk.visemes.MOUTH_PARAMS]):

| parameter | range | meaning |
|---|---|---|
| `open` | [0, 1] | lip aperture / jaw drop from speech (0 = lips touching) |
| `width` | [-1, 1] | lip spread (+) or narrowing (-) |
| `round` | [0, 1] | protrusion and rounding (o, u, w, sh) |
| `lip_shape` | [-1, 1] | -1 lips pressed (p b m), +1 lower lip under upper teeth (f v) |

**Coarticulation** follows the dominance model of Cohen and Massaro (1993): every viseme
segment `s` (start `a_s`, end `b_s`) has, per parameter `k`, a dominance

    D_sk(t) = alpha_sk * w_s * exp(-(d_s(t) / tau_s) ** 2),   d_s(t) = max(0, a_s - t, t - b_s)

(flat inside the segment, a Gaussian fall-off of width `tau_s` outside it; `alpha`
is [DOMINANCE][decouple.data.synthtalk.visemes.DOMINANCE], `tau`
[DOMINANCE_WIDTH][decouple.data.synthtalk.visemes.DOMINANCE_WIDTH], `w_s` a per-phoneme
weight that makes `HH` and the glottal stop take the shape of their neighbours), and the
mouth is the dominance-weighted mean of the targets,

    m_k(t) = sum_s D_sk(t) T_sk / sum_s D_sk(t)

(plus a tiny rest term so that gaps are at rest). A weighted mean of targets stays inside
the parameter ranges. Bilabials and labiodentals dominate lip aperture and lip shape
strongly (alpha 30 and 10 against about 1-2 for vowels), so the lips do close at every
p, b and m while neighbouring vowels open fully; their rounding dominance is low, so a
`b` before `UW` is already rounded (anticipatory coarticulation). The track is a
closed-form function of time, evaluated at the frame times `i / fps`
([frame_times][decouple.data.synthtalk.visemes.frame_times]), so two frame rates sample the
same motion.

Besides the mouth track, per frame: the phoneme id and viseme id at the frame time, and
the **content position** (the ground truth position on the sentence's phoneme timeline,
[content_positions][decouple.data.synthtalk.visemes.content_positions]).

Frame time convention: the project's (`decouple.data.features.frame_to_video` and
`samples_for_frames`): video frame i is shown at `i / fps` seconds, its presentation time;
every per-frame track of this module samples frame i at that instant, the time the audio
priors and the shard reader's `features` of frame i are centred on.

Examples:
    >>> ph = [("sil", 0.0, 0.1), ("M", 0.1, 0.2), ("AA", 0.2, 0.45), ("P", 0.45, 0.55),
    ...       ("sil", 0.55, 0.8)]
    >>> m = mouth_track(ph, fps=25, num_frames=20)
    >>> m.shape, m.dtype
    ((20, 4), dtype('float32'))
    >>> bool(m[3, 0] < 0.05), bool(m[8, 0] > 0.7), bool(m[3, 3] < -0.95)  # m, aa, m
    (True, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

__all__ = [
    "DOMINANCE",
    "DOMINANCE_WIDTH",
    "ESPEAK_PHONEMES",
    "MOUTH_PARAMS",
    "MOUTH_RANGES",
    "PHONEMES",
    "PHONEME_VISEMES",
    "SILENCE",
    "UNKNOWN",
    "VISEMES",
    "VISEME_TARGETS",
    "Phoneme",
    "content_positions",
    "frame_times",
    "frame_tracks",
    "mouth_track",
    "phoneme_id",
    "phoneme_ids",
    "phoneme_symbol",
    "viseme_ids",
]


class Phoneme(NamedTuple):
    """One phoneme of a timeline.

    Attributes:
        name: Symbol from [PHONEMES][decouple.data.synthtalk.visemes.PHONEMES].
        start: Start time in seconds.
        end: End time in seconds (`>= start`).

    Examples:
        >>> p = Phoneme("AA", 0.25, 0.4)
        >>> p.name, round(p.end - p.start, 2)
        ('AA', 0.15)
    """

    name: str
    start: float
    end: float


SILENCE = "sil"
"""Inventory symbol of silence and pauses (espeak's `_`, `_:`, `_!`, ...)."""
UNKNOWN = "UNK"
"""Fallback symbol of a phoneme name the table does not know (shown as a neutral vowel)."""

PHONEMES: tuple[str, ...] = (
    SILENCE,
    # vowels and diphthongs
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    # consonants
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "Q", "R", "S",
    "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
    UNKNOWN,
)
"""The phoneme inventory; a phoneme's id is its position. ARPAbet (the 39 phonemes of
CMUdict) plus `sil` (id 0), `Q` (glottal stop, as in TIMIT) and `UNK` (last)."""

_PHONEME_ID = {p: i for i, p in enumerate(PHONEMES)}

ESPEAK_PHONEMES: Mapping[str, str] = MappingProxyType({
    # pauses
    "_": SILENCE, "_:": SILENCE, "_!": SILENCE, "_|": SILENCE, "_^_": SILENCE,
    # vowels (espeak-ng en-us mnemonics, stress marks removed)
    "A:": "AA", "0": "AA", "0#": "AA", "A@": "AA", "A#": "AA", "A~": "AA",
    "a": "AE", "aa": "AE", "a2": "AE", "a#2": "AE",
    "V": "AH", "@": "AH", "@2": "AH", "@5": "AH", "@#": "AH", "@-": "AH", "a#": "AH", "02": "AH",
    "O:": "AO", "O": "AO", "O2": "AO", "O@": "AO", "O~": "AO",
    "aU": "AW", "aU@": "AW",
    "aI": "AY", "aI@": "AY", "aI3": "AY",
    "E": "EH", "E2": "EH", "E#": "EH", "e#": "EH", "e@": "EH",
    "3": "ER", "3:": "ER", "IR": "ER", "VR": "ER",
    "eI": "EY", "e:": "EY",
    "I": "IH", "I2": "IH", "I#": "IH", "I2#": "IH", "i@": "IH", "i@3": "IH",
    "i": "IY", "i:": "IY",
    "oU": "OW", "oU#": "OW", "o@": "OW", "o:": "OW",
    "OI": "OY",
    "U": "UH", "U@": "UH",
    "u:": "UW",
    # consonants
    "b": "B", "tS": "CH", "d": "D", "d#": "D", "D": "DH", "f": "F", "g": "G", "h": "HH",
    "dZ": "JH", "k": "K", "x": "K", "l": "L", "l/": "L", "l/2": "L", "l-": "L", "@L": "L",
    "m": "M", "m-": "M", "n": "N", "n-": "N", "N": "NG", "p": "P", "?": "Q", "r": "R",
    "r-": "R", "r/": "R", "s": "S", "S": "SH", "t": "T", "t#": "T", "t2": "T", "T": "TH",
    "v": "V", "w": "W", "w#": "W", "j": "Y", ";": "Y", "z": "Z", "z#": "Z", "z/": "Z",
    "z/2": "Z", "Z": "ZH",
})
"""espeak-ng en-us phoneme mnemonic (without stress marks) -> inventory symbol.

Built from the names espeak-ng 1.52 emitted for the SynthTalk sentences, a word list
covering every English phoneme and 150 lines of project prose, completed with the phoneme
definitions of espeak-ng's `ph_english` and `ph_english_us` tables.

Merged variants: `@2`, `a#`, `V` are schwa-like (`AH`); `I2`, `I#` reduced `IH`; `t#` the
flap and `t2` an unreduced t (`T`); `@L`, `n-` syllabic l and n; `;` the palatal glide
espeak appends after i before a vowel (`Y`); r-coloured vowels (`A@`, `O@`, `o@`, `e@`,
`i@3`, `U@`) map to their vowel, the rhotic part being visible only as slight rounding in
the following `R` when espeak emits one."""

MOUTH_PARAMS: tuple[str, ...] = ("open", "width", "round", "lip_shape")
"""Columns of a mouth track."""
MOUTH_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "open": (0.0, 1.0), "width": (-1.0, 1.0), "round": (0.0, 1.0), "lip_shape": (-1.0, 1.0),
})
"""Documented range of each mouth parameter (every track stays inside)."""

VISEMES: tuple[str, ...] = (
    "sil", "PBM", "FV", "TH", "TDNL", "SZ", "SH", "KG", "R", "UW", "IY", "EH", "AA", "AO", "AH",
)
"""The 15 viseme classes; a viseme's id is its position: rest, bilabial closure (p b m),
labiodental (f v), dental (th dh), alveolar (t d n l), sibilant (s z), post-alveolar
rounded (sh zh ch jh), velar/glottal (k g ng, h, glottal stop), r and er, rounded close
(uw uh w), spread close (iy ih y), mid spread (eh ae), open (aa), rounded open (ao),
neutral (ah, schwa)."""

_V = {v: i for i, v in enumerate(VISEMES)}

# viseme -> (open, width, round, lip_shape) target, and per-parameter dominance alpha.
_TABLE: dict[str, tuple[tuple[float, float, float, float], tuple[float, float, float, float],
                        float]] = {
    #          target (open, width, round, lip)   dominance alpha             tau (s)
    "sil":  ((0.02, 0.00, 0.00, 0.0), (0.8, 0.8, 0.8, 0.8), 0.040),
    "PBM":  ((0.00, 0.00, 0.10, -1.0), (30.0, 2.0, 0.5, 30.0), 0.025),
    "FV":   ((0.08, 0.10, 0.00, 1.0), (10.0, 2.0, 0.5, 20.0), 0.025),
    "TH":   ((0.22, 0.15, 0.00, 0.0), (3.0, 1.0, 0.5, 1.0), 0.030),
    "TDNL": ((0.20, 0.10, 0.00, 0.0), (1.5, 0.7, 0.3, 1.0), 0.030),
    "SZ":   ((0.08, 0.35, 0.00, 0.0), (3.0, 2.0, 0.5, 1.0), 0.030),
    "SH":   ((0.12, -0.40, 0.60, 0.0), (3.0, 3.0, 3.0, 1.0), 0.030),
    "KG":   ((0.30, 0.00, 0.00, 0.0), (1.0, 0.5, 0.3, 1.0), 0.030),
    "R":    ((0.20, -0.30, 0.45, 0.0), (1.5, 2.0, 2.0, 1.0), 0.035),
    "UW":   ((0.15, -0.60, 0.90, 0.0), (2.0, 3.0, 3.0, 1.0), 0.040),
    "IY":   ((0.20, 0.65, 0.00, 0.0), (1.5, 2.0, 1.0, 1.0), 0.040),
    "EH":   ((0.55, 0.40, 0.00, 0.0), (1.5, 1.5, 1.0, 1.0), 0.040),
    "AA":   ((0.90, 0.10, 0.00, 0.0), (2.0, 1.0, 1.0, 1.0), 0.045),
    "AO":   ((0.60, -0.35, 0.70, 0.0), (2.0, 2.0, 2.0, 1.0), 0.045),
    "AH":   ((0.40, 0.00, 0.00, 0.0), (1.0, 0.5, 0.5, 1.0), 0.040),
}

VISEME_TARGETS: np.ndarray = np.array([_TABLE[v][0] for v in VISEMES], dtype=np.float64)
"""`(15, 4)`: the mouth target of each viseme (rows in
[VISEMES][decouple.data.synthtalk.visemes.VISEMES] order, columns
[MOUTH_PARAMS][decouple.data.synthtalk.visemes.MOUTH_PARAMS])."""
DOMINANCE: np.ndarray = np.array([_TABLE[v][1] for v in VISEMES], dtype=np.float64)
"""`(15, 4)`: dominance magnitude `alpha` of each viseme for each mouth parameter."""
DOMINANCE_WIDTH: np.ndarray = np.array([_TABLE[v][2] for v in VISEMES], dtype=np.float64)
"""`(15,)`: width `tau` (seconds) of the Gaussian fall-off of each viseme's dominance."""
for _arr in (VISEME_TARGETS, DOMINANCE, DOMINANCE_WIDTH):
    _arr.setflags(write=False)

PHONEME_VISEMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    SILENCE: ("sil",),
    "AA": ("AA",), "AE": ("EH",), "AH": ("AH",), "AO": ("AO",), "AW": ("AA", "UW"),
    "AY": ("AA", "IY"), "EH": ("EH",), "ER": ("R",), "EY": ("EH", "IY"), "IH": ("IY",),
    "IY": ("IY",), "OW": ("AO", "UW"), "OY": ("AO", "IY"), "UH": ("UW",), "UW": ("UW",),
    "B": ("PBM",), "CH": ("SH",), "D": ("TDNL",), "DH": ("TH",), "F": ("FV",), "G": ("KG",),
    "HH": ("KG",), "JH": ("SH",), "K": ("KG",), "L": ("TDNL",), "M": ("PBM",), "N": ("TDNL",),
    "NG": ("KG",), "P": ("PBM",), "Q": ("KG",), "R": ("R",), "S": ("SZ",), "SH": ("SH",),
    "T": ("TDNL",), "TH": ("TH",), "V": ("FV",), "W": ("UW",), "Y": ("IY",), "Z": ("SZ",),
    "ZH": ("SH",), UNKNOWN: ("AH",),
})
"""Inventory symbol -> its viseme(s); diphthongs have two (the first over 55 % of the
phoneme's time, the second over the rest)."""

_DIPHTHONG_SPLIT = 0.55
# Per-phoneme dominance weight: h and the glottal stop have no mouth shape of their own.
_WEIGHT = {"HH": 0.15, "Q": 0.3, UNKNOWN: 0.5}
_REST_ALPHA = 1e-3  # a tiny everywhere-present rest term: gaps between segments are at rest
_STRESS = "',%="

assert set(PHONEME_VISEMES) == set(PHONEMES)
assert set(ESPEAK_PHONEMES.values()) <= set(PHONEMES)


def phoneme_symbol(name: str) -> str:
    """The inventory symbol of an espeak-ng (en-us) phoneme name.

    Stress marks (`'` primary, `,` secondary) are removed first; a name starting with `_`
    is a pause (`sil`). A name the table does not have is tried once more without trailing
    digits and `#` (espeak's variant marks, e.g. `@5` -> `@`); if still unknown it maps to
    [UNKNOWN][decouple.data.synthtalk.visemes.UNKNOWN] (the speech module counts these).

    Args:
        name: The phoneme name of an espeak phoneme event, e.g. `"'aI"`.

    Returns:
        A symbol of [PHONEMES][decouple.data.synthtalk.visemes.PHONEMES].

    Examples:
        >>> [phoneme_symbol(n) for n in ("'aI", "D", "@2", "_:", "t#", "@7", "qq")]
        ['AY', 'DH', 'AH', 'sil', 'T', 'AH', 'UNK']
    """
    if not isinstance(name, str):
        raise TypeError(f"a phoneme name must be a str, got {type(name).__name__}")
    key = name.lstrip(_STRESS)
    if key.startswith("_"):
        return SILENCE
    symbol = ESPEAK_PHONEMES.get(key)
    if symbol is None:
        stripped = key.rstrip("0123456789#")
        symbol = ESPEAK_PHONEMES.get(stripped, UNKNOWN) if stripped else UNKNOWN
    return symbol


def phoneme_id(symbol: str) -> int:
    """The id of an inventory symbol.

    The id is the symbol's position in [PHONEMES][decouple.data.synthtalk.visemes.PHONEMES].

    Args:
        symbol: An inventory symbol such as `"AA"` or `"sil"`.

    Returns:
        The id.

    Raises:
        KeyError: If `symbol` is not in the inventory (the message lists it).

    Examples:
        >>> phoneme_id("sil"), phoneme_id("AA"), phoneme_id("UNK") == len(PHONEMES) - 1
        (0, 1, True)
    """
    try:
        return _PHONEME_ID[symbol]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown phoneme symbol {symbol!r}; the inventory is: {' '.join(PHONEMES)} "
            "(map espeak names with phoneme_symbol first)"
        ) from None


def frame_times(fps: float, num_frames: int) -> np.ndarray:
    """Frame times `i / fps` (presentation times), the instants every per-frame track samples.

    Args:
        fps: Frames per second (positive).
        num_frames: Number of frames `t` (`>= 1`).

    Returns:
        `(t,)` float64 seconds.

    Examples:
        >>> frame_times(25, 3).tolist()
        [0.0, 0.04, 0.08]
    """
    _check_fps_frames(fps, num_frames)
    return np.arange(num_frames, dtype=np.float64) / float(fps)


def mouth_track(phonemes: Sequence[tuple[str, float, float]], fps: float, num_frames: int
                ) -> np.ndarray:
    """The per-frame mouth parameters of a phoneme timeline, with coarticulation.

    The dominance model of the module docstring, evaluated at the frame times `i / fps`.
    Frames past the end of the timeline hold the last instant's value.

    Args:
        phonemes: The timeline, `(name, start, end)` per phoneme in seconds (names from
            [PHONEMES][decouple.data.synthtalk.visemes.PHONEMES]), sorted and not
            overlapping; usually `Speech.phonemes`.
        fps: Frames per second (e.g. 25 or 30).
        num_frames: Number of frames `t`.

    Returns:
        `(t, 4)` float32, columns [MOUTH_PARAMS][decouple.data.synthtalk.visemes.MOUTH_PARAMS],
        each within [MOUTH_RANGES][decouple.data.synthtalk.visemes.MOUTH_RANGES].

    Raises:
        ValueError: If the timeline is empty, unsorted, overlapping or has an unknown
            name, or `fps` / `num_frames` is not valid.

    Examples:
        >>> ph = [("sil", 0.0, 0.05), ("B", 0.05, 0.12), ("UW", 0.12, 0.4), ("sil", 0.4, 0.5)]
        >>> m = mouth_track(ph, fps=30, num_frames=15)
        >>> i = 2  # frame time 0.067 s, inside the b
        >>> bool(m[i, 0] < 0.05), bool(m[i, 2] > 0.3)  # lips closed, already rounded
        (True, True)
    """
    starts, ends, names = _check_timeline(phonemes)
    t = frame_times(fps, num_frames)
    vis, a, b, w = _viseme_segments(starts, ends, names)
    t = np.clip(t, starts[0], ends[-1])
    # distance of each frame time outside each segment: (t, n)
    d = np.maximum(0.0, np.maximum(a[None, :] - t[:, None], t[:, None] - b[None, :]))
    fall = np.exp(-np.square(d / DOMINANCE_WIDTH[vis][None, :]))
    dom = fall[:, :, None] * (DOMINANCE[vis] * w[:, None])[None, :, :]  # (t, n, 4)
    num = np.einsum("tnk,nk->tk", dom, VISEME_TARGETS[vis])
    den = dom.sum(axis=1)
    rest = VISEME_TARGETS[_V["sil"]]
    out = (num + _REST_ALPHA * rest[None, :]) / (den + _REST_ALPHA)
    lo = np.array([MOUTH_RANGES[p][0] for p in MOUTH_PARAMS])
    hi = np.array([MOUTH_RANGES[p][1] for p in MOUTH_PARAMS])
    return np.clip(out, lo, hi).astype(np.float32)


def content_positions(phonemes: Sequence[tuple[str, float, float]], fps: float,
                      num_frames: int) -> np.ndarray:
    """The ground-truth position on the sentence's phoneme timeline at each frame time.

    Counting only non-silence phonemes `0 .. n - 1`, the position inside phoneme `k` is
    `k + (t - start_k) / (end_k - start_k)`; during a silence it stays at the number of
    phonemes finished so far. So it is 0 during leading silence, `n` during trailing
    silence, continuous and non-decreasing: the same sentence in two emotions has the same
    position at the same spoken content, whatever the timing.

    Args:
        phonemes: The timeline (see [mouth_track][decouple.data.synthtalk.visemes.mouth_track]).
        fps: Frames per second.
        num_frames: Number of frames `t`.

    Returns:
        `(t,)` float32 in `[0, n]`.

    Raises:
        ValueError: As [mouth_track][decouple.data.synthtalk.visemes.mouth_track].

    Examples:
        >>> ph = [("sil", 0.0, 0.1), ("HH", 0.1, 0.2), ("AY", 0.2, 0.4), ("sil", 0.4, 0.5)]
        >>> content_positions(ph, fps=20, num_frames=10).astype(float).round(3).tolist()
        [0.0, 0.0, 0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.0]
    """
    starts, ends, names = _check_timeline(phonemes)
    t = frame_times(fps, num_frames)
    speech = names != SILENCE
    s, e = starts[speech], ends[speech]
    n = int(speech.sum())
    if n == 0:
        return np.zeros(num_frames, dtype=np.float32)
    xp = np.stack([s, e], axis=1).reshape(-1)
    k = np.arange(n, dtype=np.float64)
    fp = np.stack([k, k + 1], axis=1).reshape(-1)
    # np.interp needs non-decreasing xp: equal knots (end_k == start_k+1) carry equal values
    return np.interp(t, xp, fp).astype(np.float32)


def phoneme_ids(phonemes: Sequence[tuple[str, float, float]], fps: float, num_frames: int
                ) -> np.ndarray:
    """The phoneme id at each frame time `i / fps`.

    Ids as [phoneme_id][decouple.data.synthtalk.visemes.phoneme_id].

    Args:
        phonemes: The timeline (see [mouth_track][decouple.data.synthtalk.visemes.mouth_track]).
        fps: Frames per second.
        num_frames: Number of frames `t`.

    Returns:
        `(t,)` int64; a frame time in a gap or past the end is silence (0).

    Raises:
        ValueError: As [mouth_track][decouple.data.synthtalk.visemes.mouth_track].

    Examples:
        >>> ph = [("sil", 0.0, 0.1), ("M", 0.1, 0.2), ("AA", 0.2, 0.3)]
        >>> [PHONEMES[i] for i in phoneme_ids(ph, fps=20, num_frames=8)]
        ['sil', 'sil', 'M', 'M', 'AA', 'AA', 'sil', 'sil']
    """
    starts, ends, names = _check_timeline(phonemes)
    ids = np.array([_PHONEME_ID[n] for n in names], dtype=np.int64)
    return _lookup(starts, ends, ids, frame_times(fps, num_frames), _PHONEME_ID[SILENCE])


def viseme_ids(phonemes: Sequence[tuple[str, float, float]], fps: float, num_frames: int
               ) -> np.ndarray:
    """The viseme id at each frame time `i / fps`.

    Ids are positions in [VISEMES][decouple.data.synthtalk.visemes.VISEMES]. A diphthong
    shows its first viseme over the first 55 % of its time, then its second.

    Args:
        phonemes: The timeline (see [mouth_track][decouple.data.synthtalk.visemes.mouth_track]).
        fps: Frames per second.
        num_frames: Number of frames `t`.

    Returns:
        `(t,)` int64; a frame time in a gap or past the end is `sil` (0).

    Raises:
        ValueError: As [mouth_track][decouple.data.synthtalk.visemes.mouth_track].

    Examples:
        >>> ph = [("sil", 0.0, 0.1), ("AY", 0.1, 0.3), ("M", 0.3, 0.4)]
        >>> [VISEMES[i] for i in viseme_ids(ph, fps=20, num_frames=8)]
        ['sil', 'sil', 'AA', 'AA', 'AA', 'IY', 'PBM', 'PBM']
    """
    starts, ends, names = _check_timeline(phonemes)
    vis, a, b, _ = _viseme_segments(starts, ends, names)
    return _lookup(a, b, vis, frame_times(fps, num_frames), _V["sil"])


def frame_tracks(phonemes: Sequence[tuple[str, float, float]], fps: float, num_frames: int
                 ) -> dict[str, np.ndarray]:
    """All per-frame ground truth of a timeline at once.

    Args:
        phonemes: The timeline (see [mouth_track][decouple.data.synthtalk.visemes.mouth_track]).
        fps: Frames per second.
        num_frames: Number of frames `t`.

    Returns:
        `{"mouth": (t, 4) float32, "content_pos": (t,) float32, "phoneme_id": (t,) int64,
        "viseme_id": (t,) int64}` from [mouth_track][decouple.data.synthtalk.visemes.mouth_track],
        [content_positions][decouple.data.synthtalk.visemes.content_positions],
        [phoneme_ids][decouple.data.synthtalk.visemes.phoneme_ids] and
        [viseme_ids][decouple.data.synthtalk.visemes.viseme_ids].

    Raises:
        ValueError: As [mouth_track][decouple.data.synthtalk.visemes.mouth_track].

    Examples:
        >>> ph = [("sil", 0.0, 0.1), ("M", 0.1, 0.2), ("AA", 0.2, 0.4), ("sil", 0.4, 0.5)]
        >>> {k: v.shape for k, v in frame_tracks(ph, 25, 13).items()}
        {'mouth': (13, 4), 'content_pos': (13,), 'phoneme_id': (13,), 'viseme_id': (13,)}
    """
    return {
        "mouth": mouth_track(phonemes, fps, num_frames),
        "content_pos": content_positions(phonemes, fps, num_frames),
        "phoneme_id": phoneme_ids(phonemes, fps, num_frames),
        "viseme_id": viseme_ids(phonemes, fps, num_frames),
    }


# --------------------------------------------------------------------------------------------
# helpers


def _check_fps_frames(fps: float, num_frames: int) -> None:
    if isinstance(fps, bool) or not isinstance(fps, int | float | np.integer | np.floating) \
            or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer) \
            or num_frames < 1:
        raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}")


def _check_timeline(phonemes: Sequence[tuple[str, float, float]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(phonemes, str | bytes) or not isinstance(phonemes, Sequence):
        raise ValueError(
            f"phonemes must be a sequence of (name, start, end), got {type(phonemes).__name__}"
        )
    if len(phonemes) == 0:
        raise ValueError("phonemes is empty: a timeline needs at least one phoneme")
    names, starts, ends = [], [], []
    for i, item in enumerate(phonemes):
        try:
            name, start, end = item
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(
                f"phonemes[{i}] must be (name, start, end) with times in seconds, got {item!r}"
            ) from None
        if name not in _PHONEME_ID:
            raise ValueError(
                f"phonemes[{i}] has name {name!r}, not an inventory symbol ({' '.join(PHONEMES)}); "
                "map espeak names with phoneme_symbol"
            )
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise ValueError(
                f"phonemes[{i}] ({name}) has start {start} and end {end}: expected finite "
                "times with 0 <= start <= end"
            )
        if ends and start < ends[-1] - 1e-9:
            raise ValueError(
                f"phonemes[{i}] ({name}) starts at {start} before phonemes[{i - 1}] ends at "
                f"{ends[-1]}: the timeline must be sorted and not overlapping"
            )
        names.append(name)
        starts.append(start)
        ends.append(end)
    if ends[-1] <= starts[0]:
        raise ValueError("the timeline has zero duration (last end <= first start)")
    return np.array(starts), np.array(ends), np.array(names)


def _viseme_segments(starts: np.ndarray, ends: np.ndarray, names: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Viseme id, start, end and dominance weight of each viseme segment (diphthongs split)."""
    vis, a, b, w = [], [], [], []
    for s, e, n in zip(starts.tolist(), ends.tolist(), names.tolist(), strict=True):
        if e <= s:
            continue  # a zero-length phoneme shows nothing
        shapes = PHONEME_VISEMES[n]
        weight = _WEIGHT.get(n, 1.0)
        if len(shapes) == 1:
            vis.append(_V[shapes[0]])
            a.append(s)
            b.append(e)
            w.append(weight)
        else:
            m = s + _DIPHTHONG_SPLIT * (e - s)
            vis += [_V[shapes[0]], _V[shapes[1]]]
            a += [s, m]
            b += [m, e]
            w += [weight, weight]
    if not vis:
        raise ValueError("every phoneme of the timeline has zero duration: nothing to show")
    return (np.array(vis, dtype=np.int64), np.array(a), np.array(b), np.array(w))


def _lookup(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, t: np.ndarray,
            fill: int) -> np.ndarray:
    """The value of the segment containing each time (half-open [start, end)), else `fill`."""
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = idx >= 0
    idx_c = np.clip(idx, 0, len(starts) - 1)
    ok &= t < ends[idx_c]
    return np.where(ok, values[idx_c], fill).astype(np.int64)
