"""The Dask executor: same data as the process pool for any worker count, through worker deaths and a
dead client; clear refusals (unreachable scheduler, unpicklable simulator) that write nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from innverse.amortized import ProcessPool, SimulationStore, box_uniform, simulate
from innverse.amortized.dask_executor import DaskCluster
from innverse.amortized.simulation import batch_seed, run_batch

from .simulators import Flaky, crashing

distributed = pytest.importorskip("distributed", reason="the Dask executor needs the dask extra")

N, BATCH, SEED = 480, 16, 11
ROOT = Path(__file__).resolve().parents[2]


def _prior():
    return box_uniform(-torch.ones(2), torch.ones(2))


def _fill(path: Path, workers, simulator=None, n: int = N) -> SimulationStore:
    store = SimulationStore.create(path, 2, (2,))
    try:
        simulate(simulator or Flaky(), prior=_prior(), n=n, batch_size=BATCH, seed=SEED, store=store,
                 workers=workers, progress=False)
    finally:
        store.close()
    return SimulationStore(path)


def _content(store: SimulationStore) -> dict:
    theta, x = store.read()
    out = {"theta": theta.numpy(), "x": x.numpy(), "progress": dict(store.progress), "errors": store.errors}
    store.close()
    return out


def _assert_same(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["theta"], b["theta"])
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["progress"] == b["progress"]
    assert a["errors"] == b["errors"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The process pool's store for the same seed: what every Dask run must reproduce."""
    return _content(_fill(tmp_path_factory.mktemp("pool") / "pool.h5", ProcessPool(1)))


@pytest.fixture(scope="module")
def cluster():
    """A running 2-worker cluster on the loopback interface, reached by its address (as a real cluster is)."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address="127.0.0.1:0")
    client = distributed.Client(c)
    yield c, client
    client.close()
    c.close()


def test_reference_has_failures_of_both_kinds(reference):
    """The comparison below covers failure accounting: the reference run lost rows to exceptions and to NaN."""
    p = reference["progress"]
    assert p["exceptions"] > 0 and p["nonfinite"] > 0
    assert p["rows"] + p["exceptions"] + p["nonfinite"] == N


def test_same_store_with_one_and_two_workers_as_with_the_process_pool(tmp_path, reference, cluster):
    one = _content(_fill(tmp_path / "one.h5", DaskCluster(workers=1, processes=False)))
    two = _content(_fill(tmp_path / "two.h5", DaskCluster(cluster[0].scheduler_address)))
    _assert_same(one, reference)
    _assert_same(two, reference)


def test_report_names_workers_and_dashboard(cluster):
    sims = simulate(Flaky(), prior=_prior(), n=64, batch_size=BATCH, seed=SEED, progress=False,
                    workers=DaskCluster(cluster[0].scheduler_address))
    assert sims.report.workers == 2 and sims.report.dashboard.startswith("http://127.0.0.1:")
    assert sims.report.requested == 64 and sims.report.batches == 4
    expected = simulate(Flaky(), prior=_prior(), n=64, batch_size=BATCH, seed=SEED, progress=False)
    torch.testing.assert_close(sims.x, expected.x, rtol=0, atol=0)


def _worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def test_worker_killed_midway_job_completes_with_every_simulation_once(tmp_path, reference, cluster):
    _, client = cluster
    marks = tmp_path / "marks"
    marks.mkdir()
    pids = _worker_pids(client)
    state: dict = {}

    def kill_one() -> None:
        deadline = time.monotonic() + 30
        while len(list(marks.iterdir())) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = int(next(iter(marks.iterdir())).name.split("-")[0])
        state["calls_before"] = len(list(marks.iterdir()))
        os.kill(victim, signal.SIGKILL)
        state["victim"] = victim

    killer = threading.Thread(target=kill_one)
    killer.start()
    got = _content(_fill(tmp_path / "dask.h5", DaskCluster(cluster[0].scheduler_address),
                         Flaky(delay=0.05, markers=str(marks))))
    killer.join()
    assert state["victim"] in pids and state["calls_before"] < N // BATCH  # killed a worker, mid-way
    assert state["victim"] not in _worker_pids(client)  # it is dead (the nanny started a new one)
    _assert_same(got, reference)
    assert len({tuple(r) for r in got["theta"]}) == got["theta"].shape[0]  # every simulation once


CLIENT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {root!r})
    from innverse.amortized import SimulationStore, box_uniform, simulate
    from innverse.amortized.dask_executor import DaskCluster
    from tests.scale.simulators import Flaky
    store = SimulationStore({path!r}, "a")
    simulate(Flaky(delay=0.05, markers={marks!r}), prior=box_uniform(-torch.ones(2), torch.ones(2)), n={n},
             batch_size={batch}, seed={seed}, store=store, workers=DaskCluster({address!r}), progress=False)
""")


def test_resumes_after_the_client_is_killed(tmp_path, reference, cluster):
    """kill -9 the client mid-way (the cluster lives on); the same call from a new client finishes the store,
    identical to an uninterrupted run: every simulation once, failures and their messages counted once."""
    path, marks = tmp_path / "resumed.h5", tmp_path / "marks"
    marks.mkdir()
    SimulationStore.create(path, 2, (2,)).close()
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(root=str(ROOT), path=str(path), marks=str(marks), n=N, batch=BATCH, seed=SEED,
                                    address=cluster[0].scheduler_address))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(list(marks.iterdir())) < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    partial = SimulationStore(path)
    done = partial.progress["batches_done"]
    partial.close()
    assert 0 < done < N // BATCH
    store = SimulationStore(path, "a")
    try:
        sims = simulate(Flaky(), prior=_prior(), n=N, batch_size=BATCH, seed=SEED, store=store,
                        workers=DaskCluster(cluster[0].scheduler_address), progress=False)
    finally:
        store.close()
    assert sims.report.batches == N // BATCH - done
    _assert_same(_content(SimulationStore(path)), reference)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _untouched(path: Path) -> None:
    store = SimulationStore(path)
    assert store.rows == 0 and store.simulator is None and store.settings == {}
    store.close()


def test_unreachable_scheduler_is_named_and_nothing_is_written(tmp_path):
    path = tmp_path / "s.h5"
    SimulationStore.create(path, 2, (2,)).close()
    address = f"tcp://127.0.0.1:{_free_port()}"
    store = SimulationStore(path, "a")
    with pytest.raises(ConnectionError, match=f"cannot reach the Dask scheduler at {address}"):
        simulate(Flaky(), prior=_prior(), n=64, batch_size=BATCH, store=store, progress=False,
                 workers=DaskCluster(address, timeout=1))
    store.close()
    _untouched(path)


class _Unpicklable:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, theta, generator):
        return theta


def test_unpicklable_simulator_is_refused_before_anything_starts(tmp_path):
    path = tmp_path / "s.h5"
    SimulationStore.create(path, 2, (2,)).close()
    store = SimulationStore(path, "a")
    with pytest.raises(TypeError, match=r"cannot be pickled .*lock"):
        simulate(_Unpicklable(), prior=_prior(), n=64, batch_size=BATCH, store=store, progress=False,
                 workers=DaskCluster(address="tcp://127.0.0.1:1"))  # never contacted: refused before connecting
    store.close()
    _untouched(path)


def test_a_batch_that_kills_its_worker_loses_only_its_crashing_rows():
    """Like the process pool: the batch is re-run row by row (row r with seed batch_seed(batch seed, r))."""
    theta = torch.linspace(-1, 1, 64, dtype=torch.float64)[:, None].repeat(1, 2)
    sims = simulate(crashing, theta, batch_size=BATCH, seed=SEED, progress=False, dtype=torch.float64,
                    workers=DaskCluster(workers=1, allowed_failures=0))
    crash = theta[:, 0] >= 1
    assert sims.report.exceptions == int(crash.sum()) > 0 and sims.report.succeeded == 64 - int(crash.sum())
    expected = []
    for i in range(64 // BATCH):
        th = theta[i * BATCH:(i + 1) * BATCH].numpy()
        if (th[:, 0] >= 1).any():
            rows = [run_batch(crashing, th[r:r + 1], batch_seed(batch_seed(SEED, i), r), i, "generator", dtype="float64")
                    for r in range(BATCH) if th[r, 0] < 1]
            expected += [r.x for r in rows]
        else:
            expected.append(run_batch(crashing, th, batch_seed(SEED, i), i, "generator", dtype="float64").x)
    np.testing.assert_array_equal(sims.x.numpy(), np.concatenate(expected))
    assert "worker process died" in next(iter(sims.report.errors))


def test_a_simulator_the_workers_cannot_import_is_named_and_nothing_is_written(tmp_path, cluster, monkeypatch):
    (tmp_path / "only_here.py").write_text("def simulate(theta, generator):\n    return theta\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here

    path = tmp_path / "s.h5"
    SimulationStore.create(path, 2, (2,)).close()
    store = SimulationStore(path, "a")
    with pytest.raises(RuntimeError, match=r"workers cannot load the simulator \(ModuleNotFoundError: .*only_here"):
        simulate(only_here.simulate, prior=_prior(), n=32, batch_size=BATCH, progress=False, store=store,
                 workers=DaskCluster(cluster[0].scheduler_address))
    store.close()
    _untouched(path)


LATE = textwrap.dedent("""
    import os, time
    def simulate(theta, generator):
        open({started!r}, "a").close()
        time.sleep(0.0 if os.path.exists({go!r}) else 0.05)
        return theta * 2
""")


def test_a_worker_that_joins_late_and_cannot_load_the_simulator_is_closed_and_costs_no_batch(tmp_path, monkeypatch,
                                                                                              caplog):
    """A worker joins mid-run without the simulator's module on its path. It is retired before it reads a task
    and closed with its nanny; with ``allowed-failures`` 0 one task taken by a dying worker would be declared
    killed, so a clean run shows that none was. The client is told which worker and why."""
    go, started = tmp_path / "go", tmp_path / "started"
    (tmp_path / "late_sim.py").write_text(LATE.format(go=str(go), started=str(started)))
    monkeypatch.syspath_prepend(str(tmp_path))
    import dask
    import late_sim

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        c = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address="127.0.0.1:0")
    client = distributed.Client(c)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT / "src")}
    out: dict = {}

    def run() -> None:
        out["sims"] = simulate(late_sim.simulate, prior=_prior(), n=1600, batch_size=BATCH, seed=SEED, progress=False,
                               workers=DaskCluster(c.scheduler_address))

    late = None
    try:
        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 180
        while not started.exists() and time.monotonic() < deadline:  # the run has passed its start-up checks
            time.sleep(0.02)
        late = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", c.scheduler_address,
                                 "--nthreads", "1", "--name", "late"], env=env, cwd=str(ROOT),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180   # a worker process starts in seconds, in minutes on a loaded machine
        while not client.get_events("innverse-simulate-rejected") and time.monotonic() < deadline:
            time.sleep(0.1)
        go.touch()
        runner.join(timeout=120)
        assert not runner.is_alive()
        assert late.wait(timeout=30) == 0  # worker and nanny closed, not restarted
    finally:
        go.touch()
        if late is not None and late.poll() is None:
            late.kill()
        client.close()
        c.close()
    sims = out["sims"]
    assert sims.report.succeeded == 1600 and sims.report.failed == 0
    torch.testing.assert_close(sims.x, sims.theta * 2)
    (address, reason), = sims.report.rejected_workers.items()
    assert "ModuleNotFoundError" in reason and "late_sim" in reason
    assert "could not load the simulator and were closed" in str(sims.report)
    assert not any("killed its Dask workers" in r.message for r in caplog.records)
    assert any(address in r.message and "cannot load the simulator" in r.message for r in caplog.records)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="DaskCluster: workers must be an int >= 1, got 0"):
        DaskCluster(workers=0)
    with pytest.raises(ValueError, match="DaskCluster: timeout"):
        DaskCluster(timeout=0)
    with pytest.raises(ValueError, match="DaskCluster: address"):
        DaskCluster(address="")
