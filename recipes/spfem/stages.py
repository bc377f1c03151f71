"""What each training stage trains: its batch stream, objective, exported weights and metrics.

Every stage runs through the same loop (`loop.train`); this file only says, per stage,

* which batches it reads (a `ShardDataset` split by rank; never through `accelerator.prepare`),
* its objective: a module mapping a batch to `{"loss", logs...}`, built from the library's
  modules (`PhonemeAudioPrior.loss`, `InfoNCE`, `CCRL`, `CERL`, `ContentConsistency`,
  `EmotionConsistency`),
* what it saves (`model.safetensors`) and which metrics it writes (`metrics.json`), including
  the decoupling probes of `decouple.metrics.linear_probe` on held-out speakers.

Ground truth that a real corpus does not have (SynthTalk's expression, mouth and content
position tracks, counterfactual renders) is dropped from every batch before an objective sees
it ([strip][stages.strip]); SynthTalk's per-frame phoneme ids are used only to pre-train the
offline audio prior (the stand-in for a pretrained speech model) and in probes.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from config import Config
from discriminator import PatchDiscriminator, hinge_d_loss, hinge_g_loss
from einops import rearrange
from generator import Generator
from loop import BatchStream, replay, to_device
from torch import Tensor, nn
from torch.utils.data import DataLoader, default_collate

from decouple.data import EmotionBatches, ParallelWindows, ShardDataset
from decouple.encoders import CCRL, CERL, EmotionEncoder, VisualContentEncoder
from decouple.losses import (
    ContentConsistency,
    EmotionAugmentedNCE,
    EmotionAwareNCE,
    EmotionConsistency,
    InfoNCE,
)
from decouple.metrics import linear_probe
from decouple.priors import EmotionPromptPrior

__all__ = [
    "CCRLObjective",
    "ClipObjective",
    "Context",
    "PhonemeObjective",
    "SPFEMObjective",
    "flip_groups",
    "group_stream",
    "match_gain",
    "match_target",
    "register_similarity",
    "sample_stream",
    "source_index",
    "strip",
    "toward",
]

TRAINING_KEYS = ("video", "audio", "emotion", "intensity", "frame", "speaker", "sentence",
                 "group", "key", "position", "keys", "clip_audio", "clip_frames",
                 "reference")  # fmt: skip
"""Batch entries a real corpus offers (everything else is ground truth and is dropped)."""


def strip(item: dict[str, Any], allowed: Iterable[str] = TRAINING_KEYS) -> dict[str, Any]:
    """Keep only the batch entries a real corpus offers.

    Args:
        item: A decoded item or batch.
        allowed: The keys to keep.

    Returns:
        A new dict without the ground-truth arrays.

    Examples:
        >>> sorted(strip({"video": 1, "expression": 2, "mouth": 3, "emotion": 4}))
        ['emotion', 'video']
    """
    keep = set(allowed)
    return {k: v for k, v in item.items() if k in keep}


@dataclass
class Context:
    """What every stage needs to know about the run.

    Attributes:
        cfg: The config.
        run_dir: The run folder.
        root: Shard directory.
        info: Shard facts (`prepare.shard_info`).
        rank: This process's rank.
        world_size: Number of processes.
        device: The accelerator's device.
    """

    cfg: Config
    run_dir: Path
    root: Path
    info: dict[str, Any]
    rank: int
    world_size: int
    device: torch.device
    emotion_names: tuple[str, ...] = field(init=False)
    fps: float = field(init=False)
    sample_rate: int = field(init=False)

    def __post_init__(self) -> None:
        self.emotion_names = tuple(self.info["emotion_names"])
        self.fps = float(self.info["fps"])
        self.sample_rate = int(self.info["sample_rate"])

    @property
    def distributed(self) -> bool:
        """More than one process (the contrastive losses then gather keys exactly)."""
        return self.world_size > 1


# ------------------------------------------------------------------------------- streams


def _loader(dataset: Any, batch_size: int | None, workers: int, collate: Any = None) -> DataLoader:
    # Its own generator: a DataLoader iterator otherwise draws its workers' base seed from the
    # global torch RNG, and a resumed run (a new iterator mid-epoch) would draw once more than
    # the uninterrupted one and diverge. The shard reader seeds itself from (seed, epoch).
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                      persistent_workers=False, generator=torch.Generator().manual_seed(0))


def sample_stream(ctx: Context, *, split: str, batch_size: int, window: int, seed: int,
                  windows_per_clip: int = 1, shuffle: bool = True,
                  keys: Iterable[str] = TRAINING_KEYS) -> BatchStream:  # fmt: skip
    """Batches of windows of clips (`unit="sample"`), resumable with `ShardDataset.skip`.

    Args:
        ctx: The run context.
        split: Split name.
        batch_size: Windows per batch on this rank.
        window: Frames per window.
        seed: Stream seed.
        windows_per_clip: Windows cut from one decode of a clip.
        shuffle: Shuffle shards and windows.
        keys: Batch entries to keep.

    Returns:
        The stream.
    """
    ds = ShardDataset(ctx.root, split, batch_size=batch_size, window=window,
                      windows_per_clip=windows_per_clip, features=None, seed=seed,
                      shuffle=shuffle, shuffle_buffer=ctx.cfg.data.shuffle_buffer,
                      rank=ctx.rank, world_size=ctx.world_size,
                      transform=partial(strip, allowed=tuple(keys)))  # fmt: skip

    def epoch(e: int, skip: int) -> Iterable[Any]:
        ds.set_epoch(e)
        ds.skip(skip)
        return _loader(ds, batch_size, ctx.cfg.data.workers)

    return BatchStream(epoch, f"{ctx.root}/{split}")


class AlignedGroups:
    """ParallelWindows + each chosen rendition's whole waveform (for the audio prior).

    Works on decoded or lazy groups (`ShardDataset(lazy=True)`: only the chosen renditions'
    aligned frames and waveforms are decoded).

    The audio prior then runs on the whole clip (its full context, as a pretrained model
    would) and its features are read at the aligned frames.

    Args:
        emotions: Renditions per group.
        window: Aligned frames.
        with_reference: One of the renditions is always the group's reference (the clip
            its DTW paths start from: the neutral rendition in MEAD and SynthTalk), the
            others are drawn among the rest; otherwise all are drawn.
    """

    def __init__(self, emotions: int, window: int, with_reference: bool = False) -> None:
        self.windows = ParallelWindows(emotions, window)
        self.emotions = emotions
        self.with_reference = with_reference

    def __call__(self, group: dict[str, Any]) -> dict[str, Any] | None:
        if self.with_reference:
            clips = group["clips"]
            ref_key = clips[0]["meta"].reference
            ref = [c for c in clips if c["key"] == ref_key]
            ref_id = int(ref[0]["meta"].emotion_id) if ref else None
            others = [c for c in clips if int(c["meta"].emotion_id) != ref_id]
            rng = random.Random(zlib.crc32(f"{group.get('seed', 0)}/reference".encode()))
            picked = rng.sample(others, min(self.emotions - 1, len(others)))
            group = {**group, "clips": ref + picked}
        out = self.windows(group)
        if out is None:
            return None
        by_key = {c["key"]: c for c in group["clips"]}
        chosen = [by_key[k] for k in out["keys"]]
        out = strip(out)
        ref_key = group["clips"][0]["meta"].reference
        out["reference"] = torch.tensor([k == ref_key for k in out["keys"]])
        out["clip_audio"] = [c["audio"] if "audio" in c else c["waveform"]() for c in chosen]
        out["clip_frames"] = torch.tensor([int(c["meta"].num_frames) for c in chosen])
        return out


def collate_groups(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate AlignedGroups items: ragged waveforms and key lists stay lists.

    Args:
        items: The items.

    Returns:
        The batch: tensors stacked, `clip_audio` (b lists of e waveforms), `keys` (b lists).
    """
    ragged = {k: [it.pop(k) for it in items] for k in ("clip_audio", "keys")}
    batch = default_collate(items)
    batch.update(ragged)
    return batch


def group_stream(ctx: Context, *, split: str, batch_size: int, emotions: int, window: int,
                 seed: int, shuffle: bool = True, with_reference: bool = False
                 ) -> BatchStream:  # fmt: skip
    """Batches of aligned parallel windows (`unit="group"`), resumable with `skip`.

    Args:
        ctx: The run context.
        split: Split name.
        batch_size: Groups per batch on this rank.
        emotions: Renditions per group.
        window: Aligned frames.
        seed: Stream seed.
        shuffle: Shuffle shards and groups.
        with_reference: Always include the group's reference rendition (`AlignedGroups`).

    Returns:
        The stream (batches: `video` (b, e, t, 3, h, w), `emotion` (b, e), `frame` (b, e, t),
        `reference` (b, e) bool: the group's reference rendition, `clip_audio`,
        `clip_frames` (b, e), ...).
    """
    ds = ShardDataset(ctx.root, split, batch_size=batch_size, unit="group", features=None,
                      seed=seed, shuffle=shuffle, shuffle_buffer=ctx.cfg.data.shuffle_buffer,
                      rank=ctx.rank, world_size=ctx.world_size, lazy=True,
                      transform=AlignedGroups(emotions, window, with_reference))  # fmt: skip

    def epoch(e: int, skip: int) -> Iterable[Any]:
        ds.set_epoch(e)
        ds.skip(skip)
        return _loader(ds, batch_size, ctx.cfg.data.workers, collate_groups)

    return BatchStream(epoch, f"{ctx.root}/{split} (parallel groups)")


def emotion_stream(ctx: Context, *, split: str, emotions: int, per_emotion: int, window: int,
                   seed: int) -> BatchStream:  # fmt: skip
    """CERL batches (EmotionBatches: E emotions x C clips of other content).

    EmotionBatches has no exact skip: a resumed stream replays the epoch and drops the batches
    already delivered (exact, it costs their decoding).

    Args:
        ctx: The run context.
        split: Split name.
        emotions: E.
        per_emotion: C.
        window: Frames per clip window.
        seed: Stream seed.

    Returns:
        The stream.
    """
    inner = ShardDataset(ctx.root, split, batch_size=1, window=window, features=None,
                         seed=seed, shuffle_buffer=ctx.cfg.data.shuffle_buffer, rank=ctx.rank,
                         world_size=ctx.world_size, transform=strip)  # fmt: skip

    def epoch(e: int, skip: int) -> Iterable[Any]:
        inner.set_epoch(e)
        batches = EmotionBatches(inner, emotions, per_emotion, seed=seed * 7919 + e,
                                 rank=ctx.rank)  # fmt: skip
        return replay(_loader(batches, None, ctx.cfg.data.workers), skip)

    return BatchStream(epoch, f"{ctx.root}/{split} (emotion batches)")


def take(stream: BatchStream, n: int) -> Iterator[Any]:
    """The first n batches of a stream's epoch 0.

    Args:
        stream: The stream.
        n: Batches.

    Yields:
        Batches.
    """
    for i, b in enumerate(stream.make_epoch(0, 0)):
        if i >= n:
            break
        yield b


# -------------------------------------------------------------------------- audio features


def clip_prior_features(prior: nn.Module, batch: dict[str, Any], sample_rate: int,
                        fps: float) -> Tensor:  # fmt: skip
    """Audio-prior features of each rendition at its aligned frames.

    The prior runs once per rendition on the whole clip's waveform (padded into one batch,
    each item on its own samples), then the features are read at `batch["frame"]`.

    Args:
        prior: The frozen audio prior.
        batch: A `group_stream` batch.
        sample_rate: Audio sample rate.
        fps: Video frame rate.

    Returns:
        (b, e, t, d).
    """
    frame = batch["frame"]
    b, e, t = frame.shape
    waves = [w for row in batch["clip_audio"] for w in row]
    counts = batch["clip_frames"].reshape(-1).tolist()
    length = max(w.shape[0] for w in waves)
    wave = torch.stack([F.pad(w, (0, length - w.shape[0])) for w in waves]).to(frame.device)
    with torch.no_grad():
        feats = prior(wave.float(), sample_rate, counts, fps)  # (b e, t_max, d)
    index = frame.reshape(b * e, t, 1).expand(-1, -1, feats.shape[-1])
    return feats.gather(1, index).reshape(b, e, t, -1)


# ------------------------------------------------------------------------------ objectives


class PhonemeObjective(nn.Module):
    """audio_prior stage: PhonemeAudioPrior.loss on per-frame phoneme ids, and its accuracy.

    Args:
        prior: The PhonemeAudioPrior.
        sample_rate: Audio sample rate.
        fps: Video frame rate.
    """

    def __init__(self, prior: nn.Module, sample_rate: int, fps: float) -> None:
        super().__init__()
        self.prior = prior
        self.sample_rate = sample_rate
        self.fps = fps

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss and frame accuracy of a batch of windows.

        Args:
            batch: `audio` (b, s), `phoneme_id` (b, t).

        Returns:
            `loss`, `acc`.
        """
        labels = batch["phoneme_id"].long()
        logits = self.prior.logits(batch["audio"].float(), self.sample_rate, labels.shape[1],
                                   self.fps)  # fmt: skip
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        acc = (logits.detach().argmax(-1) == labels).float().mean()
        return {"loss": loss, "acc": acc}


def _speakers_of(root: Path) -> dict[str, Any]:
    """SynthTalk speaker parameters by name, from the corpus's own config file."""
    import json

    from decouple.data.synthtalk.corpus import SynthTalkConfig
    from decouple.data.synthtalk.speakers import sample_speakers

    path = root / "synthtalk-config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the clip stage needs a SynthTalk corpus "
                                "(its speakers give the captions)")  # fmt: skip
    st = SynthTalkConfig.from_json(json.loads(path.read_text(encoding="utf-8")))
    return {sp.name: sp for sp in sample_speakers(st.speakers, st.seed)}


class ClipObjective(nn.Module):
    """clip stage: a CLIP contrastive loss between SynthTalk frames and their captions.

    Symmetric multi-positive InfoNCE (decouple.losses.InfoNCE) between frames and captions:
    a frame's positives are the captions of every frame of the batch with the same speaker,
    emotion and intensity (they describe the same face; the caption's wording is drawn per
    frame and varies), with a learnt temperature and, across processes, keys gathered with
    gradient.

    Args:
        prior: An EmotionPromptPrior with unfrozen CLIP towers (its `encode_image` /
            `encode_text` apply CLIP's preprocessing and tokenizer).
        speakers: SynthTalk speaker parameters by name.
        emotion_names: Emotion names by id.
        distributed: Gather keys across processes.
    """

    def __init__(self, prior: EmotionPromptPrior, speakers: dict[str, Any],
                 emotion_names: tuple[str, ...], distributed: bool) -> None:  # fmt: skip
        super().__init__()
        self.prior = prior
        self.speakers = speakers
        self.emotion_names = emotion_names
        self.loss = InfoNCE(learn_temperature=True, gather_distributed=distributed)

    def captions(self, batch: dict[str, Any]) -> list[str]:
        """One caption per frame (template and phrase drawn from its key and frame).

        Args:
            batch: A window batch.

        Returns:
            The captions.
        """
        from decouple.data.synthtalk.captions import caption

        out = []
        for i, (speaker, key) in enumerate(zip(batch["speaker"], batch["key"], strict=True)):
            seed = zlib.crc32(f"{key}/{int(batch['frame'][i, 0])}".encode())
            out.append(caption(self.speakers[speaker], self.emotion_names[int(batch["emotion"][i])],
                               int(batch["intensity"][i]), seed=seed))
        return out

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss of a batch of single-frame windows.

        Args:
            batch: `video` (b, 1, 3, h, w) and the clip labels.

        Returns:
            `loss`, `temperature`.
        """
        texts = self.captions(batch)
        what = [f"{s}/{int(e)}/{int(i)}" for s, e, i in
                zip(batch["speaker"], batch["emotion"], batch["intensity"], strict=True)]
        ids = torch.tensor([zlib.crc32(w.encode()) for w in what], device=batch["video"].device)
        img = self.prior.encode_image(batch["video"][:, 0])
        txt = self.prior.encode_text(texts)
        loss = 0.5 * (self.loss(img, ids, ref_emb=txt, ref_labels=ids)
                      + self.loss(txt, ids, ref_emb=img, ref_labels=ids))  # fmt: skip
        temp = self.loss.log_temperature.detach().exp()
        return {"loss": loss, "temperature": temp}


class CCRLObjective(nn.Module):
    """ccrl stage: the CCRL module with the frozen audio prior's features at aligned frames.

    Args:
        ccrl: CCRL(encoder, audio_prior=None, audio_key="prior_features").
        audio_prior: The frozen audio prior (not registered: not trained, not saved here).
        sample_rate: Audio sample rate.
        fps: Video frame rate.
    """

    def __init__(self, ccrl: CCRL, audio_prior: nn.Module, sample_rate: int, fps: float) -> None:
        super().__init__()
        self.ccrl = ccrl
        object.__setattr__(self, "_audio_prior", audio_prior)
        self.sample_rate = sample_rate
        self.fps = fps

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss and logs of a parallel batch.

        Args:
            batch: A `group_stream` batch.

        Returns:
            CCRL's `loss`, `pos_cos`, `neg_cos`.
        """
        batch = dict(batch)
        batch["prior_features"] = clip_prior_features(self._audio_prior, batch,
                                                      self.sample_rate, self.fps)  # fmt: skip
        return self.ccrl(batch)


def build_ccrl(encoder: VisualContentEncoder, cfg: Config, distributed: bool) -> CCRL:
    """The CCRL module of the stage.

    Args:
        encoder: The content encoder.
        cfg: The config.
        distributed: Gather keys across processes.

    Returns:
        CCRL reading `prior_features`.
    """
    loss = EmotionAwareNCE(temperature=cfg.ccrl.temperature, gather_distributed=distributed)
    return CCRL(encoder, None, loss=loss, audio_key="prior_features")


def build_cerl(encoder: EmotionEncoder, prior: EmotionPromptPrior, cfg: Config,
               names: tuple[str, ...], distributed: bool) -> CERL:  # fmt: skip
    """The CERL module of the stage.

    Args:
        encoder: The emotion encoder.
        prior: The emotion prompt prior (frozen CLIP, learnable context).
        cfg: The config.
        names: The shards' emotion names (must be the prior's rows).
        distributed: Gather keys across processes.

    Returns:
        CERL.
    """
    loss = EmotionAugmentedNCE(temperature=cfg.cerl.temperature,
                               prior_weight=cfg.cerl.prior_weight,
                               gather_distributed=distributed)  # fmt: skip
    return CERL(encoder, prior, loss=loss, emotion_names=names,
                frames_per_clip=cfg.cerl.frames_per_clip)  # fmt: skip


@dataclass
class Supervisors:
    """The frozen parts SPFEM training uses (not trained, not saved by the stage)."""

    audio_prior: nn.Module
    content: VisualContentEncoder
    emotion: EmotionEncoder
    prior: EmotionPromptPrior
    table: Tensor  # (K, D) the prompt prior's rows, fixed


def match_gain(frames: Tensor, like: Tensor) -> Tensor:
    """Scale each frame by the least-squares gain that brings it closest to its partner.

    g = <like, frames> / <frames, frames> per frame (over channels and pixels), then
    clamp(g * frames, 0, 1): a global lighting change between two recordings is removed, a
    local edit (an expression) is kept.

    Args:
        frames: (..., 3, h, w) in [0, 1] (e.g. the aligned target rendition).
        like: Frames of the same shape (e.g. the source).

    Returns:
        The rescaled frames (no gradient flows into `like`).

    Examples:
        >>> x = torch.rand(2, 3, 8, 8) * 0.5
        >>> torch.allclose(match_gain(1.1 * x, x), x, atol=1e-6)
        True
    """
    dims = (-3, -2, -1)
    like = like.detach()
    gain = (like * frames).sum(dims, keepdim=True) / (frames * frames).sum(
        dims, keepdim=True).clamp_min(1e-12)  # fmt: skip
    return (gain * frames).clamp(0.0, 1.0)


def _similarity_warp(frames: Tensor, params: Tensor) -> Tensor:
    """Sample frames (n, c, h, w) shifted by (dx, dy) pixels and rotated by theta radians
    about the centre (params (n, 3)); borders repeat."""
    _n, _, h, w = frames.shape
    cos, sin = torch.cos(params[:, 2]), torch.sin(params[:, 2])
    theta = torch.stack([torch.stack([cos, -sin * h / w, 2 * params[:, 0] / w], 1),
                         torch.stack([sin * w / h, cos, 2 * params[:, 1] / h], 1)], 1)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)  # fmt: skip


def register_similarity(frames: Tensor, like: Tensor, iters: int = 3, blur: int = 3
                        ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Align each frame to its partner with a global shift and rotation (Gauss-Newton).

    Minimises sum |B(warp(frames, p)) - B(like)|^2 over p = (dx, dy, theta) per frame, B a
    `blur` x `blur` box filter, by `iters` Gauss-Newton steps from p = 0 (the Jacobian from
    central differences of the warped, blurred frame). Meant for the small head motion between
    two recordings of the same face (a pixel or two, a degree or two); no gradient.

    Args:
        frames: (n, c, h, w) frames to move.
        like: (n, c, h, w) the frames to align them to.
        iters: Gauss-Newton steps.
        blur: Box filter side (odd).

    Returns:
        The aligned frames (n, c, h, w) and p (n, 3): dx, dy in pixels, theta in radians.

    Examples:
        >>> x = torch.zeros(1, 1, 32, 32); x[..., 10:20, 12:18] = 1.0
        >>> moved = _similarity_warp(x, torch.tensor([[1.5, -1.0, 0.0]]))
        >>> _, p = register_similarity(moved, x, iters=5)
        >>> [round(v, 1) + 0.0 for v in p[0].tolist()]
        [-1.5, 1.0, 0.0]
    """
    with torch.no_grad():
        frames, like = frames.detach().float(), like.detach().float()
        n, _, h, w = frames.shape
        pad = blur // 2
        target = F.avg_pool2d(like, blur, 1, pad, count_include_pad=False)
        ys, xs = torch.meshgrid(torch.arange(h, device=frames.device) - (h - 1) / 2,
                                torch.arange(w, device=frames.device) - (w - 1) / 2,
                                indexing="ij")  # fmt: skip
        p = torch.zeros(n, 3, device=frames.device)
        eye = 1e-6 * torch.eye(3, device=frames.device)
        for _ in range(iters):
            cur = F.avg_pool2d(_similarity_warp(frames, p), blur, 1, pad, count_include_pad=False)
            gx = torch.zeros_like(cur)
            gy = torch.zeros_like(cur)
            gx[..., 1:-1] = (cur[..., 2:] - cur[..., :-2]) / 2
            gy[..., 1:-1, :] = (cur[..., 2:, :] - cur[..., :-2, :]) / 2
            jac = torch.stack([gx, gy, xs * gy - ys * gx], -1).reshape(n, -1, 3)
            err = (target - cur).reshape(n, -1, 1)
            jt = jac.transpose(1, 2)
            p = p + torch.linalg.solve(jt @ jac + eye, jt @ err)[..., 0]
        return _similarity_warp(frames, p), p


class _Toward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(x.detach() - target.detach())
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (away,) = ctx.saved_tensors
        # a descent step moves x by -grad: keep it where that goes toward the target
        return grad * (grad * away > 0).to(grad.dtype), None


def toward(x: Tensor, target: Tensor) -> Tensor:
    """Identity in the forward pass; backward keeps only gradient that moves x toward target.

    An element's gradient g is kept when a descent step (-g) moves x[i] toward target[i]
    (g * (x - target) > 0) and zeroed otherwise (also where x equals the target). A loss
    computed on `toward(x, target)` can then only pull each element of x toward the target,
    never push it away.

    Args:
        x: Any tensor (e.g. generated frames).
        target: Same shape (no gradient flows into it).

    Returns:
        x (same values).

    Examples:
        >>> x = torch.tensor([0.0, 0.0, 1.0], requires_grad=True)
        >>> toward(x, torch.tensor([1.0, -1.0, 1.0])).sum().backward()  # d/dx = +1 everywhere
        >>> x.grad.tolist()  # only element 1 (target below x) may follow -1
        [0.0, 1.0, 0.0]
    """
    return _Toward.apply(x, target)


def match_target(target: Tensor, source: Tensor, how: str) -> Tensor:
    """The aligned target frames brought onto their source frames (`spfem.aligned_match`).

    Args:
        target: (..., 3, h, w) DTW-aligned frames of the parallel rendition, in [0, 1].
        source: The source frames, same shape.
        how: `none`, `gain` ([match_gain][stages.match_gain]) or `similarity`
            ([register_similarity][stages.register_similarity], then the gain).

    Returns:
        Frames of the same shape (no gradient).

    Raises:
        ValueError: An unknown `how`.
    """
    if how == "none":
        return target
    if how == "similarity":
        shape = target.shape
        moved, _ = register_similarity(target.reshape(-1, *shape[-3:]),
                                       source.reshape(-1, *shape[-3:]))  # fmt: skip
        target = moved.reshape(shape).to(target.dtype)
    elif how != "gain":
        raise ValueError(f"unknown aligned_match {how!r} (none, gain, similarity)")
    return match_gain(target, source).detach()


def pixel_distance(x: Tensor, target: Tensor, kind: str) -> Tensor:
    """The distance of the generator's pixel terms (`spfem.pixel_loss`).

    Args:
        x: Frames (any shape).
        target: Same shape.
        kind: `l1` (mean absolute error) or `rmse` (root of the mean squared error).

    Returns:
        A scalar.

    Raises:
        ValueError: An unknown kind.

    Examples:
        >>> x, y = torch.zeros(4), torch.tensor([0.0, 0.0, 0.0, 2.0])
        >>> pixel_distance(x, y, "l1").item(), pixel_distance(x, y, "rmse").item()
        (0.5, 1.0)
    """
    if kind == "l1":
        return (x - target).abs().mean()
    if kind == "rmse":
        # + eps: the gradient of sqrt at 0 (a perfect reconstruction) is infinite
        return ((x - target).square().mean() + 1e-12).sqrt()
    raise ValueError(f"unknown pixel_loss {kind!r} (l1, rmse)")


def source_index(batch: dict[str, Any], reverse_prob: float) -> Tensor:
    """Which of a pair batch's 2 renditions is the source of each group's edit.

    The group's reference rendition (`batch["reference"]`, the neutral one) is the source,
    except with probability `reverse_prob` per group, where the edit runs back to it. Without
    `reference` in the batch, rendition 0 plays that role. Draws from torch's global RNG on
    the CPU (restored by `--resume`).

    Args:
        batch: A batch with `emotion` (b, 2) and optionally `reference` (b, 2) bool.
        reverse_prob: Probability of the reverse edit, in [0, 1].

    Returns:
        (b,) long on the CPU, 0 or 1.

    Examples:
        >>> reference = torch.tensor([[False, True], [True, False]])
        >>> batch = {"emotion": torch.zeros(2, 2), "reference": reference}
        >>> source_index(batch, 0.0).tolist()
        [1, 0]
    """
    b = batch["emotion"].shape[0]
    swap = (torch.rand(b, device="cpu") < reverse_prob).long()
    forward = torch.zeros(b, dtype=torch.long)
    if "reference" in batch:
        forward = batch["reference"][:, 1].to("cpu", torch.long)
    return forward ^ swap


def flip_groups(video: Tensor, prob: float) -> Tensor:
    """Mirror whole groups left-right, each with probability `prob`.

    Every rendition and frame of a flipped group is mirrored, so source, aligned target and
    reference stay consistent. Draws from torch's global RNG on the CPU (restored by
    `--resume`), and only when `prob > 0`.

    Args:
        video: (b, ...) frames, width last.
        prob: Probability per group, in [0, 1].

    Returns:
        The frames, mirrored where drawn.

    Examples:
        >>> v = torch.arange(6.0).view(2, 1, 3)
        >>> flip_groups(v, 1.0)[:, 0].tolist(), torch.equal(flip_groups(v, 0.0), v)
        ([[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]], True)
    """
    if prob <= 0:
        return video
    b = video.shape[0]
    flip = (torch.rand(b, device="cpu") < prob).to(video.device)
    return torch.where(flip.view(b, *([1] * (video.dim() - 1))), video.flip(-1), video)


class SPFEMObjective(nn.Module):
    """spfem stage: the generator's losses from what a real corpus offers, plus CDRL.

    A batch is b parallel groups with 2 renditions each (same speaker and sentence, two
    emotions, frames aligned by DTW), each group mirrored with probability `flip_prob`.
    Per group one rendition is the source s (emotion a) and
    the other the target rendition r (emotion c): the group's reference rendition (neutral)
    is the source, and with probability `reverse_prob` per group the roles swap (an edit
    back to neutral); without a reference rendition in the batch, rendition 0 is the source
    before the swap. Codes:
    with probability `label_code_prob` per batch the prompt prior's rows for a and c (label
    driven), else the emotion encoder's mean embedding of the source frames and of r's
    frames (reference driven; read through the prior's rows with `reference_code: prior`).
    Then, with G the generator:

        y = G(s, z_c)     edited;      x = G(s, z_a)  self-reconstruction;
        q = G(y, z_a)     cycle back;  r' = match(r, s)  (`aligned_match`: r's head motion
                                                         and light brought onto s)
        reconstruction = |x - s|,  aligned = |y - r'| (r: the DTW-aligned frames of the
        parallel rendition), cycle = |q - s|  (|.|: `pixel_loss`, L1 or RMSE),
        content = ContentConsistency(Ec(y, A_s), Ec(s, A_s))   A_s: source audio prior
        emotion = max(0, EmotionConsistency(Ee(r), Ee(v), T, labels=c) - margin)
                  T: the prompt prior's rows; v = y, or with `emotion_anchor: aligned`
                  v = toward(y, r'): y itself, but the gradient may only move a pixel
                  toward r' (the frozen Ee picks which real differences matter; it cannot
                  be lowered by textures it never saw)
        adversarial = hinge with a patch discriminator; mask = mean edit mask

    SynthTalk's counterfactual ground truth is never read: the batch holds only frames,
    audio, emotion labels and alignment.

    Args:
        generator: G.
        supervisors: The frozen encoders, audio prior and prior table.
        cfg: The config (`spfem`).
        sample_rate: Audio sample rate.
        fps: Video frame rate.
        discriminator: A PatchDiscriminator (with `weights.adversarial > 0`).
    """

    def __init__(self, generator: Generator, supervisors: Supervisors, cfg: Config,
                 sample_rate: int, fps: float,
                 discriminator: PatchDiscriminator | None = None) -> None:  # fmt: skip
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        object.__setattr__(self, "_sup", supervisors)
        self.weights = cfg.spfem.effective_weights()
        self.label_code_prob = cfg.spfem.label_code_prob
        self.reverse_prob = cfg.spfem.reverse_prob
        self.flip_prob = cfg.spfem.flip_prob
        self.config = cfg
        self.aligned_match = cfg.spfem.aligned_match
        self.emotion_margin = cfg.spfem.emotion_margin
        self.pixel_loss = cfg.spfem.pixel_loss
        self.emotion_anchor = cfg.spfem.emotion_anchor
        self.sample_rate = sample_rate
        self.fps = fps
        self.content_loss = ContentConsistency()
        self.emotion_loss = EmotionConsistency()

    def codes(self, frames: Tensor, labels: Tensor, use_labels: bool) -> Tensor:
        """Emotion codes of clips: prior rows of the labels, or Ee's mean over frames.

        Args:
            frames: (b, t, 3, h, w) float in [0, 1].
            labels: (b,) emotion ids.
            use_labels: Take the prompt prior's rows.

        Returns:
            (b, D) unit-norm codes (no gradient).
        """
        with torch.no_grad():
            if use_labels:
                return self._sup.table[labels]
            from model import reference_code

            b, t = frames.shape[:2]
            z = self._sup.emotion(rearrange(frames, "b t c h w -> (b t) c h w"))
            return reference_code(z.reshape(b, t, -1), self._sup.table, self.config)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Generator (and discriminator) losses of a batch.

        Args:
            batch: A `group_stream` batch with 2 renditions.

        Returns:
            `loss` and every term.
        """
        video = flip_groups(batch["video"].float() / 255.0, self.flip_prob)  # (b, 2, t, 3, h, w)
        emotion = batch["emotion"]
        b, _, t = video.shape[:3]
        dev = video.device
        src_i = source_index(batch, self.reverse_prob).to(dev)
        tgt_i = 1 - src_i
        ar = torch.arange(b, device=dev)
        src, ref = video[ar, src_i], video[ar, tgt_i]
        e_src, e_tgt = emotion[ar, src_i], emotion[ar, tgt_i]
        use_labels = bool(torch.rand(1) < self.label_code_prob)
        z_src = self.codes(src, e_src, use_labels)
        z_tgt = self.codes(ref, e_tgt, use_labels)
        w = self.weights
        g = self.generator
        edited, mask = g(src, z_tgt, return_mask=True)
        terms: dict[str, Tensor] = {}
        if w.reconstruction:
            terms["reconstruction"] = pixel_distance(g(src, z_src), src, self.pixel_loss)
        matched = match_target(ref, src, self.aligned_match)
        if w.aligned:
            terms["aligned"] = pixel_distance(edited, matched, self.pixel_loss)
        if w.cycle:
            terms["cycle"] = pixel_distance(g(edited, z_src), src, self.pixel_loss)
        if w.mask:
            terms["mask"] = mask.mean()
        flat_y = rearrange(edited, "b t c h w -> (b t) c h w")
        if w.content:
            feats = clip_prior_features(self._sup.audio_prior, batch, self.sample_rate, self.fps)
            audio = feats[ar, src_i].reshape(b * t, -1)
            with torch.no_grad():
                target = self._sup.content(rearrange(src, "b t c h w -> (b t) c h w"), audio)
            terms["content"] = self.content_loss(self._sup.content(flat_y, audio), target)
        if w.emotion:
            with torch.no_grad():
                r = self._sup.emotion(rearrange(ref, "b t c h w -> (b t) c h w"))
            view = flat_y
            if self.emotion_anchor == "aligned":
                view = toward(flat_y, rearrange(matched, "b t c h w -> (b t) c h w"))
            gz = self._sup.emotion(view)
            labels = e_tgt.repeat_interleave(t)
            loss = self.emotion_loss(r, gz, self._sup.table, emotion_labels=labels)
            terms["emotion"] = (loss - self.emotion_margin).clamp_min(0.0)
        if w.adversarial and self.discriminator is not None:
            d = self.discriminator
            fixed = {k: v.detach() for k, v in d.named_parameters()}
            fake_score = torch.func.functional_call(d, fixed, (flat_y,))  # G's term: D fixed
            terms["adversarial"] = hinge_g_loss(fake_score)
            real = rearrange(ref, "b t c h w -> (b t) c h w")
            terms["discriminator"] = hinge_d_loss(d(real), d(flat_y.detach()))
        total = sum(getattr(w, k, 1.0) * v for k, v in terms.items())
        out = {"loss": total}
        out.update({k: v.detach() for k, v in terms.items()})
        return out


def build_spfem(cfg: Config, supervisors: Supervisors, code_dim: int, sample_rate: int,
                fps: float) -> SPFEMObjective:  # fmt: skip
    """The SPFEM objective with a fresh generator (and discriminator if the GAN term is on).

    Args:
        cfg: The config.
        supervisors: Frozen parts.
        code_dim: Emotion code size.
        sample_rate: Audio sample rate.
        fps: Video frame rate.

    Returns:
        The objective.
    """
    from model import build_generator

    disc = PatchDiscriminator() if cfg.spfem.effective_weights().adversarial > 0 else None
    return SPFEMObjective(build_generator(cfg, code_dim), supervisors, cfg, sample_rate, fps,
                          disc)  # fmt: skip


# ------------------------------------------------------------------------------ sample grids


def sample_grid(objective: SPFEMObjective, batch: dict[str, Any], n: int) -> Tensor:
    """A grid image: per row source | reference | output (label code of the reference's emotion).

    Args:
        objective: The SPFEM objective (eval mode).
        batch: A batch.
        n: Rows.

    Returns:
        (3, rows * h, 3 * w) uint8.
    """
    video = batch["video"][:n].float() / 255.0
    src, ref = video[:, 0, :1], video[:, 1, :1]  # first frame of each rendition
    codes = objective.codes(ref, batch["emotion"][:n, 1], True)
    out = objective.generator(src, codes)
    rows = torch.cat([src[:, 0], ref[:, 0], out[:, 0]], dim=-1)  # (n, 3, h, 3w)
    grid = rearrange(rows, "n c h w -> c (n h) w")
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def write_png(path: Path, image: Tensor) -> Path:
    """Write a (3, h, w) uint8 image as PNG atomically.

    Args:
        path: Target.
        image: The image.

    Returns:
        The path.
    """
    import io

    from PIL import Image

    from decouple.data.io import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------- probes


def _probe(emb: Tensor, labels: list[Any], groups: list[str], test_groups: list[str],
           name: str) -> dict[str, Any]:  # fmt: skip
    held = [g for g in dict.fromkeys(groups) if g in set(test_groups)]
    if not held or len(set(groups)) < 2:
        return {"skipped": f"{name}: need train and held-out speakers"}
    r = linear_probe(emb.double(), labels, groups, test_groups=held)
    return {"accuracy": r.accuracy, "chance": r.chance, "above_chance": r.above_chance,
            "train_accuracy": r.train_accuracy, "n_train": r.n_train, "n_test": r.n_test,
            "test_speakers": list(r.test_groups)}  # fmt: skip


def probe_windows(ctx: Context, window: int, limit: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Windows of the training and held-out splits for the probes (fixed order, no shuffle).

    Args:
        ctx: The run context.
        window: Frames per window.
        limit: Windows per split.

    Yields:
        `(split, batch)` batches of up to 8 windows, with the ground-truth `viseme_id` kept
        (evaluation only).
    """
    keys = (*TRAINING_KEYS, "viseme_id")
    for split in (ctx.cfg.data.train_split, ctx.cfg.data.test_split):
        if not (ctx.root / f"{split}-index.json").is_file():
            continue
        ds = ShardDataset(ctx.root, split, batch_size=1, window=window, features=None,
                          seed=ctx.cfg.seed, shuffle=True, rank=0, world_size=1,
                          transform=partial(strip, allowed=keys))  # fmt: skip
        rows, seen = [], 0
        for item in DataLoader(ds, batch_size=None):
            rows.append(item)
            seen += 1
            if len(rows) == 8 or seen >= limit:
                yield split, default_collate(rows)
                rows = []
            if seen >= limit:
                break
        if rows:
            yield split, default_collate(rows)


def ccrl_probes(ctx: Context, encoder: VisualContentEncoder, audio_prior: nn.Module,
                limit: int) -> dict[str, Any]:  # fmt: skip
    """Probes on the content embedding: emotion (should be near chance) and viseme (high).

    Trained on training-speaker windows, tested on held-out speakers.

    Args:
        ctx: The run context.
        encoder: The trained content encoder.
        audio_prior: The audio prior.
        limit: Windows per split.

    Returns:
        `emotion_probe`, `viseme_probe` (accuracy, chance, ...).
    """
    embs, emo, vis, groups = [], [], [], []
    encoder.eval()
    window = ctx.cfg.ccrl.window
    with torch.no_grad():
        for _, batch in probe_windows(ctx, window, limit):
            batch = to_device(batch, ctx.device)
            t = batch["video"].shape[1]
            feats = audio_prior(batch["audio"].float(), ctx.sample_rate, t, ctx.fps)
            z = encoder(batch["video"].flatten(0, 1), feats.flatten(0, 1))
            embs.append(z.float().cpu())
            emo += batch["emotion"].repeat_interleave(t).tolist()
            vis += batch["viseme_id"].flatten().tolist()
            groups += [s for s in batch["speaker"] for _ in range(t)]
    test = _test_speakers(ctx)
    emb = torch.cat(embs)
    return {"emotion_probe": _probe(emb, emo, groups, test, "emotion"),
            "viseme_probe": _probe(emb, vis, groups, test, "viseme")}  # fmt: skip


def cerl_probes(ctx: Context, encoder: EmotionEncoder, limit: int) -> dict[str, Any]:
    """Probes on the emotion embedding: emotion (high) and sentence / viseme (near chance).

    Args:
        ctx: The run context.
        encoder: The trained emotion encoder.
        limit: Windows per split.

    Returns:
        `emotion_probe`, `sentence_probe`, `viseme_probe`.
    """
    embs, emo, sent, vis, groups = [], [], [], [], []
    encoder.eval()
    with torch.no_grad():
        for _, batch in probe_windows(ctx, ctx.cfg.cerl.window, limit):
            batch = to_device(batch, ctx.device)
            t = batch["video"].shape[1]
            z = encoder(batch["video"].flatten(0, 1))
            embs.append(z.float().cpu())
            emo += batch["emotion"].repeat_interleave(t).tolist()
            sent += [s for s in batch["sentence"] for _ in range(t)]
            vis += batch["viseme_id"].flatten().tolist()
            groups += [s for s in batch["speaker"] for _ in range(t)]
    test = _test_speakers(ctx)
    emb = torch.cat(embs)
    return {"emotion_probe": _probe(emb, emo, groups, test, "emotion"),
            "sentence_probe": _probe(emb, sent, groups, test, "sentence"),
            "viseme_probe": _probe(emb, vis, groups, test, "viseme")}  # fmt: skip


def _test_speakers(ctx: Context) -> list[str]:
    from decouple.data.shards import iter_samples, read_index

    path = ctx.root / f"{ctx.cfg.data.test_split}-index.json"
    if not path.is_file():
        return []
    import json

    speakers: list[str] = []
    for shard in read_index(ctx.root, ctx.cfg.data.test_split).paths:
        for sample in iter_samples(shard):
            s = json.loads(sample["json"].decode("utf-8"))["speaker"]
            if s not in speakers:
                speakers.append(s)
    return speakers


def phoneme_accuracy(ctx: Context, prior: nn.Module, limit: int) -> dict[str, Any]:
    """Frame accuracy of the pre-trained audio prior's phoneme head per split.

    Args:
        ctx: The run context.
        prior: The PhonemeAudioPrior.
        limit: Windows per split.

    Returns:
        `{split: {"accuracy", "chance", "frames"}}` (chance: the most frequent phoneme).
    """
    out: dict[str, Any] = {}
    keys = (*TRAINING_KEYS, "phoneme_id")
    prior.eval()
    for split in (ctx.cfg.data.train_split, ctx.cfg.data.test_split):
        if not (ctx.root / f"{split}-index.json").is_file():
            continue
        ds = ShardDataset(ctx.root, split, batch_size=8, window=ctx.cfg.audio_prior.window,
                          features=None, shuffle=False, rank=0, world_size=1,
                          transform=partial(strip, allowed=keys))  # fmt: skip
        right = total = 0
        counts: dict[int, int] = {}
        with torch.no_grad():
            for i, batch in enumerate(DataLoader(ds, batch_size=8)):
                if i * 8 >= limit:
                    break
                labels = batch["phoneme_id"].long()
                logits = prior.logits(batch["audio"].to(ctx.device).float(), ctx.sample_rate,
                                      labels.shape[1], ctx.fps)  # fmt: skip
                right += int((logits.argmax(-1).cpu() == labels).sum())
                total += labels.numel()
                for v in labels.flatten().tolist():
                    counts[v] = counts.get(v, 0) + 1
        if total:
            out[split] = {"accuracy": right / total, "chance": max(counts.values()) / total,
                          "frames": total}  # fmt: skip
    return out


def clip_zero_shot(ctx: Context, objective: ClipObjective, limit: int) -> dict[str, Any]:
    """Zero-shot emotion accuracy of the trained tiny CLIP on held-out speakers.

    For each frame, the caption of each emotion present in the corpus (for the frame's own
    speaker, at the frame's intensity or level 1 for neutral) is scored; the best must be the
    frame's emotion.

    Args:
        ctx: The run context.
        objective: The trained ClipObjective.
        limit: Windows.

    Returns:
        `accuracy`, `chance`, `frames`.
    """
    from decouple.data.synthtalk.captions import caption

    prior = objective.prior
    prior.eval()
    right = total = 0
    counts: dict[int, int] = {}
    present: list[int] = []
    rows = []
    for _, batch in probe_windows(ctx, 1, limit):
        rows.append(batch)
        present += [int(e) for e in batch["emotion"].tolist() if int(e) not in present]
    present.sort()
    with torch.no_grad():
        for batch in rows:
            img = prior.encode_image(batch["video"][:, 0].to(ctx.device))
            for i in range(img.shape[0]):
                sp = objective.speakers[batch["speaker"][i]]
                level = int(batch["intensity"][i])
                texts = [caption(sp, ctx.emotion_names[e], 1 if e == 0 else max(level, 1), seed=0)
                         for e in present]  # fmt: skip
                txt = prior.encode_text(texts)
                pick = present[int((txt @ img[i]).argmax())]
                truth = int(batch["emotion"][i])
                right += pick == truth
                total += 1
                counts[truth] = counts.get(truth, 0) + 1
    if not total:
        return {}
    return {"accuracy": right / total, "chance": max(counts.values()) / total, "frames": total}


def spfem_metrics(ctx: Context, objective: SPFEMObjective, limit: int) -> dict[str, Any]:
    """Quick held-out checks of the generator (the evaluation recipe does the real benchmark).

    On held-out speakers' parallel pairs: the L1 of the label-driven edit to the aligned
    rendition in the target emotion, the L1 of copying the source instead, and how often the
    frozen emotion encoder's nearest prior row of the edit is the target emotion (also for the
    unedited source, for comparison).

    Args:
        ctx: The run context.
        objective: The trained SPFEM objective.
        limit: Parallel groups.

    Returns:
        The metrics.
    """
    if not (ctx.root / f"{ctx.cfg.data.test_split}-index.json").is_file():
        return {}
    stream = group_stream(ctx.__class__(ctx.cfg, ctx.run_dir, ctx.root, ctx.info, 0, 1,
                                        ctx.device) if ctx.world_size > 1 else ctx,
                          split=ctx.cfg.data.test_split, batch_size=1, emotions=2,
                          window=ctx.cfg.spfem.window, seed=ctx.cfg.seed, shuffle=False)
    sup = objective._sup
    l1 = copy = hit = hit_src = n = 0.0
    objective.eval()
    with torch.no_grad():
        for batch in take(stream, limit):
            batch = to_device(batch, ctx.device)
            video = batch["video"].float() / 255.0
            src, ref = video[:, 0], video[:, 1]
            target = batch["emotion"][:, 1]
            out = objective.generator(src, objective.codes(ref, target, True))
            l1 += float((out - ref).abs().mean())
            copy += float((src - ref).abs().mean())
            for frames, bucket in ((out, "edit"), (src, "src")):
                z = sup.emotion(frames.flatten(0, 1))
                pick = (z @ sup.table.t()).argmax(-1)
                rate = float((pick == target.repeat_interleave(frames.shape[1])).float().mean())
                if bucket == "edit":
                    hit += rate
                else:
                    hit_src += rate
            n += 1
    if not n:
        return {}
    return {"pairs": int(n), "edit_l1_to_aligned_target": l1 / n,
            "copy_l1_to_aligned_target": copy / n, "edit_target_emotion_rate": hit / n,
            "source_target_emotion_rate": hit_src / n}  # fmt: skip


def seed_everything(seed: int) -> None:
    """Seed Python and torch (nothing here draws from numpy's global generator).

    Args:
        seed: The seed.
    """
    random.seed(seed)
    torch.manual_seed(seed)


Builder = Callable[..., Any]
