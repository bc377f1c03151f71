"""Tiny stand-ins with the priors' interfaces (decouple.priors is written in parallel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TinyAudioPrior(nn.Module):
    """AudioPrior interface: forward(waveform (b, s), sample_rate, num_frames) -> (b, t, dim)."""

    def __init__(self, dim: int = 12, samples_per_frame: int = 16) -> None:
        super().__init__()
        self.dim = dim
        self.samples_per_frame = samples_per_frame
        self.proj = nn.Linear(samples_per_frame, dim)  # a learned projection, like wav2vec's
        self.calls: list[tuple[tuple[int, ...], int, int]] = []

    def forward(self, waveform: Tensor, sample_rate: int, num_frames: int) -> Tensor:
        self.calls.append((tuple(waveform.shape), sample_rate, num_frames))
        n = num_frames * self.samples_per_frame
        wav = F.interpolate(waveform[:, None], size=n, mode="linear", align_corners=False)[:, 0]
        return self.proj(wav.view(waveform.shape[0], num_frames, self.samples_per_frame))


class TinyEmotionPrior(nn.Module):
    """EmotionPromptPrior interface: prior() -> (K, D) normalised, encode_image, emotion_names."""

    def __init__(self, names: tuple[str, ...] = ("neutral", "happy", "sad", "angry"),
                 dim: int = 16) -> None:  # fmt: skip
        super().__init__()
        self.emotion_names = names
        self.dim = dim
        self.context = nn.Parameter(torch.randn(len(names), dim))  # learnable prompt part
        self.image_tower = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(8, dim),
        )  # fmt: skip
        for p in self.image_tower.parameters():  # frozen, as the CLIP towers
            p.requires_grad_(False)
        self.mean = torch.tensor([0.48, 0.46, 0.41]).view(1, 3, 1, 1)
        self.image_calls: list[Tensor] = []

    def prior(self) -> Tensor:
        return F.normalize(self.context, dim=1)

    def encode_image(self, frames: Tensor) -> Tensor:
        self.image_calls.append(frames.detach())
        return self.image_tower(frames - self.mean)
