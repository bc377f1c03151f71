"""`PhonemeAudioPrior`: a small trainable audio encoder pre-trained on per-frame phoneme labels.

The offline stand-in for a pretrained speech model: where a corpus has phoneme timings
(SynthTalk does), this encoder learns what is said from them in minutes on a CPU, and its
per-frame features then guide the content encoder like wav2vec 2.0 features would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from decouple.data.features import DEFAULT_FEATURES, AudioFeatureConfig, frame_to_video, log_mel
from decouple.data.io import resample_audio
from decouple.priors.base import AudioPrior

__all__ = ["PhonemeAudioPrior"]

IGNORE_INDEX = -100
"""Label of frames without a phoneme (padding, unknown): ignored by the loss."""


class _Residual(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.conv(x))


class PhonemeAudioPrior(AudioPrior):
    """Log-mel -> dilated 1-D convolutions -> per-frame features, with a phoneme head.

    Data flow for a waveform (b, s):

    1. resample to `config.sample_rate`, `decouple.data.features.log_mel`:
       (b, a, n_mels) at 100 Hz;
    2. LayerNorm over the bands of each mel frame (loudness-invariant, no look across
       time): (b, a, n_mels);
    3. Conv1d(n_mels, width, 5) + GELU, then per dilation a residual dilated
       Conv1d(width, width, 3) + GELU: (b, width, a);
    4. Conv1d(width, dim, 1): (b, a, dim);
    5. the mel frame at each video frame's time `i / fps`
       (`frame_to_video` with context 1):
       (b, t, dim), the output of `forward`;
    6. `head`, Linear(dim, num_phonemes): (b, t, num_phonemes), the output of
       [logits][decouple.priors.PhonemeAudioPrior.logits].

    With the default dilations (1, 2, 4, 8) a frame sees +-17 mel frames (+-170 ms), about
    a syllable on each side. Train it with
    [loss][decouple.priors.PhonemeAudioPrior.loss] (cross-entropy of per-frame phoneme ids)
    or [pretrain][decouple.priors.PhonemeAudioPrior.pretrain].

    Args:
        num_phonemes: Size of the phoneme inventory (labels are 0..num_phonemes-1).
        dim: Feature size d.
        width: Channels of the convolutions.
        dilations: One residual block per dilation.
        config: Audio feature parameters.
        fps: Default video frame rate.

    Examples:
        >>> prior = PhonemeAudioPrior(num_phonemes=5, dim=16, width=16)
        >>> prior(torch.randn(2, 16000) * 0.1, 16000, num_frames=25, fps=25).shape
        torch.Size([2, 25, 16])
        >>> batch = {"audio": torch.randn(2, 16000) * 0.1, "phonemes": torch.randint(5, (2, 25)),
        ...          "fps": 25}
        >>> prior.loss(batch).shape
        torch.Size([])
    """

    def __init__(
        self,
        num_phonemes: int,
        dim: int = 256,
        width: int = 256,
        dilations: Sequence[int] = (1, 2, 4, 8),
        config: AudioFeatureConfig = DEFAULT_FEATURES,
        fps: float = 30.0,
    ) -> None:
        for label, v in (("num_phonemes", num_phonemes), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive int, got {v!r}")
        super().__init__(dim=dim, fps=fps)
        self.config = config
        self.num_phonemes = num_phonemes
        self.norm = nn.LayerNorm(config.n_mels)
        self.encoder = nn.Sequential(
            nn.Conv1d(config.n_mels, width, 5, padding=2),
            nn.GELU(),
            *[_Residual(width, int(d)) for d in dilations],
            nn.Conv1d(width, dim, 1),
        )
        self.head = nn.Linear(dim, num_phonemes)

    def _features(self, waveform: Tensor, sample_rate: int, num_frames: int, fps: float) -> Tensor:
        wave = resample_audio(waveform, sample_rate, self.config.sample_rate)
        mel = self.norm(log_mel(wave, self.config).to(self.norm.weight.dtype))  # (b, a, n_mels)
        enc = self.encoder(mel.transpose(1, 2)).transpose(1, 2)  # (b, a, dim)
        return frame_to_video(enc, num_frames, fps, context=1, config=self.config)[:, :, 0]

    def logits(
        self,
        waveform: Tensor,
        sample_rate: int,
        num_frames: int | Sequence[int],
        fps: float | None = None,
    ) -> Tensor:
        """Per-frame phoneme logits.

        Args:
            waveform: Samples (s,) or (b, s).
            sample_rate: Its sample rate.
            num_frames: Video frames (an int, or one per item).
            fps: Video frame rate (default `self.fps`).

        Returns:
            Logits (t, num_phonemes) or (b, t, num_phonemes).

        Examples:
            >>> PhonemeAudioPrior(3, dim=8, width=8).logits(torch.zeros(800), 16000, 2).shape
            torch.Size([2, 3])
        """
        return self.head(self(waveform, sample_rate, num_frames, fps))

    def loss(self, batch: Mapping[str, Any]) -> Tensor:
        """Mean cross-entropy of the per-frame phoneme labels of a batch.

        Args:
            batch: A mapping with `audio` (s,) or (b, s) float waveforms, `phonemes` (t,) or
                (b, t) long labels (`-100` = ignore: padding, silence you do not want to
                train on), and optionally `sample_rate` (default `config.sample_rate`),
                `fps` (default `self.fps`) and `num_frames` (default: the label length).

        Returns:
            The scalar loss.

        Examples:
            >>> prior = PhonemeAudioPrior(4, dim=8, width=8)
            >>> b = {"audio": torch.randn(1600), "phonemes": torch.tensor([0, 1, -100])}
            >>> bool(prior.loss(b) > 0)
            True
        """
        for key in ("audio", "phonemes"):
            if key not in batch:
                raise KeyError(f"PhonemeAudioPrior.loss: the batch has no {key!r} entry "
                               f"(keys: {sorted(batch)})")
        labels = batch["phonemes"]
        if not isinstance(labels, Tensor) or labels.dtype != torch.long:
            raise ValueError("batch['phonemes'] must be a long tensor (t,) or (b, t)")
        audio = batch["audio"]
        if not isinstance(audio, Tensor) or audio.ndim != labels.ndim:
            raise ValueError(
                "batch['audio'] must be (s,) for labels (t,) and (b, s) for labels (b, t); got "
                f"audio {tuple(audio.shape) if isinstance(audio, Tensor) else type(audio)} and "
                f"labels {tuple(labels.shape)}"
            )
        bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= self.num_phonemes))
        if bool(bad.any()):
            raise ValueError(
                f"batch['phonemes'] has labels outside 0..{self.num_phonemes - 1} (and -100): "
                f"{sorted(set(labels[bad].tolist()))[:8]}"
            )
        num_frames = batch.get("num_frames", labels.shape[-1])
        logits = self.logits(audio, int(batch.get("sample_rate", self.config.sample_rate)),
                             num_frames, batch.get("fps"))
        return nn.functional.cross_entropy(
            logits.reshape(-1, self.num_phonemes), labels.reshape(-1).to(logits.device),
            ignore_index=IGNORE_INDEX,
        )

    def pretrain(
        self,
        batches: Iterable[Mapping[str, Any]],
        *,
        steps: int | None = None,
        lr: float = 3e-3,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> list[float]:
        """Train on phoneme-labelled batches with Adam (or the optimizer given).

        Args:
            batches: Batches for [loss][decouple.priors.PhonemeAudioPrior.loss]; iterated once.
            steps: Stop after this many steps (default: when `batches` ends).
            lr: Learning rate of the default Adam optimizer.
            optimizer: Use this optimizer instead.

        Returns:
            The loss of each step.

        Examples:
            >>> prior = PhonemeAudioPrior(2, dim=8, width=8)
            >>> b = {"audio": torch.randn(3, 1600), "phonemes": torch.zeros(3, 3, dtype=torch.long)}
            >>> losses = prior.pretrain([b] * 20)
            >>> losses[-1] < losses[0]
            True
        """
        opt = optimizer or torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        losses: list[float] = []
        for batch in batches:
            if steps is not None and len(losses) >= steps:
                break
            loss = self.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses
