"""Simulation executor: calling conventions, reproducibility for any worker count, failure accounting."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from innverse.amortized import box_uniform, calling_style, pad_rows, simulate

from . import simulators as S

PRIOR = box_uniform(-1.0, 1.0, dim=2)


@pytest.mark.parametrize("sim,style", [(S.linear_gaussian, "generator"), (S.numpy_rng, "rng"),
                                       (S.seeded, "seed"), (S.global_rng, "global")])
def test_each_calling_style_is_reproducible(sim, style):
    assert calling_style(sim) == style
    fmt = "numpy" if style == "rng" else "torch"
    a = simulate(sim, prior=PRIOR, n=50, batch_size=16, seed=3, progress=False, theta_format=fmt)
    b = simulate(sim, prior=PRIOR, n=50, batch_size=16, seed=3, progress=False, theta_format=fmt)
    c = simulate(sim, prior=PRIOR, n=50, batch_size=16, seed=4, progress=False, theta_format=fmt)
    assert a.theta.shape == (50, 2) and a.x.shape[0] == 50 and a.x.dtype == torch.float32
    assert torch.equal(a.theta, b.theta) and torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)
    assert a.report.succeeded == 50 and a.report.failed == 0


def test_global_rng_style_leaves_callers_rng_untouched():
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    expected_t, expected_n = torch.rand(3), np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    simulate(S.global_rng, prior=PRIOR, n=20, batch_size=8, progress=False)
    assert torch.equal(torch.rand(3), expected_t)
    assert np.array_equal(np.random.rand(3), expected_n)  # noqa: NPY002


def test_same_results_in_process_and_on_a_pool_of_two_workers():
    kwargs = {"prior": PRIOR, "n": 90, "batch_size": 10, "seed": 11, "progress": False}
    a = simulate(S.flaky, workers=0, **kwargs)
    b = simulate(S.flaky, workers=2, **kwargs)
    assert torch.equal(a.theta, b.theta) and torch.equal(a.x, b.x)
    assert a.report.to_dict() | {"seconds": 0, "workers": 0} == b.report.to_dict() | {"seconds": 0, "workers": 0}


def test_failures_are_counted_reported_and_dropped(caplog):
    theta = torch.tensor([[0.0, 0.0], [0.9, 0.0], [-0.9, 0.0], [0.5, 0.5], [0.95, 0.1], [0.1, 0.2]])
    with caplog.at_level(logging.WARNING, logger="innverse"):
        sims = simulate(S.flaky, theta, batch_size=3, progress=False)
    rep = sims.report
    assert rep.requested == 6 and rep.succeeded == 3
    assert rep.exceptions == 2 and rep.nonfinite == 1 and rep.failed == 3
    assert torch.equal(sims.theta, theta[[0, 3, 5]])
    assert torch.isfinite(sims.x).all()
    assert "solver diverged" in str(rep) and "non-finite" in str(rep)
    assert "3 of 6 simulations succeeded" in caplog.text


def test_every_simulation_failing_is_an_error():
    with pytest.raises(RuntimeError, match="every simulation failed"):
        simulate(S.flaky, torch.full((4, 2), 0.9), batch_size=2, progress=False)


def test_a_batch_that_crashes_alone_is_rerun_row_by_row_or_lost_whole():
    """The pool's bookkeeping (the real crash: tests/amortized/test_simulation_safety.py)."""
    from innverse.amortized.process_pool import _Units
    from innverse.amortized.simulation import BatchResult

    def row(r: int) -> BatchResult:
        return BatchResult(0, np.full((1, 2), float(r)), np.ones(1, bool))

    units = _Units(range(2), retry_rows=True)
    units.crashed((0, None), 3)
    assert units.suspects == [(0, 0), (0, 1), (0, 2)] and 0 not in units.done
    units.finish((0, 0), row(0), 3)
    units.crashed((0, 1), 3)
    units.finish((0, 2), row(2), 3)
    res = units.done[0]
    assert res.kept.tolist() == [True, False, True] and res.exceptions == 1
    assert np.array_equal(res.x, [[0.0, 0.0], [2.0, 2.0]]) and "worker process died" in next(iter(res.errors))
    lossy = _Units(range(1), retry_rows=False)
    lossy.crashed((0, None), 3)
    assert lossy.done[0].exceptions == 3 and not lossy.done[0].kept.any() and not lossy.suspects


def test_ragged_sets_are_nan_padded():
    theta = torch.tensor([[0.0, 1.0], [1.0, 0.5], [-1.0, 2.0]])
    sims = simulate(S.gaussian_sets, theta, batch_size=2, progress=False, theta_format="numpy")
    x = sims.x
    assert x.dim() == 3 and x.shape[2] == 1 and x.shape[0] == 3
    counts = (~torch.isnan(x).all(-1)).sum(1)
    assert (counts >= 5).all() and (counts <= 100).all() and x.shape[1] == counts.max()
    # padding is whole rows at the end, values elsewhere are finite
    for i, c in enumerate(counts):
        assert torch.isfinite(x[i, :c]).all() and torch.isnan(x[i, c:]).all()


def test_pad_rows_and_bad_arguments():
    out = pad_rows([np.ones((2, 3)), np.zeros((4, 3))])
    assert out.shape == (2, 4, 3) and np.isnan(out[0, 2:]).all()
    with pytest.raises(ValueError, match="give theta, or prior and n"):
        simulate(S.linear_gaussian, progress=False)
    with pytest.raises(TypeError, match="callable"):
        simulate("not a function", prior=PRIOR, n=3, progress=False)
    with pytest.raises(ValueError, match="theta_format"):
        simulate(S.linear_gaussian, prior=PRIOR, n=3, theta_format="jax", progress=False)


def test_simulator_returning_wrong_batch_size_is_counted():
    def bad(theta):
        return torch.zeros(theta.shape[0] + 1, 2)

    theta = torch.zeros(4, 2)
    with pytest.raises(RuntimeError, match="returned shape"):
        simulate(bad, theta, batch_size=2, progress=False)


def test_a_script_without_a_main_guard_gets_a_clear_error_not_endless_reruns(tmp_path):
    # spawn workers import the main script again; this one calls simulate at top level, so every
    # worker dies while starting. It must fail at once, naming the cause (before: minutes of
    # row-by-row re-runs of "crashing" simulations).
    import subprocess
    import sys
    import time

    script = tmp_path / "no_guard.py"
    script.write_text(
        "import torch\n"
        "from innverse.amortized import ProcessPool, box_uniform, simulate\n"
        "def sim(theta, generator):\n"
        "    return theta + torch.randn(theta.shape, generator=generator)\n"
        "simulate(sim, prior=box_uniform(-1.0, 1.0, dim=2), n=40, batch_size=10, seed=0, progress=False,\n"
        "         workers=ProcessPool(2))\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert "workers died while starting" in done.stderr and '__name__ == "__main__"' in done.stderr
    assert time.perf_counter() - start < 200
