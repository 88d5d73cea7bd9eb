"""Neural likelihood estimation: the generic MCMC sampler against exact posteriors, the learned
likelihood against the true one, sequential NLE, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from innverse.amortized import (
    LikelihoodPosterior,
    MCMCConfig,
    box_uniform,
    fit_likelihood,
    fit_sequential_likelihood,
    gaussian,
    sample_mcmc,
)

NOISE = 0.3
SMALL_MCMC = MCMCConfig(chains=20, warmup=300, init_draws=2000)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _exact_log_likelihood(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(theta, NOISE).log_prob(x).sum(-1)


def _simulator(theta: torch.Tensor) -> torch.Tensor:
    return theta + NOISE * torch.randn_like(theta)


def test_sample_mcmc_gives_the_conjugate_posterior_of_a_float32_gaussian_prior():
    # prior N(0, I), x | theta ~ N(theta, 0.3^2 I): posterior N(x / (1 + 0.09), 0.09 / 1.09 I)
    prior = gaussian(0.0, 1.0, dim=2)
    xs = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    draws, info = sample_mcmc(_exact_log_likelihood, prior, xs, 2000, _gen(0), SMALL_MCMC)
    var = NOISE**2 / (1 + NOISE**2)
    for x, s, d in zip(xs, draws, info):
        assert s.shape == (2000, 2) and s.dtype == torch.float64 and d["converged"]
        se = math.sqrt(var / d["min_bulk_ess"])
        assert float((s.mean(0) - x / (1 + NOISE**2)).abs().max()) < 4.5 * se
        for j in range(2):
            assert stats.kstest(s[:, j].numpy(), "norm", args=(float(x[j]) / (1 + NOISE**2), math.sqrt(var))).pvalue > 1e-3


def test_sample_mcmc_respects_a_bounded_prior():
    # a uniform prior on [0, 1]^2 and a likelihood centred outside it: the posterior piles up at the edge
    prior = box_uniform(0.0, 1.0, dim=2)
    xs = torch.tensor([[1.5, 0.5]], dtype=torch.float64)
    (s,), _ = sample_mcmc(_exact_log_likelihood, prior, xs, 1000, _gen(1), SMALL_MCMC)
    assert bool(((s > 0) & (s < 1)).all())
    # fewer draws than chains: still enough per chain for the diagnostics, n returned
    (few,), (d,) = sample_mcmc(_exact_log_likelihood, prior, xs, 10, _gen(1), SMALL_MCMC)
    assert few.shape == (10, 2) and d["draws_per_chain"] >= 20
    # first coordinate: N(1.5, 0.09) truncated to [0, 1]
    truncated = stats.truncnorm((0 - 1.5) / NOISE, (1 - 1.5) / NOISE, loc=1.5, scale=NOISE)
    assert stats.kstest(s[:, 0].numpy(), truncated.cdf).pvalue > 1e-3


def test_unconverged_chains_raise_or_are_marked_when_convergence_is_not_required():
    prior = gaussian(0.0, 1.0, dim=2)
    xs = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    hopeless = MCMCConfig(chains=4, warmup=60, init_draws=200, rhat_max=1.0000001, max_rounds=1)
    with pytest.raises(RuntimeError, match="test: MCMC did not converge"):
        sample_mcmc(_exact_log_likelihood, prior, xs, 40, _gen(2), hopeless, name="test")
    lenient = MCMCConfig(**{**hopeless.__dict__, "require_convergence": False})
    (s,), (d,) = sample_mcmc(_exact_log_likelihood, prior, xs, 40, _gen(2), lenient, name="test")
    assert s.shape == (40, 2) and d["converged"] is False and d["max_split_rhat"] > 1.0000001


@pytest.fixture(scope="module")
def learned():
    prior = box_uniform(-2.0, 2.0, dim=2)
    gen = _gen(3)
    theta = prior.sample((3000,))
    x = theta + NOISE * torch.randn(3000, 2, generator=gen)
    post = fit_likelihood(theta, x, prior, mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]},
                          training={"epochs": 25})
    return prior, post


def test_the_learned_likelihood_is_close_to_the_true_one(learned):
    _, post = learned
    theta = torch.rand(2000, 2, generator=_gen(4)) * 3 - 1.5
    x = theta + NOISE * torch.randn(2000, 2, generator=_gen(5))
    learned_ll = post.log_likelihood(x, theta).double()
    exact = _exact_log_likelihood(theta.double(), x.double())
    # the expected log density under the simulator: their difference is the KL divergence, >= 0, small
    kl = float((exact - learned_ll).mean())
    assert -0.05 < kl < 0.1, kl


def test_the_nle_posterior_matches_the_exact_one(learned):
    _, post = learned
    xo = torch.tensor([0.5, -0.5])
    s = post.sample(1500, xo, seed=0)
    assert s.shape == (1500, 2) and s.dtype == torch.float32
    assert all(d["converged"] for d in post.diagnostics)
    # the prior box is far (> 5 sd) from x_o, so the posterior is N(x_o, 0.3^2 I); MCMC draws are correlated,
    # so the KS distance is judged at the effective sample size of the kept draws (their share of the run's ESS)
    info = post.diagnostics[0]
    ess = info["min_bulk_ess"] * 1500 / (info["chains"] * info["draws_per_chain"])
    for j in range(2):
        distance = stats.kstest(s[:, j].numpy(), "norm", args=(float(xo[j]), NOISE)).statistic
        assert stats.kstwo.sf(distance, int(ess)) > 1e-3, (distance, ess)
    both = post.sample(1000, torch.stack([xo, -xo]), seed=1)
    assert both.shape == (1000, 2, 2)
    assert float((both[:, 1].mean(0) + xo).abs().max()) < 0.15


def test_unnormalized_log_prob_and_the_refused_log_prob(learned):
    prior, post = learned
    xo = torch.tensor([0.5, -0.5])
    theta = torch.tensor([[0.0, 0.0], [0.5, -0.5], [3.0, 0.0]])
    u = post.unnormalized_log_prob(theta, xo)
    torch.testing.assert_close(u[:2], prior.log_prob(theta[:2]) + post.log_likelihood(xo.expand(2, 2), theta[:2]))
    assert u[2] == -torch.inf and u[1] > u[0]
    with pytest.raises(NotImplementedError, match="known only up to its normaliser"):
        post.log_prob(theta, xo)


def test_an_ensemble_likelihood_is_the_mixture_of_its_members():
    prior = box_uniform(-2.0, 2.0, dim=2)
    theta = prior.sample((400,))
    x = theta + NOISE * torch.randn(400, 2, generator=_gen(6))
    post = fit_likelihood(theta, x, prior, ensemble=2, flow={"blocks": 1, "hidden": [16]}, training={"epochs": 3})
    probe_theta, probe_x = theta[:20], x[:20]
    members = torch.stack([m.log_prob(probe_x, probe_theta) for m in post.likelihood.members])
    torch.testing.assert_close(post.log_likelihood(probe_x, probe_theta), torch.logsumexp(members, 0) - math.log(2))


def test_count_data_are_dequantized_and_give_the_exact_posterior():
    # x: two Poisson counts of rate exp(theta), theta ~ U(0, 3); the exact posterior on a grid
    prior = box_uniform(0.0, 3.0, dim=1)
    theta = prior.sample((3000,))
    x = torch.poisson(torch.exp(theta).expand(3000, 2), generator=_gen(7))
    post = fit_likelihood(theta, torch.cat([x, theta + torch.randn(3000, 1, generator=_gen(8))], 1), prior,
                          mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]}, training={"epochs": 30})
    assert post.dequantized.tolist() == [True, True, False]   # the counts, not the continuous feature
    grid = torch.linspace(0.0005, 2.9995, 3000, dtype=torch.float64)
    for counts, extra in (([3.0, 5.0], 1.3), ([15.0, 12.0], 2.6)):
        log_w = torch.as_tensor(stats.poisson.logpmf(counts, torch.exp(grid)[:, None].numpy()).sum(1))
        log_w += torch.distributions.Normal(grid, 1.0).log_prob(torch.tensor(extra, dtype=torch.float64))
        w = torch.softmax(log_w, 0)
        mean = float((w * grid).sum())
        sd = math.sqrt(float((w * (grid - mean) ** 2).sum()))
        s = post.sample(2000, torch.tensor([*counts, extra]), seed=1)[:, 0].double()
        assert abs(float(s.mean()) - mean) < 0.2 * sd and abs(float(s.std()) / sd - 1) < 0.15, (counts, mean, sd)


def test_wide_positive_data_are_modelled_on_the_log_scale_with_the_density_of_x():
    # x = exp(theta + 0.1 eps) spans more than four decades for theta ~ U(-5, 5); a second feature is continuous
    prior = box_uniform(-5.0, 5.0, dim=1)
    theta = prior.sample((3000,))
    eps = torch.randn(3000, 2, generator=_gen(9))
    x = torch.cat([torch.exp(theta + 0.1 * eps[:, :1]), theta + eps[:, 1:]], 1)
    post = fit_likelihood(theta, x, prior, mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]},
                          training={"epochs": 30})
    assert post.logged.tolist() == [True, False] and not post.dequantized.any()
    probe = prior.sample((2000,)) * 0.9
    e = torch.randn(2000, 2, generator=_gen(10))
    px = torch.cat([torch.exp(probe + 0.1 * e[:, :1]), probe + e[:, 1:]], 1)
    exact = (torch.distributions.Normal(probe, 0.1).log_prob(px[:, :1].log()) - px[:, :1].log()
             + torch.distributions.Normal(probe, 1.0).log_prob(px[:, 1:])).sum(-1).double()
    kl = float((exact - post.log_likelihood(px, probe).double()).mean())   # the density of x, Jacobian included
    assert -0.05 < kl < 0.1, kl
    xo = torch.tensor([math.exp(1.0), 1.2])
    s = post.sample(1500, xo, seed=3)[:, 0].double()
    var = 1 / (1 / 0.01 + 1)   # posterior of two Gaussian measurements of theta, sd 0.1 and 1
    mean = var * (1.0 / 0.01 + 1.2)
    assert abs(float(s.mean()) - mean) < 0.01 and abs(float(s.std()) / math.sqrt(var) - 1) < 0.15
    assert post.unnormalized_log_prob(torch.zeros(1, 1), torch.tensor([0.5, 0.0])).isfinite().all()
    with pytest.raises(ValueError, match=r"data feature 0 is modelled on the log scale .* has -1"):
        post.sample(10, torch.tensor([-1.0, 0.0]))
    assert post.log_likelihood(torch.tensor([[-1.0, 0.0]]), torch.zeros(1, 1)) == -torch.inf


def test_bad_input_to_likelihood_estimation_is_refused(learned):
    prior, post = learned
    theta = torch.randn(50, 2)
    with pytest.raises(ValueError, match=r"fit_likelihood: .*x \(n, F\).*got theta \(50, 2\) and x \(50, 3, 2\)"):
        fit_likelihood(theta, torch.randn(50, 3, 2), prior)
    with pytest.raises(ValueError, match="the prior is required"):
        fit_likelihood(theta, torch.randn(50, 2), None)
    with pytest.raises(ValueError, match="dequantize must be 'auto' or False"):
        fit_likelihood(theta, torch.randn(50, 2), prior, dequantize=True)
    with pytest.raises(ValueError, match="'summary' is not an option"):
        fit_likelihood(theta, torch.randn(50, 2), prior, summary="mlp")
    with pytest.raises(ValueError, match=r"needs the observation x \(shape \(2,\)\)"):
        post.sample(10)
    with pytest.raises(ValueError, match=r"expected finite observations of shape \(2,\) or \(k, 2\), got shape \(3,\)"):
        post.sample(10, torch.zeros(3))
    with pytest.raises(ValueError, match="with NaN/Inf"):
        post.sample(10, torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="x_obs is None"):
        fit_sequential_likelihood(_simulator, prior, None)
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        fit_sequential_likelihood(_simulator, prior, torch.zeros(2), rounds=0)


def test_sequential_nle_concentrates_its_simulations_and_finds_the_posterior():
    prior = box_uniform(-3.0, 3.0, dim=2)
    xo = torch.tensor([1.0, -0.5])
    post, report = fit_sequential_likelihood(_simulator, prior, xo, rounds=2, simulations_per_round=1000,
                                             mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]},
                                             training={"epochs": 25}, seed=0)
    assert isinstance(post, LikelihoodPosterior)
    assert report.samplers == ["prior", "mcmc"] and report.simulations == [1000, 1000]
    assert report.ess[0] is None and report.ess[1] > 100 and 0 < report.acceptance[1] < 1
    s = post.sample(1000, xo, seed=2)
    for j in range(2):
        assert stats.kstest(s[:, j].numpy(), "norm", args=(float(xo[j]), NOISE)).pvalue > 1e-3


def test_the_diagnostics_battery_runs_on_a_likelihood_posterior():
    """check() on NLE: its log_prob refuses (no normaliser), so the battery runs without it; the MCMC draws for
    40 data sets x 100 samples must pass its convergence checks and the calibration and learning tests."""
    from innverse.diagnostics import check

    prior = box_uniform(-2.0, 2.0, dim=2)
    theta = prior.sample((1000,))
    post = fit_likelihood(theta, _simulator(theta), prior, mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]},
                          training={"epochs": 20})
    result = check(post, prior, _simulator, 40, samples=100, seed=1)
    assert result.settings["has_log_prob"] is False
    assert result.coverage["hpd"] == {"available": False, "reason": "the posterior has no log_prob", "passed": True}
    assert result.learning["status"] == ["learned", "learned"]
    assert result.passed


def test_the_predictive_check_is_calibrated_for_a_right_posterior():
    """An observation from the same predictive as the simulations lies beyond all n of them with probability
    1 / (n + 1): 2,000 trials with n = 50 in 3 correlated features, against the binomial."""
    from innverse.amortized.sequential_likelihood import predictive_check

    gen = _gen(11)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, -0.5, 2.0]])
    beyond = 0
    for _ in range(2000):
        draws = torch.randn(51, 3, generator=gen) @ mix.T + 5.0
        check = predictive_check(draws[:50], draws[50])
        assert check is not None and check["simulations"] == 50
        beyond += check["p"] == 0
    assert stats.binomtest(beyond, 2000, 1 / 51).pvalue > 1e-3, beyond
    assert predictive_check(torch.randn(4, 3), torch.zeros(3)) is None    # too few for a covariance


def test_sequential_nle_warns_when_its_posterior_cannot_reproduce_the_observation():
    # theta in [-2, 2]^2, x = theta + noise: an observation at (6, -6) is out of the simulator's reach
    prior = box_uniform(-2.0, 2.0, dim=2)
    xo = torch.tensor([6.0, -6.0])
    with pytest.warns(RuntimeWarning, match=r"the observation lies beyond all 400 simulations of the last round"):
        _, report = fit_sequential_likelihood(_simulator, prior, xo, rounds=2, simulations_per_round=400,
                                              mcmc=SMALL_MCMC, flow={"blocks": 2, "hidden": [32, 32]},
                                              training={"epochs": 10}, seed=0)
    assert report.predictive["p"] == 0 and report.predictive["d2"] > 10 * report.predictive["d2_max"]
