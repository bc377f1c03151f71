"""Batch builders whose labels feed the contrastive losses directly.

* [ParallelWindows][decouple.data.batches.ParallelWindows]: a transform for
  `ShardDataset(unit="group")` that picks E renditions (emotions) of a parallel group and cuts
  windows whose frames are aligned by the group's stored DTW paths. A batch of K groups then
  holds K x E x T frames; [parallel_labels][decouple.data.batches.parallel_labels] gives
  content ids (group slot, aligned position) and emotion ids for
  [EmotionAwareNCE][decouple.losses.EmotionAwareNCE].
* [EmotionBatches][decouple.data.batches.EmotionBatches]: batches of E emotions x C clips of
  other content, for [EmotionAugmentedNCE][decouple.losses.EmotionAugmentedNCE].
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, default_collate

from decouple.data.align import path_to_index

__all__ = ["EmotionBatches", "ParallelWindows", "parallel_labels"]


class ParallelWindows:
    """Aligned windows of E renditions of one parallel group (a `ShardDataset` transform).

    The window is chosen on the timeline of the group's reference clip; frame t of the window
    of rendition e is the frame the DTW path of e matches to reference frame `start + t`. So
    the e-th rows of the output show the same content (sentence position) in E emotions.
    Renditions are picked with distinct emotions (one intensity each) by a generator seeded
    from the item's `seed` (set by `ShardDataset`), so the choice is reproducible. With
    `ShardDataset(lazy=True)` only the picked renditions' aligned frames are decoded (the
    same output; measured on the demo corpus, 2 of 8 renditions, 1 frame: 25 ms per group
    instead of 80 ms).

    Args:
        emotions: E, renditions per group. Groups with fewer distinct emotions give None (the
            dataset skips them with a warning).
        window: T, frames per window. Groups whose reference is shorter give None.

    Returns (when called):
        `video` (e, t, 3, h, w) uint8, `features` (e, t, c, f) when the clips carry features,
        `frame` (e, t) frame numbers in each rendition, `position` (t,) reference frames,
        `emotion` (e,) and `intensity` (e,) int64, `group` and `keys`, and every per-frame
        array the chosen clips share (e, t, ...), at the aligned frames.

    Examples:
        >>> import numpy as np
        >>> from types import SimpleNamespace as NS
        >>> def clip(emotion_id, key, path):
        ...     meta = NS(emotion_id=emotion_id, intensity=1, reference="r")
        ...     return {"video": torch.arange(6).view(6, 1, 1, 1).expand(6, 3, 2, 2),
        ...             "meta": meta, "key": key, "arrays": {"align": np.array(path)}}
        >>> ref = clip(0, "r", [[i, i] for i in range(6)])
        >>> slow = clip(1, "s", [[0, 0], [1, 0], [2, 1], [3, 2], [4, 3], [5, 5]])
        >>> out = ParallelWindows(emotions=2, window=3)({"group": "g", "seed": 0,
        ...                                              "clips": [ref, slow]})
        >>> p = int(out["position"][0])  # window start on the reference timeline
        >>> out["frame"][1].tolist() == [0, 0, 1, 2, 3, 5][p : p + 3]  # slow's aligned frames
        True
        >>> tuple(out["video"].shape), out["emotion"].tolist()
        ((2, 3, 3, 2, 2), [0, 1])
    """

    def __init__(self, emotions: int, window: int) -> None:
        if emotions < 2:
            raise ValueError(f"emotions must be >= 2 (a parallel batch), got {emotions}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.emotions = int(emotions)
        self.window = int(window)

    def __call__(self, group: dict[str, Any]) -> dict[str, Any] | None:
        clips = group["clips"]
        rng = random.Random(group.get("seed", 0))
        by_emotion: dict[int, list[dict[str, Any]]] = {}
        for c in clips:
            by_emotion.setdefault(int(c["meta"].emotion_id), []).append(c)
        if len(by_emotion) < self.emotions:
            return None
        reference = next((c for c in clips if c["key"] == clips[0]["meta"].reference), None)
        if reference is None:
            return None
        t_ref = _num_frames(reference)
        if t_ref < self.window:
            return None
        chosen_ids = sorted(rng.sample(sorted(by_emotion), self.emotions))
        chosen = [rng.choice(by_emotion[e]) for e in chosen_ids]
        start = rng.randrange(t_ref - self.window + 1)
        position = torch.arange(start, start + self.window)
        frames = []
        for c in chosen:
            path = c["arrays"].get("align")
            if path is None:
                return None
            index = path_to_index(torch.as_tensor(path), t_ref)
            frames.append(index[start : start + self.window].long())
        frame = torch.stack(frames)
        cut = [_frames_of(c, f) for c, f in zip(chosen, frames, strict=True)]
        if any(d is None for d in cut):
            return None
        out: dict[str, Any] = {
            "video": torch.stack([d["video"] for d in cut]),
            "frame": frame,
            "position": position,
            "emotion": torch.tensor(chosen_ids, dtype=torch.long),
            "intensity": torch.tensor([int(c["meta"].intensity) for c in chosen]),
            "group": group["group"],
            "keys": [c["key"] for c in chosen],
        }
        if all("features" in d for d in cut):
            out["features"] = torch.stack([d["features"] for d in cut])
        names = set.intersection(*(set(c["arrays"]) for c in chosen)) - {"align"}
        for name in sorted(names):  # per-frame arrays, at the aligned frames
            out[name] = torch.stack([
                torch.as_tensor(c["arrays"][name])[f] for c, f in zip(chosen, frames, strict=True)
            ])
        return out


def _num_frames(clip: dict[str, Any]) -> int:
    """Video frames of a decoded clip, or of a lazy one (`ShardDataset(lazy=True)`)."""
    return int(clip["video"].shape[0]) if "video" in clip else int(clip["meta"].num_frames)


def _frames_of(clip: dict[str, Any], frames: Tensor) -> dict[str, Tensor] | None:
    """`video` (and `features`) of a clip at the given frames.

    A lazy clip decodes only the span of those frames; None when its video is shorter than
    its metadata says (the group is dropped, as a short reference is).
    """
    if "video" in clip:
        out = {"video": clip["video"][frames]}
        if "features" in clip:
            out["features"] = clip["features"][frames]
        return out
    lo, hi = int(frames.min()), int(frames.max()) + 1
    d = clip["decode"](lo, hi)
    if int(d["video"].shape[0]) < hi - lo:
        return None
    out = {"video": d["video"][frames - lo]}
    if "features" in d:
        out["features"] = d["features"][frames - lo]
    return out


def parallel_labels(emotion: Tensor, window: int, rank: int = 0) -> tuple[Tensor, Tensor]:
    """Content and emotion labels of a parallel batch flattened as (b e t).

    Args:
        emotion: (b, e) emotion ids of the renditions (the batched `emotion` of
            [ParallelWindows][decouple.data.batches.ParallelWindows]).
        window: T, frames per window.
        rank: This process's rank. Content ids must be global when a loss gathers keys over
            ranks (`gather_distributed=True`): rank r's ids start at `r * b * T`, so groups of
            different ranks never share an id (every rank has the same b: the reader drops the
            tail below one global batch).

    Returns:
        `content` (b * e * t,): `(rank * b + b_index) * T + t`, the same for the aligned frames
        of one group in every emotion and different across groups and positions;
        `emotion` (b * e * t,).

    Examples:
        >>> content, emotion = parallel_labels(torch.tensor([[0, 3], [1, 2]]), window=2)
        >>> content.tolist(), emotion.tolist()
        ([0, 1, 0, 1, 2, 3, 2, 3], [0, 0, 3, 3, 1, 1, 2, 2])
        >>> parallel_labels(torch.tensor([[0, 3], [1, 2]]), window=2, rank=1)[0].tolist()
        [4, 5, 4, 5, 6, 7, 6, 7]
    """
    if emotion.dim() != 2:
        raise ValueError(f"emotion must be (b, e), got shape {tuple(emotion.shape)}")
    b, e = emotion.shape
    slots = torch.arange(rank * b, (rank + 1) * b)
    content = slots[:, None, None] * window + torch.arange(window)[None, None, :]
    content = content.expand(b, e, window).reshape(-1)
    return content.to(emotion.device), emotion[:, :, None].expand(b, e, window).reshape(-1)


class EmotionBatches(IterableDataset):
    """Batches of E emotions x C clips each, every clip of other content (a CERL batch).

    Wraps a sample stream (e.g. `ShardDataset(unit="sample")`): clips are bucketed by emotion
    and a batch is emitted as soon as E emotions (drawn by a seeded generator among those
    ready) each hold C clips of distinct content (`group`, or speaker + sentence for clips
    outside parallel groups). Use it with `DataLoader(batch_size=None)`. The epoch accounting
    of the wrapped stream applies to its clips; clips left in the buckets at the end of an
    epoch are not emitted.

    Args:
        samples: The stream of windowed clips.
        emotions: E, emotions per batch.
        per_emotion: C, clips per emotion.
        seed: Seed of the emotion choice.
        rank: This process's rank: content ids start at `rank * emotions * per_emotion`, so
            they stay distinct across ranks when the loss gathers keys
            (`gather_distributed=True`).

    Examples:
        >>> items = [{"emotion": e, "group": f"g{i}", "speaker": "s", "sentence": str(i),
        ...           "x": torch.tensor([i])} for i in range(8) for e in (0, 1)]
        >>> batch = next(iter(EmotionBatches(items, emotions=2, per_emotion=2)))
        >>> batch["emotion"].tolist(), batch["content"].tolist()
        ([0, 0, 1, 1], [0, 1, 0, 1])
    """

    def __init__(
        self, samples: Any, emotions: int, per_emotion: int, *, seed: int = 0, rank: int = 0
    ) -> None:
        super().__init__()
        if emotions < 2 or per_emotion < 1:
            raise ValueError("need emotions >= 2 and per_emotion >= 1")
        self.samples = samples
        self.emotions = int(emotions)
        self.per_emotion = int(per_emotion)
        self.seed = int(seed)
        self.rank = int(rank)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = random.Random(self.seed)
        buckets: dict[int, list[dict[str, Any]]] = {}
        for item in self.samples:
            bucket = buckets.setdefault(int(item["emotion"]), [])
            content = _content_of(item)
            if any(_content_of(other) == content for other in bucket):
                continue  # keep one clip per content in a bucket
            bucket.append(item)
            ready = [e for e, b in buckets.items() if len(b) >= self.per_emotion]
            if len(ready) < self.emotions:
                continue
            chosen = sorted(rng.sample(sorted(ready), self.emotions))
            picked = []
            for e in chosen:
                picked += buckets[e][: self.per_emotion]
                buckets[e] = buckets[e][self.per_emotion :]
            batch = default_collate(picked)
            names = [_content_of(p) for p in picked]
            first = self.rank * self.emotions * self.per_emotion
            ids = {name: first + i for i, name in enumerate(dict.fromkeys(names))}
            batch["emotion"] = torch.as_tensor([int(p["emotion"]) for p in picked])
            batch["content"] = torch.tensor([ids[n] for n in names])
            yield batch


def _content_of(item: dict[str, Any]) -> str:
    group = item.get("group", "")
    return group if group else f"{item.get('speaker', '')}/{item.get('sentence', '')}"
