"""Tiny fake MEAD, RAVDESS and CREMA-D trees with real encoded media, for the converter tests.

Every file is written with PyAV (through `decouple.data.io`): H.264 mp4 with an AAC track
(or without audio where a quirk needs it), AAC `.m4a`, PCM `.wav`. Clips are 32x32 pixels at
30 fps and about half a second long, so a whole tree converts in a second or two.

The "speech" of a clip is three tones (330, 880 and 1760 Hz) one after the other; an emotion
stretches the three segments differently (`WARP`), so two renditions of a sentence are the
same sounds at different timings, and the DTW path between them is known:
`warp_time` maps a time in one rendition to the other.

The trees carry the quirks the converters must handle; each `make_*` docstring lists them and
the expected outcome, which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from decouple.data.io import write_audio, write_av, write_video

SRC_FPS = 30
SRC_RATE = 48000
SIZE = 32
SEGMENT = 0.18  # seconds per tone segment in a neutral rendition
FREQS = (330.0, 880.0, 1760.0)
WARP = {
    "neutral": (1.0, 1.0, 1.0),
    "angry": (0.6, 1.4, 0.6),
    "happy": (1.3, 0.8, 1.0),
    "sad": (1.0, 1.2, 1.4),
    "contempt": (1.0, 1.0, 0.8),
    "calm": (1.2, 1.0, 1.0),
    "fear": (0.8, 0.8, 1.0),
    "disgusted": (1.0, 0.7, 1.2),
    "surprised": (0.7, 1.0, 1.0),
}

FaceDrawer = Callable[[int, int, float, float, float], np.ndarray]


def durations(emotion: str) -> tuple[float, float, float]:
    """Seconds of the three tone segments of a rendition in `emotion`."""
    return tuple(SEGMENT * w for w in WARP[emotion])  # type: ignore[return-value]


def warp_time(t: float, src: str, dst: str) -> float:
    """The time in a `dst` rendition that says what time `t` of a `src` rendition says."""
    a, b = np.cumsum((0.0, *durations(src))), np.cumsum((0.0, *durations(dst)))
    return float(np.interp(t, a, b))


def speech(emotion: str, sample_rate: int = SRC_RATE, *, shift: float = 0.0) -> torch.Tensor:
    """(s,) float32: the three tones with the timing of `emotion` (`shift` changes the pitch,
    to tell sentences or sources apart)."""
    parts = []
    for seconds, freq in zip(durations(emotion), FREQS, strict=True):
        n = round(seconds * sample_rate)
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        ramp = torch.clamp(torch.minimum(t, t.flip(0)) / 0.01, max=1.0)  # 10 ms fades
        parts.append(0.4 * ramp * torch.sin(2 * torch.pi * freq * (1 + shift) * t))
    return torch.cat(parts).float()


def frames(num: int, *, seed: int = 0, face: FaceDrawer | None = None, height: int = SIZE,
           width: int = SIZE) -> torch.Tensor:
    """(t, 3, h, w) uint8: a colour gradient and a moving square, or a drawn face."""
    if face is not None:
        image = torch.from_numpy(face(height, width, width * 0.27, height / 2, height * 0.31))
        return image.permute(2, 0, 1)[None].repeat(num, 1, 1, 1).contiguous()
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=gen) * 120 + 40
    yy = torch.arange(height).view(1, height, 1).float()
    out = torch.empty(num, 3, height, width, dtype=torch.uint8)
    for i in range(num):
        img = (base + yy * 2).expand(3, height, width).clone()
        x0 = (2 * i) % (width - 8)
        img[:, 8:16, x0 : x0 + 8] = 240
        out[i] = img.clamp(0, 255).to(torch.uint8)
    return out


def num_frames(emotion: str, fps: float = SRC_FPS) -> int:
    """Frames of a rendition at `fps`."""
    return round(sum(durations(emotion)) * fps)


def write_clip(path: Path, emotion: str, *, audio: bool = True, seed: int = 0,
               face: FaceDrawer | None = None, height: int = SIZE, width: int = SIZE) -> Path:
    """An mp4 (H.264 + AAC at 48 kHz, or video only) of one rendition."""
    v = frames(num_frames(emotion), seed=seed, face=face, height=height, width=width)
    if audio:
        return write_av(path, v, SRC_FPS, speech(emotion), SRC_RATE)
    return write_video(path, v, SRC_FPS)


def write_speech(path: Path, emotion: str, *, shift: float = 0.0) -> Path:
    """An audio file (`.m4a` AAC or `.wav` PCM, from the suffix) of one rendition."""
    return write_audio(path, speech(emotion, shift=shift), SRC_RATE)


def write_corrupt(path: Path, emotion: str = "neutral") -> Path:
    """A real mp4 cut to a third: the moov atom is lost, nothing decodes."""
    write_clip(path, emotion)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def make_mead(root: Path) -> Path:
    """A fake MEAD tree (front and left_30 views, m4a audio).

    M003 (`M003/video/front/...`, `M003/audio/...`):
        neutral L1 001, 002, 035; angry L1 001, 028; angry L3 001 (no m4a: audio from the
        mp4's stream); happy L2 001; contempt L1 001; angry L1 002 (mp4 without an audio
        stream and no m4a: missing audio); a left_30 copy of neutral L1 001 (another view);
        `M003/video/front/angry/001.mp4` (no level folder: unparsable).
    M005 under an extra folder with a doubled video level (`batch2/M005/video/video/front/...`):
        neutral L1 001, 031; sad L1 001, 021; angry L2 001 is corrupt (unreadable video).
    W015: only left_30 videos (neutral L1 001, angry L1 001) with their m4a: with the front
        view both are `missing video`, and W015 is named in the notes.

    Expected with the front view, `mead`, one split: 12 clips written; groups M003-001
    (neutral, angry L1, angry L3, happy, contempt) and M005-001 (neutral, sad); singles
    M003 neutral 002 and 035, angry 028, M005 neutral 031 and sad 021; skipped: 1 unparsable,
    1 missing audio, 1 unreadable video, 2 missing video.
    """
    m003 = root / "M003"
    for emotion, level, clip in (("neutral", 1, "001"), ("neutral", 1, "002"),
                                 ("neutral", 1, "035"), ("angry", 1, "001"),
                                 ("angry", 1, "028"), ("happy", 2, "001"),
                                 ("contempt", 1, "001")):
        write_clip(m003 / f"video/front/{emotion}/level_{level}/{clip}.mp4", emotion,
                   seed=int(clip), audio=False)
        write_speech(m003 / f"audio/{emotion}/level_{level}/{clip}.m4a", emotion)
    write_clip(m003 / "video/front/angry/level_3/001.mp4", "angry", audio=True)
    write_clip(m003 / "video/front/angry/level_1/002.mp4", "angry", audio=False)
    write_clip(m003 / "video/left_30/neutral/level_1/001.mp4", "neutral", audio=False)
    write_clip(m003 / "video/front/angry/001.mp4", "angry", audio=False)

    m005 = root / "batch2" / "M005"
    for emotion, level, clip in (("neutral", 1, "001"), ("neutral", 1, "031"),
                                 ("sad", 1, "001"), ("sad", 1, "021")):
        write_clip(m005 / f"video/video/front/{emotion}/level_{level}/{clip}.mp4", emotion,
                   audio=False)
        write_speech(m005 / f"audio/{emotion}/level_{level}/{clip}.m4a", emotion)
    write_corrupt(m005 / "video/video/front/angry/level_2/001.mp4", "angry")
    write_speech(m005 / "audio/angry/level_2/001.m4a", "angry")

    w015 = root / "W015"
    for emotion in ("neutral", "angry"):
        write_clip(w015 / f"video/left_30/{emotion}/level_1/001.mp4", emotion, audio=False)
        write_speech(w015 / f"audio/{emotion}/level_1/001.m4a", emotion)
    (root / "README.txt").write_text("not media\n")
    return root


def make_ravdess(root: Path) -> Path:
    """A fake RAVDESS tree.

    Actor_01: neutral s01 r01 (01 audio+video); calm strong s01 r01 (02 video only + 03 wav);
        happy normal s01 r01 (01, plus a 02 copy: the 01 is used); sad s01 r01 (02 video
        only, no wav: missing audio); angry s02 r01 (01: a group of one, a single clip);
        a song (01-02-...: excluded by --vocal speech); fear s01 r01 (03 wav only: missing
        video).
    part2/Actor_02 (an extra folder level): neutral and happy strong s01 r01 (01); angry s01
        r01 corrupt (unreadable video); a README.

    Expected with speech only: 6 clips; groups Actor_01 s01 r01 (neutral, calm, happy) and
    Actor_02 s01 r01 (neutral, happy); single Actor_01 angry s02; skipped: 1 missing audio,
    1 missing video, 1 unreadable video, 1 excluded by an option.
    """
    a1 = root / "Actor_01"
    write_clip(a1 / "01-01-01-01-01-01-01.mp4", "neutral")
    write_clip(a1 / "02-01-02-02-01-01-01.mp4", "calm", audio=False)
    write_speech(a1 / "03-01-02-02-01-01-01.wav", "calm", shift=0.1)
    write_clip(a1 / "01-01-03-01-01-01-01.mp4", "happy")
    write_clip(a1 / "02-01-03-01-01-01-01.mp4", "happy", audio=False)
    write_clip(a1 / "02-01-04-01-01-01-01.mp4", "sad", audio=False)
    write_clip(a1 / "01-01-05-01-02-01-01.mp4", "angry")
    write_clip(a1 / "01-02-03-01-01-01-01.mp4", "happy")
    write_speech(a1 / "03-01-06-01-01-01-01.wav", "fear")
    a2 = root / "part2" / "Actor_02"
    write_clip(a2 / "01-01-01-01-01-01-02.mp4", "neutral", seed=2)
    write_clip(a2 / "01-01-03-02-01-01-02.mp4", "happy", seed=2)
    write_corrupt(a2 / "01-01-05-01-01-01-02.mp4", "angry")
    (a2 / "README.txt").write_text("not media\n")
    return root


def make_cremad(root: Path, *, face: FaceDrawer | None = None) -> Path:
    """A fake CREMA-D tree (mp4 in place of the upstream flv).

    VideoFlash: 1001 DFA angry XX, neutral XX, happy LO (with audio); 1001 IEO sad HI (a
    single clip); 1002 DFA neutral XX (with audio) and fear MD (video only; audio from
    `AudioWAV/1002_DFA_FEA_MD.wav`); 1002 TIE disgusted XX (video only, no wav: missing
    audio); `1003_XYZ.mp4` (unparsable).

    Expected: 6 clips; groups 1001-DFA (3) and 1002-DFA (2), single 1001-IEO; skipped: 1
    unparsable, 1 missing audio.

    With `face` (a drawer like the `draw_face` fixture), only the two 1001 DFA clips neutral
    and angry are written, 64x96 with a face left of centre, for the detector test.
    """
    vf = root / "VideoFlash"
    if face is not None:
        for code, emotion in (("NEU", "neutral"), ("ANG", "angry")):
            write_clip(vf / f"1001_DFA_{code}_XX.mp4", emotion, face=face, height=64, width=96)
        return root
    for name, emotion, audio in (("1001_DFA_ANG_XX", "angry", True),
                                 ("1001_DFA_NEU_XX", "neutral", True),
                                 ("1001_DFA_HAP_LO", "happy", True),
                                 ("1001_IEO_SAD_HI", "sad", True),
                                 ("1002_DFA_NEU_XX", "neutral", True),
                                 ("1002_DFA_FEA_MD", "fear", False),
                                 ("1002_TIE_DIS_XX", "disgusted", False),
                                 ("1003_XYZ", "neutral", True)):
        write_clip(vf / f"{name}.mp4", emotion, audio=audio, seed=len(name))
    write_speech(root / "AudioWAV" / "1002_DFA_FEA_MD.wav", "fear")
    return root
