"""Corpus converters: MEAD, RAVDESS and CREMA-D into WebDataset shards.

Command line (see the "Converting corpora" page of the docs):

```
python -m decouple.data.convert {mead,ravdess,cremad} SRC OUT [options]
```

From Python, [convert][decouple.data.convert.convert] does the same:
a corpus module (`mead`, `ravdess`, `cremad`) parses the layout into a plan (`scan_*`), and
[run_conversion][decouple.data.convert.common.run_conversion] decodes, crops, aligns and
writes the shards, resumably, and returns the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from decouple.data.convert.common import (
    ConvertOptions,
    CorpusPlan,
    format_summary,
    run_conversion,
)
from decouple.data.convert.cremad import scan_cremad
from decouple.data.convert.mead import scan_mead
from decouple.data.convert.ravdess import scan_ravdess

__all__ = [
    "SCANNERS",
    "ConvertOptions",
    "CorpusPlan",
    "convert",
    "format_summary",
    "run_conversion",
    "scan_cremad",
    "scan_mead",
    "scan_ravdess",
]

SCANNERS: dict[str, Callable[..., CorpusPlan]] = {
    "mead": scan_mead,
    "ravdess": scan_ravdess,
    "cremad": scan_cremad,
}
"""Corpus name -> the function that plans its conversion."""


def convert(
    dataset: str,
    src: str | Path,
    out: str | Path,
    options: ConvertOptions | None = None,
    **corpus_options: Any,
) -> dict[str, Any]:
    """Convert a corpus: plan it with its scanner, then run the conversion.

    Args:
        dataset: `mead`, `ravdess` or `cremad`.
        src: Corpus root.
        out: Output directory of the shards.
        options: Processing and writing options (defaults: 25 fps, 16 kHz, Haar face crops
            of 128 px, in this process).
        **corpus_options: Keyword arguments of the scanner
            ([scan_mead][decouple.data.convert.mead.scan_mead],
            [scan_ravdess][decouple.data.convert.ravdess.scan_ravdess],
            [scan_cremad][decouple.data.convert.cremad.scan_cremad]), e.g. `split="official"`.

    Returns:
        The summary of [run_conversion][decouple.data.convert.common.run_conversion].

    Raises:
        KeyError: Unknown corpus.

    Examples:
        >>> import tempfile
        >>> import torch
        >>> from decouple.data.io import write_av
        >>> src, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> _ = write_av(src / "Actor_01" / "01-01-01-01-01-01-01.mp4",
        ...              torch.zeros(6, 3, 32, 32, dtype=torch.uint8), 30,
        ...              torch.zeros(3200), 16000)
        >>> s = convert("ravdess", src, out, ConvertOptions(face="fixed", size=16,
        ...             progress=False))
        >>> s["clips_written"], s["splits"]["all"]["shards"]
        (1, 1)
    """
    if dataset not in SCANNERS:
        raise KeyError(f"unknown corpus {dataset!r}; known: {', '.join(SCANNERS)}")
    plan = SCANNERS[dataset](src, **corpus_options)
    return run_conversion(plan, out, options or ConvertOptions())
