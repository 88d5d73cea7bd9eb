"""Information-gain bounds and per-setup metrics against a conjugate Gaussian model with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from innverse.amortized import box_uniform, gaussian
from innverse.design import evaluate_posterior, information_gain, marginal_information_gain
from innverse.design.information import prior_marginal_log_prob, reflected_kde_log_prob

SIGMA = torch.tensor([0.5, 100.0], dtype=torch.float64)     # parameter 1 is (nearly) not measured at all


class ExactGaussianPosterior:
    """theta ~ N(0, I), x = theta + SIGMA * noise: the exact posterior N(x s, SIGMA^2 s), s = 1 / (1 + SIGMA^2)."""

    def __init__(self, inflate: float = 1.0) -> None:
        self.shrink = 1 / (1 + SIGMA**2)
        self.std = (SIGMA**2 * self.shrink).sqrt() * inflate

    def sample(self, n, x, generator=None):
        z = torch.randn((n, *x.shape), generator=generator, dtype=torch.float64)
        return x * self.shrink + self.std * z

    def log_prob(self, theta, x, outside="error"):
        z = (theta - x * self.shrink) / self.std
        return (-0.5 * z.square() - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def joint(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return theta, theta + SIGMA * torch.randn(n, 2, generator=g, dtype=torch.float64)


TRUE_EIG = 0.5 * torch.log1p(1 / SIGMA**2)          # per parameter; the joint is their sum


def test_information_gain_is_unbiased_with_the_exact_posterior_and_a_lower_bound_otherwise():
    prior = gaussian(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    theta, x = joint(4000, 0)
    eig, se = information_gain(ExactGaussianPosterior().log_prob(theta, x), prior.log_prob(theta))
    assert abs(eig - float(TRUE_EIG.sum())) < 3 * se
    wide, _ = information_gain(ExactGaussianPosterior(inflate=2.0).log_prob(theta, x), prior.log_prob(theta))
    assert wide < float(TRUE_EIG.sum()) - 0.2                 # a worse posterior only lowers the bound
    with pytest.raises(ValueError, match="non-finite"):
        information_gain(torch.tensor([0.0, -math.inf]), torch.zeros(2))


def test_marginal_information_gain_bounds_each_parameter():
    prior = gaussian(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    theta, x = joint(400, 1)
    samples = ExactGaussianPosterior().sample(500, x, torch.Generator().manual_seed(2))
    est, se = marginal_information_gain(samples, theta, prior)
    assert (est < TRUE_EIG + 3 * se).all()                    # a lower bound, up to Monte Carlo noise
    assert (est > TRUE_EIG - 0.1).all()                       # and a tight one for a smooth posterior


def test_reflected_kde_is_a_density_on_the_prior_box():
    g = torch.Generator().manual_seed(3)
    samples = torch.rand(400, 1, 1, generator=g, dtype=torch.float64) ** 2        # piled up at the lower bound
    grid = torch.linspace(0, 1, 4001, dtype=torch.float64)[:, None]
    dens = reflected_kde_log_prob(samples.expand(-1, 4001, -1), grid, torch.zeros(1), torch.ones(1)).exp()
    mass = torch.trapezoid(dens[:, 0], grid[:, 0])
    assert 0.98 < float(mass) <= 1.0 + 1e-9


def test_prior_marginals_are_exact_for_independent_and_gaussian_priors():
    values = torch.tensor([[0.2, 3.0], [0.9, 4.5]], dtype=torch.float64)
    box = box_uniform(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 5.0]))
    assert torch.allclose(prior_marginal_log_prob(box, values), torch.tensor([[0.0, -math.log(3)]] * 2,
                                                                             dtype=torch.float64))
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    full = gaussian(torch.zeros(2, dtype=torch.float64), covariance=cov)
    expected = torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), cov.diagonal().sqrt()).log_prob(values)
    assert torch.allclose(prior_marginal_log_prob(full, values), expected)


def test_setup_metrics_match_the_conjugate_answers():
    prior = gaussian(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    theta, x = joint(300, 4)
    res = evaluate_posterior(ExactGaussianPosterior(), theta, x, prior, samples=400, level=0.9, seed=5)
    expected = 1 / (1 + SIGMA**2)                                        # 1 - posterior var / prior var
    assert torch.allclose(res.contraction, expected, atol=0.03)
    post_std = (SIGMA**2 / (1 + SIGMA**2)).sqrt()
    assert torch.allclose(res.relative_width, post_std, rtol=0.05)
    assert torch.allclose(res.interval_width, 2 * 1.6449 * post_std, rtol=0.05)
    assert res.recoverable.tolist() == [True, False]                     # the unmeasured parameter is flagged
    assert bool(res.calibrated.all()) and float(res.multimodal_share.max()) < 0.05
    assert abs(res.information_gain - float(TRUE_EIG.sum())) < 3 * res.information_gain_se
    wrong = evaluate_posterior(ExactGaussianPosterior(inflate=0.5), theta, x, prior, samples=400, seed=5)
    assert not bool(wrong.calibrated[0])                                # an over-confident posterior fails SBC
