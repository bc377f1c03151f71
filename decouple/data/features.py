"""Audio features (log-mel, MFCC) and their framing to the video frame rate.

The one home of audio features in `decouple`. Features are computed with `torch.stft` and
torchaudio's mel filter bank and DCT (`torchaudio.functional.melscale_fbanks`,
`create_dct`), on whatever device the waveform is on.

Timing convention: with `center=True` framing, audio-feature frame j is centred on sample
`j * hop_length`, i.e. on time `j * hop_length / sample_rate` (every 10 ms by default), and
video frame i is shown at time `i / fps`. [frame_to_video][decouple.data.features.frame_to_video]
gives each video frame the `context` feature frames centred on its time, and
[samples_for_frames][decouple.data.features.samples_for_frames] the raw samples of a range
of video frames.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

try:
    import torchaudio.functional as AF
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"decouple.data.features needs torchaudio ({_err}): pip install 'decouple[audio]'"
    ) from _err

__all__ = [
    "DEFAULT_FEATURES",
    "AudioFeatureConfig",
    "frame_to_video",
    "log_mel",
    "mfcc",
    "num_feature_frames",
    "samples_for_frames",
]


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Parameters of the audio features (the defaults are the speech-analysis classics).

    Attributes:
        sample_rate: Rate the waveform must have (Hz). 16 kHz keeps the speech band (up to
            8 kHz) and is what wav2vec 2.0 and SyncNet-style models expect; `read_audio`
            resamples to it by default.
        n_fft: FFT size: the power of two at or above `win_length`, giving 257 frequency
            bins 31.25 Hz apart at 16 kHz.
        win_length: Analysis window (periodic Hann) in samples: 400 = 25 ms, short enough
            for a phoneme to be roughly stationary inside it.
        hop_length: Step between feature frames: 160 = 10 ms, i.e. 100 frames per second
            (4 per video frame at 25 fps, 3.33 at 30 fps), fine enough for lip sync.
        n_mels: Mel bands: 80, as in Wav2Lip/SyncNet and most speech synthesis front ends.
        f_min: Lowest mel filter edge (Hz): 55 Hz drops DC and mains hum while keeping the
            lowest voice pitch (the Wav2Lip/SyncNet value).
        f_max: Highest mel filter edge (Hz): 7600 Hz stays clear of the 8 kHz Nyquist
            limit, where resampling filters roll off (also the Wav2Lip/SyncNet value).
        n_mfcc: MFCC coefficients kept: 13, the classical count (the spectral envelope;
            higher coefficients carry pitch detail).
        eps: Floor added to the mel energies before the log, so digital silence maps to
            log(1e-6) = -13.8 rather than minus infinity.

    Examples:
        >>> c = AudioFeatureConfig()
        >>> c.hop_length / c.sample_rate, c.win_length / c.sample_rate
        (0.01, 0.025)
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 55.0
    f_max: float = 7600.0
    n_mfcc: int = 13
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for field in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"AudioFeatureConfig.{field} must be a positive int, got {value!r}"
                )
        if self.win_length > self.n_fft:
            raise ValueError(
                f"AudioFeatureConfig.win_length ({self.win_length}) must be <= n_fft ({self.n_fft})"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                "AudioFeatureConfig needs 0 <= f_min < f_max <= sample_rate / 2, got "
                f"f_min={self.f_min}, f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.n_mfcc > self.n_mels:
            raise ValueError(
                f"AudioFeatureConfig.n_mfcc ({self.n_mfcc}) must be <= n_mels ({self.n_mels})"
            )
        if not self.eps > 0:
            raise ValueError(f"AudioFeatureConfig.eps must be positive, got {self.eps!r}")

    @property
    def frames_per_second(self) -> float:
        """Audio-feature frames per second (`sample_rate / hop_length`)."""
        return self.sample_rate / self.hop_length


DEFAULT_FEATURES = AudioFeatureConfig()
"""The default [AudioFeatureConfig][decouple.data.features.AudioFeatureConfig]."""


@functools.lru_cache(maxsize=16)
def _mel_basis(config: AudioFeatureConfig) -> Tensor:
    # (n_fft // 2 + 1, n_mels): HTK mel scale, triangles peaking at 1 (no area normalisation).
    return AF.melscale_fbanks(
        n_freqs=config.n_fft // 2 + 1,
        f_min=config.f_min,
        f_max=config.f_max,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
        norm=None,
        mel_scale="htk",
    )


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    return AF.create_dct(n_mfcc, n_mels, norm="ortho")  # (n_mels, n_mfcc)


def num_feature_frames(num_samples: int, config: AudioFeatureConfig = DEFAULT_FEATURES) -> int:
    """Feature frames a waveform of `num_samples` samples gives: `1 + num_samples // hop`.

    Args:
        num_samples: Waveform length s.
        config: Feature parameters.

    Returns:
        The number of frames a.

    Examples:
        >>> num_feature_frames(16000)
        101
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    return 1 + num_samples // config.hop_length


def log_mel(waveform: Tensor, config: AudioFeatureConfig = DEFAULT_FEATURES) -> Tensor:
    """Log mel energies: `log(mel_filterbank(|STFT|^2) + eps)`.

    The STFT uses a periodic Hann window of `win_length` samples, centred frames (the signal
    is reflect-padded by `n_fft // 2` on both sides; zero-padded when shorter than that) and
    a hop of `hop_length`; the filter bank is on the HTK mel scale with `n_mels` triangles
    between `f_min` and `f_max`, each peaking at 1. The log is natural.

    Args:
        waveform: Samples (..., s) at `config.sample_rate`, floating point (computed in
            float32, or float64 for float64 input).
        config: Feature parameters.

    Returns:
        Features (..., a, n_mels) with a = `1 + s // hop_length` frames; frame j is centred
        on time `j * hop_length / sample_rate`.

    Examples:
        >>> t = torch.arange(16000) / 16000
        >>> feats = log_mel(torch.sin(2 * torch.pi * 1000 * t))
        >>> tuple(feats.shape)
        (101, 80)
        >>> log_mel(torch.zeros(2, 3, 800)).shape
        torch.Size([2, 3, 6, 80])
    """
    if not isinstance(waveform, Tensor) or not waveform.is_floating_point() or waveform.ndim < 1:
        raise ValueError(
            "waveform must be a floating tensor (..., s), got "
            f"{type(waveform).__name__}"
            + (f" of shape {tuple(waveform.shape)} and dtype {waveform.dtype}"
               if isinstance(waveform, Tensor) else "")
        )
    s = waveform.shape[-1]
    if s == 0:
        raise ValueError("waveform has no samples (s = 0)")
    dtype = torch.float64 if waveform.dtype == torch.float64 else torch.float32
    lead = waveform.shape[:-1]
    x = waveform.reshape(-1, s).to(dtype)
    window = torch.hann_window(config.win_length, periodic=True, dtype=dtype, device=x.device)
    pad_mode = "reflect" if s > config.n_fft // 2 else "constant"
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )  # (b, n_freqs, a)
    power = spec.real.square() + spec.imag.square()
    basis = _mel_basis(config).to(device=x.device, dtype=dtype)
    mel = power.transpose(-1, -2) @ basis  # (b, a, n_mels)
    return torch.log(mel + config.eps).reshape(*lead, mel.shape[-2], config.n_mels)


def mfcc(waveform: Tensor, config: AudioFeatureConfig = DEFAULT_FEATURES) -> Tensor:
    """MFCCs: the orthonormal DCT-II of [log_mel][decouple.data.features.log_mel], first `n_mfcc`.

    Args:
        waveform: Samples (..., s) at `config.sample_rate`, floating point.
        config: Feature parameters.

    Returns:
        Coefficients (..., a, n_mfcc), a = `1 + s // hop_length`.

    Examples:
        >>> mfcc(torch.randn(16000) * 0.1).shape
        torch.Size([101, 13])
    """
    logmel = log_mel(waveform, config)
    dct = _dct_matrix(config.n_mfcc, config.n_mels).to(device=logmel.device, dtype=logmel.dtype)
    return logmel @ dct


def _round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5).long()


def frame_to_video(
    features: Tensor,
    num_frames: int,
    fps: float,
    *,
    context: int,
    config: AudioFeatureConfig = DEFAULT_FEATURES,
) -> Tensor:
    """For each video frame, the `context` audio-feature frames centred on its time.

    Video frame i is at time `i / fps`, which is audio-feature frame
    `c_i = round(i * sample_rate / (hop_length * fps))` (halves round up). Frame i gets the
    feature frames `c_i - context // 2, ..., c_i - context // 2 + context - 1` (for an even
    `context`, one more frame before the centre than after it); indices outside the
    features repeat the first or last frame (replicate padding), so a clip whose audio is a
    little shorter than its video still gets a window for every frame.

    Args:
        features: Audio features (..., a, f) from [log_mel][decouple.data.features.log_mel]
            or [mfcc][decouple.data.features.mfcc].
        num_frames: Video frames t.
        fps: Video frame rate.
        context: Feature frames per video frame (e.g. 16 = 160 ms at the default hop).
        config: Feature parameters the features were computed with (sample rate and hop).

    Returns:
        Windows (..., t, context, f).

    Examples:
        >>> feats = torch.arange(10.0)[:, None]  # a = 10 frames of one feature (its index)
        >>> frame_to_video(feats, 3, fps=25, context=3)[..., 0]  # 4 feature frames per video frame
        tensor([[0., 0., 1.],
                [3., 4., 5.],
                [7., 8., 9.]])
    """
    if not isinstance(features, Tensor) or features.ndim < 2:
        raise ValueError(
            "features must be a tensor (..., a, f), got "
            + (f"shape {tuple(features.shape)}" if isinstance(features, Tensor)
               else type(features).__name__)
        )
    a = features.shape[-2]
    if a == 0:
        raise ValueError("features has no frames (a = 0)")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
        raise ValueError(f"num_frames must be an int >= 0, got {num_frames!r}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be an int >= 1, got {context!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    step = config.sample_rate / (config.hop_length * fps)  # feature frames per video frame
    centres = _round_half_up(torch.arange(num_frames, dtype=torch.float64) * step)
    offsets = torch.arange(context) - context // 2
    index = (centres[:, None] + offsets[None, :]).clamp_(0, a - 1).to(features.device)
    out = features.index_select(-2, index.reshape(-1))
    return out.reshape(*features.shape[:-2], num_frames, context, features.shape[-1])


def samples_for_frames(start: int, num_frames: int, fps: float, sample_rate: int) -> slice:
    """The audio samples of video frames `[start, start + num_frames)`.

    Frame i covers samples from `round(i * sample_rate / fps)` (halves round up) to the
    start of frame i + 1, so consecutive ranges tile the waveform with no gap and no overlap.

    Args:
        start: First video frame.
        num_frames: Number of video frames.
        fps: Video frame rate.
        sample_rate: Audio sample rate.

    Returns:
        A slice into the waveform (it may reach past the end of a short waveform).

    Examples:
        >>> samples_for_frames(0, 1, 30, 16000), samples_for_frames(1, 2, 30, 16000)
        (slice(0, 533, None), slice(533, 1600, None))
    """
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0, got {start!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
        raise ValueError(f"num_frames must be an int >= 0, got {num_frames!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    first = math.floor(start * sample_rate / fps + 0.5)
    stop = math.floor((start + num_frames) * sample_rate / fps + 0.5)
    return slice(first, stop)
