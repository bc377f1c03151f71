"""`MelPrior`: log-mel windows around each video frame, the training-free audio prior."""

from __future__ import annotations

from torch import Tensor

from decouple.data.features import DEFAULT_FEATURES, AudioFeatureConfig, frame_to_video, log_mel
from decouple.data.io import resample_audio
from decouple.priors.base import AudioPrior

__all__ = ["MelPrior"]


class MelPrior(AudioPrior):
    """Log-mel energies in a window of `context` feature frames centred on each video frame.

    The waveform is resampled to `config.sample_rate` with
    `decouple.data.io.resample_audio`, turned into log-mel frames with
    `decouple.data.features.log_mel` (every 10 ms by default) and framed with
    `decouple.data.features.frame_to_video`: frame i gets the `context`
    mel frames centred on its time `i / fps` (replicate padding at the ends). `forward`
    flattens each window context-major (`feature[c * n_mels + m]` = band m of window frame
    c), so `dim = context * n_mels`; [windows][decouple.priors.MelPrior.windows] keeps the
    window shape (t, context, n_mels). No parameters: the prior is fixed.

    Args:
        context: Mel frames per video frame (16 = 160 ms at the default 10 ms hop).
        config: Audio feature parameters (sample rate, hop, bands).
        fps: Default video frame rate.

    Examples:
        >>> import torch
        >>> prior = MelPrior(context=4)
        >>> prior(torch.randn(16000) * 0.1, 16000, num_frames=25, fps=25).shape
        torch.Size([25, 320])
        >>> prior.windows(torch.randn(2, 8000), 8000, num_frames=10, fps=25).shape
        torch.Size([2, 10, 4, 80])
    """

    def __init__(
        self,
        context: int = 16,
        config: AudioFeatureConfig = DEFAULT_FEATURES,
        fps: float = 30.0,
    ) -> None:
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ValueError(f"context must be an int >= 1, got {context!r}")
        super().__init__(dim=context * config.n_mels, fps=fps)
        self.context = context
        self.config = config

    def windows(
        self, waveform: Tensor, sample_rate: int, num_frames: int, fps: float | None = None
    ) -> Tensor:
        """The mel windows unflattened.

        Args:
            waveform: Samples (s,) or (b, s), floating point.
            sample_rate: Its sample rate.
            num_frames: Video frames t.
            fps: Video frame rate (default `self.fps`).

        Returns:
            Windows (t, context, n_mels) or (b, t, context, n_mels).

        Examples:
            >>> import torch
            >>> MelPrior(context=3).windows(torch.zeros(1600), 16000, 3, fps=30).shape
            torch.Size([3, 3, 80])
        """
        flat = self(waveform, sample_rate, num_frames, fps)
        return flat.reshape(*flat.shape[:-1], self.context, self.config.n_mels)

    def _features(self, waveform: Tensor, sample_rate: int, num_frames: int, fps: float) -> Tensor:
        wave = resample_audio(waveform, sample_rate, self.config.sample_rate)
        mel = log_mel(wave, self.config)  # (b, a, n_mels)
        win = frame_to_video(mel, num_frames, fps, context=self.context, config=self.config)
        return win.flatten(-2)  # (b, t, context * n_mels)
