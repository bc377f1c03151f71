"""Gallery frames of a trained run: source | reference | outputs | counterfactual ground truth.

    .venv/bin/python bench/gallery.py --run runs/demo --out docs/img/gallery

For each of a few held-out neutral clips (the first `--clips` sources of the protocol of
`bench/spfem_quality.py`, spread over the held-out speakers) one PNG: one row per target
emotion (`--emotions`), columns

    source | reference | output, reference-driven | output, label-driven | ground truth

at one frame of the clip (`--frame`, default the middle; the reference column shows the
reference clip's frame of the same relative time: another sentence of the same speaker in
the target emotion, level 3). The ground truth is SynthTalk's counterfactual render of the
source in the target emotion (never seen in training). Frames are enlarged `--scale` times
(nearest neighbour) and labelled with PIL's built-in font. The script also writes
`<out>/gallery.json` (what each image shows) and prints the written paths.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from spfem_quality import LEVEL, held_out_pairs  # also puts recipes/spfem on sys.path
from torch import Tensor

COLUMNS = ("source", "reference", "output (reference)", "output (label)", "ground truth")
"""The gallery's columns."""
DEFAULT_EMOTIONS = ("happy", "angry", "surprised", "sad")
"""Rows of each image unless `--emotions` says otherwise."""


def _pick_sources(pairs: list[Any], clips: int) -> list[Any]:
    """The first `clips` sources, alternating over the held-out speakers."""
    by_speaker: dict[str, list[Any]] = {}
    for p in pairs:
        lst = by_speaker.setdefault(p.source.meta.speaker, [])
        if p.source.key not in [c.key for c in lst]:
            lst.append(p.source)
    out: list[Any] = []
    i = 0
    while len(out) < clips and any(i < len(v) for v in by_speaker.values()):
        out += [v[i] for v in by_speaker.values() if i < len(v)]
        i += 1
    return out[:clips]


def _label(image: Any, text: str, xy: tuple[int, int]) -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(image).text(xy, text, fill=(20, 20, 20))


def gallery(run_dir: str | Path, out_dir: str | Path, *, clips: int = 3,
            emotions: tuple[str, ...] = DEFAULT_EMOTIONS, frame: float = 0.5,
            scale: int = 3) -> list[Path]:  # fmt: skip
    """Write the gallery PNGs of a run.

    Args:
        run_dir: A run folder with a finished `spfem` stage.
        out_dir: Where the PNGs go.
        clips: Held-out neutral source clips (one PNG each).
        emotions: Target emotions (rows).
        frame: Which frame, as a fraction of the clip's length.
        scale: Enlargement factor.

    Returns:
        The written PNG paths (and `gallery.json` next to them).

    Raises:
        LookupError: An emotion the held-out split has no level-3 clip of.
    """
    from generate import load_run, sample_frames, target_code
    from model import read_run_info
    from PIL import Image

    from decouple.data.io import read_video
    from decouple.data.synthtalk.corpus import render

    models = load_run(run_dir)
    gen = models.generator
    assert gen is not None
    root = Path(read_run_info(run_dir)["root"])
    pairs = held_out_pairs(root)
    known = {p.emotion for p in pairs}
    missing = [e for e in emotions if e not in known]
    if missing:
        raise LookupError(f"{root}: no level-{LEVEL} held-out clips of {missing}; "
                          f"known: {sorted(known)}")  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, index = [], []
    for src_clip in _pick_sources(pairs, clips):
        video = read_video(src_clip.video).frames
        k = min(round(frame * (len(video) - 1)), len(video) - 1)
        src = video[k:k + 1].float() / 255.0
        rows: list[Tensor] = []
        refs = []
        for emotion in emotions:
            pair = next(p for p in pairs if p.source.key == src_clip.key and p.emotion == emotion)
            ref_video = read_video(pair.reference.video).frames
            ref = ref_video[min(round(frame * (len(ref_video) - 1)), len(ref_video) - 1)]
            with torch.no_grad():
                by_ref = gen(src, target_code(models, reference=sample_frames(ref_video)))
                by_label = gen(src, target_code(models, emotion=emotion))
            truth = render(src_clip.extras["synthtalk"], emotion=emotion,
                           intensity=LEVEL).frames[k]  # fmt: skip
            cells = [src[0], ref.float() / 255.0, by_ref[0], by_label[0], truth.float() / 255.0]
            rows.append(torch.cat([c.clamp(0, 1) for c in cells], dim=-1))
            refs.append(pair.reference.key)
        grid = (torch.cat(rows, dim=-2) * 255).round().to(torch.uint8)
        side = grid.shape[-1] // len(COLUMNS)
        img = Image.fromarray(grid.permute(1, 2, 0).numpy())
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        head, margin = 14, 64
        canvas = Image.new("RGB", (img.width + margin, img.height + head), (255, 255, 255))
        canvas.paste(img, (margin, head))
        for j, name in enumerate(COLUMNS):
            _label(canvas, name, (margin + j * side * scale + 2, 2))
        for i, emotion in enumerate(emotions):
            _label(canvas, emotion, (2, head + i * side * scale + side * scale // 2 - 5))
        path = out_dir / f"{src_clip.key}.png"
        canvas.save(path)
        written.append(path)
        index.append({"image": path.name, "source": src_clip.key, "frame": k,
                      "emotions": list(emotions), "references": refs,
                      "columns": list(COLUMNS)})  # fmt: skip
    (out_dir / "gallery.json").write_text(json.dumps({"run": str(run_dir), "images": index},
                                                     indent=1) + "\n", encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: write the PNGs, print their paths.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        Exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="run folder with a finished spfem stage")
    p.add_argument("--out", required=True, help="output folder of the PNGs")
    p.add_argument("--clips", type=int, default=3, help="held-out source clips (3)")
    p.add_argument("--emotions", default=",".join(DEFAULT_EMOTIONS), help="comma-separated rows")
    p.add_argument("--frame", type=float, default=0.5, help="frame position in [0, 1] (0.5)")
    p.add_argument("--scale", type=int, default=3, help="enlargement (3)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        paths = gallery(args.run, args.out, clips=args.clips, frame=args.frame, scale=args.scale,
                        emotions=tuple(e.strip() for e in args.emotions.split(",") if e.strip()))
    except (FileNotFoundError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
