"""SBC, coverage (central, HPD, TARP) and recovery against an exactly calibrated analytic posterior."""

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.diagnostics import (
    coverage_test,
    credibility_central,
    credibility_hpd,
    credibility_tarp,
    ecdf_band,
    rank_histogram,
    recovery,
    sbc_ranks,
    sbc_test,
    uniformity_test,
)

from .gaussian_linear import GaussianLinear

K, L = 300, 400  # data sets, posterior samples


@pytest.fixture(scope="module")
def model():
    return GaussianLinear(dims=3, obs=4)


def _run(model, scale=1.0, bias=0.0, seed=0):
    torch.manual_seed(seed)
    theta = model.prior.sample((K,))
    x = model.simulator(theta)
    post = model.posterior(scale, bias)
    samples = post.sample(L, x)
    lp = post.log_prob(samples, x)
    lp_true = post.log_prob(theta[None].double(), x)[0]
    return theta.double(), samples, lp, lp_true


def _all(model, **kw):
    theta, samples, lp, lp_true = _run(model, **kw)
    return {
        "sbc": sbc_test(sbc_ranks(samples, theta), L),
        "central": coverage_test(credibility_central(samples, theta)),
        "hpd": coverage_test(credibility_hpd(lp, lp_true)),
        "tarp": coverage_test(credibility_tarp(samples, theta)),
        "recovery": recovery(samples, theta, prior_variance=torch.ones(3)),
    }


def test_exact_posterior_passes_every_check(model):
    res = _all(model)
    for name, r in res.items():
        assert r["passed"], name
    assert max(res["sbc"]["calibration_error"]) < 0.09
    assert max(res["central"]["max_deviation"]) < 0.09
    assert abs(res["tarp"]["mean_deviation"][0]) < 0.04
    assert np.allclose(res["recovery"]["mean_z2"], 1, atol=0.25)


def test_overconfident_posterior_fails_visibly(model):
    res = _all(model, scale=0.6)
    for name in ("sbc", "central", "hpd", "tarp", "recovery"):
        assert not res[name]["passed"], name
    # too many extreme ranks, credible regions that hold the truth far less often than claimed
    assert min(res["sbc"]["calibration_error"]) > 0.1
    assert max(res["central"]["mean_deviation"]) < -0.1
    assert res["hpd"]["mean_deviation"][0] < -0.15
    assert min(res["recovery"]["mean_z2"]) > 2.0


def test_underconfident_posterior_is_conservative(model):
    res = _all(model, scale=1.6)
    assert not res["central"]["passed"] and not res["hpd"]["passed"]
    assert min(res["central"]["mean_deviation"]) > 0.1
    assert max(res["recovery"]["mean_z2"]) < 0.6


def test_biased_posterior_fails_visibly(model):
    res = _all(model, bias=0.5)
    for name in ("sbc", "central", "hpd", "tarp", "recovery"):
        assert not res[name]["passed"], name
    assert min(res["recovery"]["mean_z"]) > 0.5  # posterior means sit above the truth
    assert min(res["sbc"]["calibration_error"]) > 0.15


def test_wrong_correlations_pass_marginal_sbc_but_fail_hpd_coverage():
    # Strongly correlated posterior; the broken one has exact marginals and the opposite correlation.
    # Marginal ranks cannot see this; the joint density (HPD level = SBC of log q) can.
    model = GaussianLinear(dims=2, obs=2, noise_std=0.3, A=torch.tensor([[1.0, 1.0], [1.0, 1.2]]))
    torch.manual_seed(1)
    theta = model.prior.sample((K,))
    x = model.simulator(theta)
    post = model.posterior(flip_correlation=True)
    samples = post.sample(L, x)
    theta = theta.double()
    assert sbc_test(sbc_ranks(samples, theta), L)["passed"]
    assert coverage_test(credibility_central(samples, theta))["passed"]
    hpd = coverage_test(credibility_hpd(post.log_prob(samples, x), post.log_prob(theta[None], x)[0]))
    assert not hpd["passed"] and hpd["mean_deviation"][0] < -0.2


def test_sbc_p_values_are_uniform_for_the_exact_posterior(model):
    p = []
    for seed in range(25):
        theta, samples, _, _ = _run(model, seed=seed + 100)
        p += sbc_test(sbc_ranks(samples[:100], theta), 100, simulations=1000, seed=seed)["p_value"]
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_ecdf_band_has_simultaneous_level():
    band = ecdf_band(150, level=0.1, simulations=4000, seed=1)
    u = np.random.default_rng(2).uniform(size=(150, 3000))
    outside = 1 - np.mean(uniformity_test(u, band=band)["inside_band"])
    assert abs(outside - 0.1) < 0.02  # 3000 uniform ECDFs: sd of the rate ~0.0055
    assert band.gamma < 0.1 / 10  # pointwise level far below the simultaneous one


def test_ranks_hand_computed():
    samples = torch.tensor([[[0.0]], [[1.0]], [[2.0]], [[3.0]]]).expand(4, 2, 1).clone()
    truth = torch.tensor([[1.5], [-1.0]])
    assert sbc_ranks(samples, truth).flatten().tolist() == [2, 0]
    # ties are broken at random but stay within [#below, #below + #equal]
    r = sbc_ranks(torch.zeros(10, 500, 1), torch.zeros(500, 1))
    assert r.min() >= 0 and r.max() <= 10 and abs(r.double().mean() - 5) < 0.5


def test_rank_histogram_band_and_counts():
    ranks = torch.arange(100).remainder(10)[:, None]  # perfectly flat over 0..9 with L = 9
    h = rank_histogram(ranks, 9, bins=5)
    assert h["counts"] == [[20] * 5]
    assert h["expected"] == pytest.approx([20.0] * 5)
    assert all(lo < 20 < hi for lo, hi in zip(h["lower"], h["upper"]))
    assert h["chi2_p_value"][0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sbc_ranks(torch.zeros(10, 5, 2), torch.zeros(5, 3)), r"expected samples \(L, 5, 3\)"),
        (lambda: sbc_ranks(torch.zeros(10, 5, 2), torch.zeros(5)), r"samples \(L, k, D\) and truth \(k, D\)"),
        (lambda: sbc_ranks(torch.full((10, 5, 2), float("nan")), torch.zeros(5, 2)), "NaN"),
        (lambda: sbc_ranks(torch.zeros(10, 5, 2), torch.tensor([[0.0, float("inf")]] * 5)), "NaN or Inf"),
        (lambda: rank_histogram(torch.zeros(50, 1), 9, bins=20), "only 10 distinct ranks"),
        (lambda: rank_histogram(torch.zeros(30, 1), 100, bins=10), "too few data sets for 10 bins"),
        (lambda: sbc_test(torch.full((50, 1), 12.0), 10), r"integers in 0..10"),
        (lambda: recovery(torch.zeros(1, 5, 2), torch.zeros(5, 2)), "at least 2 posterior samples"),
        (lambda: credibility_hpd(torch.zeros(10, 5), torch.zeros(4)), r"log_prob_truth \(k,\)"),
        (lambda: uniformity_test(torch.tensor([0.5, 1.5])), r"in \[0, 1\]"),
    ],
)
def test_bad_input_gives_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
