"""Audio features: shapes, independent references, a tone in its mel bin, video framing."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.fft
import torch
import torchaudio

from decouple.data.features import (
    DEFAULT_FEATURES,
    AudioFeatureConfig,
    frame_to_video,
    log_mel,
    mfcc,
    num_feature_frames,
    samples_for_frames,
)


def htk_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def htk_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def mel_centres(c: AudioFeatureConfig) -> np.ndarray:
    """Centre frequency of each mel band: n_mels + 2 points equally spaced in mel."""
    points = np.linspace(htk_mel(np.array(c.f_min)), htk_mel(np.array(c.f_max)), c.n_mels + 2)
    return htk_hz(points[1:-1])


def test_shapes() -> None:
    x = torch.randn(16000) * 0.1
    assert tuple(log_mel(x).shape) == (101, 80)
    assert tuple(mfcc(x).shape) == (101, 13)
    assert num_feature_frames(16000) == 101
    assert tuple(log_mel(torch.randn(2, 3, 1234) * 0.1).shape) == (2, 3, 1 + 1234 // 160, 80)
    assert tuple(mfcc(torch.randn(4, 800)).shape) == (4, 6, 13)
    # Shorter than half an FFT: zero padding instead of reflection, still one frame.
    assert tuple(log_mel(torch.randn(100)).shape) == (1, 80)
    small = AudioFeatureConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                               n_mels=40, f_max=3800.0, n_mfcc=20)
    assert tuple(mfcc(torch.randn(8000), small).shape) == (101, 20)


def test_log_mel_matches_torchaudio_melspectrogram() -> None:
    c = DEFAULT_FEATURES
    x = torch.randn(2, 9000, generator=torch.Generator().manual_seed(3)) * 0.2
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length,
        hop_length=c.hop_length, f_min=c.f_min, f_max=c.f_max, n_mels=c.n_mels,
        window_fn=torch.hann_window, power=2.0, center=True, pad_mode="reflect",
        norm=None, mel_scale="htk",
    )(x)  # fmt: skip
    expected = torch.log(reference + c.eps).transpose(-1, -2)  # (b, a, n_mels)
    torch.testing.assert_close(log_mel(x), expected, rtol=1e-4, atol=1e-4)


def test_mfcc_is_the_orthonormal_dct_of_log_mel() -> None:
    x = torch.randn(5000, generator=torch.Generator().manual_seed(1)) * 0.3
    reference = scipy.fft.dct(log_mel(x).double().numpy(), type=2, norm="ortho", axis=-1)
    np.testing.assert_allclose(mfcc(x).double().numpy(), reference[:, :13], rtol=1e-4,
                               atol=1e-3)


@pytest.mark.parametrize("band", [5, 30, 55, 78])
def test_tone_lands_in_its_mel_bin(band: int, tone) -> None:
    freq = float(mel_centres(DEFAULT_FEATURES)[band])
    feats = log_mel(tone(freq, 0.5))
    profile = feats[5:-5].mean(dim=0)  # interior frames
    assert int(profile.argmax()) == band
    # The bands well away from the tone are far weaker (> 30 dB, i.e. 6.9 in natural log).
    far = [b for b in range(80) if abs(b - band) > 3]
    assert float(profile[band] - profile[far].max()) > 6.9


def test_silence_is_log_eps() -> None:
    feats = log_mel(torch.zeros(1600))
    torch.testing.assert_close(feats, torch.full_like(feats, math.log(1e-6)))


def test_float64_stays_float64_and_integers_are_refused() -> None:
    assert log_mel(torch.randn(800, dtype=torch.float64)).dtype == torch.float64
    assert log_mel(torch.randn(800, dtype=torch.float16)).dtype == torch.float32
    with pytest.raises(ValueError, match="floating tensor"):
        log_mel(torch.zeros(800, dtype=torch.int16))
    with pytest.raises(ValueError, match="s = 0"):
        log_mel(torch.zeros(0))


def click(seconds: float, at: float, sample_rate: int = 16000) -> torch.Tensor:
    x = torch.zeros(round(seconds * sample_rate))
    i = round(at * sample_rate)
    x[i - 40 : i + 40] = torch.hann_window(80) * 0.9
    return x


@pytest.mark.parametrize(("fps", "at", "frame"), [(25.0, 0.52, 13), (30.0, 0.4, 12),
                                                   (30000 / 1001, 0.7007, 21)])
def test_click_lands_on_its_video_frame(fps: float, at: float, frame: int) -> None:
    x = click(1.0, at)
    feats = log_mel(x)
    num_frames = math.floor(1.0 * fps)
    windows = frame_to_video(feats, num_frames, fps, context=1)
    assert tuple(windows.shape) == (num_frames, 1, 80)
    energy = windows[:, 0].exp().sum(-1)
    assert int(energy.argmax()) == frame
    # With context, the click sits at the centre slot of its frame's window.
    windows = frame_to_video(feats, num_frames, fps, context=5)
    assert int(windows[frame].exp().sum(-1).argmax()) == 2


def test_frame_to_video_index_known_answer() -> None:
    feats = torch.arange(12.0)[:, None].repeat(1, 2)  # a = 12 frames, value = frame index
    out = frame_to_video(feats, 4, 30.0, context=4)  # 100 / 30 feature frames per video frame
    # centres round(i * 10 / 3) = 0, 3, 7, 10; windows c-2 .. c+1, clamped to [0, 11].
    expected = torch.tensor([[0, 0, 0, 1], [1, 2, 3, 4], [5, 6, 7, 8], [8, 9, 10, 11]]).float()
    assert torch.equal(out[..., 0], expected) and torch.equal(out[..., 1], expected)
    # The end replicates the last frame when the audio is shorter than the video.
    tail = frame_to_video(feats, 6, 30.0, context=3)
    assert tail[5, :, 0].tolist() == [11.0, 11.0, 11.0]  # centre 17 > 11
    # Leading dimensions are kept.
    batch = frame_to_video(torch.stack([feats, feats + 100]), 4, 30.0, context=4)
    assert tuple(batch.shape) == (2, 4, 4, 2)
    assert torch.equal(batch[1, ..., 0], expected + 100)
    assert tuple(frame_to_video(feats, 0, 30.0, context=4).shape) == (0, 4, 2)


def test_frame_to_video_validates() -> None:
    feats = torch.zeros(10, 3)
    with pytest.raises(ValueError, match="context"):
        frame_to_video(feats, 3, 25.0, context=0)
    with pytest.raises(ValueError, match="num_frames"):
        frame_to_video(feats, -1, 25.0, context=3)
    with pytest.raises(ValueError, match="fps"):
        frame_to_video(feats, 3, 0.0, context=3)
    with pytest.raises(ValueError, match=r"\(\.\.\., a, f\)"):
        frame_to_video(torch.zeros(10), 3, 25.0, context=3)


@pytest.mark.parametrize(("fps", "sr"), [(30.0, 16000), (25.0, 16000), (30000 / 1001, 16000),
                                         (29.97, 44100)])
def test_samples_for_frames_tile_the_waveform(fps: float, sr: int) -> None:
    slices = [samples_for_frames(i, 1, fps, sr) for i in range(300)]
    assert slices[0].start == 0
    assert all(a.stop == b.start for a, b in itertools.pairwise(slices))
    lengths = {s.stop - s.start for s in slices}
    per_frame = sr / fps
    assert lengths <= {math.floor(per_frame), math.ceil(per_frame)}
    whole = samples_for_frames(17, 45, fps, sr)
    assert (whole.start, whole.stop) == (slices[17].start, slices[61].stop)
    assert abs(whole.start - 17 * per_frame) <= 0.5


def test_samples_for_frames_known_answer() -> None:
    assert samples_for_frames(0, 25, 25.0, 16000) == slice(0, 16000)
    assert samples_for_frames(3, 2, 30.0, 16000) == slice(1600, 2667)
    with pytest.raises(ValueError, match="start"):
        samples_for_frames(-1, 2, 30.0, 16000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"win_length": 600}, "win_length"),
        ({"f_max": 9000.0}, "f_max"),
        ({"n_mfcc": 100}, "n_mfcc"),
        ({"hop_length": 0}, "hop_length"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_config_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AudioFeatureConfig(**kwargs)


def test_config_documents_its_rates() -> None:
    assert DEFAULT_FEATURES.frames_per_second == 100.0
    assert (DEFAULT_FEATURES.win_length, DEFAULT_FEATURES.hop_length) == (400, 160)
