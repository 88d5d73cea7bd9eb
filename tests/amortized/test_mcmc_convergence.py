"""R-hat and bulk ESS against draws whose answer is known (iid, AR(1), shifted and trending chains)."""

from __future__ import annotations

import numpy as np
import pytest

from innverse.amortized.mcmc.convergence import bulk_ess, split_rhat


def _ar1(rho: float, chains: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((chains, n)) * np.sqrt(1 - rho**2)
    x = np.empty((chains, n))
    x[:, 0] = rng.standard_normal(chains)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + eps[:, t]
    return x


def test_iid_draws():
    draws = np.random.default_rng(0).standard_normal((8, 1000))
    assert split_rhat(draws) < 1.01
    assert abs(bulk_ess(draws) / draws.size - 1) < 0.1


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ar1_ess_matches_theory(rho):
    draws = _ar1(rho, 8, 4000, seed=int(rho * 10))
    expected = draws.size * (1 - rho) / (1 + rho)  # integrated autocorrelation time (1+rho)/(1-rho)
    assert abs(bulk_ess(draws) / expected - 1) < 0.15
    assert split_rhat(draws) < 1.01


def test_rhat_flags_disagreeing_chains():
    rng = np.random.default_rng(1)
    draws = rng.standard_normal((4, 500))
    draws[0] += 1.0  # one chain stuck elsewhere
    assert split_rhat(draws) > 1.05
    trend = rng.standard_normal((4, 500)) + np.linspace(0, 2, 500)  # non-stationary within chains
    assert split_rhat(trend) > 1.05
    wide = rng.standard_normal((4, 500))
    wide[0] *= 3.0  # same centre, different spread: caught by the folded (tail) R-hat
    assert split_rhat(wide) > 1.05


def test_bad_shapes():
    with pytest.raises(ValueError, match="chains, iterations"):
        split_rhat(np.zeros(10))
    with pytest.raises(ValueError, match="chains, iterations"):
        bulk_ess(np.zeros((3, 2)))


def test_exact_draws_pass_rhat_whatever_the_chain_count():
    """Chains as short as ``draws_per_chain`` allows must not fail R-hat <= 1.01 on independent draws: with 50 chains
    of 20 draws (the old floor) one statistic in six did, so checks over many observations refused correct samples."""
    from innverse.amortized.mcmc.sampler import draws_per_chain

    rng = np.random.default_rng(7)
    assert draws_per_chain(10_000, 50) == 200    # large n: as many as n needs
    for chains in (4, 20, 50, 100):
        short = draws_per_chain(100, chains)
        rhats = [split_rhat(rng.standard_normal((chains, short))) for _ in range(300)]
        assert max(rhats) < 1.01, (chains, short, max(rhats))
    old = [split_rhat(rng.standard_normal((50, 20))) for _ in range(300)]
    assert np.mean(np.array(old) > 1.01) > 0.05     # the floor it replaces did fail exact draws


def test_a_gaussian_posterior_for_many_observations_converges_with_few_draws_each():
    """sample_mcmc on an exact conjugate model, 30 observations x 100 draws with 20 chains: no spurious refusal,
    and the pooled standardised draws are N(0, 1) (prior N(0, I), x | theta ~ N(theta, 0.5^2 I))."""
    import torch
    from scipy import stats

    from innverse.amortized import MCMCConfig, gaussian, sample_mcmc

    prior = gaussian(0.0, 1.0, dim=2)
    xs = torch.randn(30, 2, generator=torch.Generator().manual_seed(3)) * 1.2

    def log_likelihood(theta, x):
        return torch.distributions.Normal(theta, 0.5).log_prob(x).sum(-1)

    draws, info = sample_mcmc(log_likelihood, prior, xs, 100, torch.Generator().manual_seed(4),
                              MCMCConfig(chains=20, warmup=300, init_draws=2000))
    assert all(i["converged"] for i in info)
    mean, sd = xs.double() / 1.25, (0.25 / 1.25) ** 0.5      # posterior N(x / (1 + 0.25), 0.25 / 1.25)
    z = torch.stack([(d - m) / sd for d, m in zip(draws, mean, strict=True)]).reshape(-1)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
