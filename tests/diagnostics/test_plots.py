"""Every plot renders to a non-empty PNG of the size the figure declares."""

import struct

import numpy as np
import pytest
import torch

from innverse.diagnostics import (
    coverage_plot,
    credibility_central,
    credibility_tarp,
    ecdf_difference_plot,
    loss_plot,
    pair_plot,
    rank_histogram_plot,
    recovery,
    recovery_plot,
    sbc_ecdf_plot,
    sbc_ranks,
    zscore_contraction_plot,
)

from .gaussian_linear import GaussianLinear

pytest.importorskip("matplotlib")


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def _check_png(fig, path) -> None:
    assert path.stat().st_size > 5000  # an image with content, not an empty canvas
    w, h = fig.get_size_inches() * fig.dpi
    assert _png_size(path) == (round(w), round(h))


@pytest.fixture(scope="module")
def run():
    model = GaussianLinear(dims=3, obs=4)
    torch.manual_seed(0)
    theta = model.prior.sample((200,))
    x = model.simulator(theta)
    samples = model.posterior(scale=0.8).sample(300, x)
    return theta.double(), samples


def test_calibration_plots(run, tmp_path):
    theta, samples = run
    ranks = sbc_ranks(samples, theta)
    labels = ["α", "β", "γ"]
    for name, fig_fn in [
        ("hist", lambda p: rank_histogram_plot(ranks, 300, labels=labels, save=p)),
        ("ecdf", lambda p: sbc_ecdf_plot(ranks, 300, labels=labels, save=p)),
        ("ecdf_raw", lambda p: ecdf_difference_plot(torch.rand(200, 1), save=p)),
        ("coverage", lambda p: coverage_plot({"central": credibility_central(samples, theta),
                                              "TARP": credibility_tarp(samples, theta)}, labels=labels, save=p)),
    ]:
        path = tmp_path / f"{name}.png"
        _check_png(fig_fn(path), path)


def test_recovery_plots(run, tmp_path):
    theta, samples = run
    rec = recovery(samples, theta)
    path = tmp_path / "recovery.png"
    _check_png(recovery_plot(rec["truth"], rec["posterior_mean"], rec["posterior_std"], save=path), path)
    path = tmp_path / "z.png"
    _check_png(zscore_contraction_plot(rec["z_score"], rec["contraction"], save=path), path)


def test_pair_plot_with_truth_and_reference(run, tmp_path):
    theta, samples = run
    path = tmp_path / "sub" / "pair.png"  # folders are created
    fig = pair_plot(samples[:, 0], truth=theta[0], reference=samples[:, 0] + 0.1, labels=["a", "b", "c"],
                    save=path, title="observation 0")
    _check_png(fig, path)
    path1 = tmp_path / "pair1.png"
    _check_png(pair_plot(np.random.default_rng(0).normal(size=(500, 1)), truth=[0.0], save=path1), path1)
    with pytest.raises(ValueError, match=r"reference must have shape \(n, 3\)"):
        pair_plot(samples[:, 0], reference=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        pair_plot(np.full((10, 2), np.nan))


@pytest.mark.parametrize("history", [
    [{"epoch": i, "train_loss": 3.0 / (i + 1), "val_loss": 3.2 / (i + 1) + 0.01 * i} for i in range(40)],
    {"train": np.linspace(3, 1, 20), "val": np.linspace(3.1, 1.2, 20)},
    np.stack([np.linspace(3, 1, 20), np.linspace(3.1, 1.2, 20)], 1),
])
def test_loss_plot_accepts_every_history_format(history, tmp_path):
    path = tmp_path / "loss.png"
    _check_png(loss_plot(history, save=path), path)


def test_loss_plot_reads_a_training_history_with_its_learning_rate(tmp_path):
    from innverse.train import History

    records = [{"epoch": i, "train_loss": 3.0 / (i + 1), "val_loss": None if i == 0 else 3.2 / (i + 1),
                "lr": 1e-3 * 0.9**i, "seconds": 0.1, "best": i > 0} for i in range(12)]
    path = tmp_path / "loss.png"
    fig = loss_plot(History(records=records), save=path)
    _check_png(fig, path)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss (negative log-likelihood)", "learning rate"]
    assert "best validation (epoch 12)" in fig.axes[0].get_legend_handles_labels()[1]
    no_validation = [{"train_loss": r["train_loss"], "val_loss": None} for r in records]
    fig = loss_plot(no_validation)
    assert len(fig.axes) == 1 and fig.axes[0].get_legend_handles_labels()[1] == ["training"]


def test_loss_plot_bad_history():
    with pytest.raises(ValueError, match="no training loss"):
        loss_plot([{"epoch": 1, "accuracy": 0.5}])
    with pytest.raises(ValueError, match=r"\(epochs, 2\)"):
        loss_plot(np.zeros((5, 3)))


def test_saving_is_atomic_and_leaves_no_temporary_files(run, tmp_path):
    theta, samples = run
    path = tmp_path / "hist.png"
    rank_histogram_plot(sbc_ranks(samples, theta), 300, save=path)
    rank_histogram_plot(sbc_ranks(samples, theta), 300, save=path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.png"]


def test_numbers_work_without_matplotlib_and_plots_say_what_to_install():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import torch, innverse.diagnostics as d\n"
        "a = torch.randn(50, 2)\n"
        "print(d.sbc_test(d.sbc_ranks(torch.randn(20, 50, 2), a), 20)['passed'] in (True, False))\n"
        "try:\n    d.loss_plot([1.0, 0.5])\nexcept ImportError as e:\n    print(e)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "True"
    assert "pip install 'innverse[plots]'" in out.stdout
