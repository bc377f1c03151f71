"""Test-wide settings: offline, deterministic, small."""

from __future__ import annotations

import os

# Nothing may reach the network: Hugging Face / open_clip look-ups fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    torch.manual_seed(0)
