"""The command line end to end, in subprocesses: simulate -> fit -> sample -> check -> report.

Budgets are tiny (a few hundred simulations, a few epochs): these tests check the plumbing and
the files, not the quality of the posterior (the amortized and diagnostics tests do that).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from innverse.report.run import RunLayout

from .helpers import SRC, innverse, run_main

TINY = """\
[simulator]
{simulator}

[simulations]
{store}count = {count}
batch_size = 100
seed = 0

[flow]
coupling = "{coupling}"
blocks = 2
hidden = [32, 32]

[training]
epochs = {epochs}
batch_size = 64
patience = 50
seed = 0

[diagnostics]
simulations = 20
samples = 50
"""


def tiny_config(path: Path, simulator: str, count: int = 300, epochs: int = 3, store: str | None = None,
                coupling: str = "affine") -> Path:
    path.write_text(TINY.format(simulator=simulator, count=count, epochs=epochs, coupling=coupling,
                                store=f'store = "{store}"\n' if store else ""))
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """simulate -> fit -> sample -> check -> report on two moons, each a separate command."""
    from innverse.tasks import get_task

    tmp = tmp_path_factory.mktemp("e2e")
    out: dict = {"tmp": tmp, "run": tmp / "run"}
    out["simulate"] = innverse("simulate", "--task", "two_moons", "-n", "300", "--out", tmp / "sims.h5",
                               "--batch-size", "100", "--json", cwd=tmp, check=0)
    tiny_config(tmp / "config.toml", 'task = "two_moons"', store="sims.h5")
    out["fit"] = innverse("fit", "config.toml", "--run", "run", "--quiet", cwd=tmp, check=0)
    task = get_task("two_moons")
    obs = np.stack([task.observation(i).numpy() for i in range(3)])
    np.save(tmp / "obs.npy", obs)
    np.savetxt(tmp / "obs.csv", obs[:2], delimiter=",", header="x1,x2", comments="")
    out["obs"] = obs
    out["sample"] = innverse("sample", "run", "--obs", "obs.npy", "-n", "200", "--json", cwd=tmp, check=0)
    out["sample_csv"] = run_main("sample", "run", "--obs", "obs.csv", "-n", "50", "--out", "post.csv",
                                 "-q", cwd=tmp)
    out["check"] = innverse("check", "run", "--json", cwd=tmp, check=0)
    out["report"] = run_main("report", "run", cwd=tmp)
    return out


def test_simulate_fills_the_store(pipeline: dict) -> None:
    result = json.loads(pipeline["simulate"].stdout)
    assert result["ok"] and result["simulations"] == 300 and result["failed"] == 0
    code, out, _ = run_main("simulate", "--task", "two_moons", "-n", "300", "--out", "sims.h5", "--json",
                            cwd=pipeline["tmp"])
    assert code == 0
    assert json.loads(out)["simulations"] == 300 and json.loads(out)["added"] == 0  # complete already


def test_fit_writes_the_run_directory(pipeline: dict) -> None:
    layout = RunLayout(pipeline["run"])
    assert pipeline["fit"].stderr == ""  # --quiet
    assert "model: run/model.safetensors" in pipeline["fit"].stdout
    for path in (layout.run_json, layout.config, layout.model, layout.training_log):
        assert path.is_file(), path
    assert any(layout.checkpoints.iterdir())
    info = json.loads(layout.run_json.read_text())
    assert info["problem"] == {"task": "two_moons"} and info["parameter_names"] == ["theta_1", "theta_2"]
    assert info["steps"]["simulate"]["simulations"] == 300
    assert info["steps"]["fit"]["epochs"] == 3
    assert info["steps"]["fit"]["flow"] == "affine" and info["steps"]["fit"]["log_features"] == []
    log = [json.loads(line) for line in layout.training_log.read_text().splitlines()]
    assert [row["epoch"] for row in log] == [0, 1, 2]
    assert layout.config.read_text() == (pipeline["tmp"] / "config.toml").read_text()


def test_sample_writes_samples_inside_the_prior(pipeline: dict) -> None:
    result = json.loads(pipeline["sample"].stdout)
    path = Path(result["samples"][0])
    if not path.is_absolute():
        path = pipeline["tmp"] / path
    with np.load(path) as z:
        samples = z["samples"]
        assert samples.shape == (200, 3, 2)
        assert np.array_equal(z["observations"], pipeline["obs"].astype(np.float64))
        assert list(z["parameter_names"]) == ["theta_1", "theta_2"]
    assert np.all(np.abs(samples) <= 1.0)  # two moons' prior is the box [-1, 1]^2
    assert len(result["misspecification"]) in (0, 3)
    assert pipeline["sample_csv"][0] == 0
    table = np.loadtxt(pipeline["tmp"] / "post.csv", delimiter=",", skiprows=1)
    assert table.shape == (100, 4) and set(table[:, 0]) == {0.0, 1.0}


def test_same_seed_same_samples(pipeline: dict) -> None:
    tmp = pipeline["tmp"]
    for name in ("a.npz", "b.npz"):
        assert run_main("sample", "run", "--obs", "obs.npy", "-n", "20", "--seed", "5", "--out", name, "-q",
                        cwd=tmp)[0] == 0
    with np.load(tmp / "a.npz") as a, np.load(tmp / "b.npz") as b:
        assert np.array_equal(a["samples"], b["samples"])


def test_check_writes_verdicts(pipeline: dict) -> None:
    result = json.loads(pipeline["check"].stdout)
    assert result["ok"] and result["verdicts"]
    assert all(isinstance(v, bool) for v in result["verdicts"].values())
    diag = json.loads((pipeline["run"] / "diagnostics" / "diagnostics.json").read_text())
    assert set(result["verdicts"]) <= set(diag)


def test_report_embeds_everything(pipeline: dict) -> None:
    report = pipeline["run"] / "report.html"
    code, out, _ = pipeline["report"]
    assert code == 0 and f"report: {report.relative_to(pipeline['tmp'])}" in out
    text = report.read_text()
    assert text.count("<img ") >= 5 and 'src="data:image/' in text
    assert "Posterior pair plot for" in text and "Loss per epoch" in text


def test_report_renders_in_chromium(pipeline: dict) -> None:
    from tests.report.chromium import CHROMIUM
    from tests.report.test_browser import check_in_browser

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    shots = Path(os.environ.get("INNVERSE_SCREENSHOT_DIR", pipeline["tmp"]))
    page = check_in_browser(pipeline["run"] / "report.html", shots / "report_cli.png")
    assert len(page["images"]) >= 5


def test_bad_inputs_exit_2_with_a_clear_message(pipeline: dict) -> None:
    tmp = pipeline["tmp"]
    np.save(tmp / "wrong.npy", np.zeros((4, 3)))
    # one through a real process, to see the exit status the shell sees
    proc = innverse("sample", "run", "--obs", "wrong.npy", cwd=tmp, check=2)
    assert "wrong.npy has shape (4, 3), but this model expects one observation of shape (2,)" in proc.stderr
    (tmp / "bad.toml").write_text('[simulator]\ntask = "two_moons"\n[training]\nepochs = "many"\n')
    (tmp / "nosim.toml").write_text('[simulator]\nfunction = "no_such_module:simulate"\nprior = "x:p"\n')
    (tmp / "nokey.toml").write_text('[simulations]\ncount = 100\n')
    cases = [
        (["fit", "bad.toml", "--run", "bad"],
         "key 'training.epochs' must be an integer (e.g. epochs = 100), got the string 'many'"),
        (["fit", "nokey.toml", "--run", "bad"], "missing key 'simulator.task' or 'simulator.function'"),
        (["fit", "nosim.toml", "--run", "nosim"],
         "simulator 'no_such_module:simulate': no module named 'no_such_module'"),
        (["simulate", "--simulator", "oops", "--prior", "x:p", "-n", "5", "--out", "x.h5"],
         "must look like 'module:function'"),
        (["fit", "config.toml", "--run", "run"], "already holds a run; pass --resume"),
        (["sample", "run", "--obs", "missing.npy"], "observation file missing.npy does not exist"),
        (["sample", "run", "--obs", "obs.npy", "--out", "x.parquet"], "unknown format '.parquet'"),
        (["demo", "--task", "three_moons"], "unknown task 'three_moons' (did you mean 'two_moons'?)"),
        (["check", "run", "--simulations", "3"], "must be at least 10"),
    ]
    for args, message in cases:
        code, _, err = run_main(*args, cwd=tmp)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert err.startswith(f"innverse {args[0]}: error: "), err
    assert not (tmp / "bad").exists() and not (tmp / "x.h5").exists()


USER_SIM = '''\
"""A user's simulator: a noisy line, y = a * t + b, observed at 8 points."""
import numpy as np
import torch

prior = torch.distributions.Independent(
    torch.distributions.Uniform(torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.0])), 1)

T = np.linspace(0.0, 1.0, 8)


def simulate(theta):
    theta = np.asarray(theta, dtype=np.float64)
    rng = np.random.default_rng(int(abs(theta[0, 0]) * 1e6) % 2**32)
    return theta[:, :1] * T + theta[:, 1:] + 0.1 * rng.standard_normal((len(theta), T.size))
'''


def test_user_simulator_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "linesim.py").write_text(USER_SIM)
    proc = innverse("simulate", "--simulator", "linesim:simulate", "--prior", "linesim:prior", "-n", "300",
                    "--out", "s.h5", "--workers", "2", "--batch-size", "50", "--json", cwd=tmp_path, check=0)
    assert json.loads(proc.stdout)["simulations"] == 300
    tiny_config(tmp_path / "c.toml", 'function = "linesim:simulate"\nprior = "linesim:prior"\n'
                'parameter_names = ["slope", "intercept"]', store="s.h5", epochs=2, coupling="spline")
    np.save(tmp_path / "o.npy", 0.5 * np.linspace(0, 1, 8) + 0.2)
    try:
        assert run_main("fit", "c.toml", "--run", "r", "-q", cwd=tmp_path)[0] == 0
        code, out, err = run_main("sample", "r", "--obs", "o.npy", "-n", "100", "--json", cwd=tmp_path)
        assert code == 0, err
        with np.load(tmp_path / json.loads(out)["samples"][0]) as z:
            s = z["samples"]
            assert s.shape == (100, 1, 2) and list(z["parameter_names"]) == ["slope", "intercept"]
        assert np.all(np.abs(s[..., 0]) <= 2.0) and np.all(np.abs(s[..., 1]) <= 1.0)
        info = json.loads((tmp_path / "r" / "run.json").read_text())
        assert info["problem"]["function"] == "linesim:simulate"
    finally:
        sys.modules.pop("linesim", None)
    # check rebuilds the user's simulator from run.json (from another folder, module unloaded), but
    # runs the run's code only when trusted
    try:
        code, _, err = run_main("check", tmp_path / "r", "--simulations", "10", "--samples", "20", "-q",
                                cwd=tmp_path.parent)
        assert code == 2 and "--trust-run-code" in err and "linesim" not in sys.modules
        code, _, err = run_main("check", tmp_path / "r", "--simulations", "10", "--samples", "20", "-q",
                                "--trust-run-code", cwd=tmp_path.parent)
        assert code == 0, err
        assert "linesim" in sys.modules  # imported again, from the path recorded in run.json
    finally:
        sys.modules.pop("linesim", None)
    assert (tmp_path / "r" / "diagnostics" / "diagnostics.json").is_file()
    # relocatable: the project copied elsewhere (and the original module gone) still checks, from the copy
    moved = tmp_path.parent / f"{tmp_path.name}_moved"
    shutil.copytree(tmp_path, moved)
    (tmp_path / "linesim.py").unlink()
    assert not Path(json.loads((moved / "r" / "run.json").read_text())["problem"]["path"]).is_absolute()
    try:
        code, _, err = run_main("check", moved / "r", "--simulations", "10", "--samples", "20", "-q",
                                "--trust-run-code", cwd=moved.parent)
        assert code == 0, err
        assert Path(sys.modules["linesim"].__file__).parent == moved.resolve()
    finally:
        sys.modules.pop("linesim", None)


def test_resume_after_killing_fit(tmp_path: Path) -> None:
    tiny_config(tmp_path / "c.toml", 'task = "two_moons"', count=2000, epochs=40)
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "innverse.cli", "fit", "c.toml", "--run", "r", "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = tmp_path / "r" / "training_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "fit finished before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done_before = len(log.read_text().splitlines())
    assert 2 <= done_before < 40 and not (tmp_path / "r" / "model.safetensors").exists()
    result = innverse("fit", "c.toml", "--run", "r", "--resume", "--json", cwd=tmp_path, check=0)
    data = json.loads(result.stdout)
    assert data["resumed_from_epoch"] >= 1
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == sorted(set(epochs)), "resumed training repeated or skipped epochs"
    assert (tmp_path / "r" / "model.safetensors").is_file()


SIM6 = '''\
"""Six parameters observed with noise: the default fit trains two candidate flows."""
import numpy as np
import torch

prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(6), torch.ones(6)), 1)


def simulate(theta):
    theta = np.asarray(theta, dtype=np.float64)
    rng = np.random.default_rng(int(abs(theta[0, 0]) * 1e6) % 2**32)
    return theta + 0.5 * rng.standard_normal(theta.shape)
'''


def _fit_six_parameters(tmp_path: Path, epochs: int, training: str, patience: int = 50) -> dict:
    """Simulate 300 pairs of the 6-parameter problem, fit them with the default flows and ``training`` lines
    added to the tiny config; the fit step of run.json."""
    (tmp_path / "sim6.py").write_text(SIM6)
    proc = innverse("simulate", "--simulator", "sim6:simulate", "--prior", "sim6:prior", "-n", "300",
                    "--out", "s.h5", "--json", cwd=tmp_path, check=0)
    assert json.loads(proc.stdout)["simulations"] == 300
    config = tiny_config(tmp_path / "c.toml", 'function = "sim6:simulate"\nprior = "sim6:prior"', store="s.h5",
                         epochs=epochs)
    text = config.read_text().replace("[training]\n", "[training]\n" + training)
    text = text.replace("patience = 50", f"patience = {patience}")
    config.write_text(text[:text.index("[flow]")] + text[text.index("[training]"):])   # default flows
    try:
        assert run_main("fit", "c.toml", "--run", "r", "-q", cwd=tmp_path)[0] == 0
    finally:
        sys.modules.pop("sim6", None)
    return json.loads((tmp_path / "r" / "run.json").read_text())["steps"]["fit"]


def test_fit_with_candidate_flows_records_the_kept_one(tmp_path: Path) -> None:
    # time ends training: early stopping waits longer than the run can last
    fit = _fit_six_parameters(tmp_path, 1000, "max_seconds = 1.5\nmin_patience = 1000\n", patience=1000)
    sel = fit["flow_selection"]
    assert fit["training"]["max_seconds"] == 1.5 and fit["out_of_time"] and fit["epochs"] < 1000
    assert sel["candidates"] == ["spline", "autoregressive"] and sel["kept"] == fit["flow"]
    kept = sel["candidates"].index(fit["flow"])
    assert fit["training_log"] == ("training_log.jsonl" if kept == 0 else "training_log.candidate1.jsonl")
    assert (tmp_path / "r" / fit["training_log"]).is_file()
    assert sel["val_loss"][kept] == min(sel["val_loss"])


def test_fit_with_the_fast_budget_trains_one_candidate_and_records_it(tmp_path: Path) -> None:
    fit = _fit_six_parameters(tmp_path, 3, 'budget = "fast"\n')
    # six parameters: the defaults would race two flows (see above); fast keeps the first only
    assert fit["budget"] == "fast" and "flow_selection" not in fit and fit["flow"] == "spline"


@pytest.mark.filterwarnings("ignore:fit_posterior. the posterior did not beat:RuntimeWarning")  # 2 epochs
def test_run_json_names_candidates_that_differ_in_their_summary_network() -> None:
    """Wide vectors race a summary network against none with the same coupling: run.json tells them apart."""
    import torch

    from innverse.amortized import fit_posterior
    from innverse.cli.engine import _fit_stats

    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(300, 2, generator=gen)
    x = torch.cat([theta + 0.5 * torch.randn(300, 2, generator=gen), torch.randn(300, 62, generator=gen)], 1)
    post = fit_posterior(theta, x, training={"epochs": 2}, progress=False)
    sel = _fit_stats(post, 0)["flow_selection"]
    lrs = [c.lr for c in post.report.candidates[1:]]
    assert sel["candidates"] == ["spline"] + [f"spline + MLPSummary, lr {lr:.3g}" for lr in lrs]
    assert lrs[1] == 4 * lrs[0]   # the MLP summary races at two learning rates
    assert sel["kept"] == sel["candidates"][sel["val_loss"].index(min(sel["val_loss"]))]
