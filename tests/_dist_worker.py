"""One rank of the 2-process gloo session driven by `tests/test_distributed.py`.

This file is a script, not a test module: its name starts with an underscore and it defines no
`test_` functions, so pytest never collects it. The parent test launches it twice:

    RANK=r WORLD_SIZE=2 LOCAL_RANK=r MASTER_ADDR=127.0.0.1 MASTER_PORT=p \
        python tests/_dist_worker.py SCENARIOS.pt OUT_DIR

`SCENARIOS.pt` (written by the parent, read with `torch.load(weights_only=True)`) is a list of
scenario dicts; see `run_scenario` for the keys. In ONE process-group session the worker

1. exercises `decouple.distributed` directly (`check_helpers`), then
2. for every scenario, computes its loss on this rank's slice of the batch with
   `gather_distributed=True`, backpropagates, averages every parameter gradient over ranks with
   `all_reduce(SUM) / world_size` (as DDP does), and records the result; it also records the
   same computation with `gather_distributed=False` (a control the parent expects to differ).

Results go to `OUT_DIR/rank{r}.pt`, rewritten after every step so a later hang still leaves the
earlier results readable. A scenario that raises is recorded with its traceback and the session
goes on. The parent imports `run_scenario` from this file to compute the single-process
reference, so both sides build the loss and call it through exactly the same code.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

Result = dict[str, Any]

LOSS_CLASSES = ("InfoNCE", "DecoupledNCE", "EmotionAwareNCE", "EmotionAugmentedNCE")


def row_slice(sizes: list[int], rank: int | None) -> slice:
    """The rows rank `rank` owns in the concatenated batch (all rows when `rank` is None)."""
    if rank is None:
        return slice(0, sum(sizes))
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def build_loss(spec: dict[str, Any], gather: bool) -> torch.nn.Module:
    """Instantiate the scenario's loss class with its keyword arguments."""
    import decouple.losses as losses

    if spec["cls"] not in LOSS_CLASSES:
        raise ValueError(f"unknown loss class {spec['cls']!r}")
    cls = getattr(losses, spec["cls"])
    return cls(**spec["kwargs"], gather_distributed=gather)


def call_loss(
    loss_fn: torch.nn.Module,
    cls: str,
    z: torch.Tensor,
    target: torch.Tensor | None,
    nuisance: torch.Tensor | None,
    keys: torch.Tensor | None,
    key_target: torch.Tensor | None,
    key_nuisance: torch.Tensor | None,
    prior: torch.Tensor | None,
    masks: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Call `loss_fn` with the generic (target, nuisance) labels mapped to its argument names.

    `masks` (InfoNCE only) selects the explicit-mask form instead of the label form.
    """
    if cls == "InfoNCE":
        if nuisance is not None or key_nuisance is not None or prior is not None:
            raise ValueError("InfoNCE takes only target labels or masks")
        if masks is not None:
            return loss_fn(z, pos_mask=masks[0], neg_mask=masks[1], ref_emb=keys)
        return loss_fn(z, target, ref_emb=keys, ref_labels=key_target)
    if masks is not None:
        raise ValueError(f"{cls} takes no masks")
    if cls == "DecoupledNCE":
        return loss_fn(
            z, target, nuisance,
            ref_emb=keys, ref_target_labels=key_target, ref_nuisance_labels=key_nuisance,
        )  # fmt: skip
    if cls == "EmotionAwareNCE":  # target = content, nuisance = emotion
        return loss_fn(
            z, target, nuisance,
            ref_emb=keys, ref_content_labels=key_target, ref_emotion_labels=key_nuisance,
        )  # fmt: skip
    if cls == "EmotionAugmentedNCE":  # target = emotion, nuisance = content
        return loss_fn(
            z, target, nuisance,
            prior=prior, ref_emb=keys, ref_emotion_labels=key_target,
            ref_content_labels=key_nuisance,
        )  # fmt: skip
    raise ValueError(f"unknown loss class {cls!r}")


def run_scenario(spec: dict[str, Any], rank: int | None, gather: bool, scale: float) -> Result:
    """Compute one scenario's loss on the rows of `rank` (all rows when None) and backpropagate.

    Scenario keys: `cls`, `kwargs` (constructor arguments except `gather_distributed`), `sizes`
    (rows per rank), `inputs` (N x D_in), `W` (D_in x D), `target` and `nuisance` (N or None),
    `pos_mask` and `neg_mask` (N x M or None: InfoNCE's mask form, where rank r passes its rows
    against all M keys), for the ref_emb mode `key_sizes`, `key_inputs` (M x D_in), `V`
    (D_in x D), `key_target`, `key_nuisance` (all None in self mode), `prior` (K x D or None)
    and `coef` (N, weights of the rows for `reduction="none"`).

    Embeddings are `inputs @ W` (keys: `key_inputs @ V`); `W`, `V`, the prior `T` and the loss's
    own parameters (a learnt temperature) are fresh leaf tensors with the scenario's initial
    values, so every rank starts from the same parameters.

    Returns:
        `loss` (the returned value, detached), `dtype`, `grads` (parameter name -> gradient of
        the objective; zeros when the parameter got no gradient, its name then listed in
        `grad_none`) and `warnings` (class names of the warnings raised by the call). The
        objective is the loss itself for "mean" and "sum", and `scale * sum_i coef_i * loss_i`
        for "none" (each rank passes `scale = world_size`, so that averaging the gradients over
        ranks gives the single-process gradient of `sum_i coef_i * loss_i`).
    """
    rows = row_slice(spec["sizes"], rank)
    params: dict[str, torch.Tensor] = {"W": spec["W"].clone().requires_grad_(True)}
    z = spec["inputs"][rows] @ params["W"]
    target = None if spec["target"] is None else spec["target"][rows]
    nuisance = None if spec["nuisance"] is None else spec["nuisance"][rows]
    masks = None
    if spec["pos_mask"] is not None:
        # Gathering ranks see all M keys; a rank alone sees only its own keys.
        own_keys = row_slice(spec["key_sizes"] or spec["sizes"], rank)
        cols = slice(None) if gather else own_keys
        masks = (spec["pos_mask"][rows, cols], spec["neg_mask"][rows, cols])

    keys = key_target = key_nuisance = None
    if spec["key_inputs"] is not None:
        key_rows = row_slice(spec["key_sizes"], rank)
        params["V"] = spec["V"].clone().requires_grad_(True)
        keys = spec["key_inputs"][key_rows] @ params["V"]
        if spec["key_target"] is not None:
            key_target = spec["key_target"][key_rows]
        if spec["key_nuisance"] is not None:
            key_nuisance = spec["key_nuisance"][key_rows]

    prior = None
    if spec["prior"] is not None:
        params["T"] = prior = spec["prior"].clone().requires_grad_(True)

    loss_fn = build_loss(spec, gather)
    for name, p in loss_fn.named_parameters():
        params[f"loss.{name}"] = p

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call_loss(
            loss_fn, spec["cls"], z, target, nuisance, keys, key_target, key_nuisance, prior, masks
        )
    objective = out if out.ndim == 0 else scale * (out * spec["coef"][rows]).sum()
    objective.backward()
    return {
        "loss": out.detach().clone(),
        "dtype": str(out.dtype),
        "grads": {
            name: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
            for name, p in params.items()
        },
        "grad_none": sorted(name for name, p in params.items() if p.grad is None),
        "warnings": [type(w.message).__name__ for w in caught],
    }


def average_grads(result: Result, world_size: int) -> None:
    """Replace every gradient by its mean over ranks (all_reduce SUM / world size, as DDP)."""
    for name in sorted(result["grads"]):
        grad = result["grads"][name].clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        result["grads"][name] = grad / world_size


def check_helpers(rank: int, world_size: int) -> Result:
    """Exercise `decouple.distributed` with uneven per-rank sizes (3 and 5 rows).

    The parent knows the global tensors below and checks every recorded value.
    """
    from decouple import distributed as dd

    sizes = [3, 5][:world_size]
    rows = row_slice(sizes, rank)
    total = sum(sizes)
    out: Result = {
        "rank": dd.get_rank(),
        "world_size": dd.get_world_size(),
        "is_distributed": dd.is_distributed(),
        "sizes": dd.all_gather_sizes(sizes[rank], torch.device("cpu")),
    }

    # all_gather_with_grad: trailing dimensions are kept; backward sums the ranks' gradients.
    base = torch.arange(total * 6, dtype=torch.float64).reshape(total, 2, 3)
    x = base[rows].clone().requires_grad_(True)
    gathered = dd.all_gather_with_grad(x)
    out["gathered"] = gathered.detach().clone()
    out["gathered_requires_grad"] = gathered.requires_grad
    coef = (rank + 1.0) * torch.linspace(-1.0, 2.0, total * 6, dtype=torch.float64)
    (gathered * coef.reshape(total, 2, 3)).sum().backward()
    out["x_grad"] = None if x.grad is None else x.grad.clone()

    # all_gather_no_grad: integer labels and a float tensor that requires grad.
    labels = torch.arange(100, 100 + total)[rows]
    out["labels"] = dd.all_gather_no_grad(labels)
    floats = base[rows, 0, 0].clone().requires_grad_(True)
    gathered_floats = dd.all_gather_no_grad(floats)
    out["floats"] = gathered_floats.detach().clone()
    out["floats_requires_grad"] = gathered_floats.requires_grad

    # all_reduce_sum: the sum over ranks, the input left untouched.
    value = torch.tensor([rank + 1.0, 10.0 * (rank + 1)], dtype=torch.float64)
    out["reduced"] = dd.all_reduce_sum(value).clone()
    out["reduce_input_after"] = value.clone()
    count = torch.tensor(rank + 2)
    out["reduced_count"] = dd.all_reduce_sum(count).clone()
    return out


def save(results: Result, out_dir: str, rank: int) -> None:
    """Atomically write this rank's results so the parent never reads a half-written file."""
    path = os.path.join(out_dir, f"rank{rank}.pt")
    torch.save(results, path + ".tmp")
    os.replace(path + ".tmp", path)


def log(rank: int, message: str) -> None:
    print(f"[rank {rank}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    scenario_path, out_dir = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=30))
    results: Result = {"scenarios": {}, "finished": False}
    try:
        log(rank, "helpers")
        try:
            results["helpers"] = check_helpers(rank, world_size)
        except Exception:
            results["helpers"] = {"error": traceback.format_exc()}
        save(results, out_dir, rank)

        specs: list[dict[str, Any]] = torch.load(scenario_path, weights_only=True)
        for spec in specs:
            log(rank, f"scenario {spec['name']}")
            try:
                result = run_scenario(spec, rank, gather=True, scale=world_size)
                average_grads(result, world_size)
                # A rank with no rows cannot compute a local-only loss (empty batches are only
                # accepted while gathering), so scenarios with an empty rank have no control.
                control = None
                if min(spec["sizes"]) > 0:
                    control = run_scenario(spec, rank, gather=False, scale=world_size)
                    average_grads(control, world_size)
                result["control"] = control
                result["error"] = None
            except Exception:
                result = {"error": traceback.format_exc()}
            results["scenarios"][spec["name"]] = result
            save(results, out_dir, rank)
        results["finished"] = True
        save(results, out_dir, rank)
        log(rank, "done")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
