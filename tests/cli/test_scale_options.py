"""Command-line scale-out: ``simulate --dask``, ``fit --device`` and ``fit --nproc`` (torchrun)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from innverse.amortized import SimulationStore

from .helpers import innverse, run_main

CONFIG = """\
[simulator]
task = "two_moons"

[simulations]
count = 240
batch_size = 60
seed = 3

[flow]
coupling = "affine"
blocks = 2
hidden = [16]

[training]
epochs = 3
batch_size = 40
learning_rate = 1e-3
patience = 3
seed = 1
"""


def _store(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with SimulationStore(path) as s:
        theta, x = s.read()
        return theta.numpy(), x.numpy(), dict(s.progress)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simulate_dask_fills_the_same_store_as_one_process(tmp_path):
    pytest.importorskip("distributed")
    base = ["simulate", "--task", "two_moons", "-n", "300", "--batch-size", "50", "--seed", "5", "-q"]
    code, _, err = run_main(*base, "--out", tmp_path / "one.h5", cwd=tmp_path)
    assert code == 0, err
    code, out, err = run_main(*base, "--out", tmp_path / "dask.h5", "--dask", "--workers", "2", "--json",
                              cwd=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["dask_workers"] == 2 and result["dashboard"].startswith("http://127.0.0.1:")
    for a, b in zip(_store(tmp_path / "one.h5"), _store(tmp_path / "dask.h5")):
        np.testing.assert_array_equal(a, b) if isinstance(a, np.ndarray) else None
        assert not isinstance(a, dict) or a == b


def test_simulate_dask_unreachable_scheduler_fails_and_leaves_no_store(tmp_path):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    code, _, err = run_main("simulate", "--task", "two_moons", "-n", "100", "--out", tmp_path / "s.h5",
                            "--dask", address, "--dask-timeout", "1", "-q", cwd=tmp_path)
    assert code == 1
    assert f"cannot reach the Dask scheduler at {address}" in err
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize(("extra", "key", "message"), [
    (["--device", "cuda"], "", "--device='cuda', but CUDA is not available"),
    ([], 'device = "cuda:1"\n', "training.device='cuda:1', but CUDA is not available"),
    (["--device", "warp9"], "", "--device='warp9' is not a device"),
])
def test_fit_refuses_a_device_it_cannot_use_before_writing_anything(tmp_path, extra, key, message):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG + key)
    code, _, err = run_main("fit", config, "--run", tmp_path / "run", *extra, cwd=tmp_path)
    assert code == 2
    assert message in err
    assert not (tmp_path / "run").exists()


def test_fit_with_two_processes_gives_the_weights_of_one(tmp_path):
    """``--nproc 2`` (torchrun, gloo): the model equals a one-process fit with the same global batch."""
    safetensors = pytest.importorskip("safetensors.torch")
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    code, _, err = run_main("fit", config, "--run", tmp_path / "one", "--device", "cpu", "-q", cwd=tmp_path)
    assert code == 0, err
    two = innverse("fit", config, "--run", tmp_path / "two", "--nproc", "2", "--json", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    result = json.loads(two.stdout)  # one result, from the first process
    assert result["device"] == "cpu" and result["processes"] == 2 and result["epochs"] == 3
    a = safetensors.load_file(tmp_path / "one" / "model.safetensors")
    b = safetensors.load_file(tmp_path / "two" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    records = (tmp_path / "two" / "training_log.jsonl").read_text().splitlines()
    assert len(records) == 3  # written once (by the first process), one record per epoch
