"""Running a simulator over many parameters: in-process or on a process pool, reproducibly.

Parameters are split into batches of ``batch_size`` rows. Batch ``i`` gets the seed
``batch_seed(seed, i)`` (and, when parameters are drawn from the prior, its parameters come from
``batch_seed(seed, i, 1)``), so the data do not depend on the number of workers or on where a
resumed run restarts. Failed simulations are counted in a :class:`SimulationReport` and dropped.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .._tensors import to_tensor
from ..train.progress import progress_bar
from .simulation import BatchResult, batch_seed, calling_style, pad_rows, run_batch
from .store import SimulationStore

__all__ = ["ProcessPool", "simulate", "SimulationReport", "Simulations", "sample_prior"]

logger = logging.getLogger("innverse")


@dataclass
class SimulationReport:
    """Account of a simulation run: how many ran, succeeded and failed, and why."""

    requested: int = 0
    succeeded: int = 0
    exceptions: int = 0
    nonfinite: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    workers: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.exceptions + self.nonfinite

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "succeeded": self.succeeded, "failed": self.failed,
                "exceptions": self.exceptions, "nonfinite": self.nonfinite, "errors": dict(self.errors),
                "batches": self.batches, "workers": self.workers, "seconds": self.seconds}

    def __str__(self) -> str:
        s = (f"{self.succeeded} of {self.requested} simulations succeeded; {self.failed} failed "
             f"({self.exceptions} raised, {self.nonfinite} non-finite) in {self.seconds:.1f} s")
        if self.errors:
            top = sorted(self.errors.items(), key=lambda kv: -kv[1])[:5]
            s += "; errors: " + "; ".join(f"{n} x {msg}" for msg, n in top)
        return s


@dataclass
class Simulations:
    """Result of :func:`simulate`: kept parameters ``(n, D)``, data ``(n, *x_shape)`` and the report."""

    theta: Tensor
    x: Tensor
    report: SimulationReport

    def __iter__(self) -> Iterator[Any]:
        return iter((self.theta, self.x, self.report))


def sample_prior(prior: Distribution, n: int, seed: int) -> Tensor:
    """``n`` prior draws, reproducible from ``seed`` without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = prior.sample((n,))
    return t.reshape(n, -1)


def _pool(workers: int, start_method: str) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context(start_method)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def _merge_x(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate batches, NaN-padding sets / series to the largest row count seen."""
    if len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    if any(p.ndim < 3 for p in parts):
        raise ValueError(f"simulate: batches returned different shapes {sorted({p.shape[1:] for p in parts})}")
    n = max(p.shape[1] for p in parts)
    return np.concatenate([pad_rows(list(p), n) for p in parts])


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


def _plan(theta: Any, prior: Distribution | None, n: int | None, batch_size: int,
          seed: int) -> tuple[int, Callable[[int, int], Tensor]]:
    """The number of simulations and ``draw(batch index, rows) -> theta`` of each batch."""
    if theta is None:
        if prior is None or n is None:
            raise ValueError("simulate: give theta, or prior and n")
        return int(n), lambda i, m: sample_prior(prior, m, batch_seed(seed, i, 1))
    th_all = to_tensor(theta, "theta", "simulate")
    if th_all.dim() != 2:
        raise ValueError(f"simulate: theta must be (N, D), got shape {tuple(th_all.shape)}")
    return th_all.shape[0], lambda i, m: th_all[i * batch_size:i * batch_size + m]


def _resume_point(store: SimulationStore | None, seed: int, batch_size: int, total: int) -> int:
    """The first batch still to simulate (from the store's progress); the store's settings must match."""
    if store is None:
        return 0
    first = store.progress["batches_done"]
    settings = {"seed": seed, "batch_size": batch_size, "n": total}
    if store.settings and first and {k: store.settings.get(k) for k in settings} != settings:
        raise ValueError(f"simulate: the store was filled with settings {store.settings}, now {settings}; "
                         "resume with the same seed, batch_size and n")
    store.set_settings(settings)
    return first


class _Collector:
    """Takes the finished batches in order: counts, keeps the good rows in memory or appends them to the store."""

    def __init__(self, store: SimulationStore | None, dtype: torch.dtype, workers: int, bar: Any) -> None:
        self.store, self.dtype, self.bar = store, dtype, bar
        self.report = SimulationReport(requested=0, workers=workers)
        self.errors: Counter = Counter(store.errors if store is not None else {})
        self.thetas: dict[int, np.ndarray] = {}
        self.kept_theta: list[np.ndarray] = []
        self.kept_x: list[np.ndarray] = []

    def __call__(self, res: BatchResult) -> None:
        th, report = self.thetas.pop(res.index), self.report
        report.requested += th.shape[0]
        report.batches += 1
        report.exceptions += res.exceptions
        report.nonfinite += res.nonfinite
        self.errors.update(res.errors)
        keep_t = th[res.kept].astype(np.float32 if self.dtype == torch.float32 else np.float64)
        keep_x = res.x.astype(keep_t.dtype) if res.x is not None else None
        report.succeeded += keep_t.shape[0]
        if self.store is not None:
            if keep_x is None:
                keep_x = np.zeros((0, *self.store.x_shape), dtype=keep_t.dtype)
            self.store.append(keep_t, keep_x, batches_done=res.index + 1, exceptions=res.exceptions,
                              nonfinite=res.nonfinite)
        elif keep_x is not None:
            self.kept_theta.append(keep_t)
            self.kept_x.append(keep_x)
        self.bar.update(th.shape[0])

    def result(self) -> Simulations:
        report, store, dtype = self.report, self.store, self.dtype
        if report.failed:
            logger.warning("simulate: %s", report)
        if store is not None:
            if report.requested and not report.succeeded:
                raise RuntimeError(f"simulate: every simulation failed. {report}")
            return Simulations(torch.zeros(0, store.theta_dim, dtype=dtype), torch.zeros(0, *store.x_shape, dtype=dtype),
                               report)
        if not self.kept_theta:
            raise RuntimeError(f"simulate: every simulation failed. {report}")
        return Simulations(torch.from_numpy(np.concatenate(self.kept_theta)),
                           torch.from_numpy(_merge_x(self.kept_x)).to(dtype), report)


def simulate(simulator: Callable[..., Any], theta: Any = None, *, prior: Distribution | None = None,
             n: int | None = None, batch_size: int = 256, workers: int | ProcessPool = 0, seed: int = 0,
             store: SimulationStore | None = None, theta_format: str = "torch", dtype: torch.dtype = torch.float32,
             retry_rows: bool = True, progress: bool = True) -> Simulations:
    """Run ``simulator`` for given parameters or ``n`` prior draws; count and drop failures.

    Args:
        simulator: ``simulator(theta (B, D)[, generator=|rng=|seed=]) -> x (B, ...)`` (see
            :mod:`innverse.amortized.simulation`); must be importable (module level) for ``workers >= 1``.
        theta: parameters ``(N, D)`` (tensor or array); or give ``prior`` and ``n``.
        batch_size: parameter rows per simulator call.
        workers: 0 runs in this process; ``k >= 1`` uses a pool of ``k`` processes (a
            :class:`ProcessPool` chooses its start method).
        seed: master seed; results are identical for any ``workers``.
        store: append each finished batch (in order) to this store and resume from its progress.
        theta_format: ``"torch"`` or ``"numpy"``: what the simulator receives.
        dtype: dtype of the returned tensors.
        retry_rows: when a batch raises, simulate its rows one by one to keep the good ones.
        progress: show a tqdm bar.

    Returns:
        :class:`Simulations` ``(theta, x, report)`` of the kept rows (with a store: the rows added
        in this call).
    """
    pool = workers if isinstance(workers, ProcessPool) else ProcessPool(workers)
    if theta_format not in ("torch", "numpy"):
        raise ValueError(f"simulate: theta_format must be 'torch' or 'numpy', got {theta_format!r}")
    if batch_size < 1:
        raise ValueError(f"simulate: need batch_size >= 1, got {batch_size}")
    style = calling_style(simulator)
    total, draw = _plan(theta, prior, n, batch_size, seed)
    first = _resume_point(store, seed, batch_size, total)
    t0 = time.perf_counter()

    def job(i: int) -> tuple[np.ndarray, int]:
        th = draw(i, min(batch_size, total - i * batch_size)).detach().cpu().to(torch.float64).numpy()
        return th, batch_seed(seed, i)

    bar = progress_bar(total, "simulating", progress, unit="sim", initial=min(total, first * batch_size))
    collect = _Collector(store, dtype, pool.workers, bar)
    batches = range(first, -(-total // batch_size))
    try:
        if pool.workers == 0:
            for i in batches:
                th, s = job(i)
                collect.thetas[i] = th
                collect(run_batch(simulator, th, s, i, style, theta_format, retry_rows, in_process=True))
        else:
            _run_pool(simulator, job, collect, batches, pool, (style, theta_format, retry_rows))
    finally:
        bar.close()
        collect.report.seconds = time.perf_counter() - t0
        collect.report.errors = dict(collect.errors.most_common(20))
        if store is not None:
            store.set_errors(collect.report.errors)
    return collect.result()


def _died(i: int, b: int) -> BatchResult:
    msg = "worker process died while simulating this batch (BrokenProcessPool)"
    return BatchResult(i, None, np.zeros(b, bool), exceptions=b, errors=Counter({msg: b}))


def _run_pool(simulator: Callable[..., Any], job: Callable[[int], tuple[np.ndarray, int]], consume: _Collector,
              indices: range, pool_options: ProcessPool, call: tuple[str, str, bool]) -> None:
    """Submit batches with bounded look-ahead; hand results to ``consume`` in batch order.

    A worker that dies (e.g. a crash in native code) breaks the pool: the batches that were in
    flight are then re-run one at a time in a fresh pool, so only the batch that kills its
    worker again is failed (counted as exceptions) and the others are kept.
    """
    thetas, workers, start_method = consume.thetas, pool_options.workers, pool_options.start_method
    style, theta_format, retry_rows = call
    pending = list(indices)
    seeds: dict[int, int] = {}
    suspects: list[int] = []
    done: dict[int, BatchResult] = {}
    nxt = pending[0] if pending else 0
    pool = _pool(workers, start_method)
    futures: dict[Future, int] = {}

    def submit(i: int) -> None:
        if i not in thetas:
            thetas[i], seeds[i] = job(i)
        futures[pool.submit(run_batch, simulator, thetas[i], seeds[i], i, style, theta_format, retry_rows, False)] = i

    isolated: int | None = None
    try:
        while pending or futures or suspects:
            if not futures and suspects:
                isolated = suspects.pop(0)
                submit(isolated)
            if isolated is None:
                while pending and len(futures) < 2 * workers:
                    submit(pending.pop(0))
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                i = futures.pop(fut)
                try:
                    done[i] = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if i == isolated:
                        done[i] = _died(i, thetas[i].shape[0])
                    else:
                        suspects.append(i)
            if broken:
                suspects = sorted(set(suspects) | set(futures.values()))
                futures.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(workers, start_method)
            if isolated is not None and isolated not in futures.values():
                isolated = None
            while nxt in done:
                consume(done.pop(nxt))
                nxt += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
