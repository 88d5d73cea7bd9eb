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
