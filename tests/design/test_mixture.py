"""RoPE's mixture posterior: a normalised density, samples that follow it, the conditional-density contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.design import RoPEPosterior

from .conftest import PRIOR_HIGH, PRIOR_LOW, squashed_linear

GRID = 150


@pytest.fixture(scope="module")
def bank(npe):
    theta = PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * torch.rand(300, 2, generator=torch.Generator().manual_seed(7))
    x = squashed_linear(theta, torch.Generator().manual_seed(8))
    with torch.no_grad():
        return x, npe.estimator.embedding(x)


def mixture(npe, bank, epsilon: float, unbalanced: float | None = 1e-6) -> RoPEPosterior:
    # the NPE's own summary network as the "fine-tuned" one: real and simulated summaries agree
    return RoPEPosterior(npe.estimator, npe.estimator.embedding, bank[1], epsilon=epsilon, unbalanced=unbalanced,
                         max_components=24)


def cell_centres() -> torch.Tensor:
    u = (torch.arange(GRID, dtype=torch.float32) + 0.5) / GRID
    return torch.cartesian_prod(u, u)


def test_mixture_posterior_integrates_to_one(npe, bank):
    x_obs = squashed_linear(torch.tensor([[0.3, 0.6]]), torch.Generator().manual_seed(9))[0]
    grid = cell_centres()
    model = mixture(npe, bank, 0.3)
    mass = float(model.log_prob(grid, x_obs).double().exp().sum()) / GRID**2
    npe_mass = float(npe.log_prob(grid, x_obs).double().exp().sum()) / GRID**2     # the components themselves
    assert model.plan(x_obs).weights.shape == (1, 300)
    assert abs(npe_mass - 1) < 0.02
    assert abs(mass - 1) < 0.02


def test_samples_follow_the_mixture_density(npe, bank):
    x_obs = squashed_linear(torch.tensor([[0.7, 0.2]]), torch.Generator().manual_seed(10))[0]
    model = mixture(npe, bank, 0.3)
    grid = cell_centres()
    dens = model.log_prob(grid, x_obs).double().exp().reshape(GRID, GRID)     # [i, j] = (theta0_i, theta1_j)
    marginal = dens.sum(1)
    cdf_knots = torch.cat([torch.zeros(1, dtype=torch.float64), marginal.cumsum(0) / marginal.sum()])
    knots = torch.linspace(0, 1, GRID + 1, dtype=torch.float64)
    draws = model.sample(3000, x_obs, generator=torch.Generator().manual_seed(11))
    assert draws.shape == (3000, 2)
    assert ((draws > 0) & (draws < 1)).all()
    result = stats.kstest(draws[:, 0].double().numpy(), lambda t: np.interp(t, knots.numpy(), cdf_knots.numpy()))
    assert result.pvalue > 0.01


def test_log_prob_is_the_transport_weighted_mixture_of_the_components(npe, bank):
    x_real, h = bank
    model = RoPEPosterior(npe.estimator, npe.estimator.embedding, h, epsilon=0.05, unbalanced=None,
                          max_components=300, mass_tolerance=0.0)
    xs = x_real[:3]
    weights = model.plan(xs).weights[:3]                                  # (3, 300), rows sum to 1
    theta = npe.sample(4, xs, seed=3)                                     # (4, 3, 2)
    want = torch.empty(4, 3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(3):
            comp = torch.stack([npe.estimator.flow.log_prob(theta[:, j], h[k:k + 1].expand(4, -1))
                                for k in range(300)], 1).double()        # (4, 300)
            want[:, j] = torch.logsumexp(comp + weights[j].log(), 1)
    assert torch.allclose(model.log_prob(theta, xs).double(), want, atol=1e-4)


def test_the_conditional_density_contract(npe, bank):
    x_real, _ = bank
    model = mixture(npe, bank, 0.1, unbalanced=None)
    xs = x_real[:4]
    assert model.sample(7, xs).shape == (7, 4, 2)
    theta = model.sample(5, xs, generator=torch.Generator().manual_seed(1))
    lp = model.log_prob(theta, xs)
    assert lp.shape == (5, 4) and torch.isfinite(lp).all()
    assert torch.allclose(model.log_prob(theta[0], xs), lp[0])             # (k, D) scored row by row
    with pytest.raises(ValueError, match="outside the prior's support"):
        model.log_prob(torch.tensor([[1.5, 0.5]]), xs[0])
    assert model.log_prob(torch.tensor([[1.5, 0.5]]), xs[0], outside="-inf").item() == float("-inf")


def test_real_observations_of_the_wrong_shape_are_refused(npe, bank):
    model = mixture(npe, bank, 0.1)
    with pytest.raises(ValueError, match=r"RoPEPosterior.sample: expected x as one observation \(8,\)"):
        model.sample(3, torch.zeros(5, 7))
    with pytest.raises(ValueError, match=r"RoPEPosterior\.log_prob"):
        model.log_prob(torch.zeros(2), torch.zeros(9))
    with pytest.raises(ValueError, match="epsilon='auto' needs the calibration rows"):
        RoPEPosterior(npe.estimator, npe.estimator.embedding, bank[1])
