"""Simulation batches on a Dask cluster (``dask.distributed``): a local one, or any scheduler address.

``simulate(..., workers=DaskCluster())`` starts an embedded ``LocalCluster`` on the loopback
interface; ``DaskCluster("tcp://host:8786")`` uses a running scheduler (one started by
``dask scheduler``, by dask-jobqueue on SLURM/PBS, by dask-kubernetes, ...). The scheduling is
Dask's: this module only submits batches with a bounded look-ahead and takes their results back in
batch order, so the store is filled (and resumable) exactly as by the process pool.

Same results whatever the cluster: batch ``i`` runs :func:`~innverse.amortized.simulation.run_batch`
with the seed ``batch_seed(seed, i)`` on whichever worker, so the data equal those of the process
pool and of an in-process run with the same seed, for any number of workers. A worker that dies
(killed, lost, out of memory) is Dask's to handle: the scheduler re-runs its tasks elsewhere, and a
task that was running on ``allowed_failures + 1`` dying workers is declared ``KilledWorker``. Such a
batch is treated as a crash in the simulator, like on the pool: its rows are re-run one at a time
(with ``retry_rows``) and only the crashing ones are lost and counted as failed.

Nothing is written before the simulator is known to pickle (``cloudpickle``, as Dask sends it), the
scheduler answers, and the connected workers can unpickle it (import its module and innverse).
Workers that join later (an adaptive or queued cluster) are checked as they register, by a worker
plugin, before they take a task: one that cannot load the simulator is retired and closed with its
nanny, and the client is told which worker and why (a warning, and ``SimulationReport.rejected_workers``).
Without the check such a worker dies on the first task it reads, and that task counts as run on a
dying worker: a cluster that keeps starting such workers (adaptive scaling, a job array) gets tasks
declared killed and their simulations re-run or counted as crashes they were not.

References:
    Rocklin, M. (2015). Dask: Parallel computation with blocked algorithms and task scheduling.
    Proceedings of the 14th Python in Science Conference.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .process_pool import Unit, _assemble, _died
from .simulation import BatchResult, batch_seed, run_batch

__all__ = ["DaskCluster", "DaskSession", "connect"]

logger = logging.getLogger("innverse")

#: seconds between counts of the cluster's worker threads (the look-ahead follows a cluster that scales)
RECOUNT_SECONDS = 2.0

#: the event topic on which workers that cannot load the simulator report (see ``_load_check``)
REJECTED_TOPIC = "innverse-simulate-rejected"


@dataclass(frozen=True)
class DaskCluster:
    """Run simulation batches on Dask: an embedded ``LocalCluster`` or the scheduler at ``address``.

    Args:
        address: a scheduler address (``"tcp://10.0.0.5:8786"``); ``None`` starts a
            ``LocalCluster`` on ``127.0.0.1`` for the duration of the call.
        workers: workers of the embedded cluster (each with one thread); ignored with an address.
        processes: embedded cluster: worker processes (default) or threads of this process (only
            for simulators that release the GIL and draw from their own ``generator``/``rng``/``seed``:
            the global RNGs are shared between threads).
        timeout: seconds to wait for the scheduler to answer.
        in_flight: batches submitted but not yet taken back (default: two per worker thread, recounted
            as the cluster scales); bounds the memory held by finished batches waiting for an
            earlier, slower one. With no worker connected yet, the batches wait for the first one.
        allowed_failures: embedded cluster: how many dying workers a task may run on before it is
            declared killed (Dask's ``distributed.scheduler.allowed-failures``; default Dask's, 3).
            A remote scheduler keeps its own setting.
    """

    address: str | None = None
    workers: int = 2
    processes: bool = True
    timeout: float = 10.0
    in_flight: int | None = None
    allowed_failures: int | None = None

    def __post_init__(self) -> None:
        def count(name: str, value: Any, low: int) -> None:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"DaskCluster: {name} must be an int >= {low}, got {value!r}")

        count("workers", self.workers, 1)
        count("in_flight", self.in_flight, 1)
        count("allowed_failures", self.allowed_failures, 0)
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ValueError(f"DaskCluster: address must be a scheduler address such as 'tcp://host:8786' or None, "
                             f"got {self.address!r}")
        if not isinstance(self.timeout, int | float) or isinstance(self.timeout, bool) or not self.timeout > 0:
            raise ValueError(f"DaskCluster: timeout must be a number of seconds > 0, got {self.timeout!r}")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError("simulate: the Dask executor needs dask.distributed: pip install 'innverse[dask]'") from err
    return distributed


def _check_pickles(simulator: Callable[..., Any]) -> None:
    """The simulator travels to the workers by (cloud)pickle: refuse it here, before anything starts."""
    from distributed.protocol.pickle import dumps

    try:
        dumps(simulator)
    except Exception as err:  # pickling raises anything from TypeError to PicklingError to RecursionError
        raise TypeError(f"simulate: the simulator {simulator!r} cannot be pickled to send it to the Dask workers "
                        f"({type(err).__name__}: {err}); make it a module-level function, or an object "
                        "without open files, locks, sockets or generators among its attributes") from err


def _check_workers_load(client: Any, simulator: Callable[..., Any]) -> None:
    """Every connected worker can unpickle the task (innverse's ``run_batch`` and the simulator).

    Checked before the first batch because a worker that cannot deserialize a task drops it, and
    the task then waits forever instead of failing.
    """
    from distributed.protocol.pickle import dumps, loads

    try:
        client.run(loads, dumps((run_batch, simulator)))
    except Exception as err:
        raise RuntimeError(f"simulate: the Dask workers cannot load the simulator ({type(err).__name__}: {err}); "
                           "they must import innverse and the simulator's module (the same environment, the "
                           "module's folder on their PYTHONPATH)") from err


@functools.cache
def _load_check() -> type:
    """The worker plugin class (made on first use: ``distributed`` is an optional dependency).

    A worker that cannot unpickle the task (``run_batch`` and the simulator) leaves. The plugin's
    ``setup`` runs on every worker connected when it is registered and on each worker that joins
    later, before that worker reads its first task from the scheduler. On failure it reports on
    :data:`REJECTED_TOPIC`, asks the scheduler to retire it (its queued tasks move elsewhere and are
    not counted against ``allowed_failures``) and closes it together with its nanny, so it does not
    come back.
    """
    from distributed.diagnostics.plugin import WorkerPlugin
    from distributed.protocol.pickle import loads

    class LoadCheck(WorkerPlugin):
        idempotent = True

        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        async def setup(self, worker: Any) -> None:
            try:
                loads(self.payload)
            except Exception as err:  # unpickling raises whatever the module's import raises
                reason = f"{type(err).__name__}: {err}"
                logger.error("simulate: worker %s cannot load the simulator (%s); closing it", worker.address, reason)
                worker.log_event(REJECTED_TOPIC, {"worker": worker.address, "reason": reason})
                # retired before this worker reads its first task: the scheduler moves the tasks it
                # queued here elsewhere without counting a failure against them
                await worker.scheduler.retire_workers(workers=[worker.address], close_workers=False, remove=True,
                                                      stimulus_id=f"innverse-load-check-{time.time()}")
                worker.loop.add_callback(worker.close, nanny=True, reason="innverse: cannot load the simulator")

    return LoadCheck


@contextlib.contextmanager
def _client(options: DaskCluster) -> Iterator[tuple[Any, Any]]:
    """A connected ``(client, cluster or None)``; closed (and the embedded cluster stopped) on exit."""
    distributed = _distributed()
    cluster = None
    try:
        if options.address is None:
            import dask

            # one task per worker thread at a time: a worker that dies takes only the batch it was running
            cfg: dict[str, Any] = {"distributed.scheduler.worker-saturation": 1.0}
            if options.allowed_failures is not None:
                cfg["distributed.scheduler.allowed-failures"] = options.allowed_failures
            with dask.config.set(cfg):
                # loopback only: TCP on 127.0.0.1 between processes, in-process queues between threads
                where = {"host": "127.0.0.1"} if options.processes else {}
                cluster = distributed.LocalCluster(n_workers=options.workers, threads_per_worker=1,
                                                   processes=options.processes, dashboard_address="127.0.0.1:0",
                                                   **where)
            client = distributed.Client(cluster, timeout=options.timeout)
        else:
            client = distributed.Client(options.address, timeout=options.timeout)
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            cluster.close()
        where = options.address or "the local cluster"
        raise ConnectionError(f"simulate: cannot reach the Dask scheduler at {where} within {options.timeout:g} s "
                              f"({type(err).__name__}: {err}); start the scheduler (e.g. `dask scheduler`, or a "
                              "dask-jobqueue cluster) or give no address for a local cluster") from err
    except ValueError as err:
        raise ValueError(f"simulate: {options.address!r} is not a Dask scheduler address ({err}); expected e.g. "
                         "'tcp://10.0.0.5:8786'") from err
    try:
        yield client, cluster
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class DaskSession:
    """A connected Dask client that runs simulation batches (made by :func:`connect`)."""

    def __init__(self, client: Any, simulator: Callable[..., Any], options: DaskCluster) -> None:
        self.client, self.simulator, self.options = client, simulator, options
        threads = client.nthreads()
        #: workers connected when the run started (a remote cluster may still be scaling up)
        self.workers = len(threads)
        self._window, self._checked = max(2, 2 * sum(threads.values())), time.monotonic()
        #: the address of the Dask dashboard (served when bokeh is installed)
        self.dashboard = client.dashboard_link
        self._token = uuid.uuid4().hex[:8]
        #: ``(worker address, reason)`` of workers that joined during the run and could not load the simulator
        self.rejected: list[tuple[str, str]] = []

    def _rejected(self, event: tuple[float, dict[str, str]]) -> None:
        msg = event[1]
        self.rejected.append((msg["worker"], msg["reason"]))
        logger.warning("simulate: Dask worker %s joined but cannot load the simulator (%s) and was closed; it "
                       "must import innverse and the simulator's module (same environment, module on its PYTHONPATH)",
                       msg["worker"], msg["reason"])

    @property
    def window(self) -> int:
        """Batches allowed between submission and ``consume``: ``in_flight``, or two per worker thread now
        connected (checked every :data:`RECOUNT_SECONDS`, so a cluster that scales up gets more)."""
        if self.options.in_flight is not None:
            return self.options.in_flight
        if time.monotonic() - self._checked > RECOUNT_SECONDS:
            self._window = max(2, 2 * sum(self.client.nthreads().values()))
            self._checked = time.monotonic()
        return self._window

    def _submit(self, unit: Unit, th: np.ndarray, seed: int, call: tuple[str, str, bool, np.dtype]) -> Any:
        i, r = unit
        style, theta_format, retry_rows, dtype = call
        key = f"innverse-simulate-{self._token}-{i}" + ("" if r is None else f"-row{r}")
        return self.client.submit(run_batch, self.simulator, th, seed, i, style, theta_format,
                                  retry_rows and r is None, False, dtype, key=key, pure=False)

    def run(self, job: Callable[[int], tuple[np.ndarray, int]], consume: Callable[[BatchResult], None],
            thetas: dict[int, np.ndarray], indices: range, call: tuple[str, str, bool, np.dtype]) -> None:
        """Simulate batches ``indices``; hand results to ``consume`` in batch order (as ``run_pool``).

        ``job(i)`` gives batch ``i``'s parameters and seed (kept in ``thetas``); ``call`` is
        ``(style, theta_format, retry_rows, dtype)`` of :func:`run_batch`. At most ``window``
        batches are between submission and ``consume``. Leaving by an exception cancels the
        submitted tasks.
        """
        distributed = _distributed()
        from distributed.scheduler import KilledWorker

        retry_rows = call[2]
        pending = list(indices)
        seeds: dict[int, int] = {}
        partial: dict[int, dict[int, BatchResult]] = {}
        done: dict[int, BatchResult] = {}
        futures: dict[Any, Unit] = {}
        finished = distributed.as_completed()
        nxt = indices[0] if len(indices) else 0

        def submit(unit: Unit) -> None:
            i, r = unit
            if i not in thetas:
                thetas[i], seeds[i] = job(i)
            th, seed = (thetas[i], seeds[i]) if r is None else (thetas[i][r:r + 1], batch_seed(seeds[i], r))
            fut = self._submit(unit, th, seed, call)
            futures[fut] = unit
            finished.add(fut)

        def finish(unit: Unit, res: BatchResult, size: int) -> None:
            i, r = unit
            if r is None:
                done[i] = res
                return
            parts = partial.setdefault(i, {})
            parts[r] = res
            if len(parts) == size:
                done[i] = _assemble(i, [parts[k] for k in range(size)])
                del partial[i]

        try:
            while pending or futures:
                while pending and pending[0] - nxt < self.window:
                    submit((pending.pop(0), None))
                fut = next(finished)
                unit = futures.pop(fut)
                size = thetas[unit[0]].shape[0]
                try:
                    res = fut.result()
                except KilledWorker:
                    if unit[1] is None and retry_rows and size > 1:
                        logger.warning("simulate: batch %d killed its Dask workers; re-running its rows one by one",
                                       unit[0])
                        for r in range(size):
                            submit((unit[0], r))
                        continue
                    res = _died(unit[0], 1 if unit[1] is not None else size)
                except Exception as err:  # run_batch never raises for the simulator: this is the cluster's failure
                    raise RuntimeError(
                        f"simulate: batch {unit[0]} failed on a Dask worker ({type(err).__name__}: {err}); the "
                        "workers must import the simulator's module and innverse (same environment, module on "
                        "their PYTHONPATH)") from err
                finish(unit, res, size)
                while nxt in done:
                    consume(done.pop(nxt))
                    nxt += 1
        finally:
            if futures:
                self.client.cancel(list(futures))


@contextlib.contextmanager
def connect(options: DaskCluster, simulator: Callable[..., Any], announce: bool = True) -> Iterator[DaskSession]:
    """Check that ``simulator`` pickles, connect to the cluster (starting a local one), and yield a session.

    Raises:
        ImportError: dask.distributed is not installed.
        TypeError: the simulator cannot be pickled (nothing has started).
        ConnectionError: the scheduler does not answer within ``options.timeout`` seconds.
        ValueError: the address is not a scheduler address.
        RuntimeError: a connected worker cannot import the simulator or innverse. (Workers that join
            later and cannot are closed as they register, with a warning; see ``_load_check``.)
    """
    _distributed()
    _check_pickles(simulator)
    with _client(options) as (client, _cluster):
        _check_workers_load(client, simulator)
        session = DaskSession(client, simulator, options)
        from distributed.protocol.pickle import dumps

        plugin = f"innverse-load-check-{session._token}"
        client.subscribe_topic(REJECTED_TOPIC, session._rejected)
        try:
            client.register_plugin(_load_check()(dumps((run_batch, simulator))), name=plugin)
        except OSError:
            # a worker that joined since the check above failed the plugin's setup and closed while the
            # scheduler told it of the plugin; the scheduler keeps the plugin for the workers to come
            logger.debug("simulate: a worker left while the load check was being registered", exc_info=True)
        logger.info("simulate: Dask cluster with %d workers; dashboard %s", session.workers, session.dashboard)
        if announce:
            import sys

            sys.stderr.write(f"Dask: {session.workers} workers; dashboard {session.dashboard}\n")
        try:
            yield session
        finally:
            # leave a shared cluster as found; a failure here must not hide the error that ended the run
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(REJECTED_TOPIC)
                client.unregister_worker_plugin(plugin)
