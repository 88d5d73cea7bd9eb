"""The Gaussian likelihood of NLE: its closed-form fit and density against independent formulas, the exact
posterior it gives on a linear-Gaussian simulator, SNLE's held-out choice between it and the flow (the
Gaussian where the likelihood is linear-Gaussian, the flow where it is not), saving, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import innverse
from innverse.amortized import (
    GaussianLikelihood,
    LikelihoodPosterior,
    MCMCConfig,
    box_uniform,
    fit_likelihood,
    fit_sequential_likelihood,
    gaussian,
)
from innverse.amortized.sequential_likelihood import MAX_WIDENING

SMALL_MCMC = MCMCConfig(chains=20, warmup=300, init_draws=2000)
# x = B theta + c + noise with correlated noise: the likelihood is exactly the Gaussian model
B = torch.tensor([[1.0, 0.5, 0.0], [-0.3, 1.2, 0.4]], dtype=torch.float64)   # (D=2, F=3)
C = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
L = torch.tensor([[0.3, 0.0, 0.0], [0.1, 0.2, 0.0], [-0.05, 0.1, 0.25]], dtype=torch.float64)


def _linear(theta: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(theta.shape[0], 3, dtype=torch.float64) @ L.T
    return (theta.double() @ B + C + noise).to(theta.dtype)


def _exact_posterior(x: torch.Tensor, prior_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """The conjugate posterior of N(0, prior_sd^2 I) x N(x; B^T theta + c, L L^T)."""
    b, s = B.numpy(), (L @ L.T).numpy()
    precision = np.eye(2) / prior_sd**2 + b @ np.linalg.solve(s, b.T)
    cov = np.linalg.inv(precision)
    return cov @ b @ np.linalg.solve(s, x.double().numpy() - C.numpy()), cov


def test_the_fit_recovers_the_linear_gaussian_model_and_its_density_is_scipys():
    torch.manual_seed(0)
    theta = torch.randn(20_000, 2, dtype=torch.float64)
    model = GaussianLikelihood.fit(theta, _linear(theta))
    assert model.theta_dim == 3 and model.x_shape == (2,)
    assert torch.allclose(model.coef, B, atol=0.01) and torch.allclose(model.intercept, C, atol=0.01)
    cov = model.scale_tril @ model.scale_tril.T
    assert torch.allclose(cov, L @ L.T, atol=0.005)
    th, x = torch.randn(5, 2), torch.randn(5, 3)
    expected = [stats.multivariate_normal(th[i].double().numpy() @ model.coef.numpy() + model.intercept.numpy(),
                                          cov.numpy()).logpdf(x[i].double().numpy()) for i in range(5)]
    assert np.allclose(model.log_prob(x, th).numpy(), expected, atol=1e-4)


def test_the_gaussian_nle_posterior_is_the_exact_conjugate_one():
    torch.manual_seed(1)
    prior = gaussian(0.0, 1.0, dim=2)
    theta = prior.sample((3000,))
    post = fit_likelihood(theta, _linear(theta), prior, mcmc=SMALL_MCMC, model="gaussian")
    assert isinstance(post.likelihood, GaussianLikelihood)
    xo = torch.tensor([1.0, 0.0, 2.5])
    mean, cov = _exact_posterior(xo, 1.0)
    s = post.sample(2000, xo, seed=0).double().numpy()
    info = post.diagnostics[0]
    ess = info["min_bulk_ess"] * 2000 / (info["chains"] * info["draws_per_chain"])
    for j in range(2):
        sd = math.sqrt(cov[j, j])
        assert abs(s[:, j].mean() - mean[j]) < 4.5 * sd / math.sqrt(ess) + 0.02 * sd
        distance = stats.kstest(s[:, j], "norm", args=(mean[j], sd)).statistic
        assert stats.kstwo.sf(distance, int(ess)) > 1e-3, (j, distance, ess)


def test_auto_snle_chooses_the_gaussian_where_the_likelihood_is_linear_gaussian():
    torch.manual_seed(2)
    prior = gaussian(0.0, 2.0, dim=2)
    xo = torch.tensor([1.0, 0.0, 2.5])
    post, report = fit_sequential_likelihood(_linear, prior, xo, rounds=3, simulations_per_round=400, seed=0,
                                             mcmc=SMALL_MCMC, likelihood="auto",
                                             flow={"blocks": 2, "hidden": [32, 32]}, training={"epochs": 15})
    assert report.held_out[0] == {} and set(report.held_out[1]) == {"flow", "gaussian"}
    assert report.likelihoods[0] == "flow" and report.likelihoods[-1] == "gaussian"
    assert report.held_out[-1]["gaussian"] > report.held_out[-1]["flow"]
    assert report.widening[0] is None and report.widening[-1] <= MAX_WIDENING
    assert isinstance(post.likelihood, GaussianLikelihood)
    mean, cov = _exact_posterior(xo, 2.0)
    s = post.sample(2000, xo, seed=1).double().numpy()
    # the fit's own estimation error (800 simulations) and the chains': within a quarter of a posterior sd
    assert (np.abs(s.mean(0) - mean) < 0.25 * np.sqrt(cov.diagonal())).all(), (s.mean(0), mean)
    assert np.allclose(s.std(0), np.sqrt(cov.diagonal()), rtol=0.15)


def _squares(theta: torch.Tensor) -> torch.Tensor:
    return theta.square() + 0.1 * torch.randn_like(theta)


def test_auto_snle_keeps_the_flow_where_a_linear_mean_cannot_hold():
    """x = theta^2 + noise: the posterior of x_o = (1, 1) has four modes at (+-1, +-1), over which the mean
    of x is not linear in theta; the Gaussian predicts the held-out simulations worse, and is not chosen."""
    torch.manual_seed(3)
    prior = box_uniform(-2.0, 2.0, dim=2)
    xo = torch.tensor([1.0, 1.0])
    post, report = fit_sequential_likelihood(_squares, prior, xo, rounds=2, simulations_per_round=1500, seed=0,
                                             mcmc=SMALL_MCMC, likelihood="auto",
                                             flow={"blocks": 3, "hidden": [32, 32]}, training={"epochs": 30})
    assert report.likelihoods == ["flow", "flow"]
    assert report.held_out[1]["flow"] > report.held_out[1]["gaussian"]
    s = post.sample(2000, xo, seed=1)
    quadrants = torch.bincount((s[:, 0] > 0).long() * 2 + (s[:, 1] > 0).long(), minlength=4).double() / 2000
    assert float(quadrants.min()) > 0.15, quadrants
    assert float((s.abs() - 1).abs().median()) < 0.1


def test_a_gaussian_likelihood_posterior_saves_and_loads(tmp_path):
    torch.manual_seed(4)
    prior = gaussian(0.0, 1.0, dim=2)
    theta = prior.sample((500,))
    x = _linear(theta)
    x[:, 0] = x[:, 0].round()   # an integer feature: dequantised, its mask saved
    post = fit_likelihood(theta, x, prior, mcmc=SMALL_MCMC, model="gaussian")
    assert post.dequantized.tolist() == [True, False, False]
    innverse.save(post, tmp_path / "g.innverse")
    loaded = innverse.load(tmp_path / "g.innverse")
    assert isinstance(loaded, LikelihoodPosterior) and isinstance(loaded.likelihood, GaussianLikelihood)
    xo = torch.tensor([1.0, 0.0, 2.5])
    assert torch.equal(loaded.sample(300, xo, seed=5), post.sample(300, xo, seed=5))
    assert torch.equal(loaded.dequantized, post.dequantized)


def test_bad_input_to_the_gaussian_likelihood_is_refused():
    prior = gaussian(0.0, 1.0, dim=2)
    theta = prior.sample((6,))
    with pytest.raises(ValueError, match=r"GaussianLikelihood.fit: .*2 parameters .*3 data features need more than "
                                         r"6 simulations, got 6"):
        fit_likelihood(theta, _linear(theta), prior, model="gaussian")
    with pytest.raises(ValueError, match="model must be one of"):
        fit_likelihood(theta, _linear(theta), prior, model="mixture")
    with pytest.raises(ValueError, match=r"takes no training options; got \['training'\]"):
        fit_likelihood(theta, _linear(theta), prior, model="gaussian", training={"epochs": 2})
    with pytest.raises(ValueError, match="likelihood must be 'flow', 'gaussian' or 'auto', got 'best'"):
        fit_sequential_likelihood(_linear, prior, torch.zeros(3), likelihood="best")
    with pytest.raises(ValueError, match=r"Gaussian likelihood takes no training options; got \['flow'\]"):
        fit_sequential_likelihood(_linear, prior, torch.zeros(3), likelihood="gaussian", flow={"blocks": 2})
    with pytest.raises(ValueError, match=r"expected coef \(D, F\), intercept \(F,\) and scale_tril \(F, F\)"):
        GaussianLikelihood(torch.zeros(2, 3), torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="positive diagonal"):
        GaussianLikelihood(torch.zeros(2, 3), torch.zeros(3), torch.zeros(3, 3))
    theta = prior.sample((100,))
    x = _linear(theta)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="must be finite"):
        GaussianLikelihood.fit(theta, x)


def _spread(theta: torch.Tensor) -> torch.Tensor:
    """theta_1 moves the mean of x, theta_2 only its spread (to which a Gaussian with a fixed covariance is blind)."""
    noise = torch.randn(theta.shape[0], 4)
    mean = torch.cat([theta[:, :1].expand(-1, 2), torch.zeros(theta.shape[0], 2)], 1)
    scale = torch.cat([torch.full((theta.shape[0], 2), 0.2), theta[:, 1:].exp().expand(-1, 2)], 1)
    return mean + scale * noise


def test_auto_snle_keeps_the_flow_where_a_parameter_moves_only_the_spread():
    torch.manual_seed(5)
    prior = box_uniform(-1.5, 1.5, dim=2)
    xo = torch.tensor([0.3, 0.4, 2.0, -1.5])     # a wide spread: theta_2 near log 1.8
    post, report = fit_sequential_likelihood(_spread, prior, xo, rounds=3, simulations_per_round=800, seed=0,
                                             mcmc=SMALL_MCMC, likelihood="auto",
                                             flow={"blocks": 3, "hidden": [32, 32]}, training={"epochs": 30})
    assert report.likelihoods[-1] == "flow", report
    assert all(w is None or w > 0 for w in report.widening)
    s = post.sample(2000, xo, seed=3)
    # the prior's sd is 0.87; two draws of the spread still pin theta_2 down to about a third of that
    assert float(s[:, 1].std()) < 0.5 and float(s[:, 1].mean()) > 0.0


def test_a_gaussian_blind_to_a_parameter_is_refused_even_where_it_scores_better(monkeypatch):
    """The width guard alone: with the held-out score rigged for the Gaussian, its posterior (theta_2 left at
    the prior's width, the mean of x does not move with it) is far wider than the flow's, and the flow is kept."""
    from innverse.amortized import sequential_likelihood

    monkeypatch.setattr(sequential_likelihood, "_held_out_score", lambda model, theta, x: float(
        isinstance(model.likelihood, GaussianLikelihood)))
    torch.manual_seed(5)
    prior = box_uniform(-1.5, 1.5, dim=2)
    xo = torch.tensor([0.3, 0.4, 2.0, -1.5])
    post, report = fit_sequential_likelihood(_spread, prior, xo, rounds=2, simulations_per_round=800, seed=0,
                                             mcmc=SMALL_MCMC, likelihood="auto",
                                             flow={"blocks": 3, "hidden": [32, 32]}, training={"epochs": 30})
    assert report.held_out[1] == {"flow": 0.0, "gaussian": 1.0}
    assert report.widening[1] > MAX_WIDENING and report.likelihoods == ["flow", "flow"]
    assert not isinstance(post.likelihood, GaussianLikelihood)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.pop("likelihood.scale_tril"), r"lacks the tensors \['scale_tril'\]"),
        (lambda t: t.update({"likelihood.intercept": torch.zeros(2, dtype=torch.float64)}),
         r"invalid: GaussianLikelihood: expected coef \(D, F\)"),
        (lambda t: t.update({"likelihood.scale_tril": -torch.eye(3, dtype=torch.float64)}), "positive diagonal"),
        (lambda t: t.update({"likelihood.extra": torch.zeros(1)}), "tensors no part of its LikelihoodPosterior uses"),
    ],
    ids=["missing", "wrong-shape", "negative-scale", "extra"],
)
def test_malformed_gaussian_likelihood_files_are_refused(tmp_path, change, match):
    from innverse.io import ModelFileError
    from innverse.io.format import read_model_file, write_model_file

    prior = gaussian(0.0, 1.0, dim=2)
    torch.manual_seed(0)   # the data only make a file to damage; fixed, they cannot trip the linearity check's 1e-3
    theta = prior.sample((100,))
    path = innverse.save(fit_likelihood(theta, _linear(theta), prior, model="gaussian"), tmp_path / "g.innverse")
    envelope, tensors = read_model_file(path)
    change(tensors)
    bad = write_model_file(tmp_path / "bad.innverse", envelope["kind"], envelope["config"], tensors,
                           envelope["innverse_version"])
    with pytest.raises(ModelFileError, match=match):
        innverse.load(bad)


def test_the_linearity_check_is_calibrated_where_the_mean_is_linear():
    """Exactly linear-Gaussian data: the check's p-values are uniform (KS), Bonferroni keeps false alarms below 1e-3."""
    from scipy import stats

    from innverse.amortized.gaussian_likelihood import NONLINEAR_P, nonlinear_mean

    gen = torch.Generator().manual_seed(0)
    raw, alarms = [], 0
    for _ in range(1000):
        theta = torch.randn(120, 2, generator=gen, dtype=torch.float64)
        x = theta @ B + C + torch.randn(120, 3, generator=gen, dtype=torch.float64) @ L.T
        found = nonlinear_mean(theta, x[:, :1])          # one feature: no Bonferroni factor, so p itself is tested
        raw.append(found.p_value)
        alarms += nonlinear_mean(theta, x).p_value < NONLINEAR_P
    assert stats.kstest(raw, "uniform").pvalue > 1e-3
    assert alarms <= 4                                   # expected at most 1 (binomial(1000, 1e-3) > 4: p = 0.004)


def test_the_amortized_gaussian_likelihood_warns_where_the_mean_is_not_linear():
    """x = theta^2 + noise over a prior: quadratic terms explain most of the variance, and fit_likelihood says so,
    naming the feature; the same fit on linear data is silent (the suite runs with warnings as errors)."""
    prior = gaussian(0.0, 1.0, dim=2)
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(500, 2, generator=gen)
    x = torch.stack([theta[:, 0] + 0.1 * torch.randn(500, generator=gen),
                     theta[:, 1] ** 2 + 0.1 * torch.randn(500, generator=gen)], 1)
    with pytest.warns(RuntimeWarning, match=r"mean of data feature 1 is not linear in the parameters .* model='flow'"):
        fit_likelihood(theta, x, prior, model="gaussian")
    fit_likelihood(theta, torch.stack([x[:, 0], theta[:, 1] + 0.1 * torch.randn(500, generator=gen)], 1), prior,
                   model="gaussian")
