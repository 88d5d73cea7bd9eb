"""RoPE end to end: nothing changes when reality is the simulator, a misspecification is corrected, bad input is refused."""

from __future__ import annotations

import pytest
import torch

from innverse.amortized import Posterior, PosteriorEstimator
from innverse.design import (
    MIN_CALIBRATION,
    RoPEOptions,
    RoPEPosterior,
    check_misspecification,
    fine_tune_posterior,
    rope,
    score_posterior,
)

from .conftest import PRIOR_HIGH, PRIOR_LOW, squashed_linear

OPTIONS = RoPEOptions(simulations=1000, simulations_per_pair=8, folds=3, training={"epochs": 150})


def pairs(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * torch.rand(n, 2, generator=g)
    return theta, squashed_linear(theta, g) + shift


def reality(theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The simulator plus what it lacks: a saturating sensor gain and an offset on every feature."""
    return 1.3 * squashed_linear(theta, generator) + 0.4


def test_identical_simulator_and_reality_leaves_the_posterior_unchanged(npe):
    theta_cal, x_cal = pairs(30, 1)
    theta_test, x_test = pairs(150, 2)
    calibrated = rope(npe, theta_cal, x_cal, squashed_linear, OPTIONS, seed=0)
    before = score_posterior(npe, theta_test, x_test, samples=200, region="central")
    after = score_posterior(calibrated, theta_test, x_test, samples=200, region="central")
    # Spread over 20 seeds of (calibration, test, rope) with this NPE: ACAUC before in [-0.044, +0.023],
    # after in [-0.034, +0.082] (mean +0.022). The mixture over nearby bank posteriors is slightly wider than
    # the NPE (conservative, never over-confident), most when the one-SE rule picks epsilon = 0.1 (6/20 seeds).
    assert abs(before.acauc) < 0.06 and -0.06 < after.acauc < 0.10
    diff = calibrated.log_prob(theta_test, x_test).double() - npe.log_prob(theta_test, x_test).double()
    assert abs(float(diff.mean())) < 0.15 + 3 * float(diff.std()) / 150**0.5   # within noise of the paired difference
    assert calibrated.report["calibration_pairs"] == 30 and len(calibrated.report["fold_best_epochs"]) == 3


def test_rope_corrects_a_misspecified_simulator_where_the_npe_is_overconfident(npe):
    g = torch.Generator().manual_seed(3)
    theta_cal = PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * torch.rand(40, 2, generator=g)
    theta_test = PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * torch.rand(150, 2, generator=g)
    x_cal, x_test = reality(theta_cal, g), reality(theta_test, g)
    before = score_posterior(npe, theta_test, x_test, samples=200, region="central")
    calibrated = rope(npe, theta_cal, x_cal, squashed_linear, OPTIONS, seed=0)
    after = score_posterior(calibrated, theta_test, x_test, samples=200, region="central")
    assert before.acauc < -0.1                           # the uncorrected NPE is clearly over-confident
    assert after.lpp > before.lpp + 1.0
    assert abs(after.acauc) < abs(before.acauc) / 2
    # the transport part alone also corrects it; the stacked pool is a proper mixture of the two parts
    assert isinstance(calibrated.first, RoPEPosterior) and 0.0 <= calibrated.report["stack_weight"] <= 1.0
    transport = score_posterior(calibrated.first, theta_test, x_test, samples=200, region="central")
    assert transport.lpp > before.lpp + 1.0 and abs(transport.acauc) < abs(before.acauc) / 2
    w = torch.tensor(calibrated.report["stack_weight"], dtype=torch.float64)
    pooled = torch.logaddexp(calibrated.first.log_prob(theta_test, x_test).double() + w.log(),
                             calibrated.second.log_prob(theta_test, x_test).double() + (1 - w).log())
    torch.testing.assert_close(calibrated.log_prob(theta_test, x_test).double(), pooled)
    baseline = fine_tune_posterior(npe, theta_cal, x_cal, training={"epochs": 100})
    assert isinstance(baseline, Posterior) and baseline.estimator is not npe.estimator


def test_bad_calibration_sets_are_refused(npe):
    theta, x = pairs(12, 4)
    with pytest.raises(ValueError, match=f"at least {MIN_CALIBRATION} pairs, got 9"):
        rope(npe, theta[:9], x[:9], squashed_linear, OPTIONS)
    outside = theta.clone()
    outside[3, 1] = 1.5
    with pytest.raises(ValueError, match=r"rows \[3\] lie outside the prior's support"):
        rope(npe, outside, x, squashed_linear, OPTIONS)
    with pytest.raises(ValueError, match=r"rope: expected x as one observation \(8,\) or a batch"):
        rope(npe, theta, x[:, :5], squashed_linear, OPTIONS)
    with pytest.raises(ValueError, match="expected 12 calibration observations"):
        rope(npe, theta, x[:11], squashed_linear, OPTIONS)
    with pytest.raises(ValueError, match=r"calibration theta must have shape \(n, 2\)"):
        rope(npe, theta[:, :1], x, squashed_linear, OPTIONS)
    plain = Posterior(PosteriorEstimator(2, (8,), npe.prior))
    with pytest.raises(ValueError, match="no summary network to fine-tune"):
        rope(plain, theta, x, squashed_linear, OPTIONS)
    with pytest.raises(TypeError, match=r"expected an innverse\.amortized\.Posterior"):
        rope(object(), theta, x, squashed_linear, OPTIONS)


def test_the_workflow_flags_misspecification_and_recommends_calibration(npe):
    theta, x_sim = pairs(200, 5)
    clean = check_misspecification(npe, x_sim, calibration_pairs=40)
    assert not clean.flagged and "can be used as it is" in clean.recommendation
    wrong = check_misspecification(npe, reality(theta, torch.Generator().manual_seed(6)), calibration_pairs=40)
    assert wrong.flagged and wrong.p_value < 0.01 and wrong.outlier_share > 0.5
    assert "innverse.design.rope(posterior" in wrong.recommendation
    none = check_misspecification(npe, reality(theta, torch.Generator().manual_seed(6)))
    assert "collect a calibration set of at least 10" in none.recommendation
    with pytest.raises(ValueError, match="calibration_pairs must be an integer"):
        check_misspecification(npe, x_sim, calibration_pairs=-1)
    assert "pass x_simulated=" in clean.recommendation and clean.p_data is None


def test_the_workflow_tests_the_observations_themselves_when_given_simulations(npe):
    _, x_sim = pairs(200, 5)
    _, x_ref = pairs(400, 7)
    clean = check_misspecification(npe, x_sim, x_simulated=x_ref)
    assert not clean.flagged and clean.p_data is not None and "x_simulated" not in clean.recommendation
    assert clean.p_value == pytest.approx(min(1.0, 2 * min(clean.p_summaries, clean.p_data)))
    drifted = x_sim.clone()
    drifted[:, -1] += 0.5 * x_ref[:, -1].std()       # half a standard deviation on one of the 8 features
    report = check_misspecification(npe, drifted, x_simulated=x_ref)
    assert report.p_data < 0.01 and report.flagged
    with pytest.raises(ValueError, match="x_simulated must hold at least 2"):
        check_misspecification(npe, x_sim, x_simulated=x_ref[:1])
    with pytest.raises(ValueError, match=r"check_misspecification: expected x as one observation \(8,\)"):
        check_misspecification(npe, x_sim, x_simulated=x_ref[:, :5])
