"""A run directory written by hand, with every file the report reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _plot(path: Path, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="ideal")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=60)
    plt.close(fig)
    return path.name


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "diagnostics").mkdir()
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(500, 2, 2)) * [0.1, 0.2] + [[0.3, -0.2], [0.0, 0.5]]
    np.savez(run / "samples" / "task_observations.npz", samples=samples,
             observations=rng.normal(size=(2, 2)), parameter_names=np.array(["theta_1", "theta_2"]),
             true_parameters=np.array([[0.3, -0.2], [0.05, 0.45]]),
             reference=rng.normal(size=(300, 2, 2)) * 0.1 + [[0.3, -0.2], [0.0, 0.5]])
    log = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e + 0.01, "lr": 1e-3 * (1 - e / 12)}
           for e in range(1, 11)]
    (run / "training_log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n{\"torn")
    d = run / "diagnostics"
    diag = {  # the layout of innverse.diagnostics.check(...).to_dict()
        "settings": {"n": 200, "samples": 500, "level": 0.05},
        "sbc": {"passed": True, "level": 0.05, "calibration_error": [0.01, 0.02], "p_value": [0.42, 0.77]},
        "coverage": {"passed": False, "central": {"passed": False, "max_deviation": [0.21, 0.05],
                                                  "p_value": [0.001, 0.6]}},
        "tarp": {"passed": True, "level": 0.05, "atc": 0.01, "p_value": [0.5]},
        "recovery": {"passed": True, "level": 0.05, "r2": [0.93, 0.88], "mean_z": [0.1, -0.05]},
        "misspecification": {"available": False, "reason": "no observations given", "passed": True},
        "plots": {"sbc_ecdf": str(d / _plot(d / "sbc_ecdf.png", "SBC ranks")),
                  "coverage": str(d / _plot(d / "coverage.png", "Coverage")),
                  "recovery": str(d / _plot(d / "recovery.png", "Recovery")),
                  "pair_plot_observation_0": str(d / _plot(d / "pair_plot_observation_0.png", "dup"))},
        "passed": False,
    }
    (run / "diagnostics" / "diagnostics.json").write_text(json.dumps(diag))
    (run / "config.toml").write_text('[data]\ntask = "two_moons"  # <script>alert(1)</script>\n')
    (run / "run.json").write_text(json.dumps({
        "name": "synthetic", "task": "two_moons", "parameter_names": ["theta_1", "theta_2"],
        "versions": {"innverse": "0.1.0", "torch": "2.13.0"},
        "settings": {"simulations": 1000, "coupling": "spline"},
        "steps": {"simulate": {"seconds": 1.5, "simulations": 1000, "failed": 0},
                  "fit": {"seconds": 20.0, "epochs": 10, "best_val_loss": 0.22},
                  "sample": {"seconds": 0.4, "misspecification": [
                      {"observation": 0, "score": 0.1, "threshold": 0.5, "flagged": False},
                      {"observation": 1, "score": 0.9, "threshold": 0.5, "flagged": True}]}}}))
    return run
