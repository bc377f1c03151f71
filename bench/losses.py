"""Benchmark decouple's contrastive loss against pytorch-metric-learning and the matmul floor.

Every case (one method, one label layout, one batch size N) runs in a fresh process, forked
from a multiprocessing forkserver that has imported torch and nothing else (so that no case pays
the torch import). The child pins torch to two threads, builds float32 embeddings (N x 256,
fixed seed, ``requires_grad``) and labels, warms up, then times forward + backward (median of
several passes) and measures the peak RSS increase of one more pass over the RSS before it. The
parent watches each child's RSS and kills it above ``--mem-limit`` (reported as OOM), and kills
it after ``--timeout`` seconds (reported as timeout).

Usage::

    .venv/bin/python bench/losses.py --quick          # N = 512 and 2048, about 1-2 minutes
    .venv/bin/python bench/losses.py                  # full table, about 7 minutes
    .venv/bin/python bench/losses.py --write-docs     # also write docs/benchmarks/losses.md
    .venv/bin/python bench/losses.py --case decouple:parallel:2048   # one case, JSON on stdout
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import multiprocessing
import platform
import re
import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil
from _machine import cpu_model
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOCS_PAGE = REPO / "docs" / "benchmarks" / "losses.md"

DIM = 256
SEED = 0
NUM_THREADS = 2
TEMPERATURE = 0.07
N_EMOTIONS = 8
CHUNK_SIZE = 1024
CHUNKED_N = 32768
WARMUP_N = 256
FULL_SIZES = (512, 2048, 8192)
QUICK_SIZES = (512, 2048)
GOAL_N = 2048
SPEED_GOALS = {"parallel": 3.0, "random": 2.0}
CHUNKED_MEMORY_GOAL_MB = 2000.0
MB = 1e6
BUSY_WARNING = 0.1
M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h

sys.path.insert(0, str(REPO))  # decouple from this checkout, installed or not

METHODS = {
    "floor": "floor: S = x @ x.T, S.backward(G)",
    "decouple": "decouple EmotionAwareNCE",
    "decouple-chunked": f"decouple EmotionAwareNCE, chunk_size={CHUNK_SIZE}",
    "supcon": "PML SupConLoss",
    "ntxent": "PML NTXentLoss",
}
LABEL_LAYOUTS = ("parallel", "random")
TABLE_METHODS = ("floor", "decouple", "supcon", "ntxent")
FAILURES = ("oom", "timeout")


@dataclass(frozen=True)
class Case:
    """One benchmark measurement.

    Attributes:
        method: A key of `METHODS`.
        labels: "parallel" (N/8 contents x 8 emotions), "random" (random content and
            emotion ids), or "any" for the floor, which uses no labels.
        n: Batch size N.
    """

    method: str
    labels: str
    n: int

    @property
    def spec(self) -> str:
        """The ``--case`` argument that runs this case, e.g. ``supcon:random:2048``."""
        return f"{self.method}:{self.labels}:{self.n}"

    @classmethod
    def parse(cls, spec: str) -> Case:
        """Build a case from its ``--case`` argument.

        Args:
            spec: ``method:labels:n``.

        Returns:
            The case.

        Raises:
            ValueError: If the method or labels are unknown or N is not an integer.
        """
        method, labels, n = spec.split(":")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
        if labels not in (*LABEL_LAYOUTS, "any"):
            raise ValueError(f"unknown labels {labels!r}; choose from {LABEL_LAYOUTS} or 'any'")
        return cls(method, labels, int(n))


@dataclass
class Result:
    """The outcome of one case.

    Attributes:
        case: The case.
        status: "ok", "oom", "timeout", "error", "skipped" or "unavailable".
        time_ms: Median forward + backward time in milliseconds (status "ok" only).
        peak_mb: Peak RSS increase of the memory pass over the RSS before it, in MB (status
            "ok" only).
        runs: Number of timed repetitions behind the median.
        detail: Why a case did not run or failed.
        wall_s: Wall time of the case's process, from start to exit.
        other_load: Share of all cores used by other processes while the case ran (a
            measurement disturbed by other work is slower than it should be).
    """

    case: Case
    status: str
    time_ms: float | None = None
    peak_mb: float | None = None
    runs: int = 0
    detail: str = ""
    wall_s: float = 0.0
    other_load: float = 0.0


# --------------------------------------------------------------------------------------------
# Child side: build one case and measure it.
# --------------------------------------------------------------------------------------------


class RssSampler:
    """Background thread that records the highest RSS of this process.

    Args:
        interval_s: Sampling period in seconds.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = self._process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def max_rss_bytes() -> int:
    """Peak RSS of this process in bytes (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process to its current RSS.

    Returns:
        Whether it worked (Linux >= 4.0 with a writable ``/proc/self/clear_refs``); if so,
        `max_rss_bytes` is exact from here on, with no sampling gap.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def return_freed_memory() -> None:
    """Make glibc give freed memory back to the OS, now and for later frees.

    glibc raises its mmap threshold (up to 32 MiB) after large blocks are freed and then keeps
    such freed blocks in the heap, so RSS would depend on the allocation history. Pinning the
    threshold at its 128 KiB default and trimming the heap makes RSS follow live memory. Does
    nothing without glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def make_labels(layout: str, n: int, generator: Any) -> tuple[Any, Any]:
    """Content and emotion ids for a batch.

    Args:
        layout: "parallel": N/8 contents, each in all 8 emotions, rows in a fixed random
            order; "random": content ids drawn from N/8 values and emotion ids from 8.
        n: Batch size, a multiple of 8.
        generator: Seeded `torch.Generator`.

    Returns:
        ``(content, emotion)``, two int64 tensors of length N.
    """
    import torch

    if layout == "parallel":
        order = torch.randperm(n, generator=generator)
        return order // N_EMOTIONS, order % N_EMOTIONS
    content = torch.randint(0, n // N_EMOTIONS, (n,), generator=generator)
    emotion = torch.randint(0, N_EMOTIONS, (n,), generator=generator)
    return content, emotion


def make_step(case: Case, n: int) -> Callable[[], None]:
    """Build the inputs of a case and return one forward + backward step on them.

    Args:
        case: The case; its method and label layout are used.
        n: Batch size to build (the case's N, or a small size for warming up).

    Returns:
        A function running one forward + backward pass; it leaves no gradient behind.
    """
    import torch

    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, DIM, generator=generator).requires_grad_()

    if case.method == "floor":
        grad_out = torch.randn(n, n, generator=generator)

        def floor_step() -> None:
            (x @ x.T).backward(grad_out)
            x.grad = None

        return floor_step

    content, emotion = make_labels(case.labels, n, generator)
    if case.method.startswith("decouple"):
        from decouple.losses import EmotionAwareNCE

        loss_fn = EmotionAwareNCE(
            negatives="same_emotion" if case.labels == "parallel" else "all",
            temperature=TEMPERATURE,
            chunk_size=CHUNK_SIZE if case.method == "decouple-chunked" else None,
        )
        label_args: tuple[Any, ...] = (content, emotion)
    else:
        from pytorch_metric_learning import losses

        pml_loss = losses.SupConLoss if case.method == "supcon" else losses.NTXentLoss
        loss_fn = pml_loss(temperature=TEMPERATURE)
        label_args = (content,)

    def loss_step() -> None:
        loss_fn(x, *label_args).backward()
        x.grad = None

    return loss_step


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception raised in a case means the allocator ran out of memory."""
    if isinstance(error, MemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "not enough memory" in message or "can't allocate memory" in message
    )


def describe_oom(error: BaseException) -> str:
    """A short description of an allocation failure, e.g. "could not allocate 34.4 GB"."""
    requested = re.search(r"allocate (\d+) bytes", str(error))
    if requested:
        return f"could not allocate {int(requested.group(1)) / 1e9:.1f} GB"
    return f"{type(error).__name__}: {str(error)[:100]}"


def measure(case: Case, max_runs: int, budget_s: float) -> dict[str, Any]:
    """Time one case, then measure its peak memory, in this process.

    A small instance (N = 256) runs first so that lazy initialisation is neither timed nor
    counted. Then, on the full-size inputs: one warm-up pass, up to `max_runs` timed passes
    (fewer when a pass is slow, so that they take about `budget_s`), and finally one memory
    pass: freed memory is returned to the OS, the RSS baseline taken, the kernel's peak-RSS
    counter reset, and the pass run while a thread also samples RSS every 5 ms.

    Args:
        case: The case to run.
        max_runs: Most timed repetitions.
        budget_s: Target total time of the timed repetitions in seconds.

    Returns:
        A JSON-ready dict with ``status`` and, when it is "ok", ``time_ms``, ``peak_mb``
        and ``runs``; otherwise ``detail``.
    """
    import torch

    torch.set_num_threads(NUM_THREADS)
    try:
        make_step(case, WARMUP_N)()
        step = make_step(case, case.n)
    except ImportError as error:
        return {"status": "unavailable", "detail": f"{type(error).__name__}: {error}"}
    try:
        start = time.perf_counter()
        step()
        warmup_s = time.perf_counter() - start
        runs = max(1, min(max_runs, round(budget_s / warmup_s)))
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        gc.collect()
        return_freed_memory()
        baseline = psutil.Process().memory_info().rss
        exact = reset_peak_rss()
        with RssSampler() as sampler:
            step()
    except (MemoryError, RuntimeError) as error:
        if is_out_of_memory(error):
            return {"status": "oom", "detail": describe_oom(error)}
        raise
    peak = max(sampler.peak, max_rss_bytes() if exact else 0)
    return {
        "status": "ok",
        "time_ms": statistics.median(times) * 1e3,
        "peak_mb": (peak - baseline) / MB,
        "runs": runs,
    }


# --------------------------------------------------------------------------------------------
# Parent side: run every case in a watched subprocess.
# --------------------------------------------------------------------------------------------


def child_entry(spec: str, max_runs: int, budget_s: float, conn: Connection) -> None:
    """Body of a case's process: measure the case and send the payload through `conn`.

    Args:
        spec: The case's ``method:labels:n``.
        max_runs: Most timed repetitions.
        budget_s: Target total time of the timed repetitions in seconds.
        conn: Sending end of a pipe to the parent.
    """
    try:
        payload = measure(Case.parse(spec), max_runs, budget_s)
    except Exception as error:  # reported in the table; the other cases still run
        payload = {"status": "error", "detail": f"{type(error).__name__}: {error}"[:300]}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    payload["cpu_s"] = usage.ru_utime + usage.ru_stime
    conn.send(payload)
    conn.close()


def busy_cpu_s() -> float:
    """CPU seconds spent busy so far on all cores of the machine, by every process."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


def watch(process: BaseProcess, mem_limit: int, timeout_s: float) -> str | None:
    """Wait for a case's process, killing it when its RSS exceeds `mem_limit` or time runs out.

    Args:
        process: The started process.
        mem_limit: RSS limit in bytes.
        timeout_s: Wall-time limit in seconds.

    Returns:
        "oom" or "timeout" if the process was killed, else None.
    """
    assert process.pid is not None
    observed = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout_s
    while process.is_alive():
        try:
            rss = observed.memory_info().rss
        except psutil.NoSuchProcess:
            break
        verdict = "oom" if rss > mem_limit else "timeout" if time.monotonic() > deadline else None
        if verdict:
            process.kill()
            process.join()
            return verdict
        process.join(0.01)
    process.join()
    return None


def run_in_subprocess(case: Case, args: argparse.Namespace, context: BaseContext) -> Result:
    """Run one case in a fresh process under the memory and time limits.

    Args:
        case: The case.
        args: Parsed command line (mem_limit, timeout, runs, budget).
        context: Multiprocessing context to start the process from.

    Returns:
        The case's result, with the share of the CPU that other processes used meanwhile.
    """
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=child_entry, args=(case.spec, args.runs, args.budget, sender), name=case.spec
    )
    start, busy_start, own_start = time.monotonic(), busy_cpu_s(), time.process_time()
    process.start()
    sender.close()
    verdict = watch(process, int(args.mem_limit * 1e9), args.timeout)
    wall_s = time.monotonic() - start
    if verdict == "oom":
        return Result(case, "oom", detail=f"RSS above {args.mem_limit:g} GB", wall_s=wall_s)
    if verdict == "timeout":
        return Result(case, "timeout", detail=f"over {args.timeout:g} s", wall_s=wall_s)
    if not receiver.poll():
        if process.exitcode == -signal.SIGKILL:  # the kernel's OOM killer
            return Result(case, "oom", detail="killed by the kernel", wall_s=wall_s)
        return Result(case, "error", detail=f"exit code {process.exitcode}", wall_s=wall_s)
    payload = receiver.recv()
    others_s = busy_cpu_s() - busy_start - payload.pop("cpu_s") - (time.process_time() - own_start)
    other_load = max(0.0, others_s / (wall_s * psutil.cpu_count()))
    return Result(case, wall_s=wall_s, other_load=other_load, **payload)


def plan(quick: bool) -> list[Case]:
    """All cases of a run, smallest N first so that failures can skip larger sizes.

    Args:
        quick: Only N = 512 and 2048, and no chunked row.

    Returns:
        The cases in run order.
    """
    cases = []
    for n in QUICK_SIZES if quick else FULL_SIZES:
        cases.append(Case("floor", "any", n))
        for labels in LABEL_LAYOUTS:
            cases += [Case(method, labels, n) for method in ("decouple", "supcon", "ntxent")]
    if not quick:
        cases.append(Case("decouple-chunked", "parallel", CHUNKED_N))
    return cases


def start_forkserver() -> BaseContext:
    """A forkserver context whose server has imported torch before the first case starts.

    Returns:
        The context to start case processes from.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch"])
    process = context.Process(target=time.sleep, args=(0,))
    process.start()  # returns once the server has run its preload
    process.join()
    return context


def run_all(cases: list[Case], args: argparse.Namespace) -> list[Result]:
    """Run cases in order, printing one progress line per finished case.

    A method that ran out of memory or time at some N is not run at larger N (reported as
    skipped); once decouple.losses is found missing, no further decouple case is started.

    Args:
        cases: Cases in run order.
        args: Parsed command line.

    Returns:
        One result per case, in the same order.
    """
    context = start_forkserver()
    failed: dict[str, Result] = {}
    decouple_missing: Result | None = None
    results = []
    progress = tqdm(
        total=len(cases), file=sys.stderr, unit="case", leave=False, disable=not sys.stderr.isatty()
    )
    with progress as bar:
        for case in cases:
            earlier = failed.get(case.method)
            if case.method.startswith("decouple") and decouple_missing:
                result = Result(case, "unavailable", detail=decouple_missing.detail)
            elif earlier and earlier.case.n < case.n:
                detail = f"{earlier.status.upper()} at N={earlier.case.n}, larger N skipped"
                result = Result(case, "skipped", detail=detail)
            else:
                bar.set_description(case.spec)
                result = run_in_subprocess(case, args, context)
            if result.status in FAILURES:
                failed.setdefault(case.method, result)
            if case.method.startswith("decouple") and result.status == "unavailable":
                decouple_missing = result
            results.append(result)
            bar.update()
            bar.write(progress_line(result, len(results), len(cases)), file=sys.stderr)
    return results


def progress_line(result: Result, index: int, total: int) -> str:
    """One line describing a finished case, e.g. for the progress log."""
    case = result.case
    head = f"[{index:2d}/{total}] {METHODS[case.method]:<38} {case.labels:<8} N={case.n:<6}"
    if result.status == "ok":
        body = f"{result.time_ms:10.1f} ms {result.peak_mb:9.1f} MB  ({result.runs} runs)"
    else:
        body = f"{result.status.upper()}: {result.detail}"
    busy = f", others used {result.other_load:.0%} CPU" if result.other_load > BUSY_WARNING else ""
    return f"{head} {body}  [{result.wall_s:.1f} s{busy}]"


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def find(results: list[Result], method: str, labels: str, n: int) -> Result | None:
    """The result of a case, or None if it was not planned."""
    return next((r for r in results if r.case == Case(method, labels, n)), None)


def speed_ratio(results: list[Result], result: Result, labels: str) -> float | None:
    """How many times faster than PML SupConLoss at the same labels and N (None if unknown)."""
    supcon = find(results, "supcon", labels, result.case.n)
    if result.status != "ok" or supcon is None or supcon.status != "ok":
        return None
    assert result.time_ms is not None and supcon.time_ms is not None
    return supcon.time_ms / result.time_ms


def table_row(results: list[Result], result: Result, labels: str) -> str:
    """One markdown table row; `labels` is the group the row is shown in."""
    case = result.case
    if result.status == "ok":
        time_cell, peak_cell = f"{result.time_ms:.1f}", f"{result.peak_mb:.0f}"
    else:
        time_cell = {
            "unavailable": "not available",
            "skipped": f"skipped ({result.detail})",
        }.get(result.status, f"{result.status.upper()} ({result.detail})")
        peak_cell = "-"
    ratio = speed_ratio(results, result, labels)
    ratio_cell = f"{ratio:.2f}x" if ratio is not None else "-"
    runs_cell = str(result.runs) if result.status == "ok" else "-"
    return (
        f"| {METHODS[case.method]} | {case.labels} | {case.n} | {time_cell} | {peak_cell} "
        f"| {ratio_cell} | {runs_cell} |"
    )


def goal_lines(results: list[Result]) -> list[str]:
    """PASS / MISS lines for the speed goals at N = 2048 and the chunked memory goal."""
    lines = []
    for labels, goal in SPEED_GOALS.items():
        what = f"N={GOAL_N}, {labels} labels: decouple vs PML SupConLoss, goal >= {goal:g}x"
        decouple = find(results, "decouple", labels, GOAL_N)
        ratio = speed_ratio(results, decouple, labels) if decouple else None
        if ratio is None:
            lines.append(f"- n/a: {what} (not measured)")
        else:
            lines.append(f"- {'PASS' if ratio >= goal else 'MISS'}: {what}: {ratio:.2f}x")
    what = f"N={CHUNKED_N}, chunked: peak RSS increase, goal < {CHUNKED_MEMORY_GOAL_MB:.0f} MB"
    chunked = find(results, "decouple-chunked", "parallel", CHUNKED_N)
    if chunked is None or chunked.status != "ok":
        reason = chunked.status if chunked else "not run with --quick"
        lines.append(f"- n/a: {what} ({reason})")
    else:
        assert chunked.peak_mb is not None
        verdict = "PASS" if chunked.peak_mb < CHUNKED_MEMORY_GOAL_MB else "MISS"
        lines.append(f"- {verdict}: {what}: {chunked.peak_mb:.0f} MB")
    return lines


def render(results: list[Result], args: argparse.Namespace, wall_s: float) -> str:
    """The benchmark report in markdown: table, goal checks and environment.

    Args:
        results: All results of the run.
        args: Parsed command line.
        wall_s: Wall time of the whole run in seconds.

    Returns:
        The markdown text.
    """
    lines = [
        "| method | labels | N | time fwd+bwd (ms) | peak RSS increase (MB) "
        "| speed vs PML SupConLoss | runs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    sizes = sorted({r.case.n for r in results if r.case.method in TABLE_METHODS})
    for labels in LABEL_LAYOUTS:
        for n in sizes:
            for method in TABLE_METHODS:
                result = find(results, method, "any" if method == "floor" else labels, n)
                if result:
                    lines.append(table_row(results, result, labels))
    lines += [table_row(results, r, "parallel") for r in results if r.case.n == CHUNKED_N]
    lines += [
        "",
        "Goals:",
        "",
        *goal_lines(results),
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()} ({psutil.cpu_count()} logical cores), torch threads: {NUM_THREADS}",
        f"- torch {metadata.version('torch')}, pytorch-metric-learning "
        f"{metadata.version('pytorch-metric-learning')}, Python {platform.python_version()}",
        f"- D = {DIM}, float32, temperature {TEMPERATURE}, memory limit {args.mem_limit:g} GB, "
        f"timeout {args.timeout:g} s per case, mode: {'quick' if args.quick else 'full'}, "
        f"total wall time {wall_s:.0f} s",
        "",
        "Speed ratio = PML SupConLoss time / method time at the same labels and N (> 1 is "
        "faster). The floor uses no labels: the same measurement is listed under both label "
        "layouts. Times are medians over the given number of runs.",
    ]
    busy = [r for r in results if r.other_load > BUSY_WARNING]
    if busy:
        cases = ", ".join(f"{r.case.spec} ({r.other_load:.0%})" for r in busy)
        lines += ["", f"Warning: other processes used the CPU during {cases}: those times are "
                  "too slow; rerun on an idle machine."]  # fmt: skip
    return "\n".join(lines) + "\n"


DOCS_INTRO = """\
# Loss benchmark

This page compares `decouple.losses.EmotionAwareNCE` with pytorch-metric-learning's
`SupConLoss` and `NTXentLoss` and with a floor: the similarity matmul `S = x @ x.T` and its
backward with a random upstream gradient, as autograd computes it (one matmul forward, two
backward; a loss that uses the symmetry of `x @ x.T`, or computes only the similarity blocks its
negatives need, can beat it). Each case runs in a fresh Python process pinned to 2 threads on the
CPU named below, with float32 embeddings (N x 256, fixed seed). The time is the median of
several forward + backward passes after a warm-up; the memory is the peak RSS increase of one
more pass over the RSS just before it (inputs built, freed memory returned to the OS, peak read
from the kernel's counter); a process whose RSS exceeds the memory limit is killed and reported
as OOM. *Parallel* labels are N/8 contents each seen in all 8 emotions (EmotionAwareNCE with its
default `negatives="same_emotion"`, the PML losses with the content id as label); *random*
labels draw N/8 content ids and 8 emotion ids at random (EmotionAwareNCE with
`negatives="all"`). Reproduce with `python bench/losses.py --write-docs` (see
`bench/README.md`).

"""


def write_reports(report: str, args: argparse.Namespace) -> list[Path]:
    """Write the report to bench/results/ and, with --write-docs, to the docs page.

    Args:
        report: The markdown report.
        args: Parsed command line.

    Returns:
        The paths written.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    outputs = [(RESULTS_DIR / ("losses-quick.md" if args.quick else "losses.md"), report)]
    if args.write_docs:
        DOCS_PAGE.parent.mkdir(parents=True, exist_ok=True)
        outputs.append((DOCS_PAGE, DOCS_INTRO + report))
    for path, text in outputs:
        path.write_text(text)
    return [path for path, _ in outputs]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only N = 512 and 2048")
    parser.add_argument("--write-docs", action="store_true", help=f"also write {DOCS_PAGE}")
    parser.add_argument("--mem-limit", type=float, default=8.0, help="RSS limit per case, GB")
    parser.add_argument("--timeout", type=float, default=300.0, help="time limit per case, s")
    parser.add_argument("--runs", type=int, default=15, help="most timed runs per case")
    parser.add_argument(
        "--budget", type=float, default=20.0, help="target time of a case's timed runs, s"
    )
    parser.add_argument(
        "--case", help="only run one case METHOD:LABELS:N in this process and print its JSON"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with --case, one case in this process)."""
    args = parse_args(argv)
    if args.case:
        print(json.dumps(measure(Case.parse(args.case), args.runs, args.budget)))
        return
    start = time.monotonic()
    results = run_all(plan(args.quick), args)
    report = render(results, args, time.monotonic() - start)
    print(report)
    for path in write_reports(report, args):
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
