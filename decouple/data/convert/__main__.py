"""Command line: `python -m decouple.data.convert {mead,ravdess,cremad} SRC OUT [options]`.

Run `python -m decouple.data.convert mead --help` for the options of one corpus. The exit
status is 0 after a conversion (skipped clips are reported, not fatal), 1 when the conversion
could not run (missing corpus, another conversion's output in OUT, no clips found), 2 for a
bad command line and 130 after Ctrl-C (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from decouple.data.convert.common import ConvertOptions, format_summary, run_conversion
from decouple.data.convert.mead import MEAD_VIEWS, OFFICIAL_TEST_LAST
from decouple.data.convert.mead import SPLITS as MEAD_SPLITS
from decouple.data.convert.ravdess import SPLITS as RAVDESS_SPLITS
from decouple.data.convert.ravdess import VOCAL

__all__ = ["build_parser", "main", "parse_size"]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?")


def parse_size(text: str) -> int:
    """A byte count from text: `1073741824`, `512M`, `1G`, `1.5GiB` (powers of 1024).

    Args:
        text: The size.

    Returns:
        Bytes.

    Raises:
        argparse.ArgumentTypeError: Unreadable size.

    Examples:
        >>> parse_size("1G"), parse_size("512M"), parse_size("1000")
        (1073741824, 536870912, 1000)
    """
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 1G, 512M or 100000, got {text!r}"
        )
    scale = 1024 ** " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * scale)


def _speakers(text: str) -> list[str]:
    ids = [s.strip() for s in text.split(",") if s.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("expected a comma-separated list of speaker ids")
    return ids


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per corpus).

    Returns:
        The parser.

    Examples:
        >>> args = build_parser().parse_args(["mead", "src", "out", "--split", "spfem"])
        >>> args.corpus, args.split, args.view, args.fps
        ('mead', 'spfem', 'front', 25.0)
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("src", help="corpus root")
    common.add_argument("out", help="output directory of the shards")
    g = common.add_argument_group("processing")
    g.add_argument("--fps", type=float, default=25.0, help="output frame rate (default 25)")
    g.add_argument("--sample-rate", type=int, default=16000,
                   help="output audio sample rate in Hz, mono (default 16000)")
    g.add_argument("--face", choices=("haar", "dlib", "fixed"), default="haar",
                   help="face detector for the crops: OpenCV's Haar cascade (default), dlib "
                        "(if installed), or a fixed centre crop")
    g.add_argument("--size", type=int, default=128, help="side of the face crops (even, "
                                                         "default 128)")
    g.add_argument("--margin", type=float, default=0.25,
                   help="margin around the face box, a fraction of its side (default 0.25)")
    g.add_argument("--detect-every", type=int, default=5,
                   help="run the detector every N frames (default 5)")
    g.add_argument("--crf", type=int, default=18, help="H.264 quality, 0-51 (default 18)")
    g.add_argument("--preset", default=None, help="x264 preset (default: medium)")
    w = common.add_argument_group("writing")
    w.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="worker processes (default min(4, CPUs); 0 or 1 = this process)")
    w.add_argument("--max-samples", type=int, default=256, help="clips per shard (default 256)")
    w.add_argument("--max-bytes", type=parse_size, default=1 << 30,
                   help="approximate shard size limit, e.g. 1G (default)")
    w.add_argument("--overwrite", action="store_true",
                   help="start over: delete the earlier conversion in OUT instead of resuming")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--test-speakers", type=_speakers, default=None,
                   help="comma-separated speakers of the test split (with --split speakers, "
                        "or to override the spfem list)")

    parser = argparse.ArgumentParser(
        prog="python -m decouple.data.convert",
        description="Convert MEAD, RAVDESS or CREMA-D into WebDataset shards with face crops, "
                    "16 kHz audio and DTW alignments of parallel clips. Re-running the same "
                    "command resumes an interrupted conversion.",
    )
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="{mead,ravdess,cremad}")
    mead = sub.add_parser("mead", parents=[common], help="MEAD (ACTOR/video/<view>/...)")
    mead.add_argument("--view", choices=MEAD_VIEWS, default="front",
                      help="camera view (default front)")
    mead.add_argument("--emotion-set", choices=("mead", "mead7"), default="mead",
                      help="mead: 8 emotions; mead7: without contempt (SPFEM protocol)")
    mead.add_argument("--split", choices=MEAD_SPLITS, default="none",
                      help="none: one split 'all'; official: MEAD's test sentences; spfem: "
                           "the six SPFEM test actors; speakers: --test-speakers")
    mead.add_argument("--mapping", default=None,
                      help="JSON file {actor: {clip: sentence}} pairing parallel sentences "
                           "beyond 001-003")
    mead.add_argument("--official-last", type=int, nargs=2, default=list(OFFICIAL_TEST_LAST),
                      metavar=("NEUTRAL", "EMOTIONAL"),
                      help="sentences at the end of each list in the official test split "
                           "(default 10 6)")
    rav = sub.add_parser("ravdess", parents=[common], help="RAVDESS (Actor_NN/MM-VV-...)")
    rav.add_argument("--split", choices=RAVDESS_SPLITS, default="none",
                     help="none: one split 'all'; spfem: actors 01-06 test; speakers: "
                          "--test-speakers")
    rav.add_argument("--vocal", choices=VOCAL, default="speech",
                     help="vocal channel to keep (default speech)")
    crema = sub.add_parser("cremad", parents=[common], help="CREMA-D (AAAA_SSS_EEE_LL.flv)")
    crema.add_argument("--split", choices=("none", "speakers"), default="none",
                       help="none: one split 'all'; speakers: --test-speakers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter command line.

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 converted, 1 the conversion could not run, 130 interrupted.

    Examples:
        >>> import tempfile
        >>> main(["cremad", "/no/such/corpus", tempfile.mkdtemp(), "--no-progress"])
        1
    """
    from decouple.data.convert import SCANNERS

    args = build_parser().parse_args(argv)
    corpus = {"split": args.split, "test_speakers": args.test_speakers}
    if args.corpus == "mead":
        corpus |= {"view": args.view, "emotion_set": args.emotion_set, "mapping": args.mapping,
                   "official_last": tuple(args.official_last)}
    elif args.corpus == "ravdess":
        corpus |= {"vocal": args.vocal}
    try:
        options = ConvertOptions(
            fps=args.fps, sample_rate=args.sample_rate, face=args.face, size=args.size,
            margin=args.margin, detect_every=args.detect_every, crf=args.crf,
            preset=args.preset, max_samples=args.max_samples, max_bytes=args.max_bytes,
            workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
        plan = SCANNERS[args.corpus](args.src, **corpus)
        if not plan.units:
            print(f"error: no {args.corpus} clips to convert in {args.src} "
                  f"({len(plan.skipped)} files skipped)", file=sys.stderr)
            for s in plan.skipped[:10]:
                print(f"  {s.reason}: {s.source} {s.detail}".rstrip(), file=sys.stderr)
            return 1
        summary = run_conversion(plan, args.out, options)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, ImportError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the finished shards are kept in {args.out}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
