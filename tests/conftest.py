"""Test-wide settings: offline, deterministic, small."""

from __future__ import annotations

import os

# Nothing may reach the network: Hugging Face / open_clip look-ups fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

# Once for the session: the tests' tensors and models are tiny, and on a loaded 2-core machine
# two intra-op threads made them 10-100x slower (measured by the priors, encoders and metrics
# tests: a CoOp step 15 ms vs 160-350 ms, a 32 px conv-BN <1 ms vs 40-50 ms). Code that needs
# another setting (a renderer's `threads=`) sets and restores it itself.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    torch.manual_seed(0)
