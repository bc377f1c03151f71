"""A complete run folder with randomly initialised weights, written without training.

For the generation tests and the generation benchmark: `generate.py` needs a run folder in
the layout `model.load_models` reads (see README.md, "The run folder"), but what it does
(decode, crop, edit, paste, encode) does not depend on trained weights. This writes one:

    <run_dir>/config.yaml            the config (first line: how a real run is made)
    <run_dir>/prepare/info.json      `prepare.shard_info(cfg)` of the config's shards
    <run_dir>/<stage>/model.safetensors + metrics.json + DONE   for audio_prior, clip,
                                     ccrl, cerl, spfem (written by `loop.finish_stage`)

Every stage's weights come from the recipe's own `model.build_*` (what training starts from),
so the keys and shapes are exactly what `model.load_*` expects. A freshly built generator
ignores its emotion code (FiLM starts at zero) and barely edits: its output is the source plus
`m * tanh(d)`, with the residual head `d` starting near 0 (copy the source) and the mask `m`
near 0.12. `film_std` makes the random generator code-dependent (random FiLM) and re-draws the
residual head's weights so the edit is visible; `mask_bias` opens the mask, so tests can tell
one code from another.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from config import Config
from configlib import save_config
from loop import finish_stage, write_json
from model import (
    build_audio_prior,
    build_content_encoder,
    build_emotion_encoder,
    build_emotion_prior,
    build_generator,
    cerl_state,
    stage_dir,
)
from torch import nn

__all__ = ["write_random_run"]


def _perturb_generator(generator: nn.Module, film_std: float, mask_bias: float,
                       seed: int) -> None:  # fmt: skip
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in generator.modules():
            film = getattr(module, "film", None)
            if isinstance(film, nn.Linear) and film_std > 0:
                film.weight.copy_(torch.randn(film.weight.shape, generator=gen) * film_std)
                film.bias.copy_(torch.randn(film.bias.shape, generator=gen) * film_std)
        head = generator.head
        head.bias[3] += mask_bias  # the mask channel (residual, mask split [3, 1])
        if film_std > 0:  # the residual starts near 0 (copy the source): make it visible
            w = head.weight[:3]
            w.copy_(torch.randn(w.shape, generator=gen) * 0.5 / w[0].numel() ** 0.5)


def write_random_run(
    cfg: Config,
    run_dir: str | Path,
    *,
    info: dict[str, Any] | None = None,
    seed: int = 0,
    film_std: float = 0.0,
    mask_bias: float = 0.0,
) -> Path:
    """Write a run folder whose every stage is complete, with random weights.

    Args:
        cfg: The config (its `data.root` must hold the shards when `info` is None).
        run_dir: The run folder to write (created).
        info: The `prepare/info.json` content; None: `prepare.shard_info(cfg)`.
        seed: Seed of the random initialisation.
        film_std: Standard deviation of random FiLM weights in the generator (0 = as built:
            the code has no effect).
        mask_bias: Added to the generator's mask logit (e.g. 4: edits cover most pixels).

    Returns:
        The run folder.
    """
    run_dir = Path(run_dir)
    if info is None:
        from prepare import shard_info

        info = shard_info(cfg)
    names = tuple(info["emotion_names"])
    fps = float(info["fps"])
    torch.manual_seed(seed)
    save_config(cfg, run_dir / "config.yaml",
                "python recipes/spfem/random_run.py (random weights, not trained)")  # fmt: skip
    (run_dir / "prepare").mkdir(parents=True, exist_ok=True)
    write_json(stage_dir(run_dir, "prepare") / "info.json", info)
    finish_stage(stage_dir(run_dir, "prepare"), None, {"random": True})
    audio = build_audio_prior(cfg, fps)
    prior = build_emotion_prior(cfg, names, trained_clip=False)
    content = build_content_encoder(cfg, audio.dim)
    emotion = build_emotion_encoder(cfg, prior)
    generator = build_generator(cfg, prior.dim)
    _perturb_generator(generator, film_std, mask_bias, seed)
    meta = {"random": True}
    states = {
        "audio_prior": audio.state_dict() if cfg.audio_prior.kind == "phoneme" else None,
        "clip": prior.clip.state_dict() if cfg.clip.kind == "synthtalk" else None,
        "ccrl": content.state_dict(),
        "cerl": cerl_state(SimpleNamespace(encoder=emotion, prior=prior)),  # type: ignore[arg-type]
        "spfem": generator.state_dict(),
    }
    for stage, state in states.items():
        finish_stage(stage_dir(run_dir, stage), state, {"random": True}, meta)
    return run_dir
