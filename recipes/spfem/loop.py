"""The one training loop every stage uses (accelerate; CPU, one GPU or many).

    objective (nn.Module: batch -> {"loss", logs...}) + optimizer  --accelerator.prepare-->
    per-rank batch stream (NOT prepared: ShardDataset splits by rank itself)
      for each step: learning rate = the optimizer's lr x lr_scale(schedule, step),
                     `gradient_accumulation` micro-batches under accelerator.accumulate,
                     autocast (mixed precision), finite-loss check on every rank,
                     backward, optimizer step
                     every log_every: scalars (TensorBoard + <stage>/scalars.jsonl), progress bar
                     every sample_every: the stage's sample callback (main process)
                     every save_every: save_state into <stage>/states/.tmp-step-N, renamed
                                       to step-N when every rank has written (old ones pruned
                                       only after that)

Resume (`resume=True`): the newest complete `states/step-N` is loaded (model, optimizer,
RNG of every process), the step is restored and each rank's stream restarts at its saved
(epoch, batches delivered) position, through `ShardDataset.skip(n)` or, for streams that
cannot skip, by replaying and dropping the first n batches. A run killed after a save and
resumed then ends with the same weights as an uninterrupted one (deterministic CPU config).

A NaN or inf loss on any rank stops every rank with [NonFiniteLoss][loop.NonFiniteLoss],
before the backward pass: the last saved state is untouched.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from model import DONE, WEIGHTS
from torch import Tensor, nn

from decouple.checkpoint import write_weights
from decouple.data.io import atomic_write_bytes

__all__ = [
    "BatchStream",
    "LoopSettings",
    "NonFiniteLoss",
    "Position",
    "finish_stage",
    "latest_state",
    "lr_scale",
    "to_device",
    "train",
    "write_json",
]

STATES = "states"
"""Folder of a stage's saved training states."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: the run stops, the last good state is kept."""


@dataclass
class Position:
    """Where a rank is in its batch stream: epoch and batches delivered in it."""

    epoch: int = 0
    batch: int = 0


class BatchStream:
    """An endless per-rank stream of batches over epochs, resumable at a `Position`.

    Args:
        make_epoch: `(epoch, skip) -> iterable` of the epoch's batches after its first `skip`
            batches (e.g. a DataLoader over a ShardDataset after `set_epoch` and `skip`).
        name: What the stream reads, for messages.
    """

    def __init__(self, make_epoch: Callable[[int, int], Iterable[Any]], name: str) -> None:
        self.make_epoch = make_epoch
        self.name = name
        self.position = Position()

    def __iter__(self) -> Iterator[Any]:
        pos = self.position
        while True:
            start = pos.batch
            for batch in self.make_epoch(pos.epoch, start):
                pos.batch += 1
                yield batch
            if pos.batch == 0:
                raise RuntimeError(f"{self.name}: epoch {pos.epoch} gave no batch on this rank "
                                   "(too few clips for the batch size and processes?)")  # fmt: skip
            pos.epoch += 1
            pos.batch = 0


def replay(iterable: Iterable[Any], skip: int) -> Iterator[Any]:
    """The items of `iterable` after the first `skip` (for streams without an exact skip).

    Args:
        iterable: The epoch's batches.
        skip: Batches to drop.

    Yields:
        The rest.
    """
    for i, item in enumerate(iterable):
        if i >= skip:
            yield item


@dataclass
class LoopSettings:
    """What the loop needs from the config (`runtime` and the stage's `steps`)."""

    steps: int
    save_every: int
    log_every: int
    sample_every: int
    keep_states: int
    progress: bool
    gradient_accumulation: int
    debug_exit_after_save: int = 0
    debug_nan_step: int = 0
    schedule: str = "constant"


def lr_scale(schedule: str, step: int, steps: int) -> float:
    """The learning-rate factor of an optimizer step (the config's `lr` times this).

    Args:
        schedule: `constant` (1) or `cosine` (half a cosine from 1 at the first step to 0
            after the last).
        step: The step about to be taken, 0-based.
        steps: The stage's steps.

    Returns:
        The factor.

    Raises:
        ValueError: An unknown schedule.

    Examples:
        >>> [round(lr_scale("cosine", k, 4), 4) for k in range(4)]
        [1.0, 0.8536, 0.5, 0.1464]
        >>> lr_scale("constant", 3, 4)
        1.0
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (constant, cosine)")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to a device.

    Args:
        batch: Tensors, dicts, lists, tuples, other values (kept).
        device: Target device.

    Returns:
        The same structure.
    """
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    return batch


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically (temporary file + rename).

    Args:
        path: Target.
        obj: JSON-serialisable value.

    Returns:
        The path.
    """
    data = json.dumps(obj, indent=1, allow_nan=True).encode("utf-8") + b"\n"
    return atomic_write_bytes(path, data)


def latest_state(stage_path: Path) -> Path | None:
    """The newest complete saved state of a stage (`states/step-N`), or None.

    Args:
        stage_path: The stage folder.

    Returns:
        The state folder.
    """
    root = stage_path / STATES
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / "loop.json").is_file())
    return done[-1] if done else None


def _scalar(value: Any) -> float | None:
    if isinstance(value, Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def train(
    name: str,
    *,
    accelerator: Any,
    stage_path: Path,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    stream: BatchStream,
    settings: LoopSettings,
    resume: bool,
    sample: Callable[[nn.Module, Any, int], None] | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """Run a stage's training loop.

    Args:
        name: Stage name (messages, scalar tags).
        accelerator: The `accelerate.Accelerator`.
        stage_path: The stage folder (`states/` and `scalars.jsonl` go there).
        objective: Module mapping a batch to a dict with a scalar `loss` (and logs).
        optimizer: Its optimizer.
        stream: This rank's batch stream.
        settings: Loop settings.
        resume: Continue from the newest saved state (error if there is none... a fresh start
            then).
        sample: Called on the main process every `sample_every` steps with the unwrapped
            objective, the last batch and the step.

    Returns:
        The unwrapped objective (trained) and the mean of each logged scalar over the last
        `log_every` steps.

    Raises:
        NonFiniteLoss: When the loss is NaN or inf (on any rank).
        FileExistsError: When a saved state exists and `resume` is False.
    """
    # the learning-rate schedule is a function of the step (set before each update): no
    # scheduler state to save, and exact after a resume (an accelerate-prepared scheduler
    # would step once per process)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    objective, optimizer = accelerator.prepare(objective, optimizer)
    main = accelerator.is_main_process
    rank = accelerator.process_index
    step = 0
    saved = latest_state(stage_path)
    if saved is not None and not resume:
        raise FileExistsError(
            f"stage {name}: {saved} holds a saved training state; pass --resume to continue "
            f"it, or delete {stage_path} to start the stage over"
        )
    if resume and saved is not None:
        accelerator.load_state(str(saved))
        info = json.loads((saved / "loop.json").read_text(encoding="utf-8"))
        data = json.loads((saved / f"data-{rank}.json").read_text(encoding="utf-8"))
        step = int(info["step"])
        stream.position = Position(int(data["epoch"]), int(data["batch"]))
        accelerator.print(f"[{name}] resumed from {saved} at step {step} "
                          f"(epoch {data['epoch']}, batch {data['batch']} on rank {rank})")
    stage_path.mkdir(parents=True, exist_ok=True)
    scalars_path = stage_path / "scalars.jsonl"
    batches = iter(stream)
    window: dict[str, list[float]] = {}
    last_means: dict[str, float] = {}
    progress = None
    if settings.progress and main:
        from tqdm.auto import tqdm

        progress = tqdm(total=settings.steps, initial=step, desc=name, dynamic_ncols=True)
    t0 = time.perf_counter()
    batch: Any = None
    while step < settings.steps:
        objective.train()
        logs: dict[str, float] = {}
        factor = lr_scale(settings.schedule, step, settings.steps)
        for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = lr * factor
        for _ in range(settings.gradient_accumulation):
            batch = to_device(next(batches), accelerator.device)
            with accelerator.accumulate(objective):
                with accelerator.autocast():
                    out = objective(batch)
                loss = out["loss"]
                if settings.debug_nan_step and step + 1 == settings.debug_nan_step:
                    loss = loss * float("nan")
                finite = torch.tensor([1.0 if bool(torch.isfinite(loss.detach()).all()) else 0.0],
                                      device=accelerator.device)  # fmt: skip
                if float(accelerator.reduce(finite, reduction="sum")) < accelerator.num_processes:
                    last = latest_state(stage_path)
                    kept = (f"the last good state {last} is kept (resume with --resume)"
                            if last else "no state had been saved yet")
                    raise NonFiniteLoss(
                        f"stage {name}: the loss is {float(loss.detach())} (not finite) at step "
                        f"{step + 1} on rank {rank} or another rank; stopping before the update: "
                        f"{kept}. Lower {name}.lr, check the data, or use mixed_precision=no."
                    )
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for k, v in out.items():
                s = _scalar(v)
                if s is not None:
                    logs[k] = logs.get(k, 0.0) + s / settings.gradient_accumulation
        step += 1
        for k, v in logs.items():
            window.setdefault(k, []).append(v)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}", refresh=False)
        if settings.log_every and (step % settings.log_every == 0 or step == settings.steps):
            last_means = {k: sum(v) / len(v) for k, v in window.items() if v}
            window = {}
            record = {f"{name}/{k}": v for k, v in last_means.items()}
            record[f"{name}/steps_per_s"] = step / max(time.perf_counter() - t0, 1e-9)
            accelerator.log(record, step=step)
            if main:
                with scalars_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": step, **{k: v for k, v in last_means.items()
                                                         if math.isfinite(v)}}) + "\n")
        if sample is not None and settings.sample_every and main and (
            step % settings.sample_every == 0 or step == settings.steps
        ):
            unwrapped = accelerator.unwrap_model(objective)
            was = unwrapped.training
            unwrapped.eval()
            with torch.no_grad():
                sample(unwrapped, batch, step)
            unwrapped.train(was)
        if settings.save_every and step % settings.save_every == 0 and step < settings.steps:
            _save(accelerator, stage_path, step, stream.position, settings.keep_states)
            if settings.debug_exit_after_save == step:
                accelerator.print(f"[{name}] debug: hard exit after the save at step {step}")
                os._exit(17)
    if progress is not None:
        progress.close()
    if not last_means and window:
        last_means = {k: sum(v) / len(v) for k, v in window.items() if v}
    accelerator.wait_for_everyone()
    return accelerator.unwrap_model(objective), last_means


def _save(accelerator: Any, stage_path: Path, step: int, position: Position, keep: int) -> None:
    """save_state into a temporary folder, renamed into place once every rank has written."""
    root = stage_path / STATES
    tmp = root / f".tmp-step-{step:08d}"
    final = root / f"step-{step:08d}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    write_json(tmp / f"data-{accelerator.process_index}.json",
               {"epoch": position.epoch, "batch": position.batch})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / "loop.json", {"step": step})  # written last: marks the state complete
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        states = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in states[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def finish_stage(
    stage_path: Path,
    state: dict[str, Tensor] | None,
    metrics: dict[str, Any],
    meta: dict[str, Any] | None = None,
    *,
    main: bool = True,
    extra_weights: dict[str, dict[str, Tensor]] | None = None,
) -> None:
    """Write a stage's weights (safetensors, atomic), metrics.json, then the DONE marker.

    Args:
        stage_path: The stage folder.
        state: Tensors of `model.safetensors` (None: the stage has no weights).
        metrics: JSON metrics.
        meta: JSON metadata stored in the weight file.
        main: Whether this is the main process (others write nothing).
        extra_weights: Further weight files by name (e.g. `discriminator.safetensors`).
    """
    if not main:
        return
    stage_path.mkdir(parents=True, exist_ok=True)
    if state is not None:
        write_weights(stage_path / WEIGHTS, state, meta or {})
    for file, tensors in (extra_weights or {}).items():
        write_weights(stage_path / file, tensors, meta or {})
    write_json(stage_path / "metrics.json", metrics)
    atomic_write_bytes(stage_path / DONE, b"done\n")
    shutil.rmtree(stage_path / STATES, ignore_errors=True)
