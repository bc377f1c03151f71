"""The audio-prior interface: waveform + sample rate + video frame count -> per-frame features.

Every audio prior of `decouple` is an [AudioPrior][decouple.priors.base.AudioPrior]: an
`nn.Module` called as `prior(waveform, sample_rate, num_frames)` that returns one feature
vector per video frame, `(b, t, dim)` for a batch `(b, s)` of waveforms and `(t, dim)` for
one waveform `(s,)`.

Alignment convention (the one of `decouple.data.features`, used by
the shard reader too):

* video frame i is shown at time `tau_i = i / fps` seconds from the start of the waveform
  ([frame_times][decouple.priors.base.frame_times]);
* its own audio samples are `[round(i * sr / fps), round((i + 1) * sr / fps))`
  (`samples_for_frames`), so a waveform cut with
  `samples_for_frames(start, t, fps, sr)` is the audio of frames `start .. start + t - 1` and
  frame `start` is at time 0 of the cut;
* the feature of frame i describes the audio *centred on* `tau_i`: the log-mel window of
  `frame_to_video` is centred there, and 50 Hz
  wav2vec 2.0 features are linearly interpolated to it
  ([interpolate_to_frames][decouple.priors.base.interpolate_to_frames]);
* where the audio ends before the video, the last audio feature is repeated (replicate
  padding), so every frame gets a feature.

A batch whose items have different frame counts (`num_frames` a sequence) is computed item
by item, each on the samples of its own frames (`samples_for_frames(0, t_i, fps, sr)`, the
padding after them is ignored), and the output is zero-padded to the longest item.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from decouple.data.features import samples_for_frames

__all__ = ["AudioPrior", "frame_times", "interpolate_to_frames"]


def frame_times(num_frames: int, fps: float) -> Tensor:
    """Times of video frames `0 .. num_frames - 1` in seconds: `tau_i = i / fps`.

    Args:
        num_frames: Video frames t (>= 0).
        fps: Video frame rate (> 0).

    Returns:
        Times (t,), float64.

    Examples:
        >>> frame_times(3, fps=25)
        tensor([0.0000, 0.0400, 0.0800], dtype=torch.float64)
    """
    _check_count(num_frames, "num_frames")
    _check_fps(fps)
    return torch.arange(num_frames, dtype=torch.float64) / fps


def interpolate_to_frames(features: Tensor, feature_times: Tensor, times: Tensor) -> Tensor:
    """Linear interpolation of feature frames at given times, constant beyond the ends.

    For each time tau, with feature frames at increasing times `f_0 < f_1 < ... < f_{a-1}`:
    the weighted mean of the two frames around it (`(1 - w) x_j + w x_{j+1}`,
    `w = (tau - f_j) / (f_{j+1} - f_j)`); before `f_0` the first frame and after `f_{a-1}`
    the last (what `numpy.interp` does per channel).

    Args:
        features: Feature frames (b, a, d).
        feature_times: Their times (a,), strictly increasing, in seconds.
        times: Query times (t,) in seconds, e.g. [frame_times][decouple.priors.base.frame_times].

    Returns:
        Interpolated features (b, t, d), in the dtype of `features`.

    Examples:
        >>> x = torch.tensor([[[0.0], [10.0], [20.0]]])  # a = 3 frames at 0.0, 0.1, 0.2 s
        >>> f = torch.tensor([0.0, 0.1, 0.2])
        >>> interpolate_to_frames(x, f, torch.tensor([-1.0, 0.05, 0.15, 0.2, 5.0]))[0, :, 0]
        tensor([ 0.,  5., 15., 20., 20.])
    """
    if not isinstance(features, Tensor) or features.ndim != 3 or features.shape[1] == 0:
        raise ValueError(
            "features must be a tensor (b, a, d) with a >= 1, got "
            + (str(tuple(features.shape)) if isinstance(features, Tensor)
               else type(features).__name__)
        )
    a = features.shape[1]
    ft = torch.as_tensor(feature_times, dtype=torch.float64).reshape(-1)
    if ft.numel() != a:
        raise ValueError(f"feature_times has {ft.numel()} entries for {a} feature frames")
    if a > 1 and not bool((ft[1:] > ft[:-1]).all()):
        raise ValueError("feature_times must be strictly increasing")
    tq = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if a == 1:
        return features[:, :1].expand(-1, tq.numel(), -1).clone()
    tq = tq.clamp(ft[0], ft[-1])
    hi = torch.searchsorted(ft, tq, right=True).clamp_(1, a - 1)  # f[hi-1] <= tau < f[hi]
    lo = hi - 1
    w = ((tq - ft[lo]) / (ft[hi] - ft[lo])).clamp_(0.0, 1.0)
    dev = features.device
    lo, hi = lo.to(dev), hi.to(dev)
    w = w.to(device=dev, dtype=features.dtype)[None, :, None]
    return features[:, lo] * (1 - w) + features[:, hi] * w


class AudioPrior(nn.Module, ABC):
    """Base class of the audio priors: per-video-frame features of a waveform.

    Subclasses set `dim` (the feature size) and implement `_features(waveform, sample_rate,
    num_frames, fps)` for a batch `(b, s)` of equal-length items; this class validates the
    inputs, handles unbatched input and ragged frame counts (see the module docstring for
    the alignment convention).

    Attributes:
        dim: Size d of each frame's feature.
        fps: Default video frame rate when `forward` is given none.

    Examples:
        >>> class Loudness(AudioPrior):  # RMS of each frame's own samples
        ...     def __init__(self) -> None:
        ...         super().__init__(dim=1)
        ...     def _features(self, waveform, sample_rate, num_frames, fps):
        ...         from decouple.data.features import samples_for_frames
        ...         rows = [waveform[:, samples_for_frames(i, 1, fps, sample_rate)]
        ...                 for i in range(num_frames)]
        ...         return torch.stack([r.square().mean(-1).sqrt() for r in rows], 1)[..., None]
        >>> Loudness()(torch.ones(2, 1600), 16000, 3, fps=30).shape
        torch.Size([2, 3, 1])
    """

    dim: int
    fps: float

    def __init__(self, dim: int, fps: float = 30.0) -> None:
        super().__init__()
        _check_count(dim, "dim")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        _check_fps(fps)
        self.dim = int(dim)
        self.fps = float(fps)

    @abstractmethod
    def _features(self, waveform: Tensor, sample_rate: int, num_frames: int, fps: float) -> Tensor:
        """Features (b, num_frames, dim) of waveforms (b, s), num_frames >= 1."""

    def forward(
        self,
        waveform: Tensor,
        sample_rate: int,
        num_frames: int | Sequence[int],
        fps: float | None = None,
    ) -> Tensor:
        """Per-frame features of a waveform or a batch of waveforms.

        Args:
            waveform: Samples (s,) or (b, s), floating point, any sample rate.
            sample_rate: Its sample rate in Hz.
            num_frames: Video frames t: an int, or for a batch one count per item (items
                whose frames need fewer samples than s are cut to their own samples).
            fps: Video frame rate (default: `self.fps`).

        Returns:
            Features (t, dim) for one waveform, (b, max t, dim) for a batch (zero rows past
            an item's own count).

        Examples:
            >>> from decouple.priors import MelPrior
            >>> prior = MelPrior(context=1)
            >>> prior(torch.zeros(16000), 16000, 30).shape
            torch.Size([30, 80])
            >>> out = prior(torch.zeros(2, 16000), 16000, [30, 10])
            >>> out.shape, bool(out[1, 10:].eq(0).all())
            (torch.Size([2, 30, 80]), True)
        """
        fps = self.fps if fps is None else fps
        _check_fps(fps)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        if not isinstance(waveform, Tensor) or not waveform.is_floating_point() or not (
            waveform.ndim in (1, 2) and waveform.shape[-1] > 0
        ):
            raise ValueError(
                "waveform must be a floating tensor (s,) or (b, s) with s >= 1, got "
                + (f"shape {tuple(waveform.shape)}, dtype {waveform.dtype}"
                   if isinstance(waveform, Tensor) else type(waveform).__name__)
            )
        batched = waveform.ndim == 2
        wave = waveform if batched else waveform[None]
        b, s = wave.shape
        counts = _frame_counts(num_frames, b, batched)
        t_max = max(counts)
        if len(set(counts)) == 1:
            out = self._features(wave, sample_rate, t_max, float(fps)) if t_max else None
        else:
            out = None
            rows = []
            for i, t in enumerate(counts):
                stop = min(s, max(1, samples_for_frames(0, t, fps, sample_rate).stop))
                row = (self._features(wave[i : i + 1, :stop], sample_rate, t, float(fps))
                       if t else wave.new_zeros(1, 0, self.dim))
                rows.append(nn.functional.pad(row, (0, 0, 0, t_max - t)))
            out = torch.cat(rows, 0)
        if out is None:
            out = wave.new_zeros(b, 0, self.dim)
        return out if batched else out[0]


def _check_count(n: object, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name} must be an int >= 0, got {n!r}")


def _check_fps(fps: object) -> None:
    if isinstance(fps, bool) or not (
        isinstance(fps, int | float) and math.isfinite(fps) and fps > 0
    ):
        raise ValueError(f"fps must be a positive number, got {fps!r}")


def _frame_counts(num_frames: int | Sequence[int], b: int, batched: bool) -> list[int]:
    if isinstance(num_frames, Tensor):
        num_frames = num_frames.tolist()
    if isinstance(num_frames, int) and not isinstance(num_frames, bool):
        _check_count(num_frames, "num_frames")
        return [num_frames] * b
    if not batched:
        raise ValueError(f"num_frames must be an int for an unbatched waveform, got {num_frames!r}")
    if not isinstance(num_frames, Sequence) or len(num_frames) != b:
        raise ValueError(
            f"num_frames must be an int or a sequence of {b} ints (one per item), got "
            f"{num_frames!r}"
        )
    for n in num_frames:
        _check_count(n, "num_frames[i]")
    return [int(n) for n in num_frames]
