"""SLCP, Bernoulli GLM, SIR and Lotka-Volterra simulators against their published definitions,
and their likelihoods against independent (scipy) implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from innverse.tasks import get_task
from innverse.tasks.sbi.bernoulli_glm import bernoulli_glm_design
from innverse.tasks.sbi.lotka_volterra import lotka_volterra_log_populations
from innverse.tasks.sbi.sir import sir_trajectories


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _slcp_cov(theta):
    s1, s2, rho = theta[2] ** 2, theta[3] ** 2, math.tanh(theta[4])
    return np.array([[s1**2 + 1e-6, rho * s1 * s2], [rho * s1 * s2, s2**2 + 1e-6]])


def test_slcp_draws_have_the_published_mean_and_covariance():
    task = get_task("slcp", torch.float64)
    theta = torch.tensor([0.5, -1.0, 1.2, -0.8, 0.7], dtype=torch.float64)
    x = task.simulate(theta.expand(20_000, 5), _gen(0)).reshape(-1, 2).numpy()
    cov = _slcp_cov(theta.tolist())
    assert np.allclose(x.mean(0), [0.5, -1.0], atol=0.02)
    assert np.allclose(np.cov(x.T), cov, rtol=0.03, atol=0.01)
    thetas = task.sample_prior(5, _gen(1))
    xs = task.simulate(thetas, _gen(2))
    ref = [stats.multivariate_normal(t[:2].numpy(), _slcp_cov(t.tolist())).logpdf(xi.reshape(4, 2).numpy()).sum()
           for t, xi in zip(thetas, xs)]
    assert np.allclose(task.log_likelihood(thetas, xs).numpy(), ref, rtol=1e-9)


def test_slcp_distractors_hide_slcp_among_student_t_noise():
    plain, noisy = get_task("slcp", torch.float64), get_task("slcp_distractors", torch.float64)
    theta = plain.sample_prior(4, _gen(3))
    informative = noisy.simulate(theta, _gen(4))[:, noisy._informative]
    assert torch.equal(informative, plain.simulate(theta, _gen(4)))
    for i in (0, 7):
        assert torch.equal(noisy.observation(i)[noisy._informative], plain.observation(i))
        assert torch.equal(noisy.true_parameters(i), plain.true_parameters(i))
    # the distractor density against scipy's multivariate t, component by component
    x = noisy.simulate(theta, _gen(5))
    noise = x[:, noisy._positions[8:]].numpy()
    comps = [stats.multivariate_t(noisy._loc[k].numpy(), (noisy._scale[k] @ noisy._scale[k].T).numpy(), df=2)
             for k in range(20)]
    ref = special.logsumexp(np.stack([c.logpdf(noise) for c in comps], -1), -1) - math.log(20)
    assert np.allclose(noisy.distractor_log_prob(x).numpy(), ref, rtol=1e-7)
    ll = noisy.log_likelihood(theta, x) - plain.log_likelihood(theta, x[:, noisy._informative])
    assert np.allclose(ll.numpy(), ref, rtol=1e-7)
    # and the sampler against that density: one coordinate's marginal is a mixture of t's
    many = noisy.simulate(plain.sample_prior(20_000, _gen(6)), _gen(7))[:, noisy._positions[8 + 5]].numpy()
    scale = torch.sqrt((noisy._scale[:, 5] ** 2).sum(-1)).numpy()
    loc = noisy._loc[:, 5].numpy()
    cdf = lambda v: np.mean([stats.t(2, loc[k], scale[k]).cdf(v) for k in range(20)], 0)  # noqa: E731
    assert stats.kstest(many, cdf).pvalue > 1e-3


def test_bernoulli_glm_prior_follows_the_paper():
    task = get_task("bernoulli_glm", torch.float64)
    # F as printed in the paper (1-based): F_{i,i-2} = 1, F_{i,i-1} = -2, F_{i,i} = 1 + sqrt((i-1)/9)
    f = np.zeros((9, 9))
    for i in range(1, 10):
        f[i - 1, i - 1] = 1 + math.sqrt((i - 1) / 9)
        if i >= 2:
            f[i - 1, i - 2] = -2
        if i >= 3:
            f[i - 1, i - 3] = 1
    cov = np.zeros((10, 10))
    cov[0, 0] = 2.0
    cov[1:, 1:] = np.linalg.inv(f.T @ f)
    assert np.allclose(task.prior.covariance_matrix.numpy(), cov, rtol=1e-10)
    draws = task.sample_prior(40_000, _gen(8)).numpy()
    assert np.allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.05 * np.sqrt(np.outer(np.diag(cov), np.diag(cov))))


def test_bernoulli_glm_simulator_and_likelihoods():
    summary, raw = get_task("bernoulli_glm", torch.float64), get_task("bernoulli_glm_raw", torch.float64)
    design = bernoulli_glm_design()
    stimulus = np.random.RandomState(42).randn(100).astype(np.float32)
    assert np.allclose(design[:, 3].numpy(), np.r_[0.0, 0.0, stimulus[:98]])
    theta = summary.sample_prior(3, _gen(9))
    z = raw.simulate(theta, _gen(10))
    assert set(np.unique(z.numpy())) <= {0.0, 1.0}
    assert torch.allclose(summary.simulate(theta, _gen(10)), z @ design)
    for i in (0, 5):
        assert torch.allclose(summary.observation(i), raw.observation(i) @ design)
    p = special.expit((theta @ design.T).numpy())
    ref = stats.bernoulli(p).logpmf(z.numpy()).sum(-1)
    assert np.allclose(raw.log_likelihood(theta, z).numpy(), ref)
    assert np.allclose(summary.log_likelihood(theta, z @ design).numpy(), ref)
    # spike frequencies match the logistic rates
    t0 = theta[:1]
    many = raw.simulate(t0.expand(20_000, 10), _gen(11)).mean(0).numpy()
    rate = special.expit((t0 @ design.T).numpy()[0])
    z_scores = (many - rate) / np.sqrt(rate * (1 - rate) / 20_000 + 1e-12)
    assert np.abs(z_scores).max() < 4.5


def test_sir_counts_are_binomial_on_the_infected_fraction():
    task = get_task("sir", torch.float64)
    theta = torch.tensor([[0.5, 0.1]], dtype=torch.float64)
    p = sir_trajectories(theta)[0, :, 1]
    x = task.simulate(theta.expand(5000, 2), _gen(12))
    assert bool((x == x.round()).all()) and bool(((x >= 0) & (x <= 1000)).all())
    assert torch.allclose(x.mean(0), 1000 * p, atol=4 * math.sqrt(1000 * 0.25 / 5000))
    assert torch.allclose(x.var(0), 1000 * p * (1 - p), rtol=0.1, atol=0.05)
    ref = stats.binom(1000, p.numpy()).logpmf(x[:3].numpy()).sum(-1)
    assert np.allclose(task.log_likelihood(theta.expand(3, 2), x[:3]).numpy(), ref)


def test_lotka_volterra_noise_is_log_normal_and_positive():
    task = get_task("lotka_volterra", torch.float64)
    theta = torch.tensor([[0.9, 0.05, 0.9, 0.05]], dtype=torch.float64)
    log_u = lotka_volterra_log_populations(theta)[0].T.reshape(-1)
    x = task.simulate(theta.expand(1000, 4), _gen(13))
    assert bool((x > 0).all()) and bool(torch.isfinite(x).all())
    residual = (torch.log(x) - log_u) / 0.1
    assert stats.kstest(residual.reshape(-1).numpy(), stats.norm().cdf).pvalue > 1e-3
    ref = stats.lognorm(0.1, scale=np.exp(log_u.numpy())).logpdf(x[:3].numpy()).sum(-1)
    assert np.allclose(task.log_likelihood(theta.expand(3, 4), x[:3]).numpy(), ref)
    # prey first, then predators: t = 0 entries sit at columns 0 and 10 around (30, 1)
    assert abs(float(torch.log(x[:, 0]).mean()) - math.log(30)) < 0.01
    assert abs(float(torch.log(x[:, 10]).mean())) < 0.01


@pytest.mark.parametrize("name", ["sir", "lotka_volterra"])
def test_true_parameters_are_likely(name):
    # each observation is far more likely under its own parameters than under other ones
    task = get_task(name, torch.float64)
    theta = torch.stack([task.true_parameters(i) for i in range(10)])
    x = torch.stack([task.observation(i) for i in range(10)])
    ll = task.log_likelihood(theta.repeat(10, 1), x.repeat_interleave(10, 0)).reshape(10, 10)
    assert torch.equal(ll.argmax(1), torch.arange(10))


def test_lotka_volterra_series_layout_and_likelihood():
    task = get_task("lotka_volterra_series", torch.float64)
    assert task.x_shape == (41, 2)
    theta = torch.tensor([[0.9, 0.05, 0.9, 0.05]], dtype=torch.float64)
    times = torch.arange(41, dtype=torch.float64) * 0.5
    log_u = lotka_volterra_log_populations(theta, times)[0]  # (41, 2): rows are times
    x = task.simulate(theta.expand(500, 4), _gen(14))
    residual = (torch.log(x) - log_u) / 0.1
    assert stats.kstest(residual.reshape(-1).numpy(), stats.norm().cdf).pvalue > 1e-3
    ref = stats.lognorm(0.1, scale=np.exp(log_u.numpy())).logpdf(x[:2].numpy()).sum((-1, -2))
    assert np.allclose(task.log_likelihood(theta.expand(2, 4), x[:2]).numpy(), ref)
