"""The `prepare` stage: make sure the training shards exist, and record what they hold.

* SynthTalk: when `<root>/train-index.json` is missing, generate the corpus with
  `decouple.data.synthtalk.corpus.generate` (the Python API behind
  `python -m decouple.data.synthtalk --out DIR ...`); a complete corpus with the same settings
  is left as it is.
* MEAD / RAVDESS: when the shards are missing, convert `data.convert.source` with
  `decouple.data.convert.convert` (the Python API of `python -m decouple.data.convert`).

Then `<run_dir>/prepare/info.json` records the shard root, the emotion names (in id order),
fps, sample rate, frame size and clip counts: the facts later stages and `model.load_models`
read. Only the main process generates or converts; the others wait for it.

Run alone: `python recipes/spfem/prepare.py [--config FILE] [key=value ...]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from config import Config, check_config
from configlib import ConfigError, load_config

__all__ = ["data_root", "prepare_data", "shard_info"]


def data_root(cfg: Config) -> Path:
    """The shard directory: `data.root`, or `<run_dir>/data` when empty.

    Args:
        cfg: The config.

    Returns:
        The path.

    Examples:
        >>> data_root(Config(run_dir="runs/x")).as_posix()
        'runs/x/data'
    """
    return Path(cfg.data.root) if cfg.data.root else Path(cfg.run_dir) / "data"


def shard_info(cfg: Config) -> dict[str, Any]:
    """What the shards hold (from their indexes).

    Args:
        cfg: The config.

    Returns:
        `root`, `corpus`, `emotion_names`, `fps`, `sample_rate`, `size` (frame side, from
        the first training clip), and per split the clip, group and speaker counts.

    Raises:
        FileNotFoundError: If the training split has no index.
    """
    from decouple.data.io import read_video
    from decouple.data.shards import iter_samples, read_index

    root = data_root(cfg)
    train = read_index(root, cfg.data.train_split)
    first = next(iter_samples(train.paths[0]))
    video = read_video(first["mp4"], start=0, stop=1, name=f"{first['__key__']}.mp4")
    info: dict[str, Any] = {
        "root": str(root.resolve()),
        "corpus": cfg.data.corpus,
        "emotion_names": list(train.emotion_set.names),
        "fps": train.fps,
        "sample_rate": train.sample_rate,
        "size": int(video.frames.shape[-1]),
        "splits": {},
    }
    for split in (cfg.data.train_split, cfg.data.test_split):
        try:
            index = read_index(root, split)
        except FileNotFoundError:
            continue
        info["splits"][split] = {"clips": index.num_samples, "groups": index.num_groups,
                                 "shards": len(index.shards)}  # fmt: skip
    return info


def _generate_synthtalk(cfg: Config, root: Path, progress: bool) -> dict[str, Any]:
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    s = cfg.data.synthtalk
    kwargs: dict[str, Any] = {"speakers": s.speakers, "sentences": s.sentences,
                              "levels": tuple(s.levels), "size": s.size, "fps": s.fps,
                              "seed": s.seed, "workers": s.workers}  # fmt: skip
    if s.emotions:
        kwargs["emotions"] = tuple(s.emotions)
    try:
        st = SynthTalkConfig(**kwargs)
    except ValueError as err:
        raise ConfigError(f"data.synthtalk: {err}") from err
    return generate(root, st, progress=progress)


def _convert(cfg: Config, root: Path, progress: bool) -> dict[str, Any]:
    from decouple.data.convert import ConvertOptions, convert

    c = cfg.data.convert
    if not c.source:
        raise ConfigError(f"data.convert.source: the {cfg.data.corpus} shards are missing in "
                          f"{root} and no corpus root is given to convert them from")  # fmt: skip
    if not Path(c.source).is_dir():
        raise FileNotFoundError(f"data.convert.source: {c.source} is not a directory")
    options = ConvertOptions(fps=c.fps, face=c.face, size=c.size, workers=c.workers,
                             progress=progress)  # fmt: skip
    corpus_options: dict[str, Any] = {"split": c.split, "emotion_set": c.emotion_set}
    return convert(cfg.data.corpus, c.source, root, options, **corpus_options)


def prepare_data(cfg: Config, *, main: bool = True, progress: bool = True,
                 wait: Any = None) -> dict[str, Any]:
    """Generate or convert the shards when missing; return the shard facts.

    Args:
        cfg: The config.
        main: Whether this is the main process (only it writes data).
        progress: Show progress bars.
        wait: Barrier called between the main process's work and reading the shards (e.g.
            `accelerator.wait_for_everyone`).

    Returns:
        [shard_info][prepare.shard_info] plus `made` (what this call did: `nothing`,
        `generated` or `converted`, with the tool's summary under `summary`).
    """
    root = data_root(cfg)
    made: dict[str, Any] = {"made": "nothing"}
    if main and not (root / f"{cfg.data.train_split}-index.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        if cfg.data.corpus == "synthtalk":
            made = {"made": "generated", "summary": _generate_synthtalk(cfg, root, progress)}
        else:
            made = {"made": "converted", "summary": _convert(cfg, root, progress)}
    if wait is not None:
        wait()
    return shard_info(cfg) | made


def main(argv: list[str] | None = None) -> int:
    """Command line: prepare the data of a config without training.

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).parent / "configs" / "demo.yaml"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = check_config(load_config(Config, args.config, args.overrides), args.config)
        info = prepare_data(cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"shards in {info['root']}: {info['splits']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
