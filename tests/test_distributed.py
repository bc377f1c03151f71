"""Distributed exactness of the contrastive losses, in two real CPU processes over gloo.

The property (issue "Memory and distribution"): rank r holds a local batch (inputs a_r and
labels) and computes z_r = a_r @ W with a parameter W shared by all ranks (same initial value,
float64). The loss is built with `gather_distributed=True`. After backward on every rank and
averaging W.grad over ranks (all_reduce SUM / world size, as DDP does), W.grad equals the
gradient of the single-process loss (same class, `gather_distributed=False`) on the
concatenated batch (rank 0's rows first), and the mean over ranks of the returned loss equals
the single-process loss, to 1e-6 relative in float64. The same holds for every other shared
parameter: the keys' projection V (ref_emb mode), the emotion prior T of EmotionAugmentedNCE
and a learnt temperature. With `reduction="none"`, rank r's rows equal the single-process rows
of its slice.

How it runs: a module-scoped fixture writes every scenario (inputs, labels, initial parameters)
to a file, picks a free port and starts `tests/_dist_worker.py` twice (RANK 0 and 1). The two
workers run all scenarios in ONE process-group session and save their results; each test here
compares them with the single-process computation done in this process by the very same code
(`run_scenario`, imported from the worker), so only `gather_distributed` and the batch split
differ. A hang fails the tests after `SESSION_TIMEOUT_S` instead of blocking CI.

`decouple.distributed` is also tested directly: in the session (uneven sizes, gradient sums
over ranks) and here in one process, where every helper must be a no-op.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.distributed as dist

from decouple import distributed as dd

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
WORKER_PATH = TESTS_DIR / "_dist_worker.py"
WORLD_SIZE = 2
SESSION_TIMEOUT_S = 120.0
RTOL = 1e-6  # the bound, float64
ATOL = 1e-12  # only matters where the expected value is exactly zero
CONTROL_MIN_REL_DIFF = 1e-3  # the local-only (non-gathered) control must miss by at least this

D_IN, D_OUT = 6, 4
N_EMOTIONS = 3  # rows of the prior T


def _load_worker() -> ModuleType:
    """Import tests/_dist_worker.py as a module (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_dist_worker", WORKER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def _same_nuisance_negatives(spec: dict[str, Any]) -> bool:
    """Whether the scenario's loss draws negatives only from the anchor's nuisance group."""
    default = "same_emotion" if spec["cls"] == "EmotionAwareNCE" else "all"
    return spec["kwargs"].get("negatives", default) in ("same_emotion", "same_nuisance")


def pair_sets(spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks (N x M) of the global batch, from the issue's rules.

    Used only to check that a scenario exercises what it claims (counted rows per rank,
    pairs across ranks); the losses themselves are never recomputed here.
    """
    self_mode = spec["key_inputs"] is None
    if spec["pos_mask"] is not None:
        pos, neg = spec["pos_mask"], spec["neg_mask"]
        if self_mode:
            eye = torch.eye(pos.shape[0], dtype=torch.bool)
            pos, neg = pos & ~eye, neg & ~eye
        return pos, neg
    t, nu = spec["target"], spec["nuisance"]
    kt, knu = (t, nu) if self_mode else (spec["key_target"], spec["key_nuisance"])
    n, m = t.shape[0], kt.shape[0]
    if nu is None:  # every anchor and every key is its own nuisance group
        nu = torch.arange(n)
        knu = nu if self_mode else n + torch.arange(m)
    same_t = t[:, None] == kt[None, :]
    same_nu = nu[:, None] == knu[None, :]
    pos = same_t & ~same_nu
    neg = ~same_t & same_nu if _same_nuisance_negatives(spec) else ~same_t
    if self_mode:
        eye = torch.eye(n, dtype=torch.bool)
        pos, neg = pos & ~eye, neg & ~eye
    return pos, neg


def counted_rows(spec: dict[str, Any]) -> torch.Tensor:
    """Boolean (N,): the anchors with at least one positive and one negative."""
    pos, neg = pair_sets(spec)
    return pos.any(1) & neg.any(1)


def _check_scenario(spec: dict[str, Any], uncounted_rank: int | None, no_valid: bool) -> None:
    """Assert that the scenario's data exercise what its name claims."""
    name, sizes = spec["name"], spec["sizes"]
    counted = counted_rows(spec)
    pos, neg = pair_sets(spec)
    key_sizes = sizes if spec["key_inputs"] is None else spec["key_sizes"]
    if no_valid:
        assert not counted.any(), f"{name}: some row counts"
        return
    for rank in range(WORLD_SIZE):
        rows = worker.row_slice(sizes, rank)
        if rank == uncounted_rank:
            assert not counted[rows].any(), f"{name}: rank {rank} should have no counted row"
            continue
        assert counted[rows].any(), f"{name}: rank {rank} has no counted row"
        # Pairs across ranks: positives, or negatives when the other rank has none to offer.
        cross_pairs = neg if uncounted_rank == 1 - rank else pos
        other = worker.row_slice(key_sizes, 1 - rank)
        cross = cross_pairs[rows][counted[rows]][:, other]
        assert cross.any(), f"{name}: rank {rank} has no pair on the other rank"
    if spec["key_inputs"] is None and spec["nuisance"] is None:
        # Local instead of global ids (own nuisance groups, self-pair exclusion) would
        # confuse row i of rank 1 with row i of rank 0: make such a pair a candidate.
        n0, n1 = sizes
        clash = (pos | neg) if spec["target"] is None else pos
        assert any(clash[n0 + i, i] for i in range(min(n0, n1))), f"{name}: no id clash"
    if spec["prior"] is not None:
        assert int(spec["target"].max()) < N_EMOTIONS, f"{name}: emotion outside the prior"


def make_scenario(
    name: str,
    cls: str,
    *,
    seed: int,
    kwargs: dict[str, Any] | None = None,
    sizes: tuple[int, int] = (5, 9),
    key_sizes: tuple[int, int] | None = None,
    with_nuisance: bool = True,
    prior: bool = False,
    target: list[int] | None = None,
    nuisance: list[int] | None = None,
    masks: bool = False,
    uncounted_rank: int | None = None,
    no_valid: bool = False,
) -> dict[str, Any]:
    """Build one scenario: random float64 inputs and parameters, random or given labels.

    Targets are contents (4 classes) and nuisances emotions (3 classes), except for
    EmotionAugmentedNCE where the target is the emotion (3 classes, indexing the prior) and the
    nuisance the content. `key_sizes` switches to the ref_emb mode (keys from other inputs
    through a second parameter V, with their own labels). `masks` (InfoNCE) replaces the labels
    by random disjoint positive / negative masks over the global batch.
    """
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    emotion_target = cls == "EmotionAugmentedNCE"
    n_target, n_nuisance = (N_EMOTIONS, 4) if emotion_target else (4, N_EMOTIONS)

    def labels(count: int, classes: int) -> torch.Tensor:
        return torch.randint(0, classes, (count,), generator=g)

    def matrix(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    spec: dict[str, Any] = {
        "name": name,
        "cls": cls,
        "kwargs": dict(kwargs or {}),
        "sizes": list(sizes),
        "inputs": matrix(n, D_IN),
        "W": matrix(D_IN, D_OUT) / D_IN**0.5,
        "target": torch.tensor(target) if target is not None else labels(n, n_target),
        "nuisance": None,
        "key_sizes": None,
        "key_inputs": None,
        "V": None,
        "key_target": None,
        "key_nuisance": None,
        "pos_mask": None,
        "neg_mask": None,
        "prior": matrix(N_EMOTIONS, D_OUT) if prior else None,
        "coef": matrix(n),
    }
    if with_nuisance:
        spec["nuisance"] = torch.tensor(nuisance) if nuisance is not None else labels(n, n_nuisance)
    if key_sizes is not None:
        m = sum(key_sizes)
        spec["key_sizes"] = list(key_sizes)
        spec["key_inputs"] = matrix(m, D_IN)
        spec["V"] = matrix(D_IN, D_OUT) / D_IN**0.5
        spec["key_target"] = labels(m, n_target)
        spec["key_nuisance"] = labels(m, n_nuisance) if with_nuisance else None
    if masks:
        u = torch.rand(n, n if key_sizes is None else sum(key_sizes), generator=g)
        spec["pos_mask"], spec["neg_mask"] = u < 0.3, u > 0.55
        spec["target"] = spec["key_target"] = None
    else:
        assert spec["target"].shape == (n,)
    _check_scenario(spec, uncounted_rank, no_valid)
    return spec


def _scenarios() -> list[dict[str, Any]]:
    aware, decoupled, info, augmented = (
        "EmotionAwareNCE",
        "DecoupledNCE",
        "InfoNCE",
        "EmotionAugmentedNCE",
    )
    return [
        # EmotionAwareNCE: both negative modes, every reduction, ref_emb, chunking.
        make_scenario("aware_same_emotion_mean", aware, seed=1),
        make_scenario("aware_all_mean", aware, seed=2, kwargs={"negatives": "all"}, sizes=(7, 7)),
        make_scenario("aware_same_emotion_sum", aware, seed=3, kwargs={"reduction": "sum"},
                      sizes=(9, 5)),
        make_scenario("aware_all_none", aware, seed=4,
                      kwargs={"negatives": "all", "reduction": "none"}),
        make_scenario("aware_ref_mean", aware, seed=5, key_sizes=(6, 4)),
        make_scenario("aware_ref_all_none_chunk2", aware, seed=6, key_sizes=(3, 8),
                      kwargs={"negatives": "all", "reduction": "none", "chunk_size": 2}),
        make_scenario("aware_chunk3_mean", aware, seed=7, kwargs={"chunk_size": 3}),
        make_scenario("aware_learn_temperature_mean", aware, seed=8,
                      kwargs={"negatives": "all", "learn_temperature": True,
                              "temperature": 0.1}),
        # Rank 0's contents occur nowhere else: it has no positive, hence no counted row, but
        # its rows are same-emotion negatives of rank 1's anchors.
        make_scenario("aware_rank0_uncounted_mean", aware, seed=9, uncounted_rank=0,
                      target=[10, 11, 12, 13, 14, 0, 1, 0, 1, 2, 0, 1, 2, 2],
                      nuisance=[0, 1, 2, 0, 1, 0, 0, 1, 1, 2, 2, 0, 1, 2]),
        # DecoupledNCE: explicit nuisances, and every row its own nuisance group (global ids).
        make_scenario("decoupled_all_mean", decoupled, seed=10),
        make_scenario("decoupled_same_nuisance_sum", decoupled, seed=11,
                      kwargs={"negatives": "same_nuisance", "reduction": "sum",
                              "temperature": 0.2}),
        make_scenario("decoupled_own_groups_mean", decoupled, seed=212, with_nuisance=False),
        make_scenario("decoupled_own_groups_none", decoupled, seed=13, with_nuisance=False,
                      kwargs={"reduction": "none"}, sizes=(9, 5)),
        make_scenario("decoupled_own_groups_ref_sum", decoupled, seed=14, with_nuisance=False,
                      key_sizes=(4, 7), kwargs={"reduction": "sum"}),
        # InfoNCE, label (SupCon) form: the self pair must be excluded at its global index.
        make_scenario("infonce_labels_mean", info, seed=15, with_nuisance=False),
        make_scenario("infonce_labels_none_chunk4", info, seed=16, with_nuisance=False,
                      kwargs={"reduction": "none", "chunk_size": 4}),
        make_scenario("infonce_labels_ref_sum", info, seed=17, with_nuisance=False,
                      key_sizes=(6, 4), kwargs={"reduction": "sum"}),
        # InfoNCE, mask form: rank r passes its rows of the (N x M_global) masks.
        make_scenario("infonce_masks_mean", info, seed=28, with_nuisance=False, masks=True),
        make_scenario("infonce_masks_ref_sum_chunk3", info, seed=29, with_nuisance=False,
                      masks=True, key_sizes=(6, 4),
                      kwargs={"reduction": "sum", "chunk_size": 3}),
        # EmotionAugmentedNCE with a learnt prior T, with and without content labels.
        make_scenario("augmented_prior_content_mean", augmented, seed=18, prior=True,
                      kwargs={"prior_weight": 0.5}),
        make_scenario("augmented_prior_no_content_mean", augmented, seed=119, prior=True,
                      with_nuisance=False),
        make_scenario("augmented_prior_content_sum", augmented, seed=20, prior=True,
                      kwargs={"reduction": "sum", "temperature": 0.2}, sizes=(9, 5)),
        make_scenario("augmented_prior_no_content_none", augmented, seed=21, prior=True,
                      with_nuisance=False, kwargs={"reduction": "none", "prior_weight": 2.0}),
        make_scenario("augmented_prior_content_none_chunk3", augmented, seed=22, prior=True,
                      kwargs={"reduction": "none", "chunk_size": 3}),
        make_scenario("augmented_prior_ref_content_mean", augmented, seed=23, prior=True,
                      key_sizes=(6, 4)),
        make_scenario("augmented_prior_ref_no_content_sum_chunk3", augmented, seed=24,
                      prior=True, with_nuisance=False, key_sizes=(4, 6),
                      kwargs={"reduction": "sum", "chunk_size": 3}),
        make_scenario("augmented_no_prior_content_mean", augmented, seed=25),
        # Rank 1's rows all share emotion 2 and content 7: no positive, no counted row; they
        # still enter the prior term and rank 0's negatives.
        make_scenario("augmented_prior_rank1_uncounted_mean", augmented, seed=26, prior=True,
                      uncounted_rank=1,
                      target=[0, 1, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2],
                      nuisance=[0, 0, 1, 1, 2, 7, 7, 7, 7, 7, 7, 7, 7, 7]),
        # Rank 0 holds no rows at all (an uneven last batch): it must still take part in the
        # gathers (no hang) and the other rank's result is the single-process one.
        make_scenario("aware_empty_rank0_ref_mean", aware, seed=30, uncounted_rank=0,
                      sizes=(0, 14), key_sizes=(6, 4)),
        make_scenario("augmented_prior_empty_rank0_ref_sum", augmented, seed=31, prior=True,
                      uncounted_rank=0, sizes=(0, 14), key_sizes=(6, 4),
                      kwargs={"reduction": "sum"}),
        # No positive anywhere: every rank returns a connected zero and warns.
        make_scenario("decoupled_no_valid_pairs_mean", decoupled, seed=27, no_valid=True,
                      target=list(range(14))),
    ]  # fmt: skip


SCENARIOS = _scenarios()
SCENARIOS_BY_NAME = {spec["name"]: spec for spec in SCENARIOS}
NO_VALID = "decoupled_no_valid_pairs_mean"
VALID_NAMES = [spec["name"] for spec in SCENARIOS if spec["name"] != NO_VALID]
CONTROL_NAMES = [n for n in VALID_NAMES if min(SCENARIOS_BY_NAME[n]["sizes"]) > 0]
UNCOUNTED_NAMES = ["aware_rank0_uncounted_mean", "augmented_prior_rank1_uncounted_mean"]


@functools.cache
def reference(name: str) -> dict[str, Any]:
    """The single-process result on the concatenated batch (`gather_distributed=False`)."""
    return worker.run_scenario(SCENARIOS_BY_NAME[name], None, gather=False, scale=1.0)


# --------------------------------------------------------------------------------------------
# The 2-process session
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Session:
    """What the two workers left behind."""

    results: list[dict[str, Any] | None] = field(repr=False)
    returncodes: list[int | None]
    timed_out: bool
    logs: list[str] = field(repr=False)
    seconds: float

    def diagnostics(self) -> str:
        tails = "\n".join(f"--- rank {r} log (tail) ---\n{log[-3000:]}" for r, log in
                          enumerate(self.logs))  # fmt: skip
        return (
            f"timed out: {self.timed_out}, return codes: {self.returncodes}, "
            f"{self.seconds:.1f} s\n{tails}"
        )

    def rank_results(self, rank: int) -> dict[str, Any]:
        results = self.results[rank]
        if results is None:
            pytest.fail(f"rank {rank} wrote no results\n{self.diagnostics()}")
        return results

    def helpers(self, rank: int) -> dict[str, Any]:
        out = self.rank_results(rank).get("helpers")
        if out is None:
            pytest.fail(f"rank {rank} did not reach the helper checks\n{self.diagnostics()}")
        if "error" in out:
            pytest.fail(f"rank {rank} raised in the helper checks:\n{out['error']}")
        return out

    def scenario(self, name: str, rank: int) -> dict[str, Any]:
        out = self.rank_results(rank)["scenarios"].get(name)
        if out is None:
            pytest.fail(f"rank {rank} has no result for {name}\n{self.diagnostics()}")
        if out["error"] is not None:
            pytest.fail(f"rank {rank} raised in scenario {name}:\n{out['error']}")
        return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Run the two workers once for the whole module; kill them if they outlive the timeout."""
    tmp = tmp_path_factory.mktemp("dist")
    scenario_path = tmp / "scenarios.pt"
    torch.save(SCENARIOS, scenario_path)
    port = free_port()
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    procs: list[subprocess.Popen[bytes]] = []
    log_paths = [tmp / f"rank{rank}.log" for rank in range(WORLD_SIZE)]
    start = time.monotonic()
    for rank in range(WORLD_SIZE):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(WORLD_SIZE),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": python_path,
        }
        with open(log_paths[rank], "wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER_PATH), str(scenario_path), str(tmp)],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    timed_out = False
    deadline = start + SESSION_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = time.monotonic() - start
    results: list[dict[str, Any] | None] = []
    for rank in range(WORLD_SIZE):
        path = tmp / f"rank{rank}.pt"
        results.append(torch.load(path, weights_only=True) if path.exists() else None)
    return Session(
        results=results,
        returncodes=[proc.returncode for proc in procs],
        timed_out=timed_out,
        logs=[path.read_text(errors="replace") for path in log_paths],
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-300))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """|actual - expected| <= RTOL * |expected| (+ ATOL), Frobenius norms, in float64."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype == torch.float64, f"{what}: dtype {actual.dtype}"
    err = float((actual - expected).norm())
    scale = float(expected.norm())
    assert err <= RTOL * scale + ATOL, (
        f"{what}: |diff| = {err:.3e}, |expected| = {scale:.3e}, relative "
        f"{err / max(scale, 1e-300):.3e} > {RTOL:g}\nactual:   {actual.flatten()[:8].tolist()}"
        f"\nexpected: {expected.flatten()[:8].tolist()}"
    )


# --------------------------------------------------------------------------------------------
# decouple.distributed in the session
# --------------------------------------------------------------------------------------------

HELPER_SIZES = [3, 5]


def test_session_completes(session: Session) -> None:
    assert not session.timed_out, session.diagnostics()
    assert session.returncodes == [0] * WORLD_SIZE, session.diagnostics()
    for rank in range(WORLD_SIZE):
        assert session.rank_results(rank)["finished"], session.diagnostics()


def test_rank_and_world_size_in_session(session: Session) -> None:
    for rank in range(WORLD_SIZE):
        out = session.helpers(rank)
        assert (out["rank"], out["world_size"], out["is_distributed"]) == (rank, WORLD_SIZE, True)


def test_all_gather_sizes(session: Session) -> None:
    for rank in range(WORLD_SIZE):
        assert session.helpers(rank)["sizes"] == HELPER_SIZES


def test_all_gather_with_grad_concatenates_uneven_ranks(session: Session) -> None:
    total = sum(HELPER_SIZES)
    expected = torch.arange(total * 6, dtype=torch.float64).reshape(total, 2, 3)
    for rank in range(WORLD_SIZE):
        out = session.helpers(rank)
        assert out["gathered_requires_grad"]
        torch.testing.assert_close(out["gathered"], expected, rtol=0, atol=0)


def test_all_gather_with_grad_backward_sums_over_ranks(session: Session) -> None:
    # Rank r backpropagates sum(gathered * (r + 1) * base); each row's gradient must be the
    # sum over ranks, (1 + 2) * base, restricted to the rows the rank owns.
    total = sum(HELPER_SIZES)
    base = torch.linspace(-1.0, 2.0, total * 6, dtype=torch.float64).reshape(total, 2, 3)
    summed = sum(r + 1.0 for r in range(WORLD_SIZE)) * base
    for rank in range(WORLD_SIZE):
        grad = session.helpers(rank)["x_grad"]
        assert grad is not None, f"rank {rank}: no gradient reached the local rows"
        expected = summed[worker.row_slice(HELPER_SIZES, rank)]
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


def test_all_gather_no_grad(session: Session) -> None:
    total = sum(HELPER_SIZES)
    floats = torch.arange(total * 6, dtype=torch.float64).reshape(total, 2, 3)[:, 0, 0]
    for rank in range(WORLD_SIZE):
        out = session.helpers(rank)
        torch.testing.assert_close(out["labels"], torch.arange(100, 100 + total), rtol=0, atol=0)
        torch.testing.assert_close(out["floats"], floats, rtol=0, atol=0)
        assert not out["floats_requires_grad"]


def test_all_reduce_sum(session: Session) -> None:
    for rank in range(WORLD_SIZE):
        out = session.helpers(rank)
        expected = torch.tensor([3.0, 30.0], dtype=torch.float64)  # (1 + 2), 10 * (1 + 2)
        torch.testing.assert_close(out["reduced"], expected, rtol=0, atol=0)
        own = torch.tensor([rank + 1.0, 10.0 * (rank + 1)], dtype=torch.float64)
        torch.testing.assert_close(out["reduce_input_after"], own, rtol=0, atol=0)
        assert int(out["reduced_count"]) == 2 + 3


# --------------------------------------------------------------------------------------------
# decouple.distributed without a process group / with one process
# --------------------------------------------------------------------------------------------


def _assert_helpers_are_noops() -> None:
    assert not dd.is_distributed()
    assert dd.get_rank() == 0
    assert dd.get_world_size() == 1
    assert dd.all_gather_sizes(7, torch.device("cpu")) == [7]
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert dd.all_gather_with_grad(x) is x
    labels = torch.tensor([3, 1, 2])
    assert dd.all_gather_no_grad(labels) is labels
    count = torch.tensor(5)
    assert dd.all_reduce_sum(count) is count
    assert int(count) == 5


def _assert_gather_flag_is_noop(name: str) -> None:
    gathered = worker.run_scenario(SCENARIOS_BY_NAME[name], None, gather=True, scale=1.0)
    expected = reference(name)
    assert_close(gathered["loss"], expected["loss"], f"{name}: loss")
    for param, grad in expected["grads"].items():
        assert_close(gathered["grads"][param], grad, f"{name}: grad {param}")


def test_helpers_are_noops_without_process_group() -> None:
    assert not dist.is_initialized()
    _assert_helpers_are_noops()


@pytest.mark.parametrize("name", ["aware_ref_mean", "augmented_prior_no_content_none"])
def test_gather_distributed_is_noop_without_process_group(name: str) -> None:
    assert not dist.is_initialized()
    _assert_gather_flag_is_noop(name)


def test_helpers_and_losses_are_noops_in_a_world_of_one() -> None:
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        _assert_helpers_are_noops()
        _assert_gather_flag_is_noop("decoupled_own_groups_mean")
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# The property
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [spec["name"] for spec in SCENARIOS])
def test_gathered_loss_matches_single_process(session: Session, name: str) -> None:
    spec = SCENARIOS_BY_NAME[name]
    expected = reference(name)
    results = [session.scenario(name, rank) for rank in range(WORLD_SIZE)]
    for rank, out in enumerate(results):
        assert out["dtype"] == "torch.float64", f"rank {rank}: result dtype {out['dtype']}"

    if spec["kwargs"].get("reduction", "mean") == "none":
        for rank, out in enumerate(results):
            rows = expected["loss"][worker.row_slice(spec["sizes"], rank)]
            assert_close(out["loss"], rows, f"{name}: rank {rank}'s rows")
    else:
        mean_loss = torch.stack([out["loss"] for out in results]).mean()
        assert_close(mean_loss, expected["loss"], f"{name}: mean over ranks of the loss")

    # Every rank holds the same averaged gradients (the worker all-reduced them).
    assert set(results[0]["grads"]) == set(expected["grads"])
    for rank, out in enumerate(results):
        for param, grad in expected["grads"].items():
            assert_close(out["grads"][param], grad, f"{name}: rank {rank}, averaged grad {param}")


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_scenario_needs_the_gather(session: Session, name: str) -> None:
    """The same run with `gather_distributed=False` must miss the reference.

    This guards the power of the property test: each scenario's data make the global batch
    matter (cross-rank pairs, the global count C, the global prior term).
    """
    spec = SCENARIOS_BY_NAME[name]
    expected = reference(name)
    controls = [session.scenario(name, rank)["control"] for rank in range(WORLD_SIZE)]
    if spec["kwargs"].get("reduction", "mean") == "none":
        loss = torch.cat([c["loss"] for c in controls])
    else:
        loss = torch.stack([c["loss"] for c in controls]).mean()
    misses = [relative_error(loss, expected["loss"])]
    misses += [relative_error(controls[0]["grads"][p], g) for p, g in expected["grads"].items()]
    assert max(misses) > CONTROL_MIN_REL_DIFF, f"{name}: local-only run matches ({misses})"


@pytest.mark.parametrize("name", VALID_NAMES)
def test_no_warning_while_some_rank_has_counted_rows(session: Session, name: str) -> None:
    # The reduction counts rows over all ranks (C_global), so a rank without counted rows of
    # its own (the *_uncounted_* scenarios) is no "no valid pairs" situation.
    assert reference(name)["warnings"] == []
    for rank in range(WORLD_SIZE):
        assert session.scenario(name, rank)["warnings"] == [], f"rank {rank} warned"


def test_no_valid_pairs_on_any_rank(session: Session) -> None:
    expected = reference(NO_VALID)
    assert expected["warnings"] == ["NoValidPairsWarning"]
    assert float(expected["loss"]) == 0.0
    for rank in range(WORLD_SIZE):
        out = session.scenario(NO_VALID, rank)
        assert out["warnings"] == ["NoValidPairsWarning"], f"rank {rank}: {out['warnings']}"
        assert out["loss"].ndim == 0 and float(out["loss"]) == 0.0
        for param, grad in out["grads"].items():
            assert torch.count_nonzero(grad) == 0, f"rank {rank}: nonzero grad {param}"
