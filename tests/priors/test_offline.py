"""Offline: with outbound connections blocked, every prior works from local data or fails at once
with its documented error, and no connection is even attempted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from decouple.priors import (
    EmotionPromptPrior,
    MelPrior,
    PhonemeAudioPrior,
    Wav2Vec2Prior,
)

NAMES = ("neutral", "happy", "sad")


class Timer:
    """Context manager measuring wall time in seconds (`.seconds`)."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def test_the_block_works(no_network: list[Any]) -> None:
    import socket

    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1
    assert no_network  # the attempt was seen


@pytest.mark.parametrize("weights", [None, "missing.pt"])
@pytest.mark.parametrize("architecture", ["xlsr53", "base"])
def test_wav2vec2_without_weights_fails_at_once_saying_how(
    no_network: list[Any], tmp_path: Path, weights: str | None, architecture: str
) -> None:
    path = None if weights is None else tmp_path / weights
    bundle = {"xlsr53": "WAV2VEC2_XLSR53", "base": "WAV2VEC2_BASE"}[architecture]
    with Timer() as timer, pytest.raises(FileNotFoundError) as err:
        Wav2Vec2Prior(path, architecture=architecture)
    msg = str(err.value)
    assert timer.seconds < 1.0
    assert f"torchaudio.pipelines.{bundle}.get_model().state_dict()" in msg
    assert "download.pytorch.org/torchaudio/models/" in msg
    assert "nothing is ever downloaded" in msg
    assert (str(path) in msg) if path is not None else ("no weights file given" in msg)
    assert no_network == []


def test_local_audio_priors_work_offline(
    no_network: list[Any], tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module]
) -> None:
    path, arch, _ = tiny_wav2vec2_file
    wave = torch.randn(2, 16000) * 0.1
    priors = [MelPrior(context=4), PhonemeAudioPrior(4, dim=8, width=8),
              Wav2Vec2Prior(path, architecture=arch, layer=2, projection_dim=4)]
    for prior in priors:
        assert prior(wave, 16000, 30).shape == (2, 30, prior.dim)
    assert no_network == []


def test_clip_without_weights_fails_at_once_saying_how(no_network: list[Any],
                                                       tmp_path: Path) -> None:
    for weights in (None, tmp_path / "ViT-B-32.pt", "openai"):
        with Timer() as timer, pytest.raises(FileNotFoundError) as err:
            EmotionPromptPrior.from_pretrained("ViT-B-32", weights, NAMES)
        assert timer.seconds < 1.0
        msg = str(err.value)
        assert "nothing is downloaded" in msg and "torch.save(m.state_dict()" in msg
    assert no_network == []


def test_clip_from_local_files_works_offline(no_network: list[Any], tmp_path: Path) -> None:
    prior = EmotionPromptPrior.tiny(NAMES)
    weights = tmp_path / "tiny.pt"
    torch.save(prior.clip.state_dict(), weights)
    loaded = EmotionPromptPrior.from_pretrained("decouple-tiny-clip", weights, NAMES)
    assert loaded.prior().shape == (3, 64)
    assert loaded.encode_image(torch.rand(2, 3, 48, 48)).shape == (2, 64)
    assert loaded.encode_text(["a frown"]).shape == (1, 64)
    assert no_network == []
