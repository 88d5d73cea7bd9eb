"""Regressions of silent failures: outliers, tiny scales, boundary draws, degenerate or diverged training."""

from __future__ import annotations

import warnings

import pytest
import torch

from innverse.amortized import box_uniform, fit_posterior, gaussian

SMALL = {"blocks": 2, "hidden": [32, 32]}


def _linear(n: int = 2000, seed: int = 0):
    """theta ~ N(0, I_2), x = theta + 0.1 eps: the posterior sd is 0.0995 for every observation."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=gen)
    return theta, theta + 0.1 * torch.randn(n, 2, generator=gen)


def _posterior_sd(post, x_obs: torch.Tensor) -> torch.Tensor:
    return post.sample(2000, x_obs, seed=1).std(0)


@pytest.mark.parametrize("x_scaling, learns", [("robust", True), ("moments", False)])
def test_rare_huge_simulations_do_not_turn_the_posterior_into_the_prior(x_scaling, learns):
    """5 of 2,000 simulations at 1e30 (a simulator that blows up): robust scaling still learns the posterior."""
    theta, x = _linear()
    x[:5] = 1e30

    def fit():
        return fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), flow=SMALL, training={"epochs": 30},
                             x_scaling=x_scaling, progress=False)

    if learns:
        sd = _posterior_sd(fit(), torch.tensor([0.5, -0.5]))
        assert (sd < 0.2).all(), sd
    else:  # the failure the robust scaling fixes (the moments are the outliers', the data look constant) is not silent
        with pytest.warns(RuntimeWarning, match="did not beat a Gaussian fit of the prior"):
            post = fit()
        assert (_posterior_sd(post, torch.tensor([0.5, -0.5])) > 0.5).all()
        # ... and the diagnostics battery says FAILED (it said PASS: a prior is perfectly calibrated)
        from innverse.diagnostics import check

        res = check(post, gaussian(0.0, 1.0, dim=2), lambda t: t + 0.1 * torch.randn_like(t), n=100, samples=200)
        assert res["learning"]["status"] == ["FAILED", "FAILED"] and not res.passed


@pytest.mark.parametrize("scale", [1e-12, 1e-8, 1e8])
def test_data_at_any_scale_are_learned(scale):
    theta, x = _linear()
    post = fit_posterior(theta, x * scale, prior=gaussian(0.0, 1.0, dim=2), flow=SMALL, training={"epochs": 30},
                         progress=False)
    x_obs = torch.tensor([0.5, -0.5]) * scale
    s = post.sample(2000, x_obs, seed=1)
    assert (s.std(0) < 0.2).all() and (s.mean(0) - torch.tensor([0.495, -0.495])).abs().max() < 0.1


def test_prior_draws_on_the_boundary_are_inside_the_support():
    prior = box_uniform(0.0, 1.0, dim=2)
    theta = prior.sample((300,))
    theta[0] = torch.tensor([0.0, 1.0])          # exactly on the bounds, as float32 draws sometimes are
    x = theta + 0.05 * torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    post = fit_posterior(theta, x, prior=prior, flow={"blocks": 1, "hidden": [8]}, training={"epochs": 2},
                         progress=False)
    assert torch.isfinite(post.log_prob(torch.tensor([[0.0, 1.0], [0.5, 0.5]]), x[0])).all()
    # a narrow box: float32 draws are few distinct values, many on a bound; all are in the support
    narrow = box_uniform(1.0, 1.0 + 1e-6, dim=1)
    draws = narrow.sample((2000,))
    assert (draws == 1.0).any()
    post = fit_posterior(draws, draws + 1e-7 * torch.randn(2000, 1), prior=narrow, flow={"blocks": 1, "hidden": [8]},
                         training={"epochs": 1}, progress=False)
    assert torch.isfinite(post.log_prob(draws[:50], draws[0])).all()
    assert ((post.sample(100, draws[0]) >= 1.0) & (post.sample(100, draws[0]) <= 1.0 + 1e-6)).all()


def test_too_few_or_no_valid_pairs_are_errors():
    theta, x = _linear(200)
    with pytest.raises(ValueError, match=r"1 valid training pairs \(1 given, 0 dropped.*at least 10"):
        fit_posterior(theta[:1], x[:1], progress=False)
    with pytest.raises(ValueError, match=r"0 valid training pairs \(0 given"):
        fit_posterior(theta[:0], x[:0], progress=False)
    nan = torch.full_like(x, float("nan"))
    with pytest.raises(ValueError, match=r"0 valid training pairs \(200 given, 200 dropped"):
        fit_posterior(theta, nan, drop_invalid=True, progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        fit_posterior(theta, x, training={"batch_size": 0}, progress=False)


def test_a_posterior_that_did_not_beat_the_prior_is_reported():
    """Data independent of the parameters: nothing to learn, and fit_posterior says so."""
    gen = torch.Generator().manual_seed(0)
    theta, noise = torch.randn(1000, 2, generator=gen), torch.randn(1000, 2, generator=gen)
    with pytest.warns(RuntimeWarning, match="did not beat a Gaussian fit of the prior"):
        post = fit_posterior(theta, noise, prior=gaussian(0.0, 1.0, dim=2), flow=SMALL, training={"epochs": 5},
                             progress=False)
    report = post.report
    assert report.baseline_val_loss - report.candidates[report.chosen].val_loss < 0.05 * 2
    # a uniform prior: learning its shape alone is no information gain either
    box = box_uniform(0.0, 1.0, dim=2)
    for seed in range(3):
        theta = torch.rand(1000, 2, generator=torch.Generator().manual_seed(seed))
        with pytest.warns(RuntimeWarning, match="did not beat a Gaussian fit of the prior"):
            fit_posterior(theta, noise, prior=box, flow=SMALL, training={"epochs": 30}, seed=seed, progress=False)
    # an informative data set beats it, without a warning
    theta, x = _linear(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), flow=SMALL, training={"epochs": 5},
                             progress=False)
    assert post.report.candidates[0].val_loss < post.report.baseline_val_loss - 2 * 1.0
