"""What the benchmark scripts print about the machine: its CPU and its load while they run."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. `"0.42/0.80/1.10"`."""
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> str:
    """CPU model, logical CPU count, Python and torch versions, on one line."""
    import torch

    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__}")
