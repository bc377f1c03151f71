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

from typing import TYPE_CHECKING

from decouple._lazy import lazy_exports

if TYPE_CHECKING:  # static names for type checkers and the API docs; imported lazily at run time
    from decouple.metrics.probes import LinearProbe, ProbeResult, group_split, linear_probe

_EXPORTS = {
    "LinearProbe": "probes",
    "ProbeResult": "probes",
    "group_split": "probes",
    "linear_probe": "probes",
}

__all__ = ["LinearProbe", "ProbeResult", "group_split", "linear_probe"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
