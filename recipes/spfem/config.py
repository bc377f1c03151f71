"""The SPFEM recipe's configuration: one dataclass tree, defaults in one visible place.

A YAML file under `configs/` maps onto [Config][config.Config] (unknown keys are rejected,
values are type-checked by `configlib`); `key=value` items on the command line override it.
The defaults below are the demo's (SynthTalk at 64 px on a 2-core CPU); `configs/demo.yaml`
states them explicitly.

    Config
      run_dir, seed, stages
      data      corpus (synthtalk | mead | ravdess), shard root, splits, SynthTalk generation,
                conversion of real corpora, window sizes
      runtime   mixed precision, gradient accumulation, threads, save / log / sample cadence,
                debug switches (hard exit after a save, injected NaN)
      audio_prior  phoneme (trained on SynthTalk) | wav2vec2 (local file, layer) | mel
      clip         synthtalk (tiny open_clip trained on SynthTalk captions) | pretrained
      ccrl         content encoder: conv | iresnet50 (+ ArcFace weights), attention sizes
      cerl         emotion encoder: clip tower | conv tower, prompt context
      spfem        generator sizes, loss weights, variant switches
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from configlib import ConfigError

__all__ = [
    "STAGES",
    "AudioPriorConfig",
    "CCRLConfig",
    "CERLConfig",
    "ClipConfig",
    "Config",
    "ConvertConfig",
    "DataConfig",
    "LossWeights",
    "RuntimeConfig",
    "SPFEMConfig",
    "SynthTalkConfig",
    "check_config",
]

STAGES: tuple[str, ...] = ("prepare", "audio_prior", "clip", "ccrl", "cerl", "spfem")
"""Every stage, in the order they run."""

SYNTHTALK_ONLY: tuple[str, ...] = ("audio_prior", "clip")
"""Stages that train the offline stand-ins of pretrained models; they need SynthTalk labels."""


@dataclass
class SynthTalkConfig:
    """SynthTalk generation (`python -m decouple.data.synthtalk`), when its shards are missing.

    Attributes:
        speakers: Identities (every fifth is held out for the test split; with 2-4 speakers
            the last one).
        sentences: Sentences per speaker (each in every emotion: parallel groups).
        emotions: Emotion names (empty = MEAD's eight).
        levels: Intensity levels of the non-neutral emotions (neutral has level 1).
        size: Frame side in pixels (64, 128 or 256).
        fps: Video frame rate (25 or 30).
        seed: Generation seed.
        workers: Generation processes.
    """

    speakers: int = 10
    sentences: int = 6
    emotions: tuple[str, ...] = ()
    levels: tuple[int, ...] = (3,)
    size: int = 64
    fps: int = 25
    seed: int = 0
    workers: int = 2


@dataclass
class ConvertConfig:
    """Conversion of a real corpus (`decouple.data.convert`): processing options.

    Attributes:
        source: The corpus root (MEAD / RAVDESS folders, as downloaded).
        split: The converter's split rule (MEAD: `spfem`, `official`, `speakers`, `none`;
            RAVDESS: `spfem`, `none`).
        emotion_set: Emotion set of the shards (`mead7` for the SPFEM protocol on MEAD,
            `ravdess` for RAVDESS).
        face: Face detector for the crops (`haar`, `dlib`, `fixed`).
        size: Crop side in pixels.
        fps: Output frame rate.
        workers: Conversion processes.
    """

    source: str = ""
    split: str = "spfem"
    emotion_set: str = "mead7"
    face: str = "haar"
    size: int = 256
    fps: float = 25.0
    workers: int = 0


@dataclass
class DataConfig:
    """Where the shards are and how batches are cut.

    Attributes:
        corpus: `synthtalk` (generated when missing), `mead` or `ravdess` (converted from
            `convert.source` when missing).
        root: Shard directory; empty = `<run_dir>/data`.
        train_split: Split the stages train on.
        test_split: Split of held-out speakers (probes).
        workers: DataLoader worker processes per rank (0 = decode in the training process).
        shuffle_buffer: Units in the reader's shuffle buffer.
        synthtalk: SynthTalk generation settings.
        convert: Real-corpus conversion settings.
    """

    corpus: Literal["synthtalk", "mead", "ravdess"] = "synthtalk"
    root: str = ""
    train_split: str = "train"
    test_split: str = "test"
    workers: int = 0
    shuffle_buffer: int = 32
    synthtalk: SynthTalkConfig = field(default_factory=SynthTalkConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)


@dataclass
class RuntimeConfig:
    """How the loop runs: precision, accumulation, threads, cadence, debug switches.

    Attributes:
        mixed_precision: `no`, `fp16` (GPU) or `bf16`; passed to `accelerate.Accelerator`.
        gradient_accumulation: Micro-batches per optimizer step.
        threads: torch intra-op threads per process (0 = the machine's cores divided by the
            processes on it). accelerate sets one thread per process by default; this wins.
        cpu: Force the CPU even when a GPU is present.
        save_every: Steps between `save_state` checkpoints (0 = only at the end).
        log_every: Steps between logged scalars.
        sample_every: Steps between SPFEM sample grids (0 = none).
        keep_states: Complete training states kept per stage (older ones are deleted only
            after a newer one is in place).
        progress: Show tqdm progress bars (main process).
        tensorboard: Log scalars with accelerate's TensorBoard tracker (needs `tensorboard`).
        debug_exit_after_save: Hard-exit the process right after the `save_state` of this
            step (0 = off); for the kill-and-resume test.
        debug_nan_step: Make the loss NaN at this step (0 = off); for the NaN-stop test.
    """

    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_accumulation: int = 1
    threads: int = 0
    cpu: bool = False
    save_every: int = 100
    log_every: int = 10
    sample_every: int = 100
    keep_states: int = 1
    progress: bool = True
    tensorboard: bool = True
    debug_exit_after_save: int = 0
    debug_nan_step: int = 0


@dataclass
class AudioPriorConfig:
    """The audio prior of CCRL (and of content consistency), and its SynthTalk pre-training.

    Attributes:
        kind: `phoneme` (PhonemeAudioPrior, trained here on SynthTalk's per-frame phoneme
            ids), `wav2vec2` (a layer of wav2vec 2.0 from a local file) or `mel` (log-mel
            windows, no training).
        weights: wav2vec 2.0 state-dict file (`kind: wav2vec2`).
        architecture: wav2vec 2.0 architecture name (`xlsr53`, `base`, ...).
        layer: wav2vec 2.0 transformer layer (CDRL: 20 of XLSR-53).
        mel_context: Log-mel frames per video frame (`kind: mel`).
        dim: PhonemeAudioPrior feature size.
        width: PhonemeAudioPrior channels.
        steps: Pre-training steps (`kind: phoneme`).
        batch_size: Windows per batch.
        window: Frames per window.
        lr: Adam learning rate.
    """

    kind: Literal["phoneme", "wav2vec2", "mel"] = "phoneme"
    weights: str = ""
    architecture: str = "xlsr53"
    layer: int = 20
    mel_context: int = 4
    dim: int = 64
    width: int = 64
    steps: int = 150
    batch_size: int = 16
    window: int = 25
    lr: float = 3e-3


@dataclass
class ClipConfig:
    """The vision-language model under the emotion prior.

    Attributes:
        kind: `synthtalk` (the tiny open_clip config, trained here on SynthTalk frames and
            captions: the offline stand-in for pretrained CLIP) or `pretrained` (a named
            open_clip architecture with weights from a local file).
        architecture: open_clip architecture (`kind: pretrained`), e.g. `ViT-B-32`.
        weights: Local state-dict file of that architecture (`kind: pretrained`).
        model_config: open_clip JSON config (`kind: synthtalk`); empty = the tiny config
            shipped with decouple. The demo uses `configs/synthtalk-clip.json` (the same
            sizes with 8-px patches and average pooling). A relative path that does not
            exist from the working directory is taken from the repository root.
        steps: Training steps (`kind: synthtalk`).
        batch_size: Frames (with their captions) per batch.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    kind: Literal["synthtalk", "pretrained"] = "synthtalk"
    architecture: str = "ViT-B-32"
    weights: str = ""
    model_config: str = ""
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.1


@dataclass
class CCRLConfig:
    """CCRL: the audio-queried visual content encoder.

    Attributes:
        backbone: `conv` (ConvBackbone trained from scratch) or `iresnet50` (ArcFace
            IResNet-50 cut after layer 3, frozen, from `arcface_weights`).
        arcface_weights: insightface IResNet-50 state-dict file (`backbone: iresnet50`).
        channels: ConvBackbone stage channels.
        dim: Content embedding size.
        heads: Attention heads.
        audio_proj: A trained per-frame projection of the audio prior's features to this
            size before the attention (CDRL: wav2vec 2.0's 1024 -> 512); 0: none.
        steps: Training steps.
        batch_size: Parallel groups per batch (each gives `emotions` x `window` frames).
        emotions: Renditions (emotions) per group.
        window: Aligned frames per rendition.
        lr: Adam learning rate.
        temperature: EmotionAwareNCE temperature.
        probe_windows: Windows of held-out speakers embedded for the probes (0 = no probe).
    """

    backbone: Literal["conv", "iresnet50"] = "conv"
    arcface_weights: str = ""
    channels: tuple[int, ...] = (16, 32, 64)
    dim: int = 64
    heads: int = 2
    audio_proj: int = 0
    steps: int = 150
    batch_size: int = 2
    emotions: int = 4
    window: int = 4
    lr: float = 1e-3
    temperature: float = 0.07
    probe_windows: int = 48


@dataclass
class CERLConfig:
    """CERL: the emotion encoder guided by the emotion prompt prior.

    Attributes:
        tower: `clip` (the prior's frozen CLIP image tower + a residual MLP head) or `conv`
            (a ConvBackbone trained from scratch + an MLP head).
        channels: ConvBackbone channels (`tower: conv`).
        hidden: Hidden width of the head.
        n_ctx: Learnable context tokens per emotion prompt.
        steps: Training steps.
        emotions: Emotions per batch (E).
        per_emotion: Clips per emotion (C), each of other content.
        window: Frames per clip window.
        frames_per_clip: Frames of each window used (evenly spaced).
        lr: Adam learning rate.
        temperature: EmotionAugmentedNCE temperature.
        prior_weight: Weight of the prior term.
        probe_windows: Windows of held-out speakers embedded for the probes (0 = no probe).
    """

    tower: Literal["clip", "conv"] = "clip"
    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    n_ctx: int = 4
    steps: int = 150
    emotions: int = 4
    per_emotion: int = 2
    window: int = 4
    frames_per_clip: int = 2
    lr: float = 1e-3
    temperature: float = 0.07
    prior_weight: float = 1.0
    probe_windows: int = 48


@dataclass
class LossWeights:
    """Weights of the generator's losses (0 turns a term off).

    Attributes:
        reconstruction: Pixel distance (`spfem.pixel_loss`) of G(source, own emotion code)
            against the source.
        aligned: Pixel distance of G(source, target code) against the DTW-aligned frames of
            the parallel rendition in the target emotion (the same speaker and sentence).
        cycle: Pixel distance of G(G(source, target), source code) against the source.
        content: CDRL ContentConsistency through the frozen content encoder (source audio).
        emotion: CDRL EmotionConsistency through the frozen emotion encoder and the prior.
        adversarial: Hinge GAN term with a patch discriminator (0 = no discriminator).
        mask: Mean of the edit mask (keeps edits local).
    """

    reconstruction: float = 1.0
    aligned: float = 10.0
    cycle: float = 0.0
    content: float = 10.0
    emotion: float = 0.3
    adversarial: float = 0.0
    mask: float = 0.01


@dataclass
class SPFEMConfig:
    """The SPFEM generator and its training.

    Attributes:
        channels: Generator width of the first stage.
        levels: Generator down-sampling stages.
        steps: Training steps.
        batch_size: Parallel groups per batch (2 renditions each: source and target).
        window: Aligned frames per rendition. 8 groups of 1 frame learn the edit faster than
            4 groups of 2 consecutive, nearly identical frames at the same cost per step.
        lr: Adam learning rate (generator and discriminator).
        betas: Adam's (beta1, beta2).
        schedule: Learning-rate schedule over the steps: `constant` or `cosine` (to 0).
        aligned_match: How each DTW-aligned target frame is brought onto its source frame
            before the aligned L1 (parallel renditions are recorded with other head motion
            and light, which the generator should not learn to reproduce): `none`, `gain`
            (one least-squares brightness gain per frame) or `similarity` (a global shift
            and rotation fitted by Gauss-Newton on blurred frames, then the gain).
        emotion_anchor: `aligned`: the emotion term may only move each output pixel toward
            the (matched) aligned target, its gradient is dropped where it would push a pixel
            away from it: the frozen emotion encoder chooses which of the real differences to
            the parallel rendition matter, the rendition bounds how far a pixel moves, and no
            texture the encoder never saw (the stripes of the free loss) can lower it. `none`:
            the plain gradient.
        pixel_loss: The distance of the pixel terms (reconstruction, aligned, cycle): `l1`
            (mean absolute error) or `rmse` (root of the mean squared error, on L1's scale so
            the weights keep their meaning). L1 is minimised by the per-pixel median of the
            targets: where the target carries noise of the same size as the edit (a decoded
            video at crf 18 and 64 px differs from its render by a mean 0.011; emotions move
            0.007-0.012), the median of an edit the network cannot yet place is no edit, and
            an L1-trained generator stays at copy-the-source for hundreds of steps. RMSE is
            minimised by the mean and its gradient shrinks with the residual, so noise pixels
            pull little and the edit starts at once (bench/generator_fit.py --target truth).
            On the real, DTW-aligned targets L1 is better (demo budget, the defaults: 59.5 %
            against 44.0 % label-driven target accuracy): the mean of their head-motion and
            timing residue is a blur.
        emotion_margin: Hinge of the emotion term: max(0, EmotionConsistency - margin), so
            the generator stops pushing the frozen emotion encoder once the output is that
            close to the reference (0 = the plain loss).
        pairs: Which two renditions of a parallel group form a training pair: `any` (two
            emotions drawn at random) or `reference` (the group's reference rendition, the
            neutral one, and one other: the edits the SPFEM protocol asks for, neutral to
            an emotion, and back).
        reverse_prob: Probability per group that the edit runs from the emotion rendition back
            to the group's reference (neutral) one instead of from it (the protocol's
            direction). 0 (default) trains only neutral to emotion, 0.5 both equally. Measured
            (runs/demo, 1000 steps, held-out speakers, label-driven target-emotion accuracy
            with label codes and 8 x 1-frame groups): 0 gave 59.5 % and 59.4 % (2 seeds),
            0.5 gave 41.9 % (another run's evaluators): half the steps spent on the reverse
            edit slow the forward one.
        reference_code: How reference frames become an emotion code, in training and in
            generation: `embedding` (the emotion encoder's mean embedding, renormalised) or
            `prior` (that embedding read through the prompt prior's rows at CERL's temperature,
            `decouple.priors.project_to_prior`: a soft nearest emotion, on the span of the
            label and text codes; the default). A generator trained on label codes, driven by
            held-out references: 21.0 / 34.7 % target-emotion accuracy with `embedding`,
            41.1 / 45.1 % with `prior` (2 seeds, same weights).
        label_code_prob: Probability that a batch takes its emotion codes from the prompt
            prior's rows (labels) instead of the emotion encoder on reference frames. 1 (the
            default): the rows are exact and the same for every clip of an emotion, the
            encoder's codes of a training clip are noisy; 0.5 measured 48.2 % label-driven /
            40.4 % reference-driven against 59.5 / 41.1 % for 1 (`reference_code: prior`).
        flip_prob: Probability per group that all its frames (source, target, every
            rendition) are mirrored left-right: mirrored speakers as extra identities for a
            generator trained on few (the frozen encoders see mirrored faces too). 0 (default)
            draws nothing, so runs without it are unchanged. Measured (runs/demo, 1000
            steps, seed 0): 0.5 gave 47.0 % label-driven / 33.6 % reference-driven target
            accuracy against 59.5 / 41.1 % for 0.
        variant: `full` (CDRL), `baseline` (no CDRL terms), `content_only`, `emotion_only`;
            it zeroes the CDRL weights it excludes.
        weights: Loss weights.
        samples: Examples in each sample grid.
    """

    channels: int = 16
    levels: int = 3
    steps: int = 200
    batch_size: int = 8
    window: int = 1
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "cosine"
    aligned_match: Literal["none", "gain", "similarity"] = "similarity"
    emotion_anchor: Literal["none", "aligned"] = "aligned"
    pixel_loss: Literal["l1", "rmse"] = "l1"
    emotion_margin: float = 0.0
    pairs: Literal["any", "reference"] = "reference"
    reverse_prob: float = 0.0
    reference_code: Literal["embedding", "prior"] = "prior"
    label_code_prob: float = 1.0
    flip_prob: float = 0.0
    variant: Literal["full", "baseline", "content_only", "emotion_only"] = "full"
    weights: LossWeights = field(default_factory=LossWeights)
    samples: int = 4

    def effective_weights(self) -> LossWeights:
        """The loss weights after the variant switch.

        Returns:
            A copy of `weights` with the CDRL terms the variant excludes set to 0.
        """
        w = dataclasses.replace(self.weights)
        if self.variant in ("baseline", "emotion_only"):
            w.content = 0.0
        if self.variant in ("baseline", "content_only"):
            w.emotion = 0.0
        return w


@dataclass
class Config:
    """The whole recipe configuration.

    Attributes:
        run_dir: Output folder: `<run_dir>/<stage>/` per stage, `config.yaml`, TensorBoard logs.
        seed: Run seed (data order, initialisation).
        stages: Stages to run, in order (a subset of `STAGES`).
        data: Data settings.
        runtime: Loop settings.
        audio_prior: Audio prior.
        clip: Vision-language model.
        ccrl: CCRL stage.
        cerl: CERL stage.
        spfem: SPFEM stage.
    """

    run_dir: str = "runs/demo"
    seed: int = 0
    stages: tuple[str, ...] = STAGES
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    audio_prior: AudioPriorConfig = field(default_factory=AudioPriorConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    ccrl: CCRLConfig = field(default_factory=CCRLConfig)
    cerl: CERLConfig = field(default_factory=CERLConfig)
    spfem: SPFEMConfig = field(default_factory=SPFEMConfig)


def _positive(where: str, value: int | float, minimum: int | float = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{where}: expected a value >= {minimum}, got {value!r}")


def check_config(cfg: Config, where: str = "config") -> Config:
    """Check the rules that span fields (types are checked by the loader).

    Args:
        cfg: The loaded config.
        where: The config file, for messages.

    Returns:
        `cfg`.

    Raises:
        ConfigError: Naming the file, the key and what was expected.

    Examples:
        >>> check_config(Config(stages=("ccrl", "prepare")))
        Traceback (most recent call last):
        ...
        configlib.ConfigError: config: stages: expected stages in the order (...) without ...
    """
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"{where}: stages: unknown stage(s) {unknown}; known: {list(STAGES)}")
    order = [STAGES.index(s) for s in cfg.stages]
    if order != sorted(set(order)):
        raise ConfigError(f"{where}: stages: expected stages in the order {STAGES} without "
                          f"repeats, got {list(cfg.stages)}")  # fmt: skip
    if cfg.data.corpus != "synthtalk":
        if cfg.audio_prior.kind == "phoneme":
            raise ConfigError(f"{where}: audio_prior.kind: 'phoneme' is trained on SynthTalk's "
                              f"phoneme labels; with data.corpus={cfg.data.corpus!r} use "
                              "'wav2vec2' (a local weights file) or 'mel'")  # fmt: skip
        if cfg.clip.kind == "synthtalk":
            raise ConfigError(f"{where}: clip.kind: 'synthtalk' trains on SynthTalk captions; "
                              f"with data.corpus={cfg.data.corpus!r} use 'pretrained' with a "
                              "local weights file")  # fmt: skip
    if cfg.audio_prior.kind == "wav2vec2" and not cfg.audio_prior.weights:
        raise ConfigError(f"{where}: audio_prior.weights: expected a local wav2vec 2.0 file "
                          "for kind 'wav2vec2'")  # fmt: skip
    if cfg.clip.kind == "pretrained" and not cfg.clip.weights:
        raise ConfigError(f"{where}: clip.weights: expected a local open_clip weights file "
                          f"for kind 'pretrained' ({cfg.clip.architecture})")  # fmt: skip
    if cfg.ccrl.backbone == "iresnet50" and not cfg.ccrl.arcface_weights:
        raise ConfigError(f"{where}: ccrl.arcface_weights: expected a local insightface "
                          "IResNet-50 file for backbone 'iresnet50'")  # fmt: skip
    if cfg.data.synthtalk.size not in (64, 128, 256):
        raise ConfigError(f"{where}: data.synthtalk.size: expected 64, 128 or 256, got "
                          f"{cfg.data.synthtalk.size}")  # fmt: skip
    r = cfg.runtime
    _positive(f"{where}: runtime.gradient_accumulation", r.gradient_accumulation)
    _positive(f"{where}: runtime.keep_states", r.keep_states)
    for name in ("threads", "save_every", "log_every", "sample_every", "debug_exit_after_save",
                 "debug_nan_step"):
        _positive(f"{where}: runtime.{name}", getattr(r, name), 0)
    for stage in ("audio_prior", "clip", "ccrl", "cerl", "spfem"):
        _positive(f"{where}: {stage}.steps", getattr(cfg, stage).steps, 0)
        lr = getattr(cfg, stage).lr
        if not lr > 0:
            raise ConfigError(f"{where}: {stage}.lr: expected a positive number, got {lr}")
    _positive(f"{where}: ccrl.emotions", cfg.ccrl.emotions, 2)
    if cfg.ccrl.audio_proj < 0:
        raise ConfigError(f"{where}: ccrl.audio_proj: expected 0 (no projection) or a positive "
                          f"size, got {cfg.ccrl.audio_proj}")  # fmt: skip
    _positive(f"{where}: cerl.emotions", cfg.cerl.emotions, 2)
    # CERL's positives are clips of the same emotion with other content: 2 per emotion at least
    _positive(f"{where}: cerl.per_emotion", cfg.cerl.per_emotion, 2)
    for name, value in (("ccrl.batch_size", cfg.ccrl.batch_size),
                        ("ccrl.window", cfg.ccrl.window),
                        ("cerl.window", cfg.cerl.window),
                        ("cerl.frames_per_clip", cfg.cerl.frames_per_clip),
                        ("spfem.batch_size", cfg.spfem.batch_size),
                        ("spfem.window", cfg.spfem.window),
                        ("audio_prior.batch_size", cfg.audio_prior.batch_size),
                        ("audio_prior.window", cfg.audio_prior.window),
                        ("clip.batch_size", cfg.clip.batch_size)):  # fmt: skip
        _positive(f"{where}: {name}", value)
    if not 0.0 <= cfg.spfem.emotion_margin < 2.0:
        raise ConfigError(f"{where}: spfem.emotion_margin: expected a number in [0, 2), got "
                          f"{cfg.spfem.emotion_margin}")  # fmt: skip
    for name in ("label_code_prob", "reverse_prob", "flip_prob"):
        value = getattr(cfg.spfem, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}: spfem.{name}: expected a number in [0, 1], got {value}")
    for name, value in dataclasses.asdict(cfg.spfem.weights).items():
        if value < 0:
            raise ConfigError(f"{where}: spfem.weights.{name}: expected a weight >= 0, got "
                              f"{value}")  # fmt: skip
    return cfg
