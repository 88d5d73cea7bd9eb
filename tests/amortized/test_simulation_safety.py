"""Simulations are never silently wrong: overflow is a failure, a store knows its simulator and its
writer, workers die with their parent, and a crash loses only the crashing simulation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from innverse.amortized import SimulationStore, box_uniform, simulate

from ..helpers import ROOT, SRC
from . import safety_simulators as T
from . import simulators as S

pytest.importorskip("h5py")

PRIOR = box_uniform(-1.0, 1.0, dim=2)


# -- observation 4: finite float64 values beyond float32 are failures, not Inf rows -----------------
def test_values_beyond_float32_count_as_failed_simulations(tmp_path):
    theta = torch.tensor([[0.0, 0.1], [0.9, 0.2], [0.2, -0.3], [0.7, 0.0], [-0.5, 0.5], [0.1, 0.1]])
    sims = simulate(T.overflowing, theta, batch_size=4, progress=False)
    assert sims.report.nonfinite == 2 and sims.report.succeeded == 4
    assert torch.isfinite(sims.x).all() and torch.equal(sims.theta, theta[[0, 2, 4, 5]])
    assert any("beyond the float32 range" in msg for msg in sims.report.errors)
    # float64 can hold them: then they are data
    wide = simulate(T.overflowing, theta, batch_size=4, progress=False, dtype=torch.float64)
    assert wide.report.failed == 0 and (wide.x[:, 0] == 1e39).sum() == 2
    with SimulationStore.create(tmp_path / "s.h5", 2, (2,)) as st:
        simulate(T.overflowing, theta, batch_size=4, progress=False, store=st)
        x = st.read()[1]
        assert st.rows == 4 and torch.isfinite(x).all() and st.progress["nonfinite"] == 2


def test_store_append_refuses_values_it_would_store_as_inf(tmp_path):
    with SimulationStore.create(tmp_path / "s.h5", 1, (2,)) as st:
        st.append(np.zeros((2, 1)), np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"x rows \[1\] hold finite values beyond the float32 range"):
            st.append(np.zeros((2, 1)), np.array([[1.0, 2.0], [3.0, 1e39]]))
        with pytest.raises(TypeError, match="theta must hold real numbers"):
            st.append(np.array([["a"]]), np.ones((1, 2)))
        assert st.rows == 2 and torch.isfinite(st.read()[1]).all()  # nothing of the refused rows


# -- observation 5: a store records its simulator; another one is refused --------------------------
def test_store_records_its_simulator_and_refuses_another(tmp_path):
    with SimulationStore.create(tmp_path / "s.h5", 2, (2,)) as st:
        simulate(S.linear_gaussian, prior=PRIOR, n=20, batch_size=10, seed=1, store=st, progress=False)
        assert st.simulator == "tests.amortized.simulators:linear_gaussian"
    with SimulationStore(tmp_path / "s.h5", "a") as st:
        with pytest.raises(ValueError, match=r"holds simulations of 'tests\.amortized\.simulators:linear_gaussian', "
                                             r"not of 'tests\.amortized\.simulators:seeded'"):
            simulate(S.seeded, prior=PRIOR, n=20, batch_size=10, seed=1, store=st, progress=False)
        assert st.rows == 20


# -- observation 8 (library side): an output shape that changes between batches --------------------
def test_output_shape_changing_between_batches_is_a_clear_error(tmp_path):
    theta = torch.zeros(6, 2)
    T.widening.calls = 0
    with pytest.raises(ValueError, match=r"batch 1 returned data of shape \(3,\) per simulation, but earlier "
                                         r"batches returned \(2,\): the simulator's output shape changed"):
        simulate(T.widening, theta, batch_size=3, progress=False, retry_rows=False)
    T.widening.calls = 0
    with SimulationStore.create(tmp_path / "w.h5", 2, (2,)) as st:
        with pytest.raises(ValueError, match=r"but the store .* holds data of shape \(2,\)"):
            simulate(T.widening, theta, batch_size=3, progress=False, store=st, retry_rows=False)
        assert st.rows == 3 and st.progress["batches_done"] == 1  # the first batch, whole; nothing half


# -- observation 7: one writer at a time, a busy store says who holds it -----------------------------
def test_second_writer_and_reader_are_told_who_holds_the_store(tmp_path):
    path = tmp_path / "s.h5"
    with SimulationStore.create(path, 2, (2,)):
        holder = f"process {os.getpid()} on {socket.gethostname()} since "
        for mode in ("a", "r"):
            with pytest.raises(BlockingIOError) as err:
                SimulationStore(path, mode)
            assert f"{path} is busy: it is being written by {holder}" in str(err.value)
        t0 = time.monotonic()
        with pytest.raises(BlockingIOError, match=r"waited 0\.[2-9]"):
            SimulationStore(path, "a", timeout=0.25)
        assert time.monotonic() - t0 >= 0.25
    with SimulationStore(path, "a") as st:  # released on close
        assert st.rows == 0
    assert not (tmp_path / ".s.h5.lock").exists()


def _hold_open(path: Path) -> subprocess.Popen:
    """Another program holding the file open for writing with HDF5's own file lock."""
    code = f"import h5py, sys, time\nf = h5py.File({str(path)!r}, 'r+')\nprint('open', flush=True)\ntime.sleep(60)"
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_a_store_locked_by_another_program_is_busy_not_foreign(tmp_path):
    path = tmp_path / "s.h5"
    SimulationStore.create(path, 2, (2,)).close()
    proc = _hold_open(path)
    try:
        with pytest.raises(BlockingIOError, match=r"is held open by another program \(HDF5 file lock"):
            SimulationStore(path, "r")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with SimulationStore(path, "r") as st:
        assert st.rows == 0


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from innverse.amortized import SimulationStore
    path, first = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    for k in range(20):
        with SimulationStore(path, "a", timeout=120) as st:
            ids = np.arange(first + 25 * k, first + 25 * (k + 1), dtype=np.float32)[:, None]
            st.append(ids, np.repeat(ids, 2, axis=1))
""")


def test_two_writers_racing_lose_no_rows(tmp_path):
    path = tmp_path / "race.h5"
    SimulationStore.create(path, 1, (2,), chunk_rows=16).close()
    # the other writer has HDF5's own locking off, as on many shared file systems: only the store's
    # lock keeps the two in order
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, ROOT]), OMP_NUM_THREADS="1",
               HDF5_USE_FILE_LOCKING="FALSE")
    other = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "10000"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready", other.stderr.read()
        for k in range(20):  # this process writes ids 0..499 meanwhile, the same way
            with SimulationStore(path, "a", timeout=120) as st:
                ids = np.arange(25 * k, 25 * (k + 1), dtype=np.float32)[:, None]
                st.append(ids, np.repeat(ids, 2, axis=1))
        assert other.wait(timeout=240) == 0, other.stderr.read()
    finally:
        other.kill()
        other.wait()
        other.stdout.close()
        other.stderr.close()
    with SimulationStore(path) as st:
        theta, x = st.read()
        assert st.rows == 1000
    ids = sorted(theta.flatten().long().tolist())
    assert ids == list(range(500)) + list(range(10_000, 10_500))
    assert torch.equal(x[:, 0], theta[:, 0]) and torch.equal(x[:, 1], theta[:, 0])


# -- observation 10: workers die with their parent; a crash loses only the crashing simulation -------
def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _all_dead_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(map(_alive, pids))


def _reap(proc: subprocess.Popen, pids: list[int]) -> None:
    """Kill what a test started (the parent and its workers) if still alive, and close its stderr."""
    for pid in [proc.pid, *pids]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.stderr.close()


KILLED_PARENT = textwrap.dedent("""
    from innverse.amortized import box_uniform, simulate
    from tests.amortized import safety_simulators as T
    if __name__ == "__main__":
        simulate(T.gated, prior=box_uniform(-1.0, 1.0, dim=2), n=400, batch_size=10, workers=2, progress=False)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_their_parent_is_killed(tmp_path):
    (tmp_path / "parent.py").write_text(KILLED_PARENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, ROOT]), OMP_NUM_THREADS="1",
               INNVERSE_GATE=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], env=env, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
            time.sleep(0.05)
        assert len(workers) == 2, proc.stderr.read() if proc.poll() is not None else "no workers started"
        assert set(workers) <= set(_children(proc.pid))
        proc.kill()  # kill -9: no handler runs in the parent
        proc.wait()
        assert _all_dead_within(workers, 10), "worker processes outlived their killed parent"
    finally:
        (tmp_path / "open").touch()
        _reap(proc, workers)  # only processes this test started


def test_a_crashing_simulation_loses_only_itself():
    theta = torch.zeros(20, 2)
    theta[7, 0] = 0.95  # S.crashing kills its worker for this row; S.flaky raises instead
    sims = simulate(S.crashing, theta, batch_size=5, workers=1, seed=4, progress=False)
    assert sims.report.succeeded == 19 and sims.report.exceptions == 1
    assert "worker process died" in str(sims.report)
    # exactly what the row-by-row retry of a raising batch keeps, with the same per-row seeds
    reference = simulate(S.flaky, theta, batch_size=5, seed=4, progress=False)
    assert torch.equal(sims.theta, reference.theta) and torch.equal(sims.x, reference.x)
