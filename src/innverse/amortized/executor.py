"""Running a simulator over many parameters: in-process, on a process pool or on Dask, reproducibly.

Parameters are split into batches of ``batch_size`` rows. Batch ``i`` gets the seed
``batch_seed(seed, i)`` (and, when parameters are drawn from the prior, its parameters come from
``batch_seed(seed, i, 1)``), so the data do not depend on the number of workers or on where a
resumed run restarts (nor on the executor: a :class:`ProcessPool` or a
:class:`~innverse.amortized.dask_executor.DaskCluster`). Failed simulations are counted in a :class:`SimulationReport` and dropped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .._tensors import check_finite, to_tensor
from ..train.progress import progress_bar
from .dask_executor import DaskCluster, connect
from .process_pool import ProcessPool, run_pool
from .simulation import (
    BatchResult,
    batch_seed,
    calling_style,
    pad_rows,
    run_batch,
    same_simulator,
    simulator_name,
)
from .store import SimulationStore

__all__ = ["DaskCluster", "ProcessPool", "simulate", "SimulationReport", "Simulations", "sample_prior"]

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
    dashboard: str | None = None
    #: Dask workers that joined during the run but could not load the simulator, and were closed: address -> why
    rejected_workers: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.exceptions + self.nonfinite

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "succeeded": self.succeeded, "failed": self.failed,
                "exceptions": self.exceptions, "nonfinite": self.nonfinite, "errors": dict(self.errors),
                "batches": self.batches, "workers": self.workers, "seconds": self.seconds,
                "dashboard": self.dashboard, "rejected_workers": dict(self.rejected_workers)}

    def __str__(self) -> str:
        s = (f"{self.succeeded} of {self.requested} simulations succeeded; {self.failed} failed "
             f"({self.exceptions} raised, {self.nonfinite} non-finite) in {self.seconds:.1f} s")
        if self.errors:
            top = sorted(self.errors.items(), key=lambda kv: -kv[1])[:5]
            s += "; errors: " + "; ".join(f"{n} x {msg}" for msg, n in top)
        if self.rejected_workers:
            why = next(iter(self.rejected_workers.values()))
            s += (f"; {len(self.rejected_workers)} Dask workers that joined could not load the simulator and were "
                  f"closed ({why})")
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


def _merge_x(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate batches, NaN-padding sets / series to the largest row count seen."""
    if len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    if any(p.ndim < 3 for p in parts):
        raise ValueError(f"simulate: batches returned different shapes {sorted({p.shape[1:] for p in parts})}")
    n = max(p.shape[1] for p in parts)
    return np.concatenate([pad_rows(list(p), n) for p in parts])


def _plan(theta: Any, prior: Distribution | None, n: int | None, batch_size: int,
          seed: int) -> tuple[int, Callable[[int, int], Tensor]]:
    """The number of simulations and ``draw(batch index, rows) -> theta`` of each batch."""
    if theta is None:
        if prior is None or n is None:
            raise ValueError("simulate: give theta, or prior and n")
        if not _is_int(n) or n < 1:
            raise ValueError(f"simulate: n must be a positive integer, got {n!r}")
        return int(n), lambda i, m: sample_prior(prior, m, batch_seed(seed, i, 1))
    th_all = to_tensor(theta, "theta", "simulate")
    if th_all.dim() != 2 or th_all.shape[0] == 0:
        raise ValueError(f"simulate: theta must be (N, D) with N >= 1, got shape {tuple(th_all.shape)}")
    check_finite(th_all, "theta", "simulate")
    return th_all.shape[0], lambda i, m: th_all[i * batch_size:i * batch_size + m]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_arguments(theta_format: str, batch_size: Any, seed: Any, dtype: Any) -> None:
    if theta_format not in ("torch", "numpy"):
        raise ValueError(f"simulate: theta_format must be 'torch' or 'numpy', got {theta_format!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"simulate: batch_size must be a positive integer, got {batch_size!r}")
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"simulate: seed must be an integer in [0, 2**63), got {seed!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"simulate: dtype must be torch.float32 or torch.float64, got {dtype!r}")


def _resume_point(store: SimulationStore | None, seed: int, batch_size: int, total: int, name: str) -> int:
    """The first batch still to simulate (from the store's progress); the store's settings must match,
    and so must the simulator (``name``, recorded in the store when it has none)."""
    if store is None:
        return 0
    if not same_simulator(store.simulator, name):
        raise ValueError(f"simulate: the store {store.path} holds simulations of {store.simulator!r}, not of "
                         f"{name!r}; fill another store (or continue with the simulator that filled it)")
    if store.simulator is None:
        store.set_simulator(name)
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
        #: the dtype rows are kept in: the store's, else the returned tensors'
        self.np_dtype = store.dtype if store is not None else np.dtype(str(dtype).replace("torch.", ""))
        self.x_shape: tuple[int, ...] | None = store.x_shape if store is not None else None
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
        errors = self.errors + Counter(res.errors)
        keep_t = th[res.kept].astype(self.np_dtype)
        keep_x = res.x.astype(keep_t.dtype) if res.x is not None else None
        if keep_x is not None:
            self._check_shape(res.index, tuple(keep_x.shape[1:]))
        report.succeeded += keep_t.shape[0]
        if self.store is not None:
            if keep_x is None:
                keep_x = np.zeros((0, *self.store.x_shape), dtype=keep_t.dtype)
            # the messages are committed with their batch: a run killed mid-way keeps those of its committed
            # batches, and does not count those of the batch it will redo
            self.store.append(keep_t, keep_x, batches_done=res.index + 1, exceptions=res.exceptions,
                              nonfinite=res.nonfinite, errors=dict(errors.most_common(20)) if res.errors else None)
        elif keep_x is not None:
            self.kept_theta.append(keep_t)
            self.kept_x.append(keep_x)
        self.errors = errors
        self.bar.update(th.shape[0])

    def _check_shape(self, index: int, shape: tuple[int, ...]) -> None:
        """The shape of one simulation stays the same (sets and series: up to their number of rows)."""
        known = self.x_shape
        if known is None:
            self.x_shape = shape
            return
        if shape == known or (len(shape) >= 2 and len(shape) == len(known) and shape[1:] == known[1:]):
            return
        where = (f"the store {self.store.path} holds data of shape {known}" if self.store is not None
                 else f"earlier batches returned {known}")
        raise ValueError(f"simulate: batch {index} returned data of shape {shape} per simulation, but {where}: "
                         "the simulator's output shape changed between batches (or the store was filled by "
                         "another simulator)")

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
             n: int | None = None, batch_size: int = 256, workers: int | ProcessPool | DaskCluster = 0, seed: int = 0,
             store: SimulationStore | None = None, theta_format: str = "torch", dtype: torch.dtype = torch.float32,
             retry_rows: bool = True, progress: bool = True) -> Simulations:
    """Run ``simulator`` for given parameters or ``n`` prior draws; count and drop failures.

    Args:
        simulator: ``simulator(theta (B, D)[, generator=|rng=|seed=]) -> x (B, ...)`` (see
            :mod:`innverse.amortized.simulation`); must be importable (module level) for ``workers >= 1``
            and picklable for Dask.
        theta: parameters ``(N, D)`` (tensor or array); or give ``prior`` and ``n``.
        batch_size: parameter rows per simulator call.
        workers: 0 runs in this process; ``k >= 1`` uses a pool of ``k`` processes (a
            :class:`ProcessPool` chooses its start method); a :class:`DaskCluster` runs the
            batches on Dask (an embedded local cluster or a scheduler address).
        seed: master seed; results are identical for any ``workers`` and executor.
        store: append each finished batch (in order) to this store and resume from its progress.
        theta_format: ``"torch"`` or ``"numpy"``: what the simulator receives.
        dtype: dtype of the returned tensors. A simulation whose finite values this dtype (with a
            store: the store's dtype) cannot represent counts as failed (non-finite): a float64
            value beyond the float32 maximum would be kept as Inf.
        retry_rows: when a batch raises, simulate its rows one by one to keep the good ones; on a
            pool or Dask, also when a batch kills its worker (a crash in native code): only the
            crashing simulations are lost, at the cost of worker restarts (see
            :func:`~innverse.amortized.process_pool.run_pool`).
        progress: show a tqdm bar (and, on Dask, the dashboard address on stderr).

    Raises:
        ValueError: invalid arguments; a store filled by another simulator or with other settings;
            a simulator whose output shape changes between batches.
        TypeError: ``simulator`` is not callable (or, for Dask, cannot be pickled).
        ConnectionError: the Dask scheduler does not answer (nothing is written to the store).
        RuntimeError: every simulation failed (the report says why); the Dask workers cannot import
            the simulator (nothing is written to the store).

    Returns:
        :class:`Simulations` ``(theta, x, report)`` of the kept rows (with a store: the rows added
        in this call).
    """
    pool = workers if isinstance(workers, ProcessPool | DaskCluster) else ProcessPool(workers)
    _check_arguments(theta_format, batch_size, seed, dtype)
    style = calling_style(simulator)
    total, draw = _plan(theta, prior, n, batch_size, seed)
    dask = connect(pool, simulator, progress) if isinstance(pool, DaskCluster) else contextlib.nullcontext()
    with dask as session:  # connected (and the simulator pickled) before the store is touched
        first = _resume_point(store, seed, batch_size, total, simulator_name(simulator))

        def job(i: int) -> tuple[np.ndarray, int]:
            th = draw(i, min(batch_size, total - i * batch_size)).detach().cpu().to(torch.float64).numpy()
            return th, batch_seed(seed, i)

        bar = progress_bar(total, "simulating", progress, unit="sim", initial=min(total, first * batch_size))
        collect = _Collector(store, dtype, pool.workers if session is None else session.workers, bar)
        collect.report.dashboard = None if session is None else session.dashboard
        batches = range(first, -(-total // batch_size))
        call = (style, theta_format, retry_rows, collect.np_dtype)
        t0 = time.perf_counter()
        try:
            if session is not None:
                session.run(job, collect, collect.thetas, batches, call)
            elif pool.workers == 0:
                for i in batches:
                    th, s = job(i)
                    collect.thetas[i] = th
                    collect(run_batch(simulator, th, s, i, style, theta_format, retry_rows, True, collect.np_dtype))
            else:
                run_pool(simulator, job, collect, collect.thetas, batches, pool, call)
        finally:
            bar.close()
            collect.report.seconds = time.perf_counter() - t0
            collect.report.errors = dict(collect.errors.most_common(20))
            if session is not None:
                collect.report.rejected_workers = dict(session.rejected)
            if store is not None:
                store.set_errors(collect.report.errors)
    return collect.result()
