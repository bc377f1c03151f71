"""Phoneme and viseme tables, the coarticulated mouth track and the per-frame ground truth.

References are independent: hand-computed known answers, a naive per-frame loop of the
dominance model, and sampling identities (a track at 75 fps contains the 25 fps track).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from decouple.data.features import samples_for_frames
from decouple.data.synthtalk.visemes import (
    DOMINANCE,
    DOMINANCE_WIDTH,
    ESPEAK_PHONEMES,
    MOUTH_PARAMS,
    MOUTH_RANGES,
    PHONEME_VISEMES,
    PHONEMES,
    SILENCE,
    UNKNOWN,
    VISEME_TARGETS,
    VISEMES,
    Phoneme,
    content_positions,
    frame_times,
    frame_tracks,
    mouth_track,
    phoneme_id,
    phoneme_ids,
    phoneme_symbol,
    viseme_ids,
)

OPEN, WIDTH, ROUND, LIP = range(4)
LO = np.array([MOUTH_RANGES[p][0] for p in MOUTH_PARAMS])
HI = np.array([MOUTH_RANGES[p][1] for p in MOUTH_PARAMS])


def timeline(*items: tuple[str, float]) -> list[Phoneme]:
    """Contiguous timeline from (symbol, duration in seconds) pairs, starting at 0."""
    out, t = [], 0.0
    for name, d in items:
        out.append(Phoneme(name, t, t + d))
        t += d
    return out


def centre_frame(p: Phoneme, fps: float) -> int:
    """The frame whose time `i / fps` is nearest the phoneme's centre."""
    return round((p.start + p.end) / 2 * fps)


def naive_track(phonemes: list[Phoneme], t: float) -> np.ndarray:
    """The dominance model of the module docstring, one instant, plain Python loops."""
    v = {name: i for i, name in enumerate(VISEMES)}
    weight = {"HH": 0.15, "Q": 0.3, UNKNOWN: 0.5}
    t = min(max(t, phonemes[0].start), phonemes[-1].end)
    segments = []
    for p in phonemes:
        shapes = PHONEME_VISEMES[p.name]
        if len(shapes) == 1:
            segments.append((shapes[0], p.start, p.end, weight.get(p.name, 1.0)))
        else:
            m = p.start + 0.55 * (p.end - p.start)
            segments.append((shapes[0], p.start, m, weight.get(p.name, 1.0)))
            segments.append((shapes[1], m, p.end, weight.get(p.name, 1.0)))
    out = np.zeros(4)
    for k in range(4):
        num = 1e-3 * VISEME_TARGETS[v["sil"], k]
        den = 1e-3
        for shape, a, b, w in segments:
            d = max(0.0, a - t, t - b)
            dom = DOMINANCE[v[shape], k] * w * math.exp(-((d / DOMINANCE_WIDTH[v[shape]]) ** 2))
            num += dom * VISEME_TARGETS[v[shape], k]
            den += dom
        out[k] = num / den
    return out


def random_timeline(rng: np.random.Generator, n: int) -> list[Phoneme]:
    names = [SILENCE, *rng.choice(np.array(PHONEMES), size=n).tolist(), SILENCE]
    durations = rng.uniform(0.02, 0.2, size=len(names))
    return timeline(*zip(names, durations.tolist(), strict=True))


# --------------------------------------------------------------------------------------------
# tables


def test_tables_are_consistent() -> None:
    assert PHONEMES[0] == SILENCE and PHONEMES[-1] == UNKNOWN
    assert len(set(PHONEMES)) == len(PHONEMES) == 42
    assert set(PHONEME_VISEMES) == set(PHONEMES)
    assert all(1 <= len(v) <= 2 and set(v) <= set(VISEMES) for v in PHONEME_VISEMES.values())
    assert set(ESPEAK_PHONEMES.values()) <= set(PHONEMES)
    assert VISEME_TARGETS.shape == DOMINANCE.shape == (len(VISEMES), 4)
    assert DOMINANCE_WIDTH.shape == (len(VISEMES),)
    assert (VISEME_TARGETS >= LO).all() and (VISEME_TARGETS <= HI).all()
    assert (DOMINANCE > 0).all() and (DOMINANCE_WIDTH > 0).all()
    assert not VISEME_TARGETS.flags.writeable
    # every inventory phoneme except the fallback is reachable from some espeak name
    assert set(ESPEAK_PHONEMES.values()) == set(PHONEMES) - {UNKNOWN}
    # diphthongs move between two shapes
    assert PHONEME_VISEMES["AY"] == ("AA", "IY") and PHONEME_VISEMES["OW"] == ("AO", "UW")


@pytest.mark.parametrize(("name", "symbol"), [
    ("'aI", "AY"), (",oU", "OW"), ("D", "DH"), ("T", "TH"), ("d", "D"), ("t#", "T"),
    ("@2", "AH"), ("@L", "L"), ("n-", "N"), ("N", "NG"), ("tS", "CH"), ("dZ", "JH"),
    ("Z", "ZH"), ("S", "SH"), (";", "Y"), ("j", "Y"), ("'3:", "ER"), ("_", SILENCE),
    ("_:", SILENCE), ("_!", SILENCE), ("_anything", SILENCE), ("'O@", "AO"), ("?", "Q"),
    ("@5", "AH"), ("@-", "AH"), ("IR", "ER"), ("o:", "OW"), ("z/2", "Z"), ("u:7", "UW"),
    ("qq", UNKNOWN), ("", UNKNOWN), ("'", UNKNOWN),
])
def test_phoneme_symbol(name: str, symbol: str) -> None:
    assert phoneme_symbol(name) == symbol


def test_phoneme_id_and_errors() -> None:
    assert [phoneme_id(p) for p in PHONEMES] == list(range(len(PHONEMES)))
    with pytest.raises(KeyError, match="unknown phoneme symbol 'aI'"):
        phoneme_id("aI")
    with pytest.raises(TypeError, match="must be a str"):
        phoneme_symbol(3)  # type: ignore[arg-type]


def test_frame_times() -> None:
    # frame i at its presentation time i / fps (decouple.data.features' convention)
    assert np.allclose(frame_times(25, 4), [0.0, 0.04, 0.08, 0.12])
    assert np.allclose(frame_times(30.0, 2), [0.0, 1 / 30])
    # the instant where frame i's own samples start (samples_for_frames, halves round up)
    for fps in (25, 29.97, 30):
        starts = [samples_for_frames(i, 1, fps, 16000).start for i in range(50)]
        np.testing.assert_array_equal(np.floor(frame_times(fps, 50) * 16000 + 0.5), starts)


# --------------------------------------------------------------------------------------------
# mouth track


@pytest.mark.parametrize("fps", [25, 30])
def test_bilabials_close_and_vowels_open(fps: int) -> None:
    ph = timeline(("sil", 0.2), ("M", 0.07), ("AA", 0.16), ("P", 0.06), ("IY", 0.14),
                  ("B", 0.06), ("AO", 0.16), ("F", 0.08), ("AE", 0.15), ("sil", 0.2))
    n = math.ceil(ph[-1].end * fps)
    m = mouth_track(ph, fps, n)
    assert m.shape == (n, 4) and m.dtype == np.float32
    for p in ph:
        c = centre_frame(p, fps)
        if p.name in ("M", "P", "B"):
            assert m[c, OPEN] < 0.06, (p, m[c])
            assert m[c, LIP] < -0.9, (p, m[c])
        if p.name == "F":
            assert m[c, LIP] > 0.8 and m[c, OPEN] < 0.2, (p, m[c])
        if p.name == "AA":
            assert m[c, OPEN] > 0.7, (p, m[c])
        if p.name in ("AO", "AE"):
            assert m[c, OPEN] > 0.45, (p, m[c])
        if p.name == "IY":
            assert m[c, WIDTH] > 0.4, (p, m[c])
        if p.name == "AO":
            assert m[c, ROUND] > 0.5, (p, m[c])
    assert m[0, OPEN] < 0.05 and abs(m[0, LIP]) < 0.05  # leading silence: at rest


def test_short_bilabial_between_frame_times_still_closes() -> None:
    # a 38 ms p (as espeak makes before l) whose centre falls between two 25 fps frame times
    ph = timeline(("sil", 0.1), ("AA", 0.141), ("P", 0.038), ("L", 0.06), ("AE", 0.15),
                  ("sil", 0.1))
    m = mouth_track(ph, 25, 15)
    p = ph[2]
    nearest = np.argmin(np.abs(frame_times(25, 15) - (p.start + p.end) / 2))
    assert m[nearest, OPEN] < 0.1 and m[nearest, LIP] < -0.8


def test_anticipatory_rounding() -> None:
    # the b of "boo" is rounded, the b of "bee" is spread: rounding comes from the neighbour
    boo = mouth_track(timeline(("sil", 0.1), ("B", 0.07), ("UW", 0.2), ("sil", 0.1)), 100, 47)
    bee = mouth_track(timeline(("sil", 0.1), ("B", 0.07), ("IY", 0.2), ("sil", 0.1)), 100, 47)
    i = 13  # frame time 0.13 s, inside the b (0.1 .. 0.17)
    assert boo[i, OPEN] < 0.05 and bee[i, OPEN] < 0.05
    assert boo[i, ROUND] > 0.4 > bee[i, ROUND]
    assert bee[i, WIDTH] > 0.1 > 0.0 > boo[i, WIDTH]


def test_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        ph = random_timeline(rng, 12)
        fps = float(rng.choice([25.0, 30.0]))
        n = math.ceil(ph[-1].end * fps) + 3  # some frames past the end
        m = mouth_track(ph, fps, n)
        ref = np.stack([naive_track(ph, t) for t in frame_times(fps, n)])
        np.testing.assert_allclose(m, ref, atol=1e-6)


def test_within_documented_ranges() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        ph = random_timeline(rng, 25)
        m = mouth_track(ph, 30, math.ceil(ph[-1].end * 30))
        assert np.isfinite(m).all()
        assert (m >= LO).all() and (m <= HI).all()


def test_one_function_of_time_at_any_frame_rate() -> None:
    # frame i at 25 fps is at the same time i / 25 as frame 3i at 75 fps
    ph = random_timeline(np.random.default_rng(2), 10)
    n = math.ceil(ph[-1].end * 25)
    m25 = mouth_track(ph, 25, n)
    m75 = mouth_track(ph, 75, 3 * n)
    np.testing.assert_allclose(m75[::3], m25, atol=1e-6)
    np.testing.assert_array_equal(viseme_ids(ph, 75, 3 * n)[::3], viseme_ids(ph, 25, n))
    np.testing.assert_array_equal(phoneme_ids(ph, 75, 3 * n)[::3], phoneme_ids(ph, 25, n))
    np.testing.assert_allclose(content_positions(ph, 75, 3 * n)[::3],
                               content_positions(ph, 25, n), atol=1e-6)


def test_gaps_are_at_rest_and_frames_past_the_end_hold() -> None:
    ph = [Phoneme("AA", 0.0, 0.1), Phoneme("AA", 2.0, 2.1)]
    m = mouth_track(ph, 10, 25)
    assert m[10, OPEN] < 0.05  # 1.05 s, far from both vowels
    assert np.allclose(m[21:], m[21])  # past the end: the last instant's value


# --------------------------------------------------------------------------------------------
# per-frame ground truth


def test_content_positions_known_answer() -> None:
    ph = timeline(("sil", 0.1), ("HH", 0.1), ("AY", 0.2), ("sil", 0.1), ("M", 0.1),
                  ("sil", 0.1))
    got = content_positions(ph, 20, 16)
    # frame times 0, 0.05, 0.1, ...; speech phonemes HH [0.1, 0.2), AY [0.2, 0.4), M [0.5, 0.6)
    want = [0, 0, 0, 0.5, 1, 1.25, 1.5, 1.75, 2, 2, 2, 2.5, 3, 3, 3, 3]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_content_positions_monotone_from_zero_to_n() -> None:
    rng = np.random.default_rng(3)
    for fps in (25, 30):
        ph = random_timeline(rng, 20)
        n_speech = sum(p.name != SILENCE for p in ph)
        t = math.ceil(ph[-1].end * fps) + 2
        cp = content_positions(ph, fps, t)
        assert cp.dtype == np.float32 and cp.shape == (t,)
        assert (np.diff(cp) >= 0).all()
        assert cp[0] == 0 and cp[-1] == n_speech
        # naive reference: count finished speech phonemes plus the fraction of the current one
        for i, tc in enumerate(frame_times(fps, t)):
            pos, k = 0.0, 0
            for p in ph:
                if p.name == SILENCE:
                    continue
                if tc >= p.end:
                    pos = k + 1
                elif tc >= p.start:
                    pos = k + (tc - p.start) / (p.end - p.start)
                k += 1
            assert cp[i] == pytest.approx(pos, abs=1e-5)


def test_phoneme_and_viseme_ids() -> None:
    ph = timeline(("sil", 0.1), ("M", 0.1), ("AY", 0.2), ("sil", 0.1))
    pid = phoneme_ids(ph, 20, 12)
    vid = viseme_ids(ph, 20, 12)
    assert pid.dtype == vid.dtype == np.int64
    assert [PHONEMES[i] for i in pid] == ["sil"] * 2 + ["M"] * 2 + ["AY"] * 4 + ["sil"] * 4
    # frame times 0, 0.05, ...; AY: AA over its first 55 % (0.2 .. 0.31: 0.2, 0.25, 0.3), IY after
    assert [VISEMES[i] for i in vid] == (["sil"] * 2 + ["PBM"] * 2 + ["AA"] * 3 + ["IY"] * 1
                                         + ["sil"] * 4)


def test_frame_tracks_bundles_the_tracks() -> None:
    ph = random_timeline(np.random.default_rng(4), 8)
    n = math.ceil(ph[-1].end * 30)
    got = frame_tracks(ph, 30, n)
    np.testing.assert_array_equal(got["mouth"], mouth_track(ph, 30, n))
    np.testing.assert_array_equal(got["content_pos"], content_positions(ph, 30, n))
    np.testing.assert_array_equal(got["phoneme_id"], phoneme_ids(ph, 30, n))
    np.testing.assert_array_equal(got["viseme_id"], viseme_ids(ph, 30, n))


def test_time_warped_timelines_give_warped_tracks() -> None:
    # the same phonemes with other durations: equal content position <=> equal mouth target;
    # at each phoneme's centre the dominant shape is the same in both renditions
    names = ["sil", "M", "AA", "P", "IY", "S", "UW", "sil"]
    slow = timeline(*zip(names, [0.2, 0.09, 0.22, 0.09, 0.2, 0.12, 0.25, 0.2], strict=True))
    fast = timeline(*zip(names, [0.1, 0.06, 0.12, 0.05, 0.11, 0.08, 0.13, 0.1], strict=True))
    for a, b in zip(slow[1:-1], fast[1:-1], strict=True):
        ma = mouth_track(slow, 1000, math.ceil(slow[-1].end * 1000))[centre_frame(a, 1000)]
        mb = mouth_track(fast, 1000, math.ceil(fast[-1].end * 1000))[centre_frame(b, 1000)]
        assert np.abs(ma - mb).max() < 0.2, (a.name, ma, mb)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(("phonemes", "match"), [
    ([], "empty"),
    ("sil", "sequence of"),
    ([("XX", 0.0, 0.1)], "not an inventory symbol"),
    ([("aI", 0.0, 0.1)], "map espeak names with phoneme_symbol"),
    ([("AA", 0.0, 0.1), ("M", 0.05, 0.2)], "before phonemes\\[0\\] ends"),
    ([("AA", 0.2, 0.1)], "0 <= start <= end"),
    ([("AA", -0.1, 0.1)], "0 <= start <= end"),
    ([("AA", 0.0, float("nan"))], "finite"),
    ([("AA", 0.0)], "must be \\(name, start, end\\)"),
    ([("AA", 0.1, 0.1)], "zero duration"),
])
def test_bad_timelines(phonemes: object, match: str) -> None:
    for fn in (mouth_track, content_positions, phoneme_ids, viseme_ids):
        with pytest.raises(ValueError, match=match):
            fn(phonemes, 25, 10)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fps", "n", "match"), [
    (0, 10, "fps"), (-25, 10, "fps"), (float("inf"), 10, "fps"), (True, 10, "fps"),
    (25, 0, "num_frames"), (25, 2.5, "num_frames"), (25, True, "num_frames"),
])
def test_bad_fps_or_frames(fps: float, n: int, match: str) -> None:
    ph = [("AA", 0.0, 0.1)]
    for fn in (mouth_track, content_positions, phoneme_ids, viseme_ids):
        with pytest.raises(ValueError, match=match):
            fn(ph, fps, n)
