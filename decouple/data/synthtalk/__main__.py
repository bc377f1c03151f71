"""Command line: `python -m decouple.data.synthtalk --out DIR --speakers N --seed S ...`.

Generates a SynthTalk corpus ([generate][decouple.data.synthtalk.corpus.generate]) and prints
its summary. The defaults are those of
[SynthTalkConfig][decouple.data.synthtalk.corpus.SynthTalkConfig] (the demo corpus). A bad
setting (unknown emotion, level 2 for neutral, zero speakers, an empty sentence, an unsupported
size or frame rate) is reported as `error: ...` with exit status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from decouple.data.synthtalk.corpus import FPS_CHOICES, SynthTalkConfig, generate
from decouple.data.synthtalk.render import RENDER_SIZES

__all__ = ["main", "parser"]


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _conditions(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in _names(text):
        name, sep, level = item.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected EMOTION:LEVEL pairs such as "
                                             f"'neutral:1,happy:3', got {item!r}")
        try:
            out.append((name.strip(), int(level)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"level of {item!r} is not an integer") from None
    return tuple(out)


def parser() -> argparse.ArgumentParser:
    """The argument parser of the command line.

    Returns:
        The parser.

    Examples:
        >>> args = parser().parse_args(["--out", "d", "--speakers", "3", "--seed", "1"])
        >>> args.speakers, args.size, args.fps, args.workers
        (3, 64, 25, 2)
    """
    d = SynthTalkConfig()
    p = argparse.ArgumentParser(
        prog="python -m decouple.data.synthtalk",
        description="Generate SynthTalk, a synthetic talking-face corpus with ground truth, "
                    "into shards (splits train and test).",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--speakers", type=int, default=d.speakers,
                   help=f"number of speakers (default {d.speakers}; every fifth is held out)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"corpus seed (default {d.seed})")
    p.add_argument("--sentences", type=int, default=d.sentences,
                   help=f"sentences per speaker (default {d.sentences})")
    p.add_argument("--emotions", type=_names, default=d.emotions,
                   help="comma-separated emotions (default: MEAD's eight)")
    p.add_argument("--levels", type=_ints, default=d.levels,
                   help="comma-separated levels for non-neutral emotions (default 1,2,3)")
    p.add_argument("--conditions", type=_conditions, default=None,
                   help="explicit EMOTION:LEVEL pairs instead of --emotions x --levels, e.g. "
                        "neutral:1,happy:3")
    p.add_argument("--texts", type=Path, default=None,
                   help="file with one sentence per line (default: SynthTalk's 40 sentences)")
    p.add_argument("--size", type=int, default=d.size,
                   help=f"frame size, one of {RENDER_SIZES} (default {d.size})")
    p.add_argument("--fps", type=int, default=d.fps,
                   help=f"frame rate, one of {FPS_CHOICES} (default {d.fps})")
    p.add_argument("--workers", type=int, default=d.workers,
                   help=f"worker processes (default {d.workers})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what is in --out (a complete run with the same settings is "
                        "otherwise left as it is)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        0 on success (bad settings exit with status 2 through argparse).

    Examples:
        >>> main(["--out", "/tmp/x", "--speakers", "0"])
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    p = parser()
    args = p.parse_args(argv)
    texts = None
    if args.texts is not None:
        try:
            lines = args.texts.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            p.error(f"--texts: cannot read {args.texts} ({err})")
        for i, line in enumerate(lines):
            if not any(c.isalnum() for c in line):
                p.error(f"--texts {args.texts}: line {i + 1} is an empty sentence (no letter "
                        "or digit); one sentence per line")
        texts = tuple(lines)
    try:
        config = SynthTalkConfig(
            speakers=args.speakers, sentences=args.sentences, emotions=args.emotions,
            levels=args.levels, conditions=args.conditions, texts=texts, size=args.size,
            fps=args.fps, seed=args.seed, workers=args.workers,
        )  # fmt: skip
    except ValueError as err:
        p.error(str(err).replace("SynthTalkConfig.", "--"))
    try:
        summary = generate(args.out, config, overwrite=args.overwrite,
                           progress=not args.no_progress)
    except FileExistsError as err:
        p.error(str(err))
    shown = {k: v for k, v in summary.items() if k != "config"}
    print(json.dumps(shown, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
