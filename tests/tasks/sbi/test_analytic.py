"""Analytic tasks: simulators against their published moments, likelihoods against independent
implementations, exact reference posteriors against the likelihood times the prior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.tasks import get_task

from .helpers import grid_chi2_pvalue


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_linear_noise_and_likelihood():
    task = get_task("gaussian_linear", torch.float64)
    theta = task.sample_prior(20_000, _gen(0))
    assert abs(theta.var().item() - 0.1) < 0.004  # prior covariance 0.1 I
    noise = task.simulate(theta, _gen(1)) - theta
    assert abs(noise.mean().item()) < 0.003
    # chi-square test of the noise variance: n * s^2 / 0.1 ~ chi2(n)
    stat = noise.square().sum().item() / 0.1
    assert stats.chi2.sf(stat, noise.numel()) > 1e-3 and stats.chi2.cdf(stat, noise.numel()) > 1e-3
    corr = np.corrcoef(noise[:, :3].numpy().T)
    assert np.abs(corr - np.eye(3)).max() < 0.03
    x = task.simulate(theta[:5], _gen(2))
    ref = stats.multivariate_normal(mean=np.zeros(10), cov=0.1 * np.eye(10)).logpdf((x - theta[:5]).numpy())
    assert np.allclose(task.log_likelihood(theta[:5], x).numpy(), ref)


def test_gaussian_linear_reference_is_the_conjugate_posterior():
    task = get_task("gaussian_linear", torch.float64)
    x = task.observation(3)
    samples = task._sample_reference((3,), 20_000, _gen(0))[0][0]
    # closed form computed here independently: precision 1/0.1 + 1/0.1, mean = (x / 0.1) / precision
    assert torch.allclose(samples.mean(0), x / 2, atol=4 * math.sqrt(0.05 / 20_000))
    cov = torch.cov(samples.T)
    assert torch.allclose(cov, 0.05 * torch.eye(10, dtype=torch.float64), atol=0.0035)
    post = task.posterior(x)
    assert torch.allclose(post.mean, x / 2) and torch.allclose(post.covariance_matrix, 0.05 * torch.eye(10, dtype=torch.float64))


def test_gaussian_linear_uniform_reference_is_truncated_normal():
    task = get_task("gaussian_linear_uniform", torch.float64)
    for i in (0, 4):
        x = task.observation(i)
        samples = task._sample_reference((i,), 5_000, _gen(i))[0][0]
        assert bool((samples.abs() <= 1).all())
        s = math.sqrt(0.1)
        for d in range(10):
            dist = stats.truncnorm((-1 - x[d].item()) / s, (1 - x[d].item()) / s, loc=x[d].item(), scale=s)
            assert stats.kstest(samples[:, d].numpy(), dist.cdf).pvalue > 1e-3


def test_gaussian_mixture_simulator_moments():
    task = get_task("gaussian_mixture", torch.float64)
    theta = torch.zeros(40_000, 2)
    theta = theta.double()
    x = task.simulate(theta, _gen(0))
    # per-sample component: |x| small (narrow component) for about half the draws
    r2 = x.square().sum(-1)
    # P(r^2 < 0.05) = 0.5 * (1 - exp(-0.05 / 0.02)) + 0.5 * (1 - exp(-0.05 / 2))
    p = 0.5 * (1 - math.exp(-2.5)) + 0.5 * (1 - math.exp(-0.025))
    frac = (r2 < 0.05).double().mean().item()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / 40_000)
    assert abs(x.var(0).mean().item() - 0.505) < 0.02


def test_gaussian_mixture_likelihood_matches_simulator():
    task = get_task("gaussian_mixture", torch.float64)
    theta = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    x = task.simulate(theta.expand(20_000, 2), _gen(1))
    p = grid_chi2_pvalue(x, lambda pts: task.log_likelihood(theta.expand(len(pts), 2), pts),
                         (-4.0, -7.0), (6.0, 3.0), bins=20, sub=12)
    assert p > 1e-3


@pytest.mark.parametrize("index", [0, 5])
def test_gaussian_mixture_reference_matches_density(index):
    task = get_task("gaussian_mixture", torch.float64)
    x = task.observation(index)
    samples = task._sample_reference((index,), 20_000, _gen(index))[0][0]
    lo, hi = (x - 4.5).clamp(-10, 10), (x + 4.5).clamp(-10, 10)
    p = grid_chi2_pvalue(samples, lambda pts: task.log_joint(pts, x), lo, hi, bins=20, sub=12)
    assert p > 1e-3


def test_two_moons_simulator_structure():
    task = get_task("two_moons", torch.float64)
    theta = task.sample_prior(20_000, _gen(0))
    x = task.simulate(theta, _gen(1))
    s, d = theta.sum(-1), theta[:, 1] - theta[:, 0]
    p = x - torch.stack([-s.abs(), d], -1) / math.sqrt(2)
    r = torch.sqrt((p[:, 0] - 0.25) ** 2 + p[:, 1] ** 2)
    assert abs(r.mean().item() - 0.1) < 3e-4 and abs(r.std().item() - 0.01) < 3e-4
    angle = torch.atan2(p[:, 1], p[:, 0] - 0.25)
    assert stats.kstest(angle.numpy(), stats.uniform(-math.pi / 2, math.pi).cdf).pvalue > 1e-3


def test_two_moons_likelihood_matches_simulator():
    task = get_task("two_moons", torch.float64)
    theta = torch.tensor([[0.3, -0.6]], dtype=torch.float64)
    x = task.simulate(theta.expand(20_000, 2), _gen(2))
    lo, hi = x.min(0).values - 0.01, x.max(0).values + 0.01
    p = grid_chi2_pvalue(x, lambda pts: task.log_likelihood(theta.expand(len(pts), 2), pts), lo, hi,
                         bins=16, sub=24)
    assert p > 1e-3


@pytest.mark.parametrize("index", [0, 7])
def test_two_moons_reference_matches_likelihood(index):
    # the reference inverts the simulator; the likelihood is the analytic polar density:
    # two independent routes to the same posterior
    task = get_task("two_moons", torch.float64)
    x = task.observation(index)
    samples = task._sample_reference((index,), 20_000, _gen(index))[0][0]
    for part in (samples[samples.sum(-1) >= 0], samples[samples.sum(-1) < 0]):
        assert abs(part.shape[0] / 20_000 - 0.5) < 0.1 or samples.abs().max() > 0.9  # both moons
    lo, hi = samples.min(0).values - 0.02, samples.max(0).values + 0.02
    p = grid_chi2_pvalue(samples, lambda pts: task.log_joint(pts, x), lo, hi, bins=16, sub=32)
    assert p > 1e-3
