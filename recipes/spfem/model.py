"""Build the recipe's models from a config, and load a stage's trained weights.

The run folder (see README.md) holds one folder per stage; a stage's trained weights are
`<run_dir>/<stage>/model.safetensors`, complete once `<run_dir>/<stage>/DONE` exists:

| stage | `model.safetensors` holds | loaded by |
|---|---|---|
| `audio_prior` | `PhonemeAudioPrior` state dict | `load_audio_prior` |
| `clip` | the open_clip model's state dict (tiny SynthTalk CLIP) | `build_emotion_prior` |
| `ccrl` | `VisualContentEncoder` state dict | `load_content_encoder` |
| `cerl` | `encoder.*` (EmotionEncoder) and `prior.ctx` (prompt context) | `load_emotion_encoder` |
| `spfem` | `Generator` state dict (+ `discriminator.safetensors`) | `load_generator` |

`build_*` make a model with fresh (or pretrained-file) weights as the config says; `load_*`
also fill in the weights a stage trained and return the model frozen, in eval mode.
[load_models][model.load_models] gives everything generation and evaluation need.

This is recipe code: scripts import it from their folder (`sys.path` holds the script's
folder when it runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from config import Config
from configlib import load_config
from generator import Generator
from torch import Tensor, nn

from decouple.checkpoint import load_weights, read_weights
from decouple.encoders import (
    CERL,
    ConvBackbone,
    EmotionEncoder,
    VisualContentEncoder,
    freeze,
    iresnet50,
)
from decouple.priors import (
    TINY_CLIP_CONFIG,
    EmotionPromptPrior,
    MelPrior,
    PhonemeAudioPrior,
    Wav2Vec2Prior,
    project_to_prior,
)

__all__ = [
    "DONE",
    "WEIGHTS",
    "Models",
    "build_audio_prior",
    "build_content_encoder",
    "build_emotion_encoder",
    "build_emotion_prior",
    "build_generator",
    "emotion_code",
    "is_done",
    "load_audio_prior",
    "load_content_encoder",
    "load_emotion_encoder",
    "load_generator",
    "load_models",
    "num_phonemes",
    "reference_code",
    "stage_dir",
    "stage_weights",
]

WEIGHTS = "model.safetensors"
"""File name of a stage's trained weights in its folder."""
DONE = "DONE"
"""Marker written last when a stage is complete."""


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    """The folder of a stage in a run: `<run_dir>/<stage>`.

    Args:
        run_dir: The run folder.
        stage: Stage name.

    Returns:
        The path (not created).

    Examples:
        >>> stage_dir("runs/demo", "ccrl").as_posix()
        'runs/demo/ccrl'
    """
    return Path(run_dir) / stage


def is_done(run_dir: str | Path, stage: str) -> bool:
    """Whether a stage finished (its `DONE` marker exists).

    Args:
        run_dir: The run folder.
        stage: Stage name.

    Returns:
        True when complete.

    Examples:
        >>> is_done("/nonexistent", "ccrl")
        False
    """
    return (stage_dir(run_dir, stage) / DONE).is_file()


def stage_weights(run_dir: str | Path, stage: str) -> Path:
    """The trained weights of a finished stage.

    Args:
        run_dir: The run folder.
        stage: Stage name.

    Returns:
        `<run_dir>/<stage>/model.safetensors`.

    Raises:
        FileNotFoundError: If the stage has not finished (the message says how to run it).
    """
    path = stage_dir(run_dir, stage) / WEIGHTS
    if not is_done(run_dir, stage) or not path.is_file():
        raise FileNotFoundError(
            f"{path}: the {stage!r} stage of {run_dir} has not finished (no {DONE} marker); run "
            f"`accelerate launch recipes/spfem/train.py --config <its config> --stages {stage}`"
        )
    return path


def num_phonemes() -> int:
    """Size of SynthTalk's phoneme inventory (the `phoneme_id` labels).

    Returns:
        The number of phoneme classes.
    """
    from decouple.data.synthtalk.visemes import PHONEMES

    return len(PHONEMES)


# ------------------------------------------------------------------------------------ priors


def _recipe_path(path: str) -> Path:
    """A config's file path: as given, else relative to the repository (the configs' own
    paths are written from the repository root, e.g. `recipes/spfem/configs/x.json`)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return Path(__file__).resolve().parents[2] / p


def build_audio_prior(cfg: Config, fps: float, *, pretrained: bool = True) -> nn.Module:
    """The audio prior the config names, untrained (`phoneme`) or from its file (`wav2vec2`).

    Args:
        cfg: The config (`audio_prior`).
        fps: Video frame rate of the corpus.
        pretrained: Load `audio_prior.weights` (`wav2vec2`); False builds the same
            architecture with random weights (to inspect a config without its files, e.g.
            on the meta device).

    Returns:
        An `AudioPrior` (`.dim` = its feature size).
    """
    a = cfg.audio_prior
    if a.kind == "phoneme":
        return PhonemeAudioPrior(num_phonemes(), dim=a.dim, width=a.width, fps=fps)
    if a.kind == "mel":
        return MelPrior(context=a.mel_context, fps=fps)
    if not pretrained:
        from torchaudio.models import wav2vec2_model

        from decouple.priors import WAV2VEC2_ARCHITECTURES

        model = wav2vec2_model(**WAV2VEC2_ARCHITECTURES[a.architecture].params)
        return Wav2Vec2Prior.from_model(model, layer=a.layer, fps=fps)
    return Wav2Vec2Prior(a.weights, architecture=a.architecture, layer=a.layer, fps=fps)


def load_audio_prior(cfg: Config, run_dir: str | Path, fps: float) -> nn.Module:
    """The frozen audio prior of a run (the trained `audio_prior` stage for `phoneme`).

    Args:
        cfg: The config.
        run_dir: The run folder.
        fps: Video frame rate.

    Returns:
        The prior, frozen and in eval mode.
    """
    prior = build_audio_prior(cfg, fps)
    if cfg.audio_prior.kind == "phoneme":
        load_weights(prior, stage_weights(run_dir, "audio_prior"))
    return freeze(prior)


def build_emotion_prior(
    cfg: Config,
    emotion_names: tuple[str, ...] | list[str],
    run_dir: str | Path | None = None,
    *,
    trained_clip: bool = True,
    freeze_clip: bool = True,
    pretrained: bool = True,
) -> EmotionPromptPrior:
    """The emotion prompt prior on the config's CLIP.

    Args:
        cfg: The config (`clip`, `cerl.n_ctx`).
        emotion_names: Emotion names in row order (the shard index's emotion set).
        run_dir: The run folder; with `trained_clip`, the tiny CLIP's weights come from its
            `clip` stage.
        trained_clip: Load the `clip` stage's weights (`kind: synthtalk`); False gives a
            random tiny CLIP (what the `clip` stage starts from).
        freeze_clip: Freeze the CLIP towers (False while the `clip` stage trains them).
        pretrained: Load `clip.weights` (`kind: pretrained`); False builds the named
            architecture with random weights on the current default device (e.g. meta).

    Returns:
        The prior (its prompt context untrained; `load_emotion_encoder` loads CERL's).
    """
    c = cfg.clip
    kwargs: dict[str, Any] = {"n_ctx": cfg.cerl.n_ctx, "freeze_clip": freeze_clip}
    if c.kind == "pretrained" and not pretrained:
        import open_clip

        device = torch.empty(0).device  # the default device (e.g. inside `torch.device("meta")`)
        model = open_clip.create_model(c.architecture, pretrained=None, device=device)
        return EmotionPromptPrior(model, emotion_names,
                                  tokenizer=open_clip.get_tokenizer(c.architecture), **kwargs)
    if c.kind == "pretrained":
        return EmotionPromptPrior.from_pretrained(c.architecture, c.weights, emotion_names,
                                                  **kwargs)  # fmt: skip
    weights = None
    if trained_clip:
        if run_dir is None:
            raise ValueError("build_emotion_prior: trained_clip=True needs the run_dir")
        weights = stage_weights(run_dir, "clip")
    model_config = _recipe_path(c.model_config) if c.model_config else TINY_CLIP_CONFIG
    return EmotionPromptPrior.from_config(model_config, emotion_names, weights=weights, **kwargs)


# ---------------------------------------------------------------------------------- encoders


def build_content_encoder(
    cfg: Config, audio_dim: int, *, pretrained: bool = True
) -> VisualContentEncoder:
    """The CCRL content encoder Ec the config names (ConvBackbone or ArcFace IResNet-50).

    Args:
        cfg: The config (`ccrl`).
        audio_dim: The audio prior's feature size.
        pretrained: Load `ccrl.arcface_weights` (`iresnet50`); False: random weights.

    Returns:
        The encoder; an IResNet-50 backbone is loaded from `ccrl.arcface_weights` and frozen.
    """
    c = cfg.ccrl
    if c.backbone == "iresnet50":
        weights = c.arcface_weights if pretrained else None
        backbone: nn.Module = iresnet50(weights, stop_at="layer3")
        return VisualContentEncoder(backbone, audio_dim, c.dim, heads=c.heads,
                                    freeze_backbone=True, audio_proj=c.audio_proj)  # fmt: skip
    backbone = ConvBackbone(tuple(c.channels))
    return VisualContentEncoder(backbone, audio_dim, c.dim, heads=c.heads,
                                audio_proj=c.audio_proj)  # fmt: skip


def build_emotion_encoder(cfg: Config, prior: EmotionPromptPrior) -> EmotionEncoder:
    """The CERL emotion encoder Ee in the prior's space (dim = the prior's D).

    Args:
        cfg: The config (`cerl`).
        prior: The emotion prompt prior (its CLIP image path is the `clip` tower).

    Returns:
        The encoder.
    """
    c = cfg.cerl
    if c.tower == "clip":
        return EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=prior.dim,
                              hidden=c.hidden, residual=True)  # fmt: skip
    tower = ConvBackbone(tuple(c.channels))
    return EmotionEncoder(tower, tower_dim=tower.out_channels, dim=prior.dim, hidden=c.hidden)


def build_generator(cfg: Config, code_dim: int) -> Generator:
    """The SPFEM generator.

    Args:
        cfg: The config (`spfem`).
        code_dim: Emotion code size (the prior's D).

    Returns:
        The generator.
    """
    return Generator(code_dim=code_dim, channels=cfg.spfem.channels, stages=cfg.spfem.levels)


def load_content_encoder(cfg: Config, run_dir: str | Path, audio_dim: int) -> VisualContentEncoder:
    """The trained content encoder of a run (the `ccrl` stage), frozen.

    Args:
        cfg: The config.
        run_dir: The run folder.
        audio_dim: The audio prior's feature size.

    Returns:
        The encoder, frozen and in eval mode.
    """
    enc = build_content_encoder(cfg, audio_dim)
    load_weights(enc, stage_weights(run_dir, "ccrl"))
    return freeze(enc)


def cerl_state(module: CERL) -> dict[str, Tensor]:
    """What the `cerl` stage saves: the encoder's state and the prompt context.

    Args:
        module: The trained CERL module.

    Returns:
        `{"encoder.<key>": ..., "prior.ctx": ...}` (the frozen CLIP towers are not saved).
    """
    state = {f"encoder.{k}": v for k, v in module.encoder.state_dict().items()}
    state["prior.ctx"] = module.prior.ctx.detach()
    return state


def load_emotion_encoder(
    cfg: Config, run_dir: str | Path, prior: EmotionPromptPrior
) -> EmotionEncoder:
    """The trained emotion encoder of a run (the `cerl` stage) and its prompt context, frozen.

    Args:
        cfg: The config.
        run_dir: The run folder.
        prior: The run's emotion prior; its prompt context is loaded in place and frozen.

    Returns:
        The encoder, frozen and in eval mode.
    """
    enc = build_emotion_encoder(cfg, prior)
    path = stage_weights(run_dir, "cerl")
    state, _ = read_weights(path)
    load_weights(enc, {k[len("encoder."):]: v for k, v in state.items()
                       if k.startswith("encoder.")})  # fmt: skip
    if "prior.ctx" not in state:
        raise ValueError(f"{path}: no 'prior.ctx' entry (the prompt context CERL trained)")
    with torch.no_grad():
        prior.ctx.copy_(state["prior.ctx"].to(prior.ctx))
    freeze(prior)
    return freeze(enc)


def load_generator(cfg: Config, run_dir: str | Path, code_dim: int) -> Generator:
    """The trained generator of a run (the `spfem` stage), frozen.

    Args:
        cfg: The config.
        run_dir: The run folder.
        code_dim: Emotion code size.

    Returns:
        The generator, frozen and in eval mode.
    """
    gen = build_generator(cfg, code_dim)
    load_weights(gen, stage_weights(run_dir, "spfem"))
    return freeze(gen)


# ------------------------------------------------------------------------------ whole system


@dataclass
class Models:
    """Every trained part of a run, frozen (what generation and evaluation use).

    Attributes:
        config: The run's merged config.
        emotion_names: Emotion names of the training shards, in id order.
        fps: Video frame rate of the training shards.
        size: Frame side the models were trained at.
        audio_prior: The audio prior.
        prior: The emotion prompt prior (trained prompt context).
        content_encoder: Ec.
        emotion_encoder: Ee.
        generator: G (None if the `spfem` stage has not run).
    """

    config: Config
    emotion_names: tuple[str, ...]
    fps: float
    size: int
    audio_prior: nn.Module
    prior: EmotionPromptPrior
    content_encoder: VisualContentEncoder
    emotion_encoder: EmotionEncoder
    generator: Generator | None

    def to(self, device: torch.device | str) -> Models:
        """Move every model to a device.

        Args:
            device: The device.

        Returns:
            self.
        """
        for m in (self.audio_prior, self.prior, self.content_encoder, self.emotion_encoder,
                  self.generator):  # fmt: skip
            if m is not None:
                m.to(device)
        return self


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The run's data facts written by the `prepare` stage (`<run_dir>/prepare/info.json`).

    Args:
        run_dir: The run folder.

    Returns:
        `{"root", "emotion_names", "fps", "sample_rate", "size", ...}`.

    Raises:
        FileNotFoundError: If `prepare` has not run.
    """
    path = stage_dir(run_dir, "prepare") / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the run has no prepared data (run the 'prepare' stage)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_models(run_dir: str | Path, config: Config | None = None) -> Models:
    """Load every trained part of a run, frozen, from its folder.

    Args:
        run_dir: The run folder (its `config.yaml` is used unless `config` is given).
        config: The config, if not the run's own.

    Returns:
        The [Models][model.Models] (the generator is None before the `spfem` stage).
    """
    run_dir = Path(run_dir)
    cfg = config if config is not None else load_config(Config, run_dir / "config.yaml")
    info = read_run_info(run_dir)
    names = tuple(info["emotion_names"])
    fps = float(info["fps"])
    audio = load_audio_prior(cfg, run_dir, fps)
    prior = build_emotion_prior(cfg, names, run_dir)
    content = load_content_encoder(cfg, run_dir, audio.dim)
    emotion = load_emotion_encoder(cfg, run_dir, prior)
    gen = load_generator(cfg, run_dir, prior.dim) if is_done(run_dir, "spfem") else None
    return Models(cfg, names, fps, int(info["size"]), audio, prior, content, emotion, gen)


def reference_code(embeddings: Tensor, rows: Tensor, cfg: Config) -> Tensor:
    """A reference clip's emotion code from its frames' emotion-encoder embeddings.

    The one rule training (`stages.SPFEMObjective.codes`) and generation (`emotion_code`)
    share: the mean embedding, renormalised, and with `spfem.reference_code: prior` read
    through the prompt prior's rows at CERL's temperature (`decouple.priors.project_to_prior`).

    Args:
        embeddings: (..., n, D) embeddings of a clip's n frames.
        rows: (K, D) the prompt prior's rows.
        cfg: The run's config (`spfem.reference_code`, `cerl.temperature`).

    Returns:
        (..., D) unit-norm codes (float32).

    Examples:
        >>> cfg = Config()
        >>> reference_code(torch.eye(3)[:2], torch.eye(3), cfg).shape
        torch.Size([3])
    """
    z = F.normalize(embeddings.float().mean(-2), dim=-1)
    if cfg.spfem.reference_code == "prior":
        z = project_to_prior(z, rows, cfg.cerl.temperature)
    return z


def emotion_code(
    models: Models,
    *,
    reference: Tensor | None = None,
    label: str | int | None = None,
    text: str | None = None,
) -> Tensor:
    """A target emotion code from a reference, a label or a free-text description.

    Args:
        models: The run's models.
        reference: Reference frames (n, 3, h, w) RGB (uint8 or float in [0, 1]): the mean
            of their emotion-encoder embeddings, renormalised (read through the prompt
            prior's rows with `spfem.reference_code: prior`).
        label: An emotion name (or its id): the prompt prior's row.
        text: A description: the prior's text encoding.

    Returns:
        A unit-norm code (1, D).

    Raises:
        ValueError: Unless exactly one source is given, or for an unknown emotion.
    """
    given = [x is not None for x in (reference, label, text)]
    if sum(given) != 1:
        raise ValueError("emotion_code: give exactly one of reference, label, text")
    with torch.no_grad():
        if reference is not None:
            z = reference_code(models.emotion_encoder(reference), models.prior.prior(),
                               models.config)[None]  # fmt: skip
        elif text is not None:
            z = models.prior.encode_text([text])
        else:
            if isinstance(label, str):
                if label not in models.emotion_names:
                    raise ValueError(f"unknown emotion {label!r}; this run knows "
                                     f"{list(models.emotion_names)}")  # fmt: skip
                label = models.emotion_names.index(label)
            z = models.prior.prior()[int(label)][None]
    return F.normalize(z.float(), dim=-1)
