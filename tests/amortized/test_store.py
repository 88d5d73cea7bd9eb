"""HDF5 simulation store: append, padding, shuffled reading, and kill-and-resume with a real subprocess."""

from __future__ import annotations

import json
import signal
import textwrap

import numpy as np
import pytest
import torch

from innverse.amortized import SimulationStore, StoreBatches, box_uniform, simulate

from ..helpers import run_python
from . import simulators as S

pytest.importorskip("h5py")


def test_create_append_read_and_reopen(tmp_path):
    path = tmp_path / "sims.h5"
    with SimulationStore.create(path, theta_dim=2, x_shape=(3,), chunk_rows=4) as st:
        assert st.rows == 0
        st.append(np.arange(10.0).reshape(5, 2), np.ones((5, 3)))
        st.append(torch.zeros(3, 2), torch.zeros(3, 3))
        assert st.rows == 8
    with SimulationStore(path) as st:
        th, x = st.read()
        assert th.shape == (8, 2) and x.shape == (8, 3) and th.dtype == torch.float32
        assert torch.equal(th[:5], torch.arange(10.0).reshape(5, 2))
        t2, x2 = st.read_rows(np.array([7, 0, 5, 2]))
        assert torch.equal(t2, th[[7, 0, 5, 2]]) and torch.equal(x2, x[[7, 0, 5, 2]])
        with pytest.raises(ValueError, match="read-only"):
            st.append(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(FileExistsError):
        SimulationStore.create(path, 2, (3,))


def test_sets_are_padded_to_capacity_and_oversize_is_an_error(tmp_path):
    with SimulationStore.create(tmp_path / "s.h5", theta_dim=1, x_shape=(6, 2)) as st:
        st.append(np.zeros((2, 1)), np.ones((2, 4, 2)))
        _, x = st.read()
        assert x.shape == (2, 6, 2) and torch.isnan(x[:, 4:]).all() and (x[:, :4] == 1).all()
        with pytest.raises(ValueError, match="exceed the store's capacity"):
            st.append(np.zeros((1, 1)), np.ones((1, 7, 2)))
        with pytest.raises(ValueError, match=r"theta must be \(rows, 1\)"):
            st.append(np.zeros((1, 2)), np.ones((1, 6, 2)))


def test_not_a_store_is_rejected(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="cannot open"):
        SimulationStore(bogus)
    with pytest.raises(FileNotFoundError):
        SimulationStore(tmp_path / "missing.h5")


def test_store_batches_visit_each_selected_row_once_in_shuffled_order(tmp_path):
    with SimulationStore.create(tmp_path / "b.h5", theta_dim=1, x_shape=(1,), chunk_rows=8) as st:
        ids = np.arange(100, dtype=np.float32)[:, None]
        st.append(ids, ids)
        rows = np.arange(0, 100, 3)
        src = StoreBatches(st, rows, batch_size=7, buffer_chunks=3)
        gen = torch.Generator().manual_seed(0)
        seen = [torch.cat([b[0] for b in src.epoch(e, gen)]).flatten() for e in range(2)]
        for s in seen:
            assert sorted(s.long().tolist()) == rows.tolist()
        assert not torch.equal(seen[0], seen[1])
        assert seen[0].tolist() != sorted(seen[0].tolist())
        assert len(src) == -(-len(rows) // 7)


def test_simulate_into_store_matches_in_memory(tmp_path):
    prior = box_uniform(-1.0, 1.0, dim=2)
    mem = simulate(S.flaky, prior=prior, n=60, batch_size=8, seed=5, progress=False)
    with SimulationStore.create(tmp_path / "f.h5", 2, (2,), chunk_rows=16) as st:
        simulate(S.flaky, prior=prior, n=60, batch_size=8, seed=5, store=st, progress=False)
        th, x = st.read()
        assert torch.equal(th, mem.theta) and torch.equal(x, mem.x)
        assert st.progress["batches_done"] == 8
        assert st.progress["exceptions"] == mem.report.exceptions
        assert st.progress["nonfinite"] == mem.report.nonfinite
        assert st.errors and st.settings == {"seed": 5, "batch_size": 8, "n": 60}


SCRIPT = textwrap.dedent("""
    import sys
    from innverse.amortized import SimulationStore, box_uniform, simulate
    from tests.amortized import simulators as S
    path = sys.argv[1] if len(sys.argv) > 1 else {path!r}
    try:
        store = SimulationStore(path, "a")
    except FileNotFoundError:
        store = SimulationStore.create(path, 2, (2,), chunk_rows=16)
    simulate(S.killing, prior=box_uniform(-1.0, 1.0, dim=2), n=200, batch_size=10, seed=9, store=store,
             progress=False)
    print("rows", store.rows)
    store.close()
""")


def test_killed_simulation_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "resume.h5"
    counter = tmp_path / "calls.txt"
    code = SCRIPT.format(path=str(path))
    killed = run_python(code, env={"INNVERSE_CALL_COUNTER": str(counter), "INNVERSE_KILL_AT_CALL": "13"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with SimulationStore(path) as st:
        assert st.rows == 120 and st.progress["batches_done"] == 12  # batch 13 was in flight
    resumed = run_python(code)
    assert resumed.returncode == 0, resumed.stderr
    assert "rows 200" in resumed.stdout
    reference = simulate(S.killing, prior=box_uniform(-1.0, 1.0, dim=2), n=200, batch_size=10, seed=9,
                         progress=False)
    with SimulationStore(path) as st:
        th, x = st.read()
        assert st.progress["batches_done"] == 20
    assert torch.equal(th, reference.theta) and torch.equal(x, reference.x)


def test_resume_with_other_settings_is_refused(tmp_path):
    prior = box_uniform(-1.0, 1.0, dim=2)
    with SimulationStore.create(tmp_path / "r.h5", 2, (2,)) as st:
        simulate(S.linear_gaussian, prior=prior, n=20, batch_size=10, seed=1, store=st, progress=False)
        with pytest.raises(ValueError, match="same seed, batch_size and n"):
            simulate(S.linear_gaussian, prior=prior, n=20, batch_size=10, seed=2, store=st, progress=False)


KILL_IN_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from innverse.amortized import SimulationStore, box_uniform, simulate
    from innverse.amortized.store import SimulationStore as Store
    from tests.amortized import simulators as S
    path, kill_at = sys.argv[1], int(sys.argv[2])
    write, calls = Store._write_errors, []
    def write_then_die(self, state):  # dies with the batch's messages written and its rows not yet committed
        write(self, state)
        if state["pending"] is not None:
            calls.append(1)
            if len(calls) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    if kill_at:
        Store._write_errors = write_then_die
    try:
        store = SimulationStore(path, "a")
    except FileNotFoundError:
        store = SimulationStore.create(path, 2, (2,), chunk_rows=16)
    simulate(S.flaky, prior=box_uniform(-1.0, 1.0, dim=2), n=120, batch_size=8, seed=5, store=store,
             workers=0, progress=False)
    store.close()
""")


def test_a_kill_inside_the_commit_neither_loses_nor_doubles_error_messages(tmp_path):
    """SIGKILL after a batch's messages are written and before its rows are committed: the reopened store counts
    the messages of the committed batches only, and the resumed run ends with those of an uninterrupted run."""
    prior = box_uniform(-1.0, 1.0, dim=2)
    reference = simulate(S.flaky, prior=prior, n=120, batch_size=8, seed=5, progress=False)
    assert sum(reference.report.errors.values()) > 0
    path = tmp_path / "k.h5"
    killed = run_python(f"import sys; sys.argv = ['x', {str(path)!r}, '3']\n" + KILL_IN_COMMIT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    import h5py

    with h5py.File(path, "r") as f:  # the in-flight batch's messages are on disk, beyond the commit
        pending = json.loads(f.attrs["errors"])["pending"]
    with SimulationStore(path) as st:
        done = st.progress["batches_done"]
        assert 0 < done < 15 and pending["batches_done"] == done + 1
        partial = simulate(S.flaky, prior=prior, n=8 * done, batch_size=8, seed=5, progress=False)
        assert st.errors == partial.report.errors  # the in-flight batch's messages are not counted
        assert st.progress["exceptions"] + st.progress["nonfinite"] == sum(partial.report.errors.values())
    resumed = run_python(f"import sys; sys.argv = ['x', {str(path)!r}, '0']\n" + KILL_IN_COMMIT)
    assert resumed.returncode == 0, resumed.stderr
    with SimulationStore(path) as st:
        th, _ = st.read()
        assert torch.equal(th, reference.theta)
        assert st.errors == reference.report.errors


def test_version_1_error_messages_are_read_and_upgraded_on_append(tmp_path):
    """A store written before messages were committed with their batch (a plain ``{message: count}``) still reads;
    appending to it writes the current layout and version."""
    import h5py

    path = tmp_path / "v1.h5"
    SimulationStore.create(path, 1, (1,)).close()
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 1
        f.attrs["errors"] = '{"old failure": 3}'
    with SimulationStore(path, "a") as st:
        assert st.errors == {"old failure": 3}
        st.append(np.zeros((1, 1)), np.zeros((1, 1)), batches_done=1, exceptions=1, errors={"old failure": 4})
        assert st.errors == {"old failure": 4}
    with h5py.File(path, "r") as f:
        assert int(f.attrs["version"]) == 2
    with SimulationStore(path) as st:
        assert st.errors == {"old failure": 4}


@pytest.mark.parametrize("attr", ['{"committed": {}}', '{"committed": {"m": -1}, "pending": null}',
                                  '{"committed": {}, "pending": {"errors": {}}}', '[1, 2]'])
def test_a_malformed_error_attribute_is_refused_as_damage(tmp_path, attr):
    import h5py

    path = tmp_path / "bad.h5"
    SimulationStore.create(path, 1, (1,)).close()
    with h5py.File(path, "r+") as f:
        f.attrs["errors"] = attr
    with pytest.raises(ValueError, match=r"damaged.*'errors'"):
        SimulationStore(path)


def test_append_refuses_messages_without_their_batch_and_malformed_counts(tmp_path):
    with SimulationStore.create(tmp_path / "m.h5", 1, (1,)) as st:
        with pytest.raises(ValueError, match="pass batches_done"):
            st.append(np.zeros((1, 1)), np.zeros((1, 1)), errors={"m": 1})
        with pytest.raises(ValueError, match=r"errors must map messages \(str\) to counts"):
            st.append(np.zeros((1, 1)), np.zeros((1, 1)), batches_done=1, errors={"m": 1.5})
        assert st.rows == 0 and st.errors == {}
