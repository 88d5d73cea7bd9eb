"""The command line is never silently wrong: every failure is an exit code and one line (also as JSON),
a store from another simulator or a busy store is refused with both sides named, a run's own code
runs only when trusted, and interrupted or killed commands leave no workers behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from .helpers import SRC, run_main

pytest.importorskip("h5py")

GOOD = '''\
import torch
prior = torch.distributions.Independent(
    torch.distributions.Uniform(torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])), 1)


def simulate(theta, generator=None):
    return theta + 0.1 * torch.randn(theta.shape, generator=generator)
'''

#: a run's module that announces being imported (a stand-in for code that does harm)
EVIL = 'from pathlib import Path\nPath(__file__).with_name("IMPORTED").touch()\n' + GOOD

OVERFLOW = GOOD + '''

def overflowing(theta, generator=None):
    x = (theta + 0.1 * torch.randn(theta.shape, generator=generator)).double()
    x[theta[:, 0] > 0.5, 0] = 1e39  # finite in float64, Inf in a float32 store
    return x
'''

WIDE = GOOD + '''

def wide(theta, generator=None):
    return torch.zeros(len(theta), 20)


CALLS = [0]


def widening(theta, generator=None):
    CALLS[0] += 1  # the probe and the first batch give two features, later batches three
    return torch.zeros(len(theta), 2 if CALLS[0] <= 2 else 3)
'''

GATED = GOOD + '''
import multiprocessing, os, time
from pathlib import Path


def gated(theta, generator=None):
    gate = os.environ.get("INNVERSE_GATE")
    if gate and multiprocessing.parent_process() is not None:
        Path(gate, f"worker-{os.getpid()}").touch()
        while not Path(gate, "open").exists():
            time.sleep(0.02)
    return simulate(theta, generator)
'''

CONFIG = """\
[simulator]
{simulator}

[simulations]
store = "{store}"
count = {count}
batch_size = 100

[flow]
coupling = "affine"
blocks = 2
hidden = [16]

[training]
epochs = 1
{training}
"""


@pytest.fixture(autouse=True)
def _forget_user_modules():
    yield
    for name in ("goodsim", "evilsim", "oversim", "widesim", "gatesim"):
        sys.modules.pop(name, None)


def _config(path: Path, simulator: str, store: str = "s.h5", count: int = 200, training: str = "") -> Path:
    path.write_text(CONFIG.format(simulator=simulator, store=store, count=count, training=training))
    return path


def _failed(result: tuple[int, str, str], code: int, command: str, message: str) -> dict:
    """A failure as --json reports it: the exit code, one JSON object, one error line, no traceback."""
    got, out, err = result
    assert got == code, (got, out, err)
    data = json.loads(out)
    assert data["ok"] is False and data["exit_code"] == code and message in data["error"], data
    lines = [line for line in err.splitlines() if "error:" in line]
    assert lines == [f"innverse {command}: error: {data['error']}"], err
    assert "Traceback" not in err
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory whose run.json names a user module (evilsim) with a tiny trained posterior."""
    import torch

    import innverse
    from innverse.amortized import box_uniform, fit_posterior

    tmp = tmp_path_factory.mktemp("trust")
    (tmp / "evilsim.py").write_text(EVIL)
    (tmp / "goodsim.py").write_text(GOOD)
    prior = box_uniform(-1.0, 1.0, dim=2)
    gen = torch.Generator().manual_seed(0)
    theta = torch.rand(300, 2, generator=gen) * 2 - 1
    x = theta + 0.1 * torch.randn(theta.shape, generator=gen)
    with warnings.catch_warnings():  # one epoch: the model's quality does not matter here
        warnings.filterwarnings("ignore", "fit_posterior: the posterior did not beat", RuntimeWarning)
        posterior = fit_posterior(theta, x, prior=prior, training={"epochs": 1}, progress=False)
    run = tmp / "run"
    run.mkdir()
    innverse.save(posterior, run / "model.safetensors")
    names = ["a", "b"]
    (run / "run.json").write_text(json.dumps({
        "name": "run", "command": "fit", "parameter_names": names, "x_shape": [2], "steps": {},
        "problem": {"function": "evilsim:simulate", "prior": "evilsim:prior", "path": str(tmp),
                    "parameter_names": names, "input": "torch"}}))
    np.save(tmp / "obs.npy", np.array([[0.1, 0.2], [0.3, -0.4]]))
    return run


# -- observation 4 -----------------------------------------------------------------------------------
def test_overflowing_simulations_are_counted_as_failed(tmp_path: Path) -> None:
    (tmp_path / "oversim.py").write_text(OVERFLOW)
    code, out, err = run_main("simulate", "--simulator", "oversim:overflowing", "--prior", "oversim:prior",
                              "-n", "60", "--batch-size", "20", "--out", "s.h5", "--json", cwd=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["failed"] > 0 and result["simulations"] + result["failed"] == 60
    assert any("beyond the float32 range" in msg for msg in result["errors"])
    from innverse.amortized import SimulationStore

    with SimulationStore(tmp_path / "s.h5") as st:
        assert st.rows == result["simulations"] and np.isfinite(st.read()[1].numpy()).all()


def _store_with_invalid_pairs(tmp_path: Path) -> None:
    from innverse.amortized import SimulationStore

    (tmp_path / "goodsim.py").write_text(GOOD)
    assert run_main("simulate", "--simulator", "goodsim:simulate", "--prior", "goodsim:prior", "-n", "200",
                    "--batch-size", "100", "--out", "s.h5", "-q", cwd=tmp_path)[0] == 0
    with SimulationStore(tmp_path / "s.h5", "a") as st:  # e.g. written by another program
        st.append(np.zeros((12, 2)), np.full((12, 2), np.nan))


SIM = 'function = "goodsim:simulate"\nprior = "goodsim:prior"'


def test_the_config_can_drop_invalid_stored_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import innverse.amortized

    _store_with_invalid_pairs(tmp_path)
    _config(tmp_path / "strict.toml", SIM)
    _failed(run_main("fit", "strict.toml", "--run", "r1", "--json", cwd=tmp_path), 2, "fit",
            "set drop_invalid = true in [training]")
    calls = []

    def fit_posterior(**kwargs):
        calls.append(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(innverse.amortized, "fit_posterior", fit_posterior)
    _config(tmp_path / "lenient.toml", SIM, training="drop_invalid = true\nvalidation_fraction = 0.2")
    run_main("fit", "lenient.toml", "--run", "r2", cwd=tmp_path)
    assert calls[0]["drop_invalid"] is True and calls[0]["validation_fraction"] == 0.2


def test_dropped_pairs_never_reach_training(tmp_path: Path) -> None:
    _store_with_invalid_pairs(tmp_path)
    _config(tmp_path / "lenient.toml", SIM, training="drop_invalid = true")
    code, _, err = run_main("fit", "lenient.toml", "--run", "r", "-q", cwd=tmp_path)
    assert code == 0, err
    fit = json.loads((tmp_path / "r" / "run.json").read_text())["steps"]["fit"]
    assert fit["skipped_steps"] == 0 and np.isfinite(fit["best_val_loss"])


# -- observation 5 -----------------------------------------------------------------------------------
def test_a_store_of_another_simulator_is_refused_naming_both(tmp_path: Path) -> None:
    (tmp_path / "goodsim.py").write_text(GOOD)
    (tmp_path / "widesim.py").write_text(WIDE)
    assert run_main("simulate", "--simulator", "goodsim:simulate", "--prior", "goodsim:prior", "-n", "200",
                    "--batch-size", "100", "--out", "s.h5", "-q", cwd=tmp_path)[0] == 0
    _config(tmp_path / "c.toml", 'function = "widesim:wide"\nprior = "widesim:prior"')
    data = _failed(run_main("fit", "c.toml", "--run", "r", "--json", cwd=tmp_path), 2, "fit",
                   "holds simulations of goodsim:simulate (2 parameters, data of shape (2,)), but this run's "
                   "simulator is widesim:wide (2 parameters, data of shape (20,))")
    assert "use a new store" in data["error"]
    assert not (tmp_path / "r" / "model.safetensors").exists() and not (tmp_path / "r" / "checkpoints").exists()
    # and simulate refuses to continue it with another simulator
    _failed(run_main("simulate", "--simulator", "widesim:wide", "--prior", "widesim:prior", "-n", "300",
                     "--out", "s.h5", "--json", cwd=tmp_path), 2, "simulate", "holds simulations of goodsim:simulate")


# -- observation 6 -----------------------------------------------------------------------------------
def test_a_runs_code_runs_only_when_trusted(trained: Path) -> None:
    tmp, marker = trained.parent, trained.parent / "IMPORTED"
    data = _failed(run_main("check", "run", "--json", cwd=tmp), 2, "check",
                   "names the simulator 'evilsim:simulate'")
    assert "--trust-run-code" in data["error"] and "--simulator MODULE:FUNCTION" in data["error"]
    assert run_main("sample", "run", "--obs", "obs.npy", "-n", "20", "--out", "s.npz", "-q", cwd=tmp)[0] == 0
    assert run_main("report", "run", "-q", cwd=tmp)[0] == 0
    quick = ("--simulations", "10", "--samples", "20", "-q")
    code, _, err = run_main("check", "run", "--simulator", "goodsim:simulate", "--prior", "goodsim:prior", *quick,
                            cwd=tmp)
    assert code == 0, err
    assert not marker.exists(), "sample, report or check imported the run's module untrusted"
    code, _, err = run_main("check", "run", "--trust-run-code", *quick, cwd=tmp)
    assert code == 0, err
    assert marker.exists()


# -- observation 7 -----------------------------------------------------------------------------------
def test_a_busy_store_is_reported_as_busy(tmp_path: Path) -> None:
    from innverse.amortized import SimulationStore

    (tmp_path / "goodsim.py").write_text(GOOD)
    _config(tmp_path / "c.toml", 'function = "goodsim:simulate"\nprior = "goodsim:prior"')
    with SimulationStore.create(tmp_path / "s.h5", 2, (2,)):  # another writer at work
        busy = f"is busy: it is being written by process {os.getpid()}"
        _failed(run_main("simulate", "--simulator", "goodsim:simulate", "--prior", "goodsim:prior", "-n", "200",
                         "--out", "s.h5", "--json", cwd=tmp_path), 1, "simulate", busy)
        _failed(run_main("fit", "c.toml", "--run", "r", "--json", cwd=tmp_path), 1, "fit", busy)


# -- observation 8 -----------------------------------------------------------------------------------
BAD_CONFIGS = [
    (b"\xff\xfe[simulator]\ntask = 'two_moons'\n", "not a UTF-8 text file (byte 0"),
    (b'[simulator]\ntask = "two_moons"\n[training]\nlearning_rate = 0', "'training.learning_rate' must be > 0"),
    (b'[simulator]\ntask = "two_moons"\n[training]\nlearning_rate = inf', "'training.learning_rate' must be a finite"),
    (b'[simulator]\ntask = "two_moons"\n[training]\nmax_seconds = -5', "'training.max_seconds' must be > 0"),
    (b'[simulator]\ntask = "two_moons"\n[simulations]\ncount = 100\n[training]\nvalidation_fraction = 0.99',
     "holds out 99 of simulations.count = 100 simulations, leaving 1 to train on (at least 10 needed)"),
    (b'[simulator]\ntask = "two_moons"\n[simulations]\ncount = 100000000000000000000',
     "'simulations.count' must be <= 1,000,000,000"),
    (b'[simulator]\ntask = "two_moons"\n[simulations]\nseed = -1', "'simulations.seed' must be >= 0"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_configs_are_refused_before_anything_is_written(tmp_path: Path, text: bytes, message: str) -> None:
    (tmp_path / "c.toml").write_bytes(text)
    _failed(run_main("fit", "c.toml", "--run", "r", "--json", cwd=tmp_path), 2, "fit", message)
    assert not (tmp_path / "r").exists()


def test_absurd_counts_are_refused_with_the_limit(tmp_path: Path) -> None:
    _failed(run_main("simulate", "--task", "two_moons", "-n", str(10**20), "--out", "s.h5", "--json", cwd=tmp_path),
            2, "simulate", "--simulations must be an integer between 1 and 1,000,000,000")
    _failed(run_main("simulate", "--task", "two_moons", "-n", "100", "--workers", "100000", "--out", "s.h5", "--json",
                     cwd=tmp_path), 2, "simulate", "--workers must be an integer between 1 and 256")
    assert not (tmp_path / "s.h5").exists()


def test_damaged_run_files_are_named(trained: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("diagnostics", "samples", "report.html"))
    (run / "run.json").write_text('{"problem": {"task": ')  # torn
    for command in ("sample", "check", "report"):
        extra = ("--obs", str(trained.parent / "obs.npy")) if command == "sample" else ()
        _failed(run_main(command, "run", *extra, "--json", cwd=tmp_path), 2, command, "run.json is damaged")
    (run / "run.json").write_text("[1, 2]")
    _failed(run_main("sample", "run", "--obs", str(trained.parent / "obs.npy"), "--json", cwd=tmp_path), 2,
            "sample", "run.json must be a JSON object, got list")
    shutil.copy(trained / "run.json", run / "run.json")
    (run / "diagnostics").mkdir()
    (run / "diagnostics" / "diagnostics.json").write_bytes(b"\x00\x01garbage")
    _failed(run_main("report", "run", "--json", cwd=tmp_path), 2, "report", "diagnostics.json is damaged")
    (run / "diagnostics" / "diagnostics.json").unlink()
    (run / "samples").mkdir()
    (run / "samples" / "obs.npz").write_bytes(b"PK\x03\x04 truncated zip")
    _failed(run_main("report", "run", "--json", cwd=tmp_path), 2, "report", "obs.npz is not a readable samples file")
    (run / "samples" / "obs.npz").unlink()
    model = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(model[: len(model) // 2])
    _failed(run_main("sample", "run", "--obs", str(trained.parent / "obs.npy"), "--json", cwd=tmp_path), 2,
            "sample", "model.safetensors cannot be loaded")
    assert not (run / "report.html").exists() and not any((run / "samples").iterdir())


def test_a_model_file_of_another_kind_is_refused_by_name(trained: Path, tmp_path: Path) -> None:
    import shutil

    import innverse
    from innverse.amortized import EnsemblePosterior

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("diagnostics", "samples", "report.html"))
    posterior = innverse.load(run / "model.safetensors")
    innverse.save(EnsemblePosterior([posterior, posterior]), run / "model.safetensors")   # saved from Python
    _failed(run_main("sample", "run", "--obs", str(trained.parent / "obs.npy"), "--json", cwd=tmp_path), 2,
            "sample", "holds an EnsemblePosterior; the command line works with the posterior innverse fit trains")


def test_unwritable_outputs(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obs = str(trained.parent / "obs.npy")
    (tmp_path / "afile").write_text("not a folder")
    _failed(run_main("sample", str(trained), "--obs", obs, "--out", str(tmp_path / "afile" / "s.npz"), "--json",
                     cwd=tmp_path), 2, "sample", "cannot write the samples to")
    _failed(run_main("simulate", "--task", "two_moons", "-n", "100", "--out", str(tmp_path / "afile" / "s.h5"),
                     "--json", cwd=tmp_path), 2, "simulate", "cannot create the store")
    # the run directory turns read-only once the samples are written: they stay, the record is a warning
    import innverse.cli.runinfo as runinfo

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(trained / "run.json"))

    monkeypatch.setattr(runinfo, "update_run_json", read_only)
    code, out, err = run_main("sample", str(trained), "--obs", obs, "-n", "10", "--out", str(tmp_path / "s.npz"),
                              "--json", cwd=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and "could not be recorded" in result["warnings"][0]
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].shape == (10, 2, 2)


def test_a_simulator_whose_output_shape_changes(tmp_path: Path) -> None:
    from innverse.amortized import SimulationStore

    (tmp_path / "widesim.py").write_text(WIDE)
    _failed(run_main("simulate", "--simulator", "widesim:widening", "--prior", "widesim:prior", "-n", "50",
                     "--batch-size", "10", "--out", "s.h5", "--json", cwd=tmp_path), 2, "simulate",
            "batch 1 returned data of shape (3,) per simulation, but the store")
    with SimulationStore(tmp_path / "s.h5") as st:
        assert st.rows == 10  # the first batch, committed whole


def test_argument_errors_answer_in_json_too(tmp_path: Path) -> None:
    code, out, err = run_main("sample", "run", "--json", cwd=tmp_path)
    assert code == 2 and err.startswith("usage: innverse sample")
    assert json.loads(out) == {"ok": False, "error": "the following arguments are required: --obs", "exit_code": 2}


# -- observation 10 ----------------------------------------------------------------------------------
def test_interrupted_simulate_says_what_resumes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import innverse.cli.engine as engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "simulate", interrupted)
    code, out, err = run_main("simulate", "--task", "two_moons", "-n", "100", "--out", "s.h5", "--json", cwd=tmp_path)
    assert code == 130
    message = json.loads(out)["error"]
    assert "rerun the same command to continue" in message and "rerun with --resume" not in message
    (tmp_path / "c.toml").write_text('[simulator]\ntask = "two_moons"\n')
    code, _, err = run_main("fit", "c.toml", "--run", "r", cwd=tmp_path)
    assert code == 130 and "rerun with --resume to continue from the last checkpoint" in err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_simulate_and_its_workers_and_rerunning_continues(tmp_path: Path) -> None:
    (tmp_path / "gatesim.py").write_text(GATED)
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", INNVERSE_GATE=str(tmp_path))
    args = [sys.executable, "-m", "innverse.cli", "simulate", "--simulator", "gatesim:gated", "--prior",
            "gatesim:prior", "-n", "200", "--batch-size", "10", "--workers", "2", "--out", "s.h5", "--json"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
            time.sleep(0.05)
        assert len(workers) == 2, "no workers started"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        message = json.loads(out)["error"]
        assert message.startswith("terminated (SIGTERM); the store keeps every finished batch: rerun the same "
                                  "command to continue"), message
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "worker processes outlived the terminated command"
    finally:
        (tmp_path / "open").touch()
        for pid in [proc.pid, *workers]:  # only processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["simulations"] == 200


def test_library_warnings_reach_the_json_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import innverse.cli.engine as engine

    def warns(*args, **kwargs):
        warnings.warn("fit_posterior: the posterior did not beat a Gaussian fit of the prior", RuntimeWarning,
                      stacklevel=2)
        return {"simulations": 100, "added": 100, "failed": 0, "errors": {}}

    monkeypatch.setattr(engine, "simulate", warns)
    code, out, err = run_main("simulate", "--task", "two_moons", "-n", "100", "--out", "s.h5", "--json", cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["warnings"] == ["fit_posterior: the posterior did not beat a Gaussian fit of the prior"]
    code, out, err = run_main("simulate", "--task", "two_moons", "-n", "100", "--out", "s.h5", cwd=tmp_path)
    assert code == 0 and "warning: fit_posterior: the posterior did not beat" in err
