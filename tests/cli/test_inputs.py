"""Observation files and user references: what goes wrong is reported with the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from innverse.cli.errors import UsageError
from innverse.cli.observations import read_observations, write_samples
from innverse.cli.userfunc import resolve_callable, resolve_reference


def test_npy_and_csv_observations(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.array([0.1, 0.2]))
    np.save(tmp_path / "batch.npy", np.arange(6.0).reshape(3, 2))
    (tmp_path / "b.csv").write_text("x1,x2\n0.1,0.2\n0.3,0.4\n")
    (tmp_path / "n.csv").write_text("1e-3,2E+1\n")
    assert read_observations(tmp_path / "one.npy", (2,)).shape == (1, 2)
    assert read_observations(tmp_path / "batch.npy", [2]).shape == (3, 2)
    assert np.allclose(read_observations(tmp_path / "b.csv", (2,)), [[0.1, 0.2], [0.3, 0.4]])
    assert np.allclose(read_observations(tmp_path / "n.csv", (2,)), [[1e-3, 20.0]])


@pytest.mark.parametrize(("content", "name", "message"), [
    (np.zeros(3), "a.npy", "has shape (3,), but this model expects one observation of shape (2,) "
                           "or a batch of shape (k, 2)"),
    (np.zeros((4, 3)), "b.npy", "has shape (4, 3)"),
    (np.array([[np.nan, 1.0]]), "c.npy", "observations [0] contain NaN or Inf"),
    (np.array([[0.0, 1.0], [1e39, 0.0]]), "h.npy", "observations [1] hold values beyond the float32 range"),
    (b"", "empty.npy", "could not be read as numbers"),
    (np.array(["a", "b"]), "d.npy", "expected numbers"),
    ("1,2,3\n", "e.csv", "has shape (1, 3)"),
    ("1,two\n", "f.csv", "could not be read as numbers"),
    ("1,2\n", "g.txt", "unknown format '.txt'; use .npy"),
])
def test_bad_observations(tmp_path: Path, content, name: str, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
        path = path.with_suffix(".npy")
    with pytest.raises(UsageError) as err:
        read_observations(path, (2,))
    assert message in str(err.value)


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="could not be read"):
        read_observations(tmp_path / "o.npy", (2,))


def test_sample_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=(5, 2, 3))
    obs = rng.normal(size=(2, 4))
    write_samples(tmp_path / "s.npz", s, ["a", "b", "c"], obs)
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(z["samples"], s) and list(z["parameter_names"]) == ["a", "b", "c"]
        assert np.array_equal(z["observations"], obs)
    write_samples(tmp_path / "s.csv", s, ["a", "b", "c"], obs)
    table = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "observation,draw,a,b,c"
    assert table.shape == (10, 5)
    assert np.allclose(table[table[:, 0] == 1][:, 2:], s[:, 1], atol=1e-8)
    assert np.array_equal(table[:5, 1], np.arange(5))


def test_netcdf_is_inference_data_with_log_q_observations_and_prior(tmp_path: Path) -> None:
    """``innverse sample --out s.nc``: one ArviZ file per observation, read back and summarised without warnings."""
    import warnings

    import torch

    from innverse.amortized import box_uniform, fit_posterior
    from innverse.cli.observations import write_inference_data

    az = pytest.importorskip("arviz", reason="arviz is optional (pip install 'innverse[arviz]')")
    prior = box_uniform(-1.0, 1.0, dim=2)
    theta = prior.sample((200,))
    post = fit_posterior(theta, theta + 0.1 * torch.randn(200, 2), prior=prior, flow={"blocks": 1, "hidden": [8]},
                         training={"epochs": 2}, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a two-epoch posterior learned little: not the point
        paths = write_inference_data(tmp_path / "s.nc", post, np.zeros((2, 2)), 40, ["a", "b"], seed=0)
    assert [p.name for p in paths] == ["s_0.nc", "s_1.nc"]
    data = az.from_netcdf(paths[1])
    assert data.posterior["theta"].shape == (4, 10, 2) and data.sample_stats["log_q"].shape == (4, 10)
    assert "observed_data" in data.groups() and "prior" in data.groups()
    table = az.summary(data)
    assert list(table.index[:2]) == ["theta[a]", "theta[b]"]


def test_module_function_resolution(tmp_path: Path) -> None:
    (tmp_path / "usersim_a.py").write_text("def simulate(theta):\n    return theta\nvalue = 3\n")
    (tmp_path / "usersim_broken.py").write_text("import numpy\nraise RuntimeError('no licence')\n")
    try:
        assert resolve_callable("usersim_a:simulate", "simulator", tmp_path)(5) == 5
        assert resolve_callable(f"{tmp_path / 'usersim_a.py'}:simulate", "simulator")(1) == 1
        cases = [
            ("usersim_a", "must look like 'module:function'"),
            ("usersim_nothere:simulate", "no module named 'usersim_nothere'"),
            ("usersim_a:simulat", "has no attribute 'simulat'"),
            ("usersim_broken:f", "failed to import: RuntimeError: no licence"),
        ]
        for ref, message in cases:
            with pytest.raises(UsageError) as err:
                resolve_reference(ref, "simulator", tmp_path)
            assert message in str(err.value)
        with pytest.raises(UsageError, match="is a int, not a function"):
            resolve_callable("usersim_a:value", "simulator", tmp_path)
    finally:
        for name in ("usersim_a", "usersim_broken"):
            sys.modules.pop(name, None)
        while str(tmp_path.resolve()) in sys.path:
            sys.path.remove(str(tmp_path.resolve()))
