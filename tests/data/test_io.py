"""Media I/O: video and audio round trips through real encoders, resampling, errors."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from decouple.data import io as mio
from decouple.data.io import (
    Audio,
    MediaError,
    Video,
    atomic_write_bytes,
    encode_audio,
    encode_av,
    encode_video,
    read_audio,
    read_av,
    read_video,
    resample_audio,
    resample_indices,
    write_audio,
    write_av,
    write_video,
)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return 10 * math.log10(255.0**2 / mse)


def nearest_reference(n_src: int, src_fps: Fraction, fps: Fraction) -> list[int]:
    """Independent nearest-timestamp reference in exact rational arithmetic (ties: earlier)."""
    duration = n_src / src_fps
    out, k = [], 0
    while Fraction(k) / fps < duration:
        target = Fraction(k) / fps
        out.append(min(range(n_src), key=lambda i: (abs(Fraction(i) / src_fps - target), i)))
        k += 1
    return out


def dominant_frequency(x: torch.Tensor, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.double().numpy() * np.hanning(x.numel())))
    return float(np.argmax(spectrum)) * sample_rate / x.numel()


def lag_of(y: np.ndarray, x: np.ndarray, max_lag: int) -> int:
    """Lag (>= 0) at which y best matches x."""
    scores = [float(np.dot(y[lag : lag + len(x) - max_lag], x[: len(x) - max_lag]))
              for lag in range(max_lag + 1)]
    return int(np.argmax(scores))


# ------------------------------------------------------------------------------------- video


def test_video_round_trip(make_frames, frame_ids) -> None:
    frames = make_frames(24, 48, 64)
    video = read_video(encode_video(frames, fps=25))
    assert isinstance(video, Video)
    assert video.frames.dtype == torch.uint8
    assert tuple(video.frames.shape) == (24, 3, 48, 64)
    assert video.fps == 25.0
    assert frame_ids(video.frames) == list(range(24))  # every frame, in order
    assert psnr(video.frames, frames) > 32
    assert float((video.frames.float() - frames.float()).abs().mean()) < 4.5


def test_crf_controls_quality(make_frames) -> None:
    frames = make_frames(8, 48, 64)
    fine = read_video(encode_video(frames, 25, crf=12)).frames
    coarse = read_video(encode_video(frames, 25, crf=40)).frames
    assert psnr(fine, frames) > psnr(coarse, frames) + 5


def test_ntsc_rate_is_kept_exactly(make_frames) -> None:
    video = read_video(encode_video(make_frames(3), fps=30000 / 1001))
    assert video.fps == pytest.approx(30000 / 1001, rel=1e-12)


@pytest.mark.parametrize("fps", [25, 10, 20, 60])
def test_fps_resampling_picks_nearest_frames(make_frames, frame_ids, fps: int) -> None:
    frames = make_frames(30, 32, 64)
    data = encode_video(frames, fps=30)
    video = read_video(data, fps=fps)
    expected = nearest_reference(30, Fraction(30), Fraction(fps))
    assert video.fps == fps
    assert video.num_frames == len(expected) == math.ceil(30 * fps / 30)
    assert frame_ids(video.frames) == expected


def test_resample_indices_known_answers() -> None:
    times = [i / 30 for i in range(30)]
    assert resample_indices(times, 25, src_fps=30).tolist()[:12] == [
        0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13]  # fmt: skip
    # 30 -> 20 fps: every odd output frame sits exactly between two inputs; ties go earlier.
    assert resample_indices(times, 20, src_fps=30).tolist()[:6] == [0, 1, 3, 4, 6, 7]
    # Timestamps not starting at zero are taken relative to the first frame.
    assert resample_indices([5.0, 5.5, 6.0], 4, src_fps=2).tolist() == [0, 0, 1, 1, 2, 2]
    assert resample_indices([0.0], 30, src_fps=10).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="fps"):
        resample_indices(times, 0, src_fps=30)


def test_odd_frame_size_is_an_error_naming_it(make_frames) -> None:
    with pytest.raises(ValueError, match="47x64"):
        encode_video(make_frames(2, 47, 64), 25)
    with pytest.raises(ValueError, match="uint8 tensor"):
        encode_video(make_frames(2).float(), 25)
    with pytest.raises(ValueError, match="t = 0"):
        encode_video(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), 25)
    with pytest.raises(ValueError, match="fps"):
        encode_video(make_frames(2), -1)


def test_write_video_is_atomic_and_readable(tmp_path: Path, make_frames, frame_ids) -> None:
    path = write_video(tmp_path / "sub" / "clip.mp4", make_frames(6), 25)
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]
    assert frame_ids(read_video(path).frames) == list(range(6))
    mkv = write_video(tmp_path / "clip.mkv", make_frames(4), 25)
    assert read_video(mkv).num_frames == 4
    with pytest.raises(ValueError, match=r"clip\.gif.*'\.gif'"):
        write_video(tmp_path / "clip.gif", make_frames(2), 25)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # the temporary file is gone


# ---------------------------------------------------------------------------------- read errors


def test_read_errors_name_the_file(tmp_path: Path, make_frames) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        read_video(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        read_audio(tmp_path / "nope.wav")

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video " * 50)
    with pytest.raises(MediaError, match=r"garbage\.mp4: cannot decode"):
        read_video(garbage)

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: empty"):
        read_video(empty)

    with pytest.raises(MediaError, match=r"train-000003\.tar:M003_angry_001\.mp4"):
        read_video(b"junk" * 100, name="train-000003.tar:M003_angry_001.mp4")
    with pytest.raises(MediaError, match="<400 bytes"):
        read_video(b"junk" * 100)

    audio_only = tmp_path / "speech.m4a"
    audio_only.write_bytes(encode_audio(torch.zeros(1600), 16000, format="m4a"))
    with pytest.raises(MediaError, match=r"speech\.m4a: no video stream"):
        read_video(audio_only)

    bad_flac = tmp_path / "bad.flac"
    bad_flac.write_bytes(b"fLaC" + b"\x00" * 64)
    with pytest.raises(MediaError, match=r"bad\.flac: cannot decode audio"):
        read_audio(bad_flac)

    video_only = tmp_path / "silent.mp4"
    video_only.write_bytes(encode_video(make_frames(2), 25))
    with pytest.raises(MediaError, match=r"silent\.mp4: no audio stream"):
        read_audio(video_only)


def test_truncated_video_is_an_error_naming_it(make_frames) -> None:
    data = encode_video(make_frames(20), 25)
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        read_video(data[: len(data) // 2], name="cut.mp4")


# ------------------------------------------------------------------------------------- audio


def quantised_noise(channels: int, n: int, seed: int = 0) -> torch.Tensor:
    """Random samples on the 16-bit grid k / 32768, so 16-bit PCM stores them exactly."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-20000, 20000, (channels, n), generator=gen).float() / 32768


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_lossless_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    wave = quantised_noise(1, 4000)[0]
    back = read_audio(encode_audio(wave, 16000, format=fmt), sample_rate=None)
    assert isinstance(back, Audio) and back.sample_rate == 16000
    assert back.waveform.dtype == torch.float32
    assert torch.equal(back.waveform, wave)
    path = write_audio(tmp_path / f"x.{fmt}", wave, 16000)
    assert torch.equal(read_audio(path, sample_rate=None).waveform, wave)


def test_lossless_round_trip_quantises_to_16_bits() -> None:
    wave = torch.linspace(-0.9, 0.9, 1000)
    back = read_audio(encode_audio(wave, 8000), sample_rate=None).waveform
    assert float((back - wave).abs().max()) <= 0.5 / 32768 + 1e-9


def test_stereo_to_mono_is_the_channel_mean(tmp_path: Path) -> None:
    stereo = quantised_noise(2, 3000, seed=1)
    path = write_audio(tmp_path / "st.flac", stereo, 16000)
    both = read_audio(path, sample_rate=None, mono=False)
    assert tuple(both.waveform.shape) == (2, 3000)
    assert torch.equal(both.waveform, stereo)
    mono = read_audio(path, sample_rate=None)
    assert tuple(mono.waveform.shape) == (3000,)
    assert torch.allclose(mono.waveform, stereo.mean(0), atol=1e-7)


def test_samples_beyond_full_scale_are_clipped() -> None:
    back = read_audio(encode_audio(torch.tensor([2.0, -3.0, 0.5] * 100), 8000),
                      sample_rate=None).waveform
    assert float(back.max()) <= 1.0 and float(back.min()) == -1.0
    with pytest.raises(ValueError, match="NaN"):
        encode_audio(torch.tensor([0.0, float("nan")]), 8000)
    with pytest.raises(ValueError, match=r"one of \['aac', 'flac', 'flv'"):
        encode_audio(torch.zeros(10), 8000, format="mp3")
    with pytest.raises(ValueError, match=r"x\.mp3.*'\.mp3'"):
        write_audio("x.mp3", torch.zeros(10), 8000)


def speechlike(n: int, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A tone plus a rising chirp under a slow envelope: aperiodic, so its lag is measurable."""
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    start = 200.0 + 50 * seed
    chirp = torch.sin(2 * torch.pi * (start * t + 600.0 * t**2))
    envelope = 0.5 + 0.5 * torch.sin(2 * torch.pi * 1.5 * t + seed)
    x = 0.25 * torch.sin(2 * torch.pi * 440 * t) + 0.35 * envelope * chirp
    return x.float()


def test_m4a_round_trip_through_pyav(tmp_path: Path) -> None:
    sr, n = 16000, 16000
    x = speechlike(n, sr)
    path = write_audio(tmp_path / "speech.m4a", x, sr)
    y = read_audio(path, sample_rate=None)
    assert y.sample_rate == sr
    # mp4 records the encoder delay: same length, no shift.
    assert y.num_samples == n
    assert lag_of(y.waveform.numpy(), x.numpy(), 2048) == 0
    snr = 10 * math.log10(float((x**2).sum()) / float(((y.waveform - x) ** 2).sum()))
    assert snr > 20
    # The same bytes read from memory give the same samples.
    assert torch.equal(read_audio(path.read_bytes(), sample_rate=None).waveform, y.waveform)


@pytest.mark.parametrize("fmt", ["aac", "flv"])
def test_raw_aac_and_flv_round_trip(fmt: str) -> None:
    sr, n = 16000, 12000
    x = speechlike(n, sr, seed=2)
    y = read_audio(encode_audio(x, sr, format=fmt), sample_rate=None).waveform.numpy()
    # These containers cannot mark the encoder delay: the signal comes back shifted by it.
    lag = lag_of(y, x.numpy(), 2048)
    assert 0 < lag <= 2048
    z = y[lag : lag + n]
    assert len(z) == n
    snr = 10 * math.log10(float((x.numpy() ** 2).sum()) / float(((z - x.numpy()) ** 2).sum()))
    assert snr > 20


def test_ogg_vorbis_round_trip_through_soundfile() -> None:
    x = speechlike(16000, 16000, seed=1)
    data = encode_audio(x, 16000, format="ogg")
    assert data[:4] == b"OggS"
    y = read_audio(data, sample_rate=None)
    assert y.num_samples == 16000
    snr = 10 * math.log10(float((x**2).sum()) / float(((y.waveform - x) ** 2).sum()))
    assert snr > 20


def test_resampling_22050_to_16000_keeps_the_frequency(tmp_path: Path, tone) -> None:
    path = write_audio(tmp_path / "tone.flac", tone(1000.0, 1.0, 22050), 22050)
    audio = read_audio(path)  # 16 kHz by default
    assert audio.sample_rate == 16000 and audio.num_samples == 16000
    assert dominant_frequency(audio.waveform, 16000) == pytest.approx(1000.0, abs=1.0)
    # Against the analytic 16 kHz sine, away from the edges of the resampling filter
    # (the file is 16-bit, so it also carries quantisation noise of about 1e-5).
    reference = tone(1000.0, 1.0, 16000)
    assert float((audio.waveform[200:-200] - reference[200:-200]).abs().max()) < 5e-3


def test_resample_audio_shapes_and_identity() -> None:
    x = torch.randn(2, 4410)
    assert resample_audio(x, 44100, 44100) is x
    assert tuple(resample_audio(x, 44100, 16000).shape) == (2, 1600)
    with pytest.raises(ValueError, match="new_sr"):
        resample_audio(x, 44100, 0)
    with pytest.raises(ValueError, match="floating"):
        resample_audio(torch.zeros(10, dtype=torch.int16), 8000, 16000)


# ---------------------------------------------------------------------------- video + audio


def test_read_av_keeps_audio_in_sync(tmp_path: Path, make_frames, frame_ids) -> None:
    fps, sr, t = 25, 16000, 20
    frames = make_frames(t)
    wave = torch.zeros(round(t / fps * sr))
    click_frame = 13
    at = round(click_frame / fps * sr)  # the sample where frame 13 starts
    wave[at : at + 40] = 0.8
    path = write_av(tmp_path / "clip.mp4", frames, fps, wave, sr)
    video, audio = read_av(path)
    assert frame_ids(video.frames) == list(range(t)) and video.fps == fps
    assert audio is not None and audio.sample_rate == sr
    assert audio.num_samples == wave.numel()
    energy = audio.waveform.abs().numpy()
    onset = int(np.argmax(energy > 0.4))
    assert abs(onset - at) <= 8
    # Resampling both streams at read time.
    video, audio = read_av(path, fps=12.5, sample_rate=8000)
    assert video.num_frames == 10 and frame_ids(video.frames) == list(range(0, 20, 2))
    assert audio is not None and audio.num_samples == wave.numel() // 2


def test_read_av_without_audio_stream(make_frames) -> None:
    video, audio = read_av(encode_video(make_frames(3), 25))
    assert audio is None and video.num_frames == 3


def test_encode_av_in_flv(make_frames) -> None:
    data = encode_av(make_frames(5), 25, torch.zeros(3200) + 0.1, 16000, container="flv")
    assert data[:3] == b"FLV"
    video, audio = read_av(data)
    assert video.num_frames == 5 and audio is not None


def test_dataclasses_validate() -> None:
    with pytest.raises(ValueError, match="uint8 tensor"):
        Video(torch.zeros(2, 3, 4, 4), 25.0)
    with pytest.raises(ValueError, match="fps"):
        Video(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 0.0)
    with pytest.raises(ValueError, match="floating"):
        Audio(torch.zeros(4, dtype=torch.int16), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        Audio(torch.zeros(4), 16000.0)  # type: ignore[arg-type]
    assert mio.Audio(torch.zeros(2, 8), 8).num_samples == 8


@pytest.mark.parametrize("gop", [16, 5, None])
def test_read_video_range_equals_the_slice_of_a_full_decode(make_frames, frame_ids, gop) -> None:
    """Seeking to a keyframe and skipping gives the very frames a full decode gives."""
    from decouple.data.io import encode_video, read_video

    frames = make_frames(40)
    data = encode_video(frames, 25.0, gop=gop)
    full = read_video(data).frames
    assert frame_ids(full) == list(range(40))
    for start, stop in [(0, 7), (3, 19), (16, 32), (17, 40), (33, 34), (30, None)]:
        part = read_video(data, start=start, stop=stop)
        assert torch.equal(part.frames, full[start:stop]), (start, stop)
        assert frame_ids(part.frames) == list(range(40))[start:stop]
        assert part.fps == 25.0
    with pytest.raises(ValueError, match="start < stop"):
        read_video(data, start=5, stop=5)
    # Decoder (and swscale) threads change the speed, never the frames.
    for threads in (1, 0, 2):
        assert torch.equal(read_video(data, threads=threads).frames, full)
        assert torch.equal(read_video(data, start=3, stop=19, threads=threads).frames,
                           full[3:19])
    with pytest.raises(ValueError, match="threads"):
        read_video(data, threads=-1)
