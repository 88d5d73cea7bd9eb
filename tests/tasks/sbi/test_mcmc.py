"""The reference MCMC sampler against ground truth: the conjugate Gaussian posterior, exact
rejection samples of SLCP, and an honest failure when it cannot converge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.tasks import get_task
from innverse.tasks.sbi.mcmc import MCMCConfig, sample_reference_mcmc


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_matches_the_conjugate_gaussian_posterior():
    task = get_task("gaussian_linear", torch.float64)
    cfg = MCMCConfig(chains=40, warmup=400, init_draws=4000)
    samples, info = sample_reference_mcmc(task, (0, 6), 2000, _gen(0), cfg)
    for i, s, d in zip((0, 6), samples, info):
        assert s.shape == (2000, 10)
        assert d["max_split_rhat"] <= 1.01 and d["min_bulk_ess"] >= 1000
        # exact posterior: N(x / 2, 0.05 I); tolerances from the effective sample size
        se = math.sqrt(0.05 / d["min_bulk_ess"])
        assert float((s.mean(0) - task.observation(i) / 2).abs().max()) < 4.5 * se
        cov = torch.cov(s.T)
        assert float((cov.diagonal() / 0.05 - 1).abs().max()) < 0.15
        corr = cov / torch.sqrt(cov.diagonal()[:, None] * cov.diagonal()[None])
        assert float((corr - torch.eye(10, dtype=torch.float64)).abs().max()) < 0.12


def _slcp_rejection(task, x: torch.Tensor, proposals: int, gen: torch.Generator) -> torch.Tensor:
    # exact: prior proposals accepted with probability L(theta) / L_max, where L_max is the
    # Gaussian likelihood at the unconstrained MLE (sample mean and covariance of the 4 points),
    # an upper bound of the likelihood over all of SLCP's (m, S)
    pts = x.reshape(4, 2)
    cov = torch.cov(pts.T, correction=0)
    log_max = -4.0 - 2.0 * torch.logdet(2 * math.pi * cov)
    kept = []
    for _ in range(proposals // 200_000):
        theta = task.sample_prior(200_000, gen)
        ll = task.log_likelihood(theta, x)
        assert float(ll.max()) <= float(log_max) + 1e-9
        u = torch.rand(200_000, generator=gen, dtype=torch.float64)
        kept.append(theta[torch.log(u) < ll - log_max])
    return torch.cat(kept)


def test_slcp_agrees_with_rejection_sampling():
    task = get_task("slcp", torch.float64)
    index = 9
    exact = _slcp_rejection(task, task.observation(index), 4_000_000, _gen(1))
    assert exact.shape[0] > 400
    cfg = MCMCConfig(chains=40, warmup=600, init_draws=20_000, independence_components=8,
                     symmetries=task.mcmc_config.symmetries)
    (mcmc,), (info,) = sample_reference_mcmc(task, (index,), 2000, _gen(2), cfg)
    assert info["max_split_rhat"] <= 1.01
    # the four symmetric modes are visited equally
    for j in (2, 3):
        frac = float((mcmc[:, j] > 0).double().mean())
        assert abs(frac - 0.5) < 0.06
    folded = lambda s: torch.stack([s[:, 0], s[:, 1], s[:, 2].abs(), s[:, 3].abs(), s[:, 4]], -1)  # noqa: E731
    a, b = folded(mcmc).numpy(), folded(exact).numpy()
    for j in range(5):
        assert stats.ks_2samp(a[:, j], b[:, j]).pvalue > 1e-3, f"coordinate {j}"
    # and a joint check: the correlation matrices agree
    assert np.abs(np.corrcoef(a.T) - np.corrcoef(b.T)).max() < 0.2


def test_failure_to_converge_is_reported():
    task = get_task("gaussian_linear", torch.float64)
    cfg = MCMCConfig(chains=4, warmup=60, init_draws=500, rhat_max=1.0001, max_rounds=1)
    with pytest.raises(RuntimeError, match="did not converge"):
        sample_reference_mcmc(task, (0,), 200, _gen(3), cfg)
