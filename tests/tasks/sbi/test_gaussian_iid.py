"""Set-valued Gaussian task: padding convention, counts, likelihood, conjugate posterior, contraction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.tasks import NormalInverseGamma, get_task

from .helpers import grid_chi2_pvalue


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_padding_and_random_counts():
    task = get_task("gaussian_iid")
    assert task.x_shape == (100, 1)
    x = task.simulate(task.sample_prior(4000, _gen(0)), _gen(1))
    present = ~x[..., 0].isnan()
    counts = present.sum(1)
    # rows are filled first, padding after: the present-mask is a prefix
    assert torch.equal(present, torch.arange(100) < counts[:, None])
    assert int(counts.min()) == 5 and int(counts.max()) == 100
    freq = torch.bincount(counts, minlength=101)[5:].double()
    assert stats.chisquare(freq.numpy()).pvalue > 1e-3  # uniform on {5, ..., 100}


def test_fixed_count_and_errors():
    task = get_task("gaussian_iid")
    theta = task.sample_prior(6, _gen(0))
    x = task.simulate(theta, _gen(1), count=37)
    assert torch.equal((~x[..., 0].isnan()).sum(1), torch.full((6,), 37))
    x = task.simulate(theta, _gen(1), count=torch.tensor([1, 2, 3, 4, 5, 100]))
    assert (~x[..., 0].isnan()).sum(1).tolist() == [1, 2, 3, 4, 5, 100]
    for bad in (0, 101, 2.5, torch.tensor([3, 4])):
        with pytest.raises(ValueError, match="count"):
            task.simulate(theta, count=bad)


def test_draws_follow_mean_and_scale():
    task = get_task("gaussian_iid", torch.float64)
    theta = torch.tensor([[1.5, 0.3]], dtype=torch.float64).expand(300, 2)
    values = task.simulate(theta, _gen(2), count=100)[..., 0].reshape(-1)
    assert stats.kstest(values.numpy(), stats.norm(1.5, 0.3).cdf).pvalue > 1e-3


def test_likelihood_padded_and_unpadded_agree_with_scipy():
    task = get_task("gaussian_iid", torch.float64)
    theta = task.sample_prior(5, _gen(3))
    x = task.simulate(theta, _gen(4), count=23)
    ll = task.log_likelihood(theta, x)
    ref = [stats.norm(t[0].item(), t[1].item()).logpdf(xi[:23, 0].numpy()).sum() for t, xi in zip(theta, x)]
    assert np.allclose(ll.numpy(), ref)
    unpadded = task.log_likelihood(theta, x[0, :23])
    padded = task.log_likelihood(theta, x[0])
    assert torch.allclose(unpadded, padded)
    with pytest.raises(ValueError, match="x must have shape"):
        task.log_likelihood(theta, torch.zeros(101, 1))


def test_prior_density_is_normalised_and_matches_sampler():
    prior = get_task("gaussian_iid", torch.float64).prior
    assert isinstance(prior, NormalInverseGamma)
    mu = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    sigma = torch.linspace(1e-3, 40, 2001, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(mu, sigma, indexing="ij"), -1).reshape(-1, 2)
    mass = prior.log_prob(grid).exp().sum() * (mu[1] - mu[0]) * (sigma[1] - sigma[0])
    assert abs(mass.item() - 1) < 2e-3  # the tails beyond the grid hold ~1e-3
    draws = prior.sample_with_generator((20_000,), _gen(5))
    # sigma^2 ~ InvGamma(2, 1); mu / sigma ~ N(0, 1) independent of sigma
    assert stats.kstest(draws[:, 1].square().numpy(), stats.invgamma(2.0, scale=1.0).cdf).pvalue > 1e-3
    assert stats.kstest((draws[:, 0] / draws[:, 1]).numpy(), stats.norm().cdf).pvalue > 1e-3
    torch.manual_seed(0)
    rdraws = prior.rsample((20_000,))
    assert stats.ks_2samp(rdraws[:, 1].numpy(), draws[:, 1].numpy()).pvalue > 1e-3
    assert torch.allclose(prior.mean, draws.mean(0), atol=0.03)
    with pytest.raises(ValueError):
        prior.log_prob(torch.tensor([0.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("index", [0, 3])
def test_reference_matches_likelihood_times_prior(index):
    task = get_task("gaussian_iid", torch.float64)
    x = task.observation(index)
    samples = task._sample_reference((index,), 20_000, _gen(index))[0][0]
    lo, hi = samples.min(0).values, samples.max(0).values
    pad = 0.1 * (hi - lo)
    p = grid_chi2_pvalue(samples, lambda pts: task.log_joint(pts, x), lo - pad, hi + pad, bins=16, sub=16)
    assert p > 1e-3


def test_posterior_update_matches_brute_force_and_contracts():
    task = get_task("gaussian_iid", torch.float64)
    theta = torch.tensor([[0.7, 1.3]], dtype=torch.float64)
    full = task.simulate(theta, _gen(6), count=100)[0]
    widths = []
    for k in (5, 20, 100):
        post = task.posterior(full[:k])
        m, s = full[:k, 0].mean().item(), full[:k, 0].var(unbiased=False).item()
        # normal-inverse-gamma update written out for kappa0 = 1, mu0 = 0, alpha0 = 2, beta0 = 1
        assert math.isclose(post.kappa.item(), 1 + k)
        assert math.isclose(post.loc.item(), k * m / (1 + k), rel_tol=1e-12)
        assert math.isclose(post.concentration.item(), 2 + k / 2)
        assert math.isclose(post.rate.item(), 1 + 0.5 * k * s + k * m * m / (2 * (1 + k)), rel_tol=1e-12)
        widths.append(post.variance.sqrt())
    assert bool((widths[0] > widths[1]).all() and (widths[1] > widths[2]).all())
    # 100 draws: the exact posterior std of mu is about sigma / sqrt(101)
    assert abs(widths[2][0].item() - 1.3 / math.sqrt(101)) < 0.04
