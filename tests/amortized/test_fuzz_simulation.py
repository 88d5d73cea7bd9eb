"""Property-based fuzzing of simulate, SimulationStore and innverse.load with generated bad input.

Every call succeeds with a consistent result or raises a documented error (``ValueError``,
``TypeError``; ``RuntimeError`` when every simulation failed; ``FileNotFoundError`` /
``FileExistsError`` for paths) whose message names the function, and a failed call leaves
nothing half written. ``INNVERSE_FUZZ=long`` selects the long profile (a CI step); the default
profile is fast.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import innverse  # noqa: E402
from innverse.amortized import SimulationStore, box_uniform, fit_posterior, simulate  # noqa: E402

pytest.importorskip("h5py")

# "long": 400 cases per entry point, the same every run (the CI step); "explore": 400 fresh random ones
LONG = os.environ.get("INNVERSE_FUZZ") in ("long", "explore")
EXPLORE = os.environ.get("INNVERSE_FUZZ") == "explore"
PROFILE = settings(max_examples=400 if LONG else 20, deadline=None, derandomize=not EXPLORE, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PRIOR = box_uniform(-1.0, 1.0, dim=2)
SPECIAL = st.sampled_from([0.0, 1.0, -1.0, 1e39, -1e39, 1e-30, float("nan"), float("inf"), 3.5])


@st.composite
def arrays(draw, max_dims: int = 3, max_side: int = 5):
    """Arrays of any small shape and dtype, with special values sprinkled in."""
    shape = tuple(draw(st.lists(st.integers(0, max_side), max_size=max_dims)))
    values = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape)
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(SPECIAL)
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "bool", "object"]))
    if dtype == "object":
        return np.full(shape, "a", dtype=object)
    with np.errstate(invalid="ignore", over="ignore"):
        return values > 0 if dtype == "bool" else values.astype(dtype)


def _simulator(kind: str, payload: np.ndarray):
    """A simulator that misbehaves in the way ``kind`` says (``payload``: data to return)."""
    def simulator(theta):
        b = len(theta)
        if kind == "raises":
            raise RuntimeError("solver failed")
        if kind == "payload":
            return payload
        if kind == "rows":  # payload's first row repeated for every simulation
            return np.repeat(payload.reshape(1, -1)[:, :3], b, axis=0) if payload.size else np.zeros((b, 0))
        if kind == "ragged":
            return [np.ones((i % 3 + 1, 2)) for i in range(b)]
        if kind == "none":
            return None
        if kind == "strings":
            return np.full((b, 2), "x")
        return torch.as_tensor(np.asarray(theta, dtype=np.float64)) * 1e20 ** (1 + (kind == "huge"))

    return simulator


def _named(err: BaseException, *names: str) -> None:
    assert any(n in str(err) for n in names), f"the message does not name the function or argument: {err!r}"


SIMULATOR_KINDS = st.sampled_from(["raises", "payload", "rows", "ragged", "none", "strings", "scaled", "huge"])


@PROFILE
@given(kind=SIMULATOR_KINDS, payload=arrays(), theta=st.one_of(st.none(), arrays()),
       n=st.sampled_from([None, -1, 0, 1, 7, 2.5, True]), batch=st.sampled_from([-1, 0, 1, 3, 2.5, True]),
       seed=st.sampled_from([0, 5, -1, 2**64, 1.5]), fmt=st.sampled_from(["torch", "numpy", "jax"]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]))
def test_simulate_on_generated_input(kind, payload, theta, n, batch, seed, fmt, dtype):
    try:
        sims = simulate(_simulator(kind, payload), theta, prior=PRIOR, n=n, batch_size=batch, seed=seed,
                        theta_format=fmt, dtype=dtype, progress=False)
    except (ValueError, TypeError, RuntimeError) as err:
        _named(err, "simulate")
        return
    rep = sims.report
    assert rep.succeeded + rep.failed == rep.requested and rep.succeeded == len(sims.theta) == len(sims.x) > 0
    assert sims.x.dtype == dtype and torch.isfinite(sims.theta).all()
    if sims.x.dim() == 2:
        assert torch.isfinite(sims.x).all()  # vectors: nothing non-finite is kept (NaN pads sets only)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@PROFILE
@given(theta_dim=st.sampled_from([1, 2, 0, -1, 2.5, "2", True]),
       x_shape=st.sampled_from([(3,), (2, 2), (), (0,), (-1,), ("a",), 3, None, (1.5,)]),
       chunk=st.sampled_from([1, 16, 0, -4, 2.0]), dtype=st.sampled_from(["float32", "float64", "int8", None]),
       capacity=st.sampled_from([0, 5, -1, 1.5]), simulator=st.sampled_from([None, "m:f", 3]))
def test_store_create_on_generated_sizes(theta_dim, x_shape, chunk, dtype, capacity, simulator):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.h5"
        try:
            store = SimulationStore.create(path, theta_dim, x_shape, chunk_rows=chunk, dtype=dtype,
                                           capacity=capacity, simulator=simulator)
        except (ValueError, TypeError) as err:
            _named(err, "SimulationStore.create")
            assert _listing(Path(tmp)) == []  # nothing at the path, no temporary file, no lock file
            return
        with store:
            assert store.rows == 0 and store.theta_dim == theta_dim and store.simulator == simulator
        assert _listing(Path(tmp)) == ["s.h5"]


@PROFILE
@given(theta=arrays(), x=arrays(), batches_done=st.sampled_from([None, 1]))
def test_store_append_on_generated_rows(theta, x, batches_done):
    with tempfile.TemporaryDirectory() as tmp, SimulationStore.create(Path(tmp) / "s.h5", 2, (3,),
                                                                       chunk_rows=4) as store:
        store.append(np.ones((3, 2)), np.ones((3, 3)))
        try:
            store.append(theta, x, batches_done=batches_done)
        except (ValueError, TypeError) as err:
            _named(err, "SimulationStore.append")
            assert store.rows == 3 and torch.equal(store.read()[1], torch.ones(3, 3))  # nothing half
            return
        rows = store.rows
        assert rows == 3 + len(theta)
        t, xs = store.read()
        assert torch.equal(t[3:], torch.as_tensor(theta.astype(np.float32)))
        assert torch.isinf(xs).sum() == np.isinf(x.astype(np.float64)).sum()  # no Inf that was not given


def _valid_store_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        with SimulationStore.create(Path(tmp) / "s.h5", 2, (3,), chunk_rows=4) as store:
            store.append(np.ones((5, 2)), np.ones((5, 3)))
        return (Path(tmp) / "s.h5").read_bytes()


STORE = _valid_store_bytes()


@PROFILE
@given(cut=st.integers(0, len(STORE)), flips=st.lists(st.tuples(st.integers(0, len(STORE) - 1), st.integers(0, 255)),
                                                        max_size=8), junk=st.binary(max_size=64))
def test_store_open_on_damaged_files(cut, flips, junk):
    data = bytearray(STORE[:cut] + junk)
    for at, value in flips:
        if at < len(data):
            data[at] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.h5"
        path.write_bytes(bytes(data))
        try:
            with SimulationStore(path) as store:
                theta, x = store.read()
                assert theta.shape[1:] == (store.theta_dim,) and tuple(x.shape[1:]) == store.x_shape
        except ValueError as err:
            _named(err, "SimulationStore")


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    theta = torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with warnings.catch_warnings():  # one epoch: the model's quality does not matter here
        warnings.filterwarnings("ignore", "fit_posterior: the posterior did not beat", RuntimeWarning)
        post = fit_posterior(theta, theta + 0.1, prior=PRIOR, training={"epochs": 1}, progress=False)
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    innverse.save(post, path)
    return path.read_bytes()


@PROFILE
@given(data=st.data())
def test_load_on_damaged_model_files(model_bytes, data):
    blob = bytearray(model_bytes)
    cut = data.draw(st.integers(0, len(blob)))
    blob = blob[:cut] + data.draw(st.binary(max_size=32))
    for _ in range(data.draw(st.integers(0, 4))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(bytes(blob))
        try:
            post = innverse.load(path)
        except ValueError as err:  # ModelFileError
            _named(err, "innverse.load")
            return
        assert post.sample(3, torch.zeros(2)).shape == (3, 2)
