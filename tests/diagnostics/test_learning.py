"""The "did it learn anything?" check: exact posteriors pass, the prior fails where the data are informative."""

import math

import pytest
import torch

from innverse.diagnostics import learning_test

from .gaussian_linear import GaussianLinear


def _draws(model: GaussianLinear, k: int, seed: int, samples: int = 200):
    torch.manual_seed(seed)
    theta = model.prior.sample((k,))
    x = model.simulator(theta)
    return theta, x, model.posterior().sample(samples, x)


def test_exact_posterior_learns_and_its_r2_is_the_analytic_one():
    model = GaussianLinear(dims=2, obs=3, noise_std=0.5)
    theta, x, post = _draws(model, 2000, seed=0)
    res = learning_test(post, theta, x)
    assert res["passed"] and res["status"] == ["learned", "learned"]
    # population R² of the posterior mean: 1 - E Var[θ_d | x] / Var θ_d = 1 - Σ_dd / s0²
    expected = (1 - model.cov.diagonal() / model.s0**2).tolist()
    assert res["r2_posterior"] == pytest.approx(expected, abs=0.04)
    # the regression on x cannot beat the exact posterior mean (up to noise) and here nearly matches it
    assert all(r <= p + 0.02 for r, p in zip(res["r2_regression"], res["r2_posterior"]))
    assert all(r > p - 0.05 for r, p in zip(res["r2_regression"], res["r2_posterior"]))


def test_log_density_gain_estimates_the_mutual_information():
    model = GaussianLinear(dims=2, obs=3, noise_std=0.5)
    theta, x, post = _draws(model, 3000, seed=1, samples=20)
    q = model.posterior().log_prob(theta, x)
    p = model.prior.log_prob(theta)
    res = learning_test(post, theta, x, log_prob_truth=q, prior_log_prob=p)
    # I(θ; x) = ½ log det(s0² I) / det Σ for the Gaussian-linear model
    mi = 0.5 * (2 * math.log(model.s0**2) - torch.logdet(model.cov).item())
    assert abs(res["log_prob_gain"] - mi) < 4 * res["log_prob_gain_se"]


def test_the_exact_posterior_rarely_fails():
    model = GaussianLinear(dims=2, obs=3, noise_std=1.0)
    failures = sum(not learning_test(post, theta, x, seed=s)["passed"]
                   for s in range(30) for theta, x, post in [_draws(model, 100, seed=100 + s, samples=100)])
    assert failures <= 3           # at most level = 0.05 in expectation; in fact far below it


def test_a_posterior_equal_to_the_prior_fails_where_the_data_are_informative():
    model = GaussianLinear(dims=2, obs=3, noise_std=0.5)
    torch.manual_seed(2)
    theta = model.prior.sample((150,))
    x = model.simulator(theta)
    prior_draws = model.prior.sample((200, 150)).double()
    res = learning_test(prior_draws, theta, x)
    assert not res["passed"] and res["status"] == ["FAILED", "FAILED"]
    assert max(abs(r) for r in res["r2_posterior"]) < 0.1 and min(res["r2_regression"]) > 0.5


def test_uninformative_data_are_a_note_not_a_failure():
    model = GaussianLinear(dims=2, obs=3)
    torch.manual_seed(3)
    theta = model.prior.sample((150,))
    noise = torch.randn(150, 4)
    res = learning_test(model.prior.sample((200, 150)).double(), theta, noise)
    assert res["passed"] and res["status"] == ["uninformative", "uninformative"]


def test_only_the_parameter_that_was_ignored_fails():
    model = GaussianLinear(dims=2, obs=3, noise_std=0.5)
    theta, x, post = _draws(model, 200, seed=4)
    post = post.clone()
    post[..., 1] = model.prior.sample((post.shape[0], post.shape[1]))[..., 1].double()
    res = learning_test(post, theta, x)
    assert res["status"] == ["learned", "FAILED"]


def test_outliers_and_tiny_scales_in_x_do_not_hide_the_information():
    model = GaussianLinear(dims=2, obs=3, noise_std=0.5)
    torch.manual_seed(5)
    theta = model.prior.sample((150,))
    x = model.simulator(theta) * 1e-12
    x[::50, 0] = 1e30                     # 2% of rows blown up in one feature
    res = learning_test(model.prior.sample((200, 150)).double(), theta, x)
    assert res["status"] == ["FAILED", "FAILED"]


def test_bad_input():
    with pytest.raises(ValueError, match="folds"):
        learning_test(torch.zeros(5, 10, 2), torch.zeros(10, 2), torch.zeros(10, 3), folds=9)
    with pytest.raises(ValueError, match=r"learning_test: expected samples \(L, k, D\)"):
        learning_test(torch.zeros(5), torch.zeros(10, 2), torch.zeros(10, 3))
