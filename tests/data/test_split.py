"""The epoch plan: every unit read once across ranks and workers, only the tail dropped."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from decouple.data.split import plan_worker, resume_counts, resume_rotation, shard_order


def _units(plan, shard_units, order):
    """Global positions (in the epoch's unit sequence) of the units a plan reads."""
    offsets, acc = {}, 0
    for s in order:
        offsets[s] = acc
        acc += shard_units[s]
    return [offsets[seg.shard] + u for seg in plan.segments for u in range(seg.start, seg.stop)]


@pytest.mark.parametrize("trial", range(40))
def test_units_are_partitioned_exactly(trial: int) -> None:
    rng = random.Random(trial)
    shard_units = [rng.randint(0, 30) for _ in range(rng.randint(1, 9))]
    batch, world, workers = rng.randint(1, 7), rng.randint(1, 4), rng.randint(1, 3)
    seed, epoch = rng.randint(0, 99), rng.randint(0, 5)
    order = shard_order(len(shard_units), seed=seed, epoch=epoch)
    total = sum(shard_units)
    usable = total // (batch * world) * (batch * world)
    seen: list[int] = []
    per_rank_batches = []
    for rank in range(world):
        rank_batches = 0
        for worker in range(workers):
            plan = plan_worker(shard_units, batch_size=batch, rank=rank, world_size=world,
                               worker=worker, num_workers=workers, seed=seed, epoch=epoch)
            assert plan.num_units == plan.num_batches * batch
            assert plan.dropped == total - usable and plan.epoch_units == total
            units = _units(plan, shard_units, order)
            assert len(units) == plan.num_units
            seen += units
            rank_batches += plan.num_batches
        per_rank_batches.append(rank_batches)
    assert sorted(seen) == list(range(usable))  # no duplicate, nothing lost but the tail
    assert len(set(per_rank_batches)) == 1  # every rank delivers the same number of batches
    assert total - usable < batch * world


def test_order_is_deterministic_and_reshuffled_per_epoch() -> None:
    a = shard_order(50, seed=3, epoch=0)
    assert a == shard_order(50, seed=3, epoch=0)
    assert a != shard_order(50, seed=3, epoch=1)
    assert a != shard_order(50, seed=4, epoch=0)
    assert sorted(a) == list(range(50))
    assert shard_order(5, seed=3, epoch=7, shuffle=False) == [0, 1, 2, 3, 4]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="rank"):
        plan_worker([4], batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        plan_worker([4], batch_size=0)
    with pytest.raises(ValueError, match="cannot skip 7"):
        resume_counts([3, 3], 7)


class _Tagged(IterableDataset):
    """Yields (worker, batch number) items: batch_size of them per batch."""

    def __init__(self, batches: list[int], batch_size: int) -> None:
        self.batches, self.batch_size = batches, batch_size

    def __iter__(self):
        info = get_worker_info()
        w = 0 if info is None else info.id
        for b in range(self.batches[w]):
            for _ in range(self.batch_size):
                yield torch.tensor([w, b])


@pytest.mark.parametrize("batches", [[3, 1], [2, 2], [0, 3]])
def test_resume_counts_match_the_dataloader_round_robin(batches: list[int]) -> None:
    """The assumption behind skip(n): DataLoader takes batches from its workers in turn."""
    loader = DataLoader(_Tagged(batches, 2), batch_size=2, num_workers=2)
    delivered = [tuple(batch[0].tolist()) for batch in loader]
    assert len(delivered) == sum(batches)
    for n in range(sum(batches) + 1):
        counts = resume_counts(batches, n)
        for w in range(2):
            assert counts[w] == sum(1 for worker, _ in delivered[:n] if worker == w)


def test_resume_counts_exhaustive_small() -> None:
    for batches in itertools.product(range(4), repeat=3):
        order = []
        left = list(batches)
        while any(left):
            for w in range(3):
                if left[w]:
                    order.append(w)
                    left[w] -= 1
        for n in range(len(order) + 1):
            assert resume_counts(list(batches), n) == [order[:n].count(w) for w in range(3)]


def _cycle(batches: list[int]) -> list[tuple[int, int]]:
    """The (worker, batch) delivery order of a DataLoader: cyclic, skipping exhausted workers."""
    order, done = [], [0] * len(batches)
    while any(d < b for d, b in zip(done, batches, strict=True)):
        for w in range(len(batches)):
            if done[w] < batches[w]:
                order.append((w, done[w]))
                done[w] += 1
    return order


def test_rotation_makes_a_resumed_loader_continue_the_interrupted_one() -> None:
    for batches in itertools.product(range(4), repeat=3):
        full = _cycle(list(batches))
        for n in range(len(full) + 1):
            done, r = resume_counts(list(batches), n), resume_rotation(list(batches), n)
            # the new loader's worker p plays worker (p + r) % 3 and skips its done batches
            remaining = [batches[(p + r) % 3] - done[(p + r) % 3] for p in range(3)]
            resumed = [((p + r) % 3, done[(p + r) % 3] + b) for p, b in _cycle(remaining)]
            assert resumed == full[n:], (batches, n)
