"""Simulation batches on a pool of worker processes: bounded look-ahead, crash isolation, no orphans.

Workers die with the process that started them: each arms ``PR_SET_PDEATHSIG`` (Linux), so the
kernel kills it when its parent dies, ``kill -9`` included, and also watches its parent from a
thread (every :data:`WATCH_SECONDS`; the fallback elsewhere). When :func:`run_pool` is left by an
exception (Ctrl-C, SIGTERM turned into an exception by the caller, an error), the running workers
are terminated instead of finishing their batches.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from .simulation import BatchResult, batch_seed, pad_rows, run_batch

__all__ = ["ProcessPool", "run_pool"]

#: seconds between a worker's checks that its parent still lives
WATCH_SECONDS = 0.5
#: ``prctl`` option: the signal a process receives when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1

Unit = tuple[int, int | None]  # (batch index, row within the batch or None for the whole batch)


@dataclass(frozen=True)
class ProcessPool:
    """Run simulation batches on a pool of ``workers`` processes started by ``start_method``.

    ``simulate(..., workers=k)`` is ``simulate(..., workers=ProcessPool(k))``; give the object to
    choose the start method (``"spawn"``, the safe default, or ``"forkserver"``).
    """

    workers: int
    start_method: str = "spawn"

    def __post_init__(self) -> None:
        if self.start_method not in ("spawn", "forkserver"):
            raise ValueError(f"simulate: start_method must be 'spawn' or 'forkserver', got {self.start_method!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"simulate: workers must be an int >= 0, got {self.workers!r}")


def _die_with_parent(parent: int | None) -> None:
    """Pool initializer: arm the parent-death signal and start the parent watch.

    ``parent`` is the pid that must stay this worker's parent (``None``: whichever process is the
    parent now, e.g. a fork server). A worker whose parent is already gone exits at once.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watch below still works
            pass
    expected = os.getppid() if parent is None else parent
    if os.getppid() != expected:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="innverse-parent-watch", daemon=True).start()


def _pool(options: ProcessPool) -> ProcessPoolExecutor:
    return orphan_safe_executor(options.workers, options.start_method)


def orphan_safe_executor(workers: int, start_method: str = "spawn") -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers die with this process (``kill -9`` included)."""
    ctx = multiprocessing.get_context(start_method)
    parent = os.getpid() if start_method == "spawn" else None
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_die_with_parent, initargs=(parent,))


def _stop(pool: ProcessPoolExecutor, abort: bool) -> None:
    """Shut the pool down; on ``abort`` terminate the workers rather than let them finish their batches."""
    if not abort:
        pool.shutdown(wait=True, cancel_futures=True)
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=5)


def _ready() -> int:
    """A task that only proves a worker started (its pid)."""
    return os.getpid()


def check_started(pool: ProcessPoolExecutor, caller: str, start_method: str, alternative: str) -> None:
    """Raise a clear error when the pool's workers die before they can run anything.

    The usual cause: with the ``spawn`` start method every worker imports the main script again,
    and a script that calls ``caller`` at top level (no ``if __name__ == "__main__":``) makes each
    worker start a pool of its own, which Python refuses. Without this check the broken pool
    looks like failing work (:func:`simulate`: crashing simulations, re-run row by row for
    minutes), or a bare ``BrokenProcessPool`` whose cause is printed by the workers only.

    Args:
        pool: the freshly started pool.
        caller: the function the user called, named in the message.
        start_method: the pool's start method, named in the message.
        alternative: how to run without worker processes, named in the message.
    """
    try:
        pool.submit(_ready).result()
    except BrokenProcessPool as err:
        _stop(pool, True)
        raise RuntimeError(
            f"{caller}: the process pool's workers died while starting, before any work ran "
            f"(start method {start_method!r}). Each worker imports the main script again: put the code "
            f"that calls {caller} under `if __name__ == \"__main__\":`, and define what the workers run in a "
            f"module they can import (not in an interactive session), or {alternative}") from err


def _died(i: int, b: int) -> BatchResult:
    msg = "worker process died while simulating (a crash in the simulator)"
    return BatchResult(i, None, np.zeros(b, bool), exceptions=b, errors=Counter({msg: b}))


def _assemble(i: int, parts: list[BatchResult]) -> BatchResult:
    """One batch's result from the results of its rows, each simulated alone."""
    kept = np.array([bool(p.kept[0]) for p in parts])
    errors: Counter = Counter()
    for p in parts:
        errors.update(p.errors)
    exceptions, nonfinite = sum(p.exceptions for p in parts), sum(p.nonfinite for p in parts)
    xs = [p.x[0] for p in parts if p.kept[0] and p.x is not None]
    if not xs:
        return BatchResult(i, None, kept, exceptions, nonfinite, errors)
    try:
        x = pad_rows(xs) if xs[0].ndim >= 2 else np.stack(xs)
    except ValueError as err:
        errors[f"rows of one batch returned different shapes: {err}"[:300]] += len(xs)
        return BatchResult(i, None, np.zeros(len(parts), bool), exceptions + len(xs), nonfinite, errors)
    return BatchResult(i, x, kept, exceptions, nonfinite, errors)


class _Units:
    """The bookkeeping of :func:`run_pool`: what is queued, suspected, partly done and done."""

    def __init__(self, indices: range, retry_rows: bool) -> None:
        self.pending: list[Unit] = [(i, None) for i in indices]
        # in flight when the pool broke, or rows of a batch that crashed alone: run one at a time
        self.suspects: list[Unit] = []
        self.partial: dict[int, dict[int, BatchResult]] = {}
        self.done: dict[int, BatchResult] = {}
        self.retry_rows = retry_rows

    def finish(self, unit: Unit, res: BatchResult, size: int) -> None:
        i, r = unit
        if r is None:
            self.done[i] = res
            return
        parts = self.partial.setdefault(i, {})
        parts[r] = res
        if len(parts) == size:
            self.done[i] = _assemble(i, [parts[k] for k in range(size)])
            del self.partial[i]

    def crashed(self, unit: Unit, size: int) -> None:
        """``unit`` killed its worker when it ran alone: split a batch into rows, or fail the row."""
        i, r = unit
        if r is None and self.retry_rows and size > 1:
            self.suspects[:0] = [(i, k) for k in range(size)]
        else:
            self.finish(unit, _died(i, 1 if r is not None else size), size)


# exempt from the size rule: one scheduling loop (submit, collect in order, isolate crashes) reads best whole
def run_pool(simulator: Callable[..., Any], job: Callable[[int], tuple[np.ndarray, int]],
             consume: Callable[[BatchResult], None], thetas: dict[int, np.ndarray], indices: range,
             options: ProcessPool, call: tuple[str, str, bool, np.dtype]) -> None:
    """Simulate batches ``indices`` on a pool; hand results to ``consume`` in batch order.

    ``job(i)`` gives batch ``i``'s parameters and seed (kept in ``thetas``); ``call`` is
    ``(style, theta_format, retry_rows, dtype)`` of :func:`run_batch`. At most ``2 * workers``
    batches are in flight.

    A worker that dies (a segfault or ``os._exit`` in the simulator) breaks the pool, and the
    batches in flight cannot tell which of them killed it. They are re-run one at a time in a
    fresh pool; a batch that kills its worker alone is re-run row by row, one row at a time (with
    ``retry_rows``; each row with the seed :func:`run_batch` gives it when a batch raises), so only
    the crashing simulations are lost and the kept ones equal those of an uninterrupted run. The
    cost: a pool restart (a fresh worker process, which imports torch and the simulator's module
    again: seconds) when the pool breaks, when the re-run batch crashes again, and once per
    crashing row; and while re-runs go one at a time, the other workers idle. Without
    ``retry_rows`` a batch that crashes alone is lost whole (one restart less per crash).
    """
    style, theta_format, retry_rows, dtype = call
    units = _Units(indices, retry_rows)
    seeds: dict[int, int] = {}
    nxt = indices[0] if len(indices) else 0
    pool = _pool(options)
    check_started(pool, "simulate", options.start_method, "run without workers=ProcessPool(...)")
    futures: dict[Future, Unit] = {}

    def submit(unit: Unit) -> None:
        i, r = unit
        if i not in thetas:
            thetas[i], seeds[i] = job(i)
        th, seed = (thetas[i], seeds[i]) if r is None else (thetas[i][r:r + 1], batch_seed(seeds[i], r))
        futures[pool.submit(run_batch, simulator, th, seed, i, style, theta_format, retry_rows and r is None,
                            False, dtype)] = unit

    isolated: Unit | None = None
    aborted = True
    try:
        while units.pending or futures or units.suspects:
            if not futures and units.suspects:
                isolated = units.suspects.pop(0)
                submit(isolated)
            if isolated is None:
                while units.pending and len(futures) < 2 * options.workers:
                    submit(units.pending.pop(0))
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                unit = futures.pop(fut)
                size = thetas[unit[0]].shape[0]
                try:
                    units.finish(unit, fut.result(), size)
                except BrokenProcessPool:
                    broken = True
                    if unit == isolated:
                        units.crashed(unit, size)
                    else:
                        units.suspects.append(unit)
            if broken:
                units.suspects = sorted(set(units.suspects) | set(futures.values()),
                                        key=lambda u: (u[0], -1 if u[1] is None else u[1]))
                futures.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(options)
            if isolated is not None and isolated not in futures.values():
                isolated = None
            while nxt in units.done:
                consume(units.done.pop(nxt))
                nxt += 1
        aborted = False
    finally:
        _stop(pool, aborted)
