"""Metrics: decoupling probes now; Frechet distances, lip sync, identity and emotion similarity,
landmark distances and image quality follow (one module each, defined precisely in the docs).

| module | what |
|---|---|
| `probes` | `linear_probe`: a factor's accuracy from an embedding on held-out speakers |

Names are re-exported here and imported on first use.

Examples:
    >>> import decouple.metrics as metrics
    >>> metrics.ProbeResult.__name__
    'ProbeResult'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static names for type checkers and the API docs; imported lazily at run time
    from decouple.metrics.probes import LinearProbe, ProbeResult, group_split, linear_probe

_EXPORTS = {
    "LinearProbe": "probes",
    "ProbeResult": "probes",
    "group_split": "probes",
    "linear_probe": "probes",
}

__all__ = ["LinearProbe", "ProbeResult", "group_split", "linear_probe"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'decouple.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"decouple.metrics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
