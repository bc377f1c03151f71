"""Encoder tests run single-threaded: their models are tiny, and on a shared 2-core machine
two intra-op threads contending with other processes made a 32 px forward ~100x slower
(measured: a conv-BN of 5 x 3 x 32 x 32 took 40-50 ms with 2 threads under load, <1 ms with 1).
The previous thread count is restored after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
