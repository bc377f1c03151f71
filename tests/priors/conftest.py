"""Shared fixtures of the prior tests: a tiny wav2vec 2.0 file, blocked outbound network."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Outbound connections fail at once (loopback and Unix sockets allowed, as gloo needs).

    Returns the list of refused addresses, so a test can assert nothing was even tried.
    """
    refused: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family == socket.AF_UNIX:
            return True
        host = address[0] if isinstance(address, tuple) else address
        return host in ("localhost", "::1") or str(host).startswith("127.")

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            refused.append(address)
            raise OSError(f"test: outbound connection to {address} blocked")
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            refused.append(address)
            raise OSError(f"test: outbound connection to {address} blocked")
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return refused


@pytest.fixture
def tiny_wav2vec2_file(tmp_path: Path) -> tuple[Path, dict[str, Any], torch.nn.Module]:
    """(path, architecture, model): a random tiny wav2vec 2.0 saved as a state dict."""
    from torchaudio.models import wav2vec2_model

    from decouple.priors import Wav2Vec2Prior

    torch.manual_seed(1)
    arch = Wav2Vec2Prior.tiny_architecture()
    model = wav2vec2_model(**arch).eval()
    path = tmp_path / "tiny_wav2vec2.pt"
    torch.save(model.state_dict(), path)
    return path, arch, model

