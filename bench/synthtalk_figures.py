"""The pictures of the SynthTalk docs page (docs/data/img/synthtalk-*.png), drawn with PIL.

    .venv/bin/python bench/synthtalk_figures.py [--out docs/data/img] [--size 128]

1. `synthtalk-emotions.png`: one speaker in MEAD's eight emotions at level 3 (a still frame,
   mouth at rest, no nuisance), with the names.
2. `synthtalk-counterfactuals.png`: one frame of a real clip (happy, level 3, mid-sentence)
   re-rendered from its shard metadata in the eight emotions
   (`decouple.data.synthtalk.corpus.render`), same speaker, speech timing, mouth and nuisance.
3. `synthtalk-mouth.png`: the clip's audio waveform with the mouth-opening track (`mouth[:, 0]`)
   drawn over it at the frame times i / fps, and the phoneme labels.

Everything is generated here (a one-speaker corpus in a temporary folder), deterministic.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from decouple.data.registry import MEAD
from decouple.data.synthtalk.corpus import SynthTalkConfig, generate, load_clip, render
from decouple.data.synthtalk.expressions import expression
from decouple.data.synthtalk.render import render_frames
from decouple.data.synthtalk.speakers import sample_speakers

ROOT = Path(__file__).resolve().parents[1]


def _tile(frames: list[np.ndarray], labels: list[str], cols: int) -> Image.Image:
    h, w = frames[0].shape[:2]
    pad = 14
    rows = (len(frames) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (f, label) in enumerate(zip(frames, labels, strict=True)):
        x, y = (i % cols) * w, (i // cols) * (h + pad)
        sheet.paste(Image.fromarray(f), (x, y))
        draw.text((x + 3, y + h + 1), label, fill="black")
    return sheet


def _hwc(frame: torch.Tensor) -> np.ndarray:
    return frame.permute(1, 2, 0).numpy()


def emotions_figure(size: int, seed: int) -> Image.Image:
    """One speaker in the eight emotions, level 3, still and at rest."""
    sp = sample_speakers(1, seed)[0]
    frames, labels = [], []
    for emotion in MEAD.names:
        level = 1 if emotion == "neutral" else 3
        out = render_frames(sp, expression(emotion, level, sp), np.zeros((1, 4), np.float32),
                            None, size)
        frames.append(_hwc(out.frames[0]))
        labels.append(emotion)
    return _tile(frames, labels, cols=4)


def corpus_clip(tmp: Path, size: int, seed: int) -> object:
    cfg = SynthTalkConfig(speakers=1, sentences=1, conditions=(("happy", 3),), size=size,
                          seed=seed, workers=1)
    generate(tmp, cfg, progress=False)
    return load_clip(tmp, "synthtalk-S000-happy-3-001")


def counterfactual_figure(clip: object) -> Image.Image:
    """A frame where the mouth is open, re-rendered in the eight emotions."""
    params = clip.extras["synthtalk"]
    mouth = clip.arrays["mouth"]
    i = int(np.argmax(mouth[:, 0]))
    frames, labels = [], []
    for emotion in MEAD.names:
        out = render(params, emotion=emotion)
        frames.append(_hwc(out.frames[i]))
        labels.append(emotion + (" (source)" if emotion == params["emotion"] else ""))
    return _tile(frames, labels, cols=4)


def mouth_figure(clip: object, width: int = 720, height: int = 200) -> Image.Image:
    """Waveform (grey) with the mouth-opening track (red) at the frame times."""
    from decouple.data.io import read_audio

    params = clip.extras["synthtalk"]
    wave = read_audio(clip.audio).waveform.numpy()
    sr = params["timing"]["sample_rate"]
    fps = params["fps"]
    mouth = clip.arrays["mouth"][:, 0]
    duration = len(wave) / sr
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    top, bottom = 18, height - 22
    mid = (top + bottom) / 2

    def px(t: float) -> float:
        return 4 + (width - 8) * t / duration

    # waveform: min/max per pixel column
    cols = width - 8
    edges = np.linspace(0, len(wave), cols + 1).astype(int)
    scale = (bottom - top) / 2 / max(float(np.abs(wave).max()), 1e-6)
    for c in range(cols):
        seg = wave[edges[c]:max(edges[c + 1], edges[c] + 1)]
        draw.line([(4 + c, mid - seg.max() * scale), (4 + c, mid - seg.min() * scale)],
                  fill=(170, 170, 170))
    # mouth opening, 0 at the bottom line, 1 at the top line
    pts = [(px(i / fps), bottom - m * (bottom - top)) for i, m in enumerate(mouth)]
    draw.line(pts, fill=(200, 30, 30), width=2)
    for p in pts:
        draw.ellipse([p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5], fill=(200, 30, 30))
    # phoneme labels
    for name, a, b in params["timing"]["phonemes"]:
        if name != "sil":
            draw.text((px((a + b) / 2) - 4, height - 18), name, fill="black")
        draw.line([(px(a), bottom + 1), (px(a), bottom + 4)], fill="black")
    draw.text((4, 2), f"\"{params['sentence']['text']}\" ({params['emotion']}, level "
                      f"{params['level']}): waveform (grey), mouth opening per frame (red)",
              fill="black")
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "data" / "img")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    emotions_figure(args.size, args.seed).save(args.out / "synthtalk-emotions.png", optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = corpus_clip(Path(tmp), args.size, args.seed)
        counterfactual_figure(clip).save(args.out / "synthtalk-counterfactuals.png",
                                         optimize=True)
        mouth_figure(clip).save(args.out / "synthtalk-mouth.png", optimize=True)
    for name in ("emotions", "counterfactuals", "mouth"):
        p = args.out / f"synthtalk-{name}.png"
        print(f"{p} ({p.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
