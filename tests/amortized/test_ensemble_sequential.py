"""Ensembles (a mixture of posteriors) and truncated sequential NPE for one observation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from scipy import stats

from innverse.amortized import box_uniform, fit_posterior, gaussian
from innverse.amortized.ensemble import EnsemblePosterior, fit_ensemble
from innverse.amortized.sequential import (
    fit_sequential,
    resampled_truncated_prior_sample,
    truncated_prior_sample,
)

from ..helpers import SRC

SMALL = {"flow": {"blocks": 1, "hidden": [16]}, "training": {"epochs": 8}}


def _linear(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=gen)
    return theta, theta + 0.5 * torch.randn(n, 2, generator=gen)


def test_the_ensemble_is_the_equal_weight_mixture_of_its_members():
    theta, x = _linear(600)
    ens = fit_ensemble(theta, x, 3, prior=gaussian(0.0, 1.0, dim=2), **SMALL)
    xo = torch.tensor([0.5, -0.5])
    probe = torch.randn(50, 2)
    members = torch.stack([m.log_prob(probe, xo) for m in ens.members])
    torch.testing.assert_close(ens.log_prob(probe, xo), torch.logsumexp(members, 0) - math.log(3))
    # draws: the mixture's CDF along the first coordinate (each member's by its own samples)
    s = ens.sample(6000, xo, seed=1)[:, 0].numpy()
    pooled = torch.cat([m.sample(20_000, xo, seed=10 + i)[:, 0] for i, m in enumerate(ens.members)]).numpy()
    assert stats.ks_2samp(s, pooled).pvalue > 1e-3
    d = ens.disagreement(torch.stack([xo, -xo]), n=500)
    assert d.shape == (2, 2) and (d >= 0).all() and (d < 1).all()   # members of the same data agree
    assert ens.sample(5, torch.stack([xo, -xo])).shape == (5, 2, 2)


def test_ensemble_members_train_in_parallel_processes():
    theta, x = _linear(300)
    ens = fit_ensemble(theta, x, 2, workers=2, prior=gaussian(0.0, 1.0, dim=2), **SMALL)
    seq = fit_ensemble(theta, x, 2, prior=gaussian(0.0, 1.0, dim=2), **SMALL)
    xo = torch.tensor([0.1, 0.2])
    torch.testing.assert_close(ens.log_prob(torch.zeros(2), xo), seq.log_prob(torch.zeros(2), xo), rtol=1e-4,
                               atol=1e-4)


def test_bad_ensembles_are_refused():
    theta, x = _linear(100)
    with pytest.raises(ValueError, match="members must be an int >= 1"):
        fit_ensemble(theta, x, 0)
    with pytest.raises(ValueError, match="at least one member"):
        EnsemblePosterior([])


def _sim(theta, generator=None):
    return theta + 0.3 * torch.randn(theta.shape, generator=generator)


def test_sequential_rounds_concentrate_the_simulations_and_find_the_posterior():
    prior = box_uniform(-5.0, 5.0, dim=1)
    x_obs = torch.tensor([1.0])
    post, report = fit_sequential(_sim, prior, x_obs, rounds=2, simulations_per_round=1500, seed=0,
                                  flow={"blocks": 2, "hidden": [16]})
    # the posterior is about N(1, 0.3^2); the region also keeps the first round's tails (an estimate's density far
    # from its data is an extrapolation), so the second round still samples part of the prior
    assert report.simulations == [1500, 1500] and report.acceptance[0] == 1.0 and report.acceptance[1] < 0.9, report
    s = post.sample(4000, x_obs, seed=0)
    assert abs(float(s.mean()) - 1.0) < 0.1 and 0.2 < float(s.std()) < 0.4


def test_sequential_bad_input_is_refused():
    prior = box_uniform(-5.0, 5.0, dim=1)
    with pytest.raises(ValueError, match="x_obs is None"):
        fit_sequential(_sim, prior, None)
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        fit_sequential(_sim, prior, torch.tensor([1.0]), rounds=0)
    theta = prior.sample((200,))
    post = fit_posterior(theta, _sim(theta), prior=prior, progress=False, **SMALL)
    with pytest.raises(ValueError, match="leaves \\(almost\\) no prior mass"):
        truncated_prior_sample(prior, post, torch.tensor([1.0]), 10, threshold=1e9, seed=0, max_draws=5000)


def test_fit_posterior_trains_an_ensemble_on_request():
    theta, x = _linear(300)
    ens = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), ensemble=2, progress=False, **SMALL)
    assert isinstance(ens, EnsemblePosterior) and len(ens.members) == 2
    with pytest.raises(ValueError, match="ensemble must be an int >= 1"):
        fit_posterior(theta, x, ensemble=0)


def _narrow(theta, generator=None):
    return theta + 0.02 * torch.randn(theta.shape, generator=generator)


def test_importance_resampling_draws_the_truncated_prior_that_rejection_draws():
    # a Gaussian prior, so the weights matter: the exact sampler (rejection) is the ground truth
    prior = gaussian(0.0, 1.0, dim=2)
    theta = prior.sample((2000,))
    post = fit_posterior(theta, _sim(theta), prior=prior, progress=False, flow={"blocks": 2, "hidden": [16]},
                         training={"epochs": 20})
    xo = torch.tensor([1.0, -0.5])
    draws = post.sample(5000, xo, seed=0)
    threshold = float(torch.quantile(post.log_prob(draws, xo).double(), 0.05))
    box = (draws.min(0).values - 0.1, draws.max(0).values + 0.1)
    exact, _ = truncated_prior_sample(prior, post, xo, 3000, threshold, seed=1, box=box)
    resampled, inside, ess = resampled_truncated_prior_sample(prior, post, xo, 3000, threshold, seed=2, box=box)
    assert resampled.shape == (3000, 2) and 0 < inside <= 1 and ess >= 4 * 3000
    assert (post.log_prob(resampled, xo) >= threshold).all()
    assert ((resampled >= box[0]) & (resampled <= box[1])).all()
    for j in range(2):
        assert stats.ks_2samp(exact[:, j].numpy(), resampled[:, j].numpy()).pvalue > 1e-3
    # the truncated prior is not the posterior: under the N(0, 1) prior its mean is pulled towards 0
    assert float(resampled[:, 0].mean()) < float(draws[:, 0].mean()) - 0.05


def test_sequential_switches_to_importance_resampling_where_rejection_would_cost_too_much():
    # after the first round the region holds about a third of the prior's mass: 2,000 prior draws could not be
    # trusted to give 1,000 in it, so the pilot picks importance resampling
    prior = box_uniform(-5.0, 5.0, dim=2)
    x_obs = torch.tensor([1.0, -0.5])
    post, report = fit_sequential(_narrow, prior, x_obs, rounds=2, simulations_per_round=1000, max_draws=2000,
                                  seed=0, flow={"blocks": 2, "hidden": [16]}, training={"epochs": 40})
    assert report.samplers == ["prior", "importance"] and report.ess[1] >= 4000, report
    s = post.sample(4000, x_obs, seed=0)
    # centred on the observation to 1% of the prior's width (this small flow does not resolve the 0.02 noise)
    assert (s.median(0).values - x_obs).abs().max() < 0.1, s.median(0)
    with pytest.raises(ValueError, match="sampler must be"):
        fit_sequential(_narrow, prior, x_obs, sampler="sir")
    with pytest.raises(ValueError, match="max_draws must be an int >= 1"):
        fit_sequential(_narrow, prior, x_obs, max_draws=0)


class _HeavyTailed:
    """A stand-in posterior with Cauchy tails (scale 0.01 around 0.5): its extreme draws lie far out."""

    def __init__(self) -> None:
        self.dist = torch.distributions.Independent(torch.distributions.StudentT(1.0, torch.full((2,), 0.5),
                                                                                 torch.full((2,), 0.01)), 1)

    def sample(self, n, x, seed=None, generator=None):
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        u = torch.rand(n, 2, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        return (0.5 + 0.01 * torch.tan(math.pi * (u - 0.5))).float()

    def log_prob(self, theta, x, outside="-inf"):
        return self.dist.log_prob(theta)


def test_the_truncation_box_is_set_by_quantiles_not_by_the_extreme_draws():
    from innverse.amortized.sequential import _truncated_round

    prior = box_uniform(-100.0, 100.0, dim=2)
    post = _HeavyTailed()
    extremes = post.sample(20_000, None, seed=0)
    assert float((extremes - 0.5).abs().max()) > 5.0   # the extremes alone would span a box hundreds of scales wide
    for sampler in ("rejection", "importance"):
        theta, threshold, _, used, _ = _truncated_round(prior, post, torch.zeros(2), 2000, 1e-4, 20_000, sampler,
                                                        10_000_000, seed=0, r=1)
        # the 0.1%/99.9% quantiles of this Cauchy lie 3.2 from its centre; widened by half the interval: 6.4
        assert used == sampler and float((theta - 0.5).abs().max()) < 6.6, (sampler, theta.abs().max())
        assert (post.log_prob(theta, None) >= threshold).all()


def test_ensemble_members_keep_their_own_checkpoints_and_logs(tmp_path):
    theta, x = _linear(300)
    opts = {"prior": gaussian(0.0, 1.0, dim=2), "checkpoint": tmp_path / "fit.pt", "log_path": tmp_path / "fit.jsonl",
            **SMALL}
    ens = fit_ensemble(theta, x, 2, **opts)
    for i in range(2):
        assert (tmp_path / f"fit.member{i}.pt").is_file() and (tmp_path / f"fit.member{i}.jsonl").is_file()
    assert not (tmp_path / "fit.pt").exists()
    # resuming gives back each member, not member 0 twice
    again = fit_ensemble(theta, x, 2, resume=True, **opts)
    xo, probe = torch.tensor([0.3, -0.2]), torch.randn(20, 2)
    first = [m.log_prob(probe, xo) for m in ens.members]
    assert not torch.allclose(first[0], first[1])
    for m, lp in zip(again.members, first):
        torch.testing.assert_close(m.log_prob(probe, xo), lp)


KILLED_ENSEMBLE = """
import torch
from innverse.amortized.ensemble import fit_ensemble
if __name__ == "__main__":
    theta = torch.randn(2000, 2)
    fit_ensemble(theta, theta + torch.randn(2000, 2), 2, workers=2, training={"epochs": 10_000, "patience": 10_000})
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ensemble_workers_die_when_their_parent_is_killed(tmp_path):
    """A killed caller of fit_ensemble(workers=k) must not leave its members training on in orphaned processes."""
    from .test_simulation_safety import _all_dead_within, _children, _reap

    (tmp_path / "parent.py").write_text(KILLED_ENSEMBLE)
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], env=env, stderr=subprocess.PIPE)

    def workers() -> list[int]:
        return [pid for pid in _children(proc.pid)
                if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]

    found: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(found) < 2 and time.monotonic() < deadline and proc.poll() is None:
            found = workers()
            time.sleep(0.1)
        assert len(found) == 2, proc.stderr.read() if proc.poll() is not None else "no workers started"
        time.sleep(2.0)   # the workers are past their initializer and training
        proc.kill()
        proc.wait()
        assert _all_dead_within(found, 10), "ensemble workers outlived their killed parent"
    finally:
        _reap(proc, found)


UNGUARDED_ENSEMBLE = """
import torch
from innverse.amortized.ensemble import fit_ensemble
theta = torch.randn(200, 2)
fit_ensemble(theta, theta + torch.randn(200, 2), 2, workers=2, flow={"blocks": 1, "hidden": [8]}, training={"epochs": 2})
"""

DYING_MEMBER = """
import os
import torch
from innverse.amortized.ensemble import fit_ensemble

class Dies(torch.nn.Module):
    def forward(self, x):
        os._exit(3)   # a worker killed while training (the OOM killer, a kill -9)

if __name__ == "__main__":
    theta = torch.randn(200, 2)
    fit_ensemble(theta, theta + torch.randn(200, 2), 2, workers=2, summary=Dies(), flow={"blocks": 1, "hidden": [8]},
                 training={"epochs": 2})
"""


@pytest.mark.parametrize(("script", "says"), [
    (UNGUARDED_ENSEMBLE, ["fit_ensemble", "workers died while starting", '__name__ == "__main__"']),
    (DYING_MEMBER, ["fit_ensemble: a worker process died while training a member (0 of 2", "workers=0"]),
])
def test_ensemble_workers_that_die_give_a_clear_error_naming_the_cause(tmp_path, script, says):
    """Spawned workers import the main script again: a script that trains an ensemble at top level makes every
    worker die while starting, and a member whose process is killed breaks the pool. Both used to end in a bare
    BrokenProcessPool, the cause printed by the workers only; now the error says which happened."""
    (tmp_path / "script.py").write_text(script)
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(tmp_path / "script.py")], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: ") and all(s in last for s in says), done.stderr[-3000:]
