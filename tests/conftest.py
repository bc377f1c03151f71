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


# ----------------------------------------------------------------------------- SynthTalk

# The tiny SynthTalk set every test reuses (generated once per session, about 5-8 s on two
# cores): 5 speakers (4 train, 1 held out by split_speakers), 2 sentences, neutral and the
# other seven MEAD emotions at level 3 (8 clips a group, 80 in all), 64 px, 25 fps.
SYNTHTALK_TINY = {"speakers": 5, "sentences": 2, "levels": (3,), "size": 64, "fps": 25,
                  "seed": 0, "workers": 2}


@pytest.fixture(scope="session")
def synthtalk_tiny(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A generated SynthTalk corpus: `.root` (directory with splits train and test),
    `.config` (its SynthTalkConfig) and `.summary` (generate's summary). Skipped without
    espeak-ng (the `speech` extra). Read-only: tests must not write into `.root`."""
    pytest.importorskip("espeakng_loader")
    from types import SimpleNamespace

    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    root = tmp_path_factory.mktemp("synthtalk_tiny")
    config = SynthTalkConfig(**SYNTHTALK_TINY)
    summary = generate(root, config, progress=False)
    return SimpleNamespace(root=root, config=config, summary=summary)
