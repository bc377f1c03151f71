"""Shared fixtures of the data tests: synthetic video, audio, faces and encoded clips.

Everything is generated (fixed seeds, no downloads) and small, so tests stay fast.

- `make_frames(t, h, w)`: a moving pattern whose frames can be told apart after lossy
  coding ([frame_ids] reads the frame number back from the decoded frames).
- `frame_ids(frames)`: the frame numbers written by `make_frames`.
- `tone(freq, seconds, sample_rate)`: a sine.
- `draw_face(h, w, cx, cy, scale)`: an RGB cartoon face OpenCV's Haar cascade detects.
- `synthetic_clip(...)`: a small clip as tensors and as encoded mp4 / flac bytes (for the
  shard tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

# Frame number i is written in binary in a band at the top of the frame: ID_BITS blocks of
# ID_BAND x ID_BAND pixels, black (0) or white (1), which survive lossy coding.
ID_BITS = 6
ID_BAND = 8


def _make_frames(t: int, h: int = 48, w: int = 64, *, seed: int = 0) -> torch.Tensor:
    """(t, 3, h, w) uint8: smooth colour gradients, a bright square moving 2 px per frame,
    and the frame-number band."""
    if t > 2**ID_BITS or w < ID_BAND * ID_BITS:
        raise ValueError(f"make_frames writes ids of {ID_BITS} bits into {ID_BAND}-px blocks")
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    phase = torch.rand(3, generator=gen) * 6.28
    frames = torch.empty(t, 3, h, w, dtype=torch.uint8)
    for i in range(t):
        base = torch.stack([
            96 + 60 * torch.sin(xx / 9.0 + phase[c] + 0.2 * i) * torch.cos(yy / 11.0)
            for c in range(3)
        ])
        x0 = (4 + 2 * i) % max(1, w - 12)
        base[:, ID_BAND + 4 : ID_BAND + 16, x0 : x0 + 12] = 230
        for bit in range(ID_BITS):
            on = (i >> bit) & 1
            base[:, :ID_BAND, bit * ID_BAND : (bit + 1) * ID_BAND] = 240 if on else 16
        frames[i] = base.round().clamp(0, 255).to(torch.uint8)
    return frames


def _frame_ids(frames: torch.Tensor) -> list[int]:
    """Frame numbers read from the band of (t, 3, h, w) frames."""
    ids = []
    for frame in frames.float():
        bits = [float(frame[:, 2 : ID_BAND - 2, b * ID_BAND + 2 : (b + 1) * ID_BAND - 2].mean())
                > 128 for b in range(ID_BITS)]
        ids.append(sum(int(on) << b for b, on in enumerate(bits)))
    return ids


def _tone(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5
          ) -> torch.Tensor:
    n = round(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * torch.pi * freq * t)).float()


def _draw_face(h: int, w: int, cx: float, cy: float, scale: float) -> np.ndarray:
    """(h, w, 3) uint8 RGB: a grey background and a cartoon face (skin oval, hair, brows,
    eyes, nose, mouth; slightly blurred) centred on (cx, cy), head half-height `scale`."""
    import cv2

    img = np.full((h, w, 3), 90, np.uint8)
    cx, cy, s = round(cx), round(cy), float(scale)

    def ell(centre: tuple[int, int], axes: tuple[float, float], colour: tuple[int, ...],
            a0: int = 0, a1: int = 360) -> None:
        cv2.ellipse(img, centre, (int(axes[0]), int(axes[1])), 0, a0, a1, colour, -1)

    ell((cx, cy), (s * 0.78, s), (200, 170, 150))
    ell((cx, cy - int(s * 0.75)), (s * 0.8, s * 0.4), (40, 30, 20), 180, 360)
    for side in (-1, 1):
        ex, ey = cx + side * int(s * 0.33), cy - int(s * 0.15)
        ell((ex, ey - int(s * 0.2)), (s * 0.2, s * 0.05), (60, 40, 30))
        ell((ex, ey), (s * 0.15, s * 0.08), (250, 250, 250))
        cv2.circle(img, (ex, ey), int(s * 0.07), (30, 20, 20), -1)
    ell((cx, cy + int(s * 0.2)), (s * 0.1, s * 0.06), (150, 110, 100))
    ell((cx, cy + int(s * 0.5)), (s * 0.3, s * 0.08), (120, 40, 50))
    return cv2.GaussianBlur(img, (0, 0), s * 0.03)


@dataclass
class SyntheticClip:
    """A small clip: frames (t, 3, h, w) uint8, a 16 kHz waveform (s,), and their encodings."""

    frames: torch.Tensor
    fps: float
    waveform: torch.Tensor
    sample_rate: int
    mp4: bytes
    flac: bytes


def _synthetic_clip(num_frames: int = 12, fps: float = 25.0, size: int = 32,
                    sample_rate: int = 16000, *, seed: int = 0) -> SyntheticClip:
    from decouple.data.io import encode_audio, encode_video

    frames = _make_frames(num_frames, size, size, seed=seed)
    n = round(num_frames / fps * sample_rate)
    gen = torch.Generator().manual_seed(seed)
    wave = _tone(220.0 * (1 + seed % 3), n / sample_rate, sample_rate, 0.3)
    wave = wave + 0.05 * torch.randn(n, generator=gen)
    wave = (wave.clamp(-1, 1) * 32767).round() / 32768  # exactly representable in 16-bit flac
    return SyntheticClip(frames, fps, wave, sample_rate, encode_video(frames, fps),
                         encode_audio(wave, sample_rate))


@pytest.fixture
def make_frames() -> Callable[..., torch.Tensor]:
    """Factory `make_frames(t, h=48, w=64, *, seed=0) -> (t, 3, h, w) uint8`."""
    return _make_frames


@pytest.fixture
def frame_ids() -> Callable[[torch.Tensor], list[int]]:
    """`frame_ids(frames) -> list[int]`: the frame numbers `make_frames` wrote."""
    return _frame_ids


@pytest.fixture
def tone() -> Callable[..., torch.Tensor]:
    """Factory `tone(freq, seconds, sample_rate=16000, amplitude=0.5) -> (s,) float32`."""
    return _tone


@pytest.fixture
def draw_face() -> Callable[..., np.ndarray]:
    """Factory `draw_face(h, w, cx, cy, scale) -> (h, w, 3) uint8 RGB` cartoon face."""
    return _draw_face


@pytest.fixture
def synthetic_clip() -> Callable[..., SyntheticClip]:
    """Factory `synthetic_clip(num_frames=12, fps=25.0, size=32, sample_rate=16000, *, seed=0)`."""
    return _synthetic_clip
