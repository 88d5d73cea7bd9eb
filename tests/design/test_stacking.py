"""Stacking two posteriors: the weight maximises the pooled out-of-fold log density; the pool is the mixture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from innverse.design import StackedPosterior, stacking_weight
from innverse.design.stacking import central_acauc


class Gaussian:
    """A conditional density ``N(theta; loc + x, scale^2 I)`` with the posterior contract's signatures."""

    theta_dim = 1

    def __init__(self, loc: float, scale: float) -> None:
        self.loc, self.scale = loc, scale

    def sample(self, n: int, x, generator=None):
        x = torch.as_tensor(x, dtype=torch.float64)
        shape = (n, 1) if x.dim() == 1 else (n, x.shape[0], 1)
        return self.loc + x[..., :1] + self.scale * torch.randn(shape, generator=generator, dtype=torch.float64)

    def log_prob(self, theta, x, outside="error"):
        theta, x = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
        return torch.distributions.Normal(self.loc + x[..., 0], self.scale).log_prob(theta[..., 0])


def test_the_weight_maximises_the_pooled_log_density_as_a_scalar_optimiser_finds():
    g = torch.Generator().manual_seed(0)
    log_p = torch.randn(200, generator=g, dtype=torch.float64)
    log_q = torch.randn(200, generator=g, dtype=torch.float64) + 0.3
    w = stacking_weight(log_p, log_q, grid=2001)
    p, q = log_p.exp().numpy(), log_q.exp().numpy()
    ref = optimize.minimize_scalar(lambda v: -np.log(v * p + (1 - v) * q).mean(), bounds=(0, 1),
                                   method="bounded", options={"xatol": 1e-8})
    assert abs(w - ref.x) < 1e-3


def test_one_component_that_is_better_everywhere_takes_all_the_weight():
    log_p = torch.linspace(-1, 1, 50, dtype=torch.float64)
    assert stacking_weight(log_p, log_p - 2.0) == 1.0
    assert stacking_weight(log_p - 2.0, log_p) == 0.0


def test_central_acauc_against_hand_computed_coverage():
    uniform = ((torch.arange(1000, dtype=torch.float64) + 0.5) / 1000)[:, None]
    assert abs(float(central_acauc(uniform)[0])) < 1e-3                       # calibrated: coverage = level
    centre = torch.full((50, 1), 0.5, dtype=torch.float64)                     # every truth at the median
    levels = np.arange(1, 20) * 0.05
    assert float(central_acauc(centre)[0]) == pytest.approx(float(np.mean(1 - levels)))     # always covered
    edge = torch.full((50, 1), 0.999, dtype=torch.float64)                     # every truth in the far tail
    assert float(central_acauc(edge)[0]) == pytest.approx(-float(np.mean(levels)))          # never covered


def test_calibrated_selection_picks_the_best_calibrated_weight_among_the_near_best():
    """Over the whole grid, written out in numpy: the chosen weight is within one SE of the best log density,
    and no weight within one SE has pooled PIT values with a smaller coverage gap."""
    g = torch.Generator().manual_seed(1)
    n = 60
    log_p = torch.randn(n, generator=g, dtype=torch.float64)
    log_q = log_p + 0.2 + 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    cdf_p = torch.rand(n, 2, generator=g, dtype=torch.float64)                               # calibrated
    cdf_q = torch.where(torch.rand(n, 2, generator=g) < 0.5, 0.02, 0.98).to(torch.float64)  # over-confident
    best = stacking_weight(log_p, log_q)
    chosen = stacking_weight(log_p, log_q, cdf_p, cdf_q, selection="calibrated")
    p, q = log_p.exp().numpy(), log_q.exp().numpy()
    levels = np.arange(1, 20) * 0.05

    def within(w: float) -> bool:
        d = np.log(w * p + (1 - w) * q) - np.log(best * p + (1 - best) * q)
        return d.mean() >= -d.std(ddof=1) / np.sqrt(n) - 1e-12

    def gap(w: float) -> float:
        pit = w * cdf_p.numpy() + (1 - w) * cdf_q.numpy()
        inside = np.abs(pit[..., None] - 0.5) <= levels / 2
        return float(np.abs((inside.mean(0) - levels).mean(-1)).mean())

    grid = np.linspace(0, 1, 201)
    assert 0 < best < 1 and within(chosen) and chosen > best          # toward the calibrated component
    assert all(gap(w) >= gap(chosen) - 1e-9 for w in grid if within(w))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="stacking_weight: expected two equally long"):
        stacking_weight(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="contain NaN"):
        stacking_weight(torch.tensor([0.0, math.nan]), torch.zeros(2))
    with pytest.raises(ValueError, match="selection must be"):
        stacking_weight(torch.zeros(2), torch.zeros(2), selection="median")
    with pytest.raises(ValueError, match=r"needs cdf_p and cdf_q of shape \(2, D\), got None and None"):
        stacking_weight(torch.zeros(2), torch.zeros(2), selection="calibrated")
    with pytest.raises(ValueError, match=r"StackedPosterior: weight must be in \[0, 1\], got 1.5"):
        StackedPosterior(Gaussian(0, 1), Gaussian(0, 1), 1.5)


def test_the_pool_is_the_mixture_density_and_integrates_to_one():
    pool = StackedPosterior(Gaussian(-1.0, 0.5), Gaussian(2.0, 1.0), 0.3)
    grid = torch.linspace(-8, 10, 20001, dtype=torch.float64)[:, None]
    x = torch.tensor([0.25])
    density = pool.log_prob(grid, x).exp()
    assert abs(float(torch.trapezoid(density, grid[:, 0])) - 1.0) < 1e-6
    expected = 0.3 * stats.norm.pdf(grid[:, 0].numpy(), -0.75, 0.5) + 0.7 * stats.norm.pdf(grid[:, 0].numpy(), 2.25, 1)
    np.testing.assert_allclose(density.numpy(), expected, rtol=1e-10, atol=1e-300)


def test_samples_follow_the_mixture_for_each_observation():
    pool = StackedPosterior(Gaussian(-1.0, 0.5), Gaussian(2.0, 1.0), 0.3)
    x = torch.tensor([[0.0], [1.0]])
    draws = pool.sample(4000, x, generator=torch.Generator().manual_seed(2))
    assert draws.shape == (4000, 2, 1)
    for j, shift in enumerate((0.0, 1.0)):
        def cdf(v, s=shift):
            return 0.3 * stats.norm.cdf(v, -1.0 + s, 0.5) + 0.7 * stats.norm.cdf(v, 2.0 + s, 1.0)
        assert stats.kstest(draws[:, j, 0].numpy(), cdf).pvalue > 1e-3


def test_weights_zero_and_one_are_the_components():
    a, b = Gaussian(-1.0, 0.5), Gaussian(2.0, 1.0)
    theta, x = torch.tensor([[0.3]]), torch.tensor([0.0])
    assert torch.equal(StackedPosterior(a, b, 1.0).log_prob(theta, x), a.log_prob(theta, x))
    assert torch.equal(StackedPosterior(a, b, 0.0).log_prob(theta, x), b.log_prob(theta, x))
