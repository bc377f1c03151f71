"""Write one held-out SynthTalk clip of a run as an mp4 with its audio, and print its path.

    python recipes/spfem/example_clip.py runs/demo                  # a neutral test-speaker clip
    python recipes/spfem/example_clip.py runs/demo --emotion sad --index 2

The clip comes from the run's own shards (`<run_dir>/prepare/info.json` names them), from the
`test` split (speakers never seen in training), so a first edit needs no video of your own:

    python recipes/spfem/generate.py --run runs/demo --emotion happy \\
        --source "$(python recipes/spfem/example_clip.py runs/demo)"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model import read_run_info

from decouple.data.io import read_audio, read_video, write_av
from decouple.data.synthtalk.corpus import iter_clips


def export_clip(run_dir: str | Path, *, split: str = "test", emotion: str = "neutral",
                index: int = 0, out: str | Path | None = None) -> Path:
    """Write the `index`-th clip of `emotion` in `split` of the run's corpus as an mp4.

    Args:
        run_dir: The run folder (its `prepare` stage must be done).
        split: Corpus split.
        emotion: Emotion of the clip.
        index: Which clip of that emotion (in shard order).
        out: Destination (default: `<run_dir>/examples/<key>.mp4`).

    Returns:
        The written path.

    Raises:
        FileNotFoundError: If the run has no prepared data.
        LookupError: If the split has no such clip.
    """
    info = read_run_info(run_dir)
    clips = [c for c in iter_clips(info["root"], split) if c.meta.emotion == emotion]
    if not clips:
        raise LookupError(f"{info['root']}: split {split!r} has no clip with emotion {emotion!r}")
    if not 0 <= index < len(clips):
        raise LookupError(f"{info['root']}: split {split!r} has {len(clips)} {emotion!r} clips, "
                          f"index {index} is out of range")
    clip = clips[index]
    video = read_video(clip.video, name=f"{clip.key}.mp4")
    audio = read_audio(clip.audio, sample_rate=None, name=f"{clip.key}.flac")
    path = Path(out) if out is not None else Path(run_dir) / "examples" / f"{clip.key}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_av(path, video.frames, video.fps, audio.waveform, audio.sample_rate)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the path of the written clip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder (written by train.py)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--emotion", default="neutral")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        path = export_clip(args.run, split=args.split, emotion=args.emotion, index=args.index,
                           out=args.out)
    except (FileNotFoundError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
