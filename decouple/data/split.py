"""Which part of an epoch each rank and each DataLoader worker reads.

The reader splits shards itself (never through `accelerator.prepare`, which would re-shard or
broadcast an iterable loader). The plan is pure index arithmetic on the shard index, so every
process computes the same plan without talking to the others:

1. Shards are put in a random order drawn from `(seed, epoch)` (or kept in order without
   shuffling): a per-epoch reshuffle before splitting.
2. The epoch is the concatenation of the units (samples, or parallel groups) of the shards in
   that order. The tail below one *global* batch (`batch_size * world_size` units) is dropped,
   so every rank delivers the same number of full batches and DDP never waits on a rank.
3. Rank r reads a contiguous range of the epoch (so ranks read mostly disjoint shards), and
   inside it worker w reads a contiguous range of whole batches.
4. A DataLoader delivers the batches of its workers round-robin, so the batches a rank has
   already delivered are known exactly; [resume_counts][decouple.data.split.resume_counts] turns
   "skip the first n batches" into a per-worker count and
   [resume_rotation][decouple.data.split.resume_rotation] tells which worker the resumed
   DataLoader's worker 0 must play.

Within an epoch no unit is read twice and none is lost beyond the dropped tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "Segment",
    "WorkerPlan",
    "plan_worker",
    "resume_counts",
    "resume_rotation",
    "shard_order",
]


@dataclass(frozen=True)
class Segment:
    """Units `[start, stop)` of shard number `shard` (its position in the index)."""

    shard: int
    start: int
    stop: int


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker of one rank reads in one epoch.

    Attributes:
        segments: Shard ranges in reading order.
        num_batches: Full local batches this worker delivers.
        num_units: Units it reads (`num_batches * batch_size`).
        dropped: Units of the whole epoch dropped as the tail below one global batch (the
            same number on every rank and worker).
        epoch_units: Units in the whole epoch before dropping.
    """

    segments: tuple[Segment, ...]
    num_batches: int
    num_units: int
    dropped: int
    epoch_units: int


def shard_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The order in which the shards of an epoch are read (the same on every process).

    Args:
        num_shards: Shards in the index.
        seed: Run seed.
        epoch: Epoch number; every epoch has its own order.
        shuffle: Keep the index order when False.

    Returns:
        A permutation of `range(num_shards)`.

    Examples:
        >>> shard_order(4, seed=0, epoch=0, shuffle=False)
        [0, 1, 2, 3]
        >>> sorted(shard_order(4, seed=0, epoch=1)) == [0, 1, 2, 3]
        True
    """
    if not shuffle:
        return list(range(num_shards))
    gen = torch.Generator().manual_seed(_mix(seed, epoch))
    return torch.randperm(num_shards, generator=gen).tolist()


def plan_worker(
    shard_units: Sequence[int],
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    worker: int = 0,
    num_workers: int = 1,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
) -> WorkerPlan:
    """The segments of shards one worker of one rank reads in one epoch.

    Args:
        shard_units: Units (samples or groups) per shard, in index order.
        batch_size: Local batch size (units per batch on one rank).
        rank: This process's rank.
        world_size: Number of ranks.
        worker: DataLoader worker id (0 without workers).
        num_workers: DataLoader workers (1 without workers).
        seed: Run seed.
        epoch: Epoch number.
        shuffle: Reshuffle the shard order every epoch.

    Returns:
        The worker's plan.

    Raises:
        ValueError: On a non-positive batch size or world size, or a rank/worker out of range.

    Examples:
        >>> p = plan_worker([5, 5, 5], batch_size=2, world_size=2, shuffle=False)
        >>> p.segments, p.num_batches, p.dropped  # 15 units, global batch 4: 3 dropped
        ((Segment(shard=0, start=0, stop=5), Segment(shard=1, start=0, stop=1)), 3, 3)
    """
    if batch_size < 1 or world_size < 1 or num_workers < 1:
        raise ValueError(
            f"batch_size, world_size and num_workers must be >= 1, got {batch_size}, "
            f"{world_size}, {num_workers}"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker must lie in [0, {num_workers}), got {worker}")
    if any(u < 0 for u in shard_units):
        raise ValueError("shard_units must be non-negative counts")
    order = shard_order(len(shard_units), seed=seed, epoch=epoch, shuffle=shuffle)
    total = sum(shard_units)
    global_batch = batch_size * world_size
    rank_batches = total // global_batch
    dropped = total - rank_batches * global_batch
    # This worker's batches inside the rank's range, then units inside the epoch.
    first_batch = worker * rank_batches // num_workers
    last_batch = (worker + 1) * rank_batches // num_workers
    rank_start = rank * rank_batches * batch_size
    start = rank_start + first_batch * batch_size
    stop = rank_start + last_batch * batch_size
    segments = []
    offset = 0
    for shard in order:
        n = shard_units[shard]
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            segments.append(Segment(shard, lo - offset, hi - offset))
        offset += n
    return WorkerPlan(tuple(segments), last_batch - first_batch, stop - start, dropped, total)


def resume_counts(batches_per_worker: Sequence[int], delivered: int) -> list[int]:
    """How many batches each worker had delivered when a DataLoader had delivered `delivered`.

    A DataLoader over an iterable dataset takes one batch from each worker in turn
    (cyclically, skipping workers that are exhausted). Resuming mid-epoch therefore means that
    worker w skips exactly `resume_counts(...)[w]` of its batches.

    Args:
        batches_per_worker: Batches each worker delivers in the epoch.
        delivered: Batches the rank's DataLoader had delivered.

    Returns:
        Batches already delivered, per worker.

    Raises:
        ValueError: When `delivered` exceeds the epoch's batches.

    Examples:
        >>> resume_counts([3, 1, 2], 5)
        [2, 1, 2]
    """
    return _round_robin(batches_per_worker, delivered)[0]


def resume_rotation(batches_per_worker: Sequence[int], delivered: int) -> int:
    """The worker a DataLoader would have asked next after `delivered` batches.

    A new DataLoader starts asking at worker 0; the resumed stream equals the rest of the
    interrupted one when DataLoader worker p plays the role of worker
    `(p + resume_rotation(...)) % num_workers` (both sequences are the same cycle over the
    workers, skipping exhausted ones).

    Args:
        batches_per_worker: Batches each worker delivers in the epoch.
        delivered: Batches the rank's DataLoader had delivered.

    Returns:
        A worker index (0 when nothing was delivered).

    Examples:
        >>> resume_rotation([3, 1, 2], 1), resume_rotation([3, 1, 2], 5)
        (1, 0)
    """
    return _round_robin(batches_per_worker, delivered)[1]


def _round_robin(batches_per_worker: Sequence[int], delivered: int) -> tuple[list[int], int]:
    """Per-worker counts after `delivered` cyclic deliveries, and the next worker to ask."""
    total = sum(batches_per_worker)
    if not 0 <= delivered <= total:
        raise ValueError(f"cannot skip {delivered} batches: the epoch has {total} on this rank")
    workers = len(batches_per_worker)
    done = [0] * workers
    w = 0
    for _ in range(delivered):
        while done[w] >= batches_per_worker[w]:
            w = (w + 1) % workers
        done[w] += 1
        w = (w + 1) % workers
    return done, w


def _mix(seed: int, epoch: int) -> int:
    """A 63-bit seed from (seed, epoch), different for every pair in practice."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % (1 << 63)
