"""Real espeak-ng synthesis: audio, timings, determinism, prosody, and audio-visual sync.

Independent references: the header layout of `espeak_EVENT` (speak_lib.h), espeak's own
sample counter in the events, an autocorrelation f0 estimator (checked on a known tone),
the audio energy envelope for sync, and `decouple.data.align.dtw` for the time warp.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from decouple.data.align import check_path, dtw
from decouple.data.features import samples_for_frames
from decouple.data.registry import MEAD
from decouple.data.synthtalk import speech as sp
from decouple.data.synthtalk.speech import (
    EMOTION_PROSODY,
    PARAMETER_RANGES,
    SENTENCES,
    Prosody,
    Speech,
    available_variants,
    prosody,
    sentence,
    speak,
    synthesize,
)
from decouple.data.synthtalk.visemes import (
    PHONEMES,
    SILENCE,
    UNKNOWN,
    content_positions,
    frame_times,
    mouth_track,
    phoneme_symbol,
)

OPEN, LIP = 0, 3


@functools.cache
def cached(text: str, emotion: str = "neutral", intensity: int = 1, variant: str | None = "m3",
           base_pitch: float = 45.0) -> Speech:
    return speak(text, emotion, intensity, variant=variant, base_pitch=base_pitch)


def f0_autocorr(wave: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median f0 of the loud 40 ms frames, from the peak of the normalised autocorrelation."""
    n = int(0.04 * sr)
    frames = [wave[i:i + n] for i in range(0, len(wave) - n, n // 2)]
    rms = np.array([np.sqrt(np.mean(f ** 2)) for f in frames])
    lo, hi = int(sr / fmax), int(sr / fmin)
    f0s = []
    for f, r in zip(frames, rms, strict=True):
        if r < 0.3 * rms.max():
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, mode="full")[n - 1:]
        ac = ac / ac[0]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3:
            f0s.append(sr / lag)
    return float(np.median(f0s))


def energy_envelope(s: Speech, fps: float, num_frames: int, *, centred: bool = True
                    ) -> np.ndarray:
    """RMS audio energy per video frame, framed with `samples_for_frames`.

    `centred=True`: the one-frame window centred on frame i's time `i / fps`, i.e.
    `[(i - 0.5) / fps, (i + 0.5) / fps)` = half-frames `2i - 1` and `2i` of a video at
    `2 fps` (cut at 0 for frame 0), the instant the mouth track samples. `centred=False`:
    frame i's own samples `[i / fps, (i + 1) / fps)`, centred half a frame later.
    """
    w = s.waveform.numpy()
    out = np.zeros(num_frames)
    for i in range(num_frames):
        if centred:
            cut = samples_for_frames(max(2 * i - 1, 0), 2 if i else 1, 2 * fps, s.sample_rate)
        else:
            cut = samples_for_frames(i, 1, fps, s.sample_rate)
        seg = w[cut]
        out[i] = np.sqrt(np.mean(seg ** 2)) if len(seg) else 0.0
    return out


def lagged_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Pearson correlation of a[i + lag] with b[i]."""
    if lag > 0:
        a, b = a[lag:], b[:-lag]
    elif lag < 0:
        a, b = a[:lag], b[-lag:]
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------------------------
# ctypes layout and raw events


def test_event_struct_matches_the_header_layout() -> None:
    ptr = ctypes.sizeof(ctypes.c_void_p)
    e = sp._Event
    # enum + unsigned + 4 ints (4 bytes each), then a pointer, then an 8-byte union
    assert [e.type.offset, e.unique_identifier.offset, e.text_position.offset, e.length.offset,
            e.audio_position.offset, e.sample.offset] == [0, 4, 8, 12, 16, 20]
    assert e.user_data.offset == 24  # 24 is a multiple of 4 and 8: no padding either way
    assert e.id.offset == 24 + ptr
    assert ctypes.sizeof(sp._EventId) == max(8, ptr)
    assert ctypes.sizeof(e) == 24 + ptr + max(8, ptr)
    if ptr == 8:
        assert ctypes.sizeof(e) == 40


def test_raw_events_are_consistent() -> None:
    text = "The birch canoe slid on the smooth planks."
    pcm, sr, events = sp._synthesize_raw(text, "en-us", Prosody(50, 50, 175, 100))
    assert sr == 22050 and pcm.dtype == np.int16 and len(pcm) > sr
    phon = [e for e in events if e.type == 7]
    words = [e for e in events if e.type == 1]
    assert len(phon) > 25 and len(words) == 7  # espeak times "on the" as one word
    # espeak's sample counter (the next field) agrees with audio_position (ms): the fields
    # are read at the right offsets
    for e in phon:
        assert abs(e.sample * 1000 / sr - e.audio_position) <= 1.5, e
    pos = [e.audio_position for e in phon]
    assert pos == sorted(pos) and pos[-1] <= 1000 * len(pcm) / sr + 1
    # words: text positions (1-based) and lengths cut the text into its words
    cut = [text[e.text_position - 1:e.text_position - 1 + e.length] for e in words]
    assert cut == ["The", "birch", "canoe", "slid", "on", "smooth", "planks"]
    s = synthesize(text)
    assert [w.text for w in s.words] == ["The", "birch", "canoe", "slid", "on the", "smooth",
                                         "planks"]
    assert all(0 < len(e.name.encode()) <= 8 for e in phon)


# --------------------------------------------------------------------------------------------
# audio and timeline


@pytest.mark.parametrize("sid", ["001", "014", "025"])
def test_synthesis_gives_speech_covering_its_timeline(sid: str) -> None:
    s = cached(sentence(sid).text)
    w = s.waveform
    assert s.sample_rate == 16000 and w.dtype == torch.float32 and w.ndim == 1
    assert float(w.abs().max()) <= 1.0
    assert float(w.pow(2).mean().sqrt()) > 0.02  # not silent
    assert 0.8 < s.duration < 4.0
    # 16 kHz resampling of espeak's 22,050 Hz samples: same duration to within a sample
    pcm, sr, _ = sp._synthesize_raw(s.text, s.voice, s.prosody)
    assert abs(s.duration - len(pcm) / sr) < 1 / 16000 + 1e-12
    # the timeline: contiguous from 0 to the end of the audio, no zero-length phoneme
    ph = s.phonemes
    assert ph[0].start == 0.0 and ph[-1].end == s.duration
    assert all(a.end == b.start for a, b in itertools.pairwise(ph))
    assert all(p.end > p.start for p in ph)
    assert all(p.name in PHONEMES for p in ph)
    assert all(not (a.name == b.name == SILENCE) for a, b in itertools.pairwise(ph))
    assert len(s.espeak_names) == len(ph)
    assert s.unknown_names == ()
    # words, in order, within the timeline, spelled as in the text
    assert " ".join(w.text for w in s.words) == s.text.rstrip(".")
    assert all(0 <= a.start < a.end <= s.duration for a in s.words)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(s.words))


def test_speech_is_where_the_timeline_says() -> None:
    s = cached(sentence("010").text)
    w = s.waveform.numpy()
    loud = lambda a, b: float(np.sqrt(np.mean(w[int(a * 16000):int(b * 16000)] ** 2)))  # noqa: E731
    vowels = [p for p in s.phonemes if p.name in ("AA", "AO", "OW", "UW", "AE", "EH")]
    closures = [p for p in s.phonemes if p.name in ("P", "T", "K")]
    assert vowels and closures
    v = np.median([loud(p.start + 0.25 * (p.end - p.start), p.end - 0.25 * (p.end - p.start))
                   for p in vowels])
    c = np.median([loud(p.start, p.start + 0.6 * (p.end - p.start)) for p in closures])
    assert c < 0.25 * v  # a stop starts with its (silent) closure, vowels are loud


def test_timing_json_round_trips_into_the_viseme_functions() -> None:
    s = cached(sentence("024").text)
    j = s.timing_json()
    assert j["num_samples"] == s.num_samples and j["voice"] == "en-us+m3"
    assert j["prosody"] == s.prosody.to_dict()
    ph = [tuple(p) for p in j["phonemes"]]
    n = s.num_frames(25)
    np.testing.assert_array_equal(mouth_track(ph, 25, n), mouth_track(s.phonemes, 25, n))
    assert n == math.ceil(s.duration * 25)


def test_unknown_names_fall_back_and_are_counted() -> None:
    # a made-up name at the engine level: the timeline keeps it as UNK, nothing crashes
    events = [sp._RawEvent(1, 0, 0, 1, 2, ""), sp._RawEvent(7, 0, 0, 1, 0, "zz9"),
              sp._RawEvent(7, 50, 1102, 1, 0, "'a"), sp._RawEvent(7, 90, 1984, 1, 0, "_")]
    pcm = (np.sin(np.arange(2205) * 0.3) * 8000).astype(np.int16)
    s = sp._build_speech("ha", "en-us", Prosody(50, 50, 175, 100), pcm, 22050, events, 16000)
    assert [p.name for p in s.phonemes] == [UNKNOWN, "AE", SILENCE]
    assert s.unknown_names == ("zz9",)
    assert s.words[0].text == "ha"


# --------------------------------------------------------------------------------------------
# determinism


def test_same_inputs_give_identical_samples_whatever_came_before() -> None:
    text = sentence("004").text
    a = synthesize(text, variant="f3", pitch=60)
    synthesize("Something else, entirely different?", variant="m7", rate=300)
    speak(sentence("030").text, "angry", 3)
    b = synthesize(text, variant="f3", pitch=60)
    assert torch.equal(a.waveform, b.waveform)
    assert a.phonemes == b.phonemes and a.words == b.words
    c = synthesize(text, variant="m3", pitch=60)
    assert c.num_samples != a.num_samples or not torch.equal(a.waveform, c.waveform)


def test_noise_does_not_depend_on_the_clock() -> None:
    # espeak seeds its breath noise (variant f3) from time(NULL), in seconds: synthesise on
    # both sides of a second boundary
    text, settings = sentence("004").text, Prosody(50, 50, 175, 100)
    a, _, _ = sp._synthesize_raw(text, "en-us+f3", settings)
    time.sleep(1.0 - time.time() % 1.0 + 0.05)
    b, _, _ = sp._synthesize_raw(text, "en-us+f3", settings)
    assert np.array_equal(a, b)


def test_same_samples_in_another_process() -> None:
    text = sentence("012").text
    code = (
        "import hashlib, sys\n"
        "from decouple.data.synthtalk.speech import synthesize\n"
        f"s = synthesize({text!r}, variant='f5', pitch=55, rate=190)\n"
        "sys.stdout.write(hashlib.sha256(s.waveform.numpy().tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    s = synthesize(text, variant="f5", pitch=55, rate=190)
    assert out.stdout == hashlib.sha256(s.waveform.numpy().tobytes()).hexdigest()


def test_threads_share_the_engine_safely() -> None:
    texts = [s.text for s in SENTENCES[:6]]
    want = [synthesize(t).waveform for t in texts]
    got: dict[int, torch.Tensor] = {}

    def run(i: int) -> None:
        got[i] = synthesize(texts[i]).waveform

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[i], want[i]) for i in range(len(texts)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_synthesises_the_same_samples() -> None:
    text = sentence("007").text
    settings = Prosody(50, 50, 175, 100)
    pcm, _, _ = sp._synthesize_raw(text, "en-us+m3", settings)  # the parent has its copy
    parent_copy = sp._STATE["library"]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no torch here (its thread pool is not fork-safe), only the engine
        code = 1
        try:
            child_pcm, _, _ = sp._synthesize_raw(text, "en-us+m3", settings)
            msg = hashlib.sha256(child_pcm.tobytes()).hexdigest() + " " + str(sp._STATE["pid"])
            os.write(w, msg.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    digest, child_pid = data.decode().split()
    assert digest == hashlib.sha256(pcm.tobytes()).hexdigest()
    assert int(child_pid) == pid != os.getpid()  # the child made (and used) its own copy
    assert sp._STATE["library"] == parent_copy


# --------------------------------------------------------------------------------------------
# prosody


def test_rate_changes_duration() -> None:
    text = sentence("020").text
    d = {r: synthesize(text, rate=r).duration for r in (100, 175, 300)}
    assert d[100] > 1.4 * d[175] and d[175] > 1.3 * d[300]


def test_f0_estimator_on_a_known_tone() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    wave = sum(np.sin(2 * np.pi * 137.0 * k * t) / k for k in (1, 2, 3))
    assert f0_autocorr(wave, sr) == pytest.approx(137.0, rel=0.02)


def test_pitch_changes_fundamental_frequency() -> None:
    text = sentence("013").text  # "Her voice was soft and calm.": mostly voiced
    f = {p: f0_autocorr(synthesize(text, pitch=p).waveform.numpy(), 16000) for p in (20, 50, 80)}
    assert f[20] < f[50] < f[80]
    assert f[80] / f[20] > 1.4  # espeak: 50 pitch units are about an octave
    assert 60 < f[20] and f[80] < 400


@pytest.mark.parametrize("sid", ["003", "009", "016", "033"])
def test_sad_is_slower_than_angry(sid: str) -> None:
    text = sentence(sid).text
    sad, angry, neutral = cached(text, "sad", 3), cached(text, "angry", 3), cached(text)
    assert sad.duration > neutral.duration > angry.duration
    assert sad.duration > 1.3 * angry.duration
    # angry is louder than sad
    rms = lambda s: float(s.waveform.pow(2).mean().sqrt())  # noqa: E731
    assert rms(angry) > 1.5 * rms(sad)


def test_prosody_table_known_answers() -> None:
    assert prosody("neutral", 1, 40.0) == Prosody(40.0, 50.0, 175.0, 100.0)
    # sad at level 3: pitch 40 - 12, range 50 - 28, rate 175 * 0.72, volume 100 - 35
    assert prosody("sad", 3, 40.0) == Prosody(28.0, 22.0, 126.0, 65.0)
    # level 1 is half the offset: angry pitch 40 + 3, range 65, rate 175 * 1.09, volume 122.5
    p = prosody("angry", 1, 40.0)
    assert (p.pitch, p.pitch_range, p.volume) == (43.0, 65.0, 122.5)
    assert p.rate == pytest.approx(175 * 1.09)
    assert prosody("surprised", 3, 95.0).pitch == 100.0  # clipped to espeak's range
    assert prosody("Anger", 2) == prosody("angry", 2)  # registry aliases


def test_prosody_grows_with_intensity_for_every_emotion() -> None:
    neutral = prosody("neutral", 1, 50.0)
    assert set(EMOTION_PROSODY) == set(MEAD.names)
    for emo in MEAD.names:
        if emo == "neutral":
            continue
        offsets = []
        for level in (1, 2, 3):
            p = prosody(emo, level, 50.0)
            for key, (lo, hi) in PARAMETER_RANGES.items():
                assert lo <= getattr(p, key) <= hi
            offsets.append(np.array([p.pitch - neutral.pitch, p.pitch_range - neutral.pitch_range,
                                     p.rate - neutral.rate, p.volume - neutral.volume]))
        assert np.all(np.abs(offsets[0]) <= np.abs(offsets[1]))
        assert np.all(np.abs(offsets[1]) <= np.abs(offsets[2]))
        assert np.abs(offsets[2]).sum() > 0


# --------------------------------------------------------------------------------------------
# visemes on real speech


@pytest.mark.parametrize("fps", [25, 30])
def test_bilabials_close_the_lips_on_real_speech(fps: int) -> None:
    s = cached(sentence("021").text)  # "Bring a map and some water."
    n = s.num_frames(fps)
    m = mouth_track(s.phonemes, fps, n)
    t = frame_times(fps, n)
    bil = [p for p in s.phonemes if p.name in ("M", "P", "B")]
    assert len(bil) >= 4
    for p in bil:
        i = int(np.argmin(np.abs(t - (p.start + p.end) / 2)))
        assert m[i, OPEN] < 0.1 and m[i, LIP] < -0.8, (p, m[i])
    aa = [p for p in s.phonemes if p.name in ("AE", "AA", "AO")]
    # an open vowel opens the mouth more than half way at some frame inside it
    assert max(m[(t >= p.start) & (t < p.end), OPEN].max(initial=0.0) for p in aa) > 0.5


def test_content_positions_on_real_speech() -> None:
    s = cached(sentence("005").text)
    n = s.num_frames(30) + 3
    cp = content_positions(s.phonemes, 30, n)
    n_speech = sum(p.name != SILENCE for p in s.phonemes)
    assert s.phonemes[0].name != SILENCE  # "My ..." starts at once: frames 0, 1 are in the m
    m = s.phonemes[0]
    assert m.end > 1 / 30
    for i in (0, 1):  # frame i at its time i / fps
        assert cp[i] == pytest.approx((i / 30 - m.start) / (m.end - m.start), abs=1e-6)
    assert cp[-1] == n_speech and (np.diff(cp) >= 0).all()


def test_emotions_differ_only_by_timing() -> None:
    for sid in ("003", "009", "016", "033"):
        text = sentence(sid).text
        a, b = cached(text, "sad", 3, "f3"), cached(text, "angry", 3, "f3")
        # same phonemes (pauses aside) in both renditions
        seq = lambda s: [p.name for p in s.phonemes if p.name != SILENCE]  # noqa: E731
        assert seq(a) == seq(b)
        na, nb = a.num_frames(25), b.num_frames(25)
        ma, mb = mouth_track(a.phonemes, 25, na), mouth_track(b.phonemes, 25, nb)
        path = dtw(torch.from_numpy(ma), torch.from_numpy(mb), metric="euclidean").numpy()
        check_path(path, na, nb)  # a monotone warp from start to end
        # aligned frames look alike, far more than frames paired at random
        aligned = np.linalg.norm(ma[path[:, 0]] - mb[path[:, 1]], axis=1).mean()
        rng = np.random.default_rng(0)
        shuffled = np.linalg.norm(ma[rng.integers(0, na, 500)] - mb[rng.integers(0, nb, 500)],
                                  axis=1).mean()
        assert aligned < 0.25 * shuffled
        # and they say the same thing: content positions agree along the path
        ca, cb = content_positions(a.phonemes, 25, na), content_positions(b.phonemes, 25, nb)
        err = np.abs(ca[path[:, 0]] - cb[path[:, 1]])
        assert err.mean() < 0.35, (sid, err.mean())


@pytest.mark.parametrize("fps", [25, 30])
def test_mouth_opening_is_in_sync_with_the_audio_energy(fps: int) -> None:
    """Mouth opening at frame i (time i / fps) against the audio energy around i / fps.

    Measured (8 sentences, m3 voice), lags -2..2 (mouth frame i + lag vs energy frame i):
    25 fps -0.13, 0.17, 0.44, 0.42, 0.14; 30 fps -0.04, 0.23, 0.42, 0.42, 0.23. Against each
    frame's own samples `[i / fps, (i + 1) / fps)` (centred half a frame later) the peak is at
    lag +1: 25 fps 0.33 at 0, 0.47 at 1; 30 fps 0.35 at 0, 0.46 at 1.
    """
    opens, energies, own = [], [], []
    for sid in ("001", "002", "005", "010", "021", "026", "035", "040"):
        s = cached(sentence(sid).text)
        n = s.num_frames(fps)
        opens.append(mouth_track(s.phonemes, fps, n)[:, OPEN])
        energies.append(energy_envelope(s, fps, n))
        own.append(energy_envelope(s, fps, n, centred=False))
    o, e, e_own = np.concatenate(opens), np.concatenate(energies), np.concatenate(own)
    c = {lag: lagged_corr(o, e, lag) for lag in (-5, -2, -1, 0, 1, 2, 5)}
    assert c[0] > 0.3
    assert c[0] > c[5] + 0.2 and c[0] > c[-5] + 0.2
    # lag 0 is the peak (within 0.01: the track trails the audio by ~15 ms, half a frame at
    # 30 fps, so lag +1 ties there), the mouth does not lead, and two frames off is far worse
    assert c[0] >= max(c.values()) - 0.01
    assert c[0] > c[-1] + 0.1 and c[0] > c[2] + 0.15 and c[0] > c[-2] + 0.15
    # the frame's own samples come after its time: against them the mouth trails by a frame
    assert lagged_corr(o, e_own, 1) > lagged_corr(o, e_own, 0) + 0.05


# --------------------------------------------------------------------------------------------
# sentences and bad input


def test_sentences() -> None:
    assert len(SENTENCES) == 40
    assert [s.id for s in SENTENCES] == [f"{i:03d}" for i in range(1, 41)]
    assert len({s.text for s in SENTENCES}) == 40
    assert all(3 <= len(s.text.split()) <= 8 for s in SENTENCES)
    with pytest.raises(KeyError, match="unknown sentence id '041'"):
        sentence("041")


def test_sentences_cover_the_inventory() -> None:
    seen = set()
    for s in SENTENCES:
        _, _, events = sp._synthesize_raw(s.text, "en-us", Prosody(50, 50, 175, 100))
        names = [e.name for e in events if e.type == 7]
        seen |= {phoneme_symbol(n) for n in names}
        assert UNKNOWN not in {phoneme_symbol(n) for n in names}, (s, names)
    # every phoneme but the glottal stop (only in words like "button") and the fallback
    assert set(PHONEMES) - seen == {"Q", UNKNOWN}


@pytest.mark.parametrize(("args", "match"), [
    (("calm", 1), "unknown emotion 'calm'"),
    (("furious", 1), "unknown emotion 'furious'"),
    ((3, 1), "unknown emotion 3"),
    (("neutral", 2), "neutral has level 1 only"),
    (("sad", 0), "intensity must be the int 1, 2 or 3"),
    (("sad", 4), "intensity must be the int 1, 2 or 3"),
    (("sad", True), "intensity must be the int 1, 2 or 3"),
    (("sad", 2.0), "intensity must be the int 1, 2 or 3"),
])
def test_prosody_errors(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prosody(*args)


def test_prosody_base_errors() -> None:
    with pytest.raises(ValueError, match=r"base_pitch must be a number in \[0, 100\]"):
        prosody("sad", 1, 120.0)
    with pytest.raises(ValueError, match=r"base_rate must be a number in \[80, 450\]"):
        prosody("sad", 1, 50.0, base_rate=20.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"text": ""}, "text is empty"),
    ({"text": " \n\t "}, "text is empty"),
    ({"text": "... !?"}, "no letter or digit"),
    ({"text": "a\x00b"}, "NUL"),
    ({"text": None}, "text must be a str"),
    ({"text": "Hello.", "variant": "nonexistent"}, "unknown voice variant 'nonexistent'"),
    ({"text": "Hello.", "variant": "../f3"}, "variant must be a variant name"),
    ({"text": "Hello.", "voice": "xx-nope"}, "espeak-ng has no voice 'xx-nope'"),
    ({"text": "Hello.", "voice": "en us"}, "voice must be an espeak voice name"),
    ({"text": "Hello.", "pitch": 101}, r"pitch must be a number in \[0, 100\]"),
    ({"text": "Hello.", "pitch_range": -1}, r"pitch_range must be a number in \[0, 100\]"),
    ({"text": "Hello.", "rate": 50}, r"rate must be a number in \[80, 450\]"),
    ({"text": "Hello.", "volume": float("nan")}, r"volume must be a number in \[0, 200\]"),
    ({"text": "Hello.", "sample_rate": 0}, "sample_rate must be a positive int"),
])
def test_synthesize_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthesize(**kwargs)


def test_speak_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown emotion 'calm'"):
        speak("Hello.", "calm")
    with pytest.raises(ValueError, match="text is empty"):
        speak("", "sad", 2)


def test_variants_exist() -> None:
    v = available_variants()
    assert {f"m{i}" for i in range(1, 8)} | {f"f{i}" for i in range(1, 6)} <= set(v)
    assert synthesize("Hello.", variant="f5").voice == "en-us+f5"


def test_missing_espeak_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'decouple\[speech\]'.*GPL-3.0"):
        sp._loader()
    with pytest.raises(ImportError, match=r"GPL-3\.0"):
        available_variants()
