"""Out-of-simulation detection: false-positive rate near the level, shifted simulators flagged."""

import pytest
import torch
from scipy import stats

from innverse.diagnostics import (
    MisspecificationWarning,
    ScoreCalibrator,
    SummaryOutlierDetector,
    misspecification_test,
)


def _simulate(n: int, g: torch.Generator, shift: float = 0.0) -> torch.Tensor:
    """Summaries on a curved 2-D manifold in 3-D, as a summary network's output often is."""
    th = torch.rand(n, 2, generator=g) * 4 - 2
    noise = 0.1 * torch.randn(n, 3, generator=g)
    x = torch.stack([th[:, 0], th[:, 0] ** 2 + th[:, 1], torch.sin(th[:, 1])], 1) + noise
    return x + torch.tensor([0.0, 0.0, shift])


@pytest.fixture(scope="module")
def reference():
    return _simulate(3000, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["kernel", "knn", "mahalanobis"])
def test_false_positive_rate_is_near_the_level(reference, method):
    det = SummaryOutlierDetector(reference, level=0.05, method=method)
    fresh = _simulate(4000, torch.Generator().manual_seed(1))
    rate = float(det.flags(fresh).double().mean())
    # conformal guarantee: E[rate] = floor(0.05 * 1501) / 1501 ~ 0.0493; 4000 draws: sd ~ 0.0035
    assert 0.038 < rate < 0.062
    p = det.p_values(fresh[:1000]).numpy()
    assert stats.kstest(p, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("method", ["kernel", "knn"])
def test_shifted_simulator_is_flagged(reference, method):
    det = SummaryOutlierDetector(reference, level=0.01, method=method)
    shifted = _simulate(500, torch.Generator().manual_seed(2), shift=1.0)
    assert float(det.flags(shifted).double().mean()) > 0.8
    far = _simulate(20, torch.Generator().manual_seed(3), shift=50.0)
    assert bool(det.flags(far).all())
    assert bool((det.p_values(far) == 1 / (1 + 1500)).all())
    assert bool(torch.isfinite(det.score(far)).all())


def test_mahalanobis_flags_gross_outliers(reference):
    det = SummaryOutlierDetector(reference, level=0.01, method="mahalanobis")
    assert bool(det.flags(_simulate(50, torch.Generator().manual_seed(4), shift=3.0)).all())


def test_threshold_agrees_with_flags(reference):
    det = SummaryOutlierDetector(reference, level=0.02)
    s = _simulate(2000, torch.Generator().manual_seed(5), shift=0.3)
    assert torch.equal(det.flags(s), det.score(s) > det.threshold)


def test_state_dict_round_trip_into_empty_detector(reference):
    det = SummaryOutlierDetector(reference, level=0.05, method="knn", k=7)
    empty = SummaryOutlierDetector()
    empty.load_state_dict(det.state_dict())
    s = _simulate(50, torch.Generator().manual_seed(6), shift=0.2)
    assert torch.equal(empty.score(s), det.score(s))
    assert torch.equal(empty.flags(s), det.flags(s))
    assert (empty.method, empty.level, empty.threshold) == ("knn", 0.05, det.threshold)
    assert {"shift", "whitener", "fit", "bandwidth", "calibrator.calibration_scores"} <= set(det.state_dict())


def test_float32_model_and_single_summary(reference):
    det = SummaryOutlierDetector(reference, level=0.05).to(torch.float32)
    one = _simulate(1, torch.Generator().manual_seed(7))[0]
    assert det.score(one).shape == (1,)
    assert det.flags(one.numpy()).dtype == torch.bool


def test_detector_bad_input(reference):
    det = SummaryOutlierDetector(reference, level=0.05)
    with pytest.raises(ValueError, match=r"expected summaries of shape \(k, 3\)"):
        det.score(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        det.flags(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="too few for level"):
        SummaryOutlierDetector(reference[:100], level=0.01)
    with pytest.raises(ValueError, match="method"):
        SummaryOutlierDetector(reference, method="isolation-forest")
    with pytest.raises(RuntimeError, match="empty"):
        SummaryOutlierDetector().score(torch.zeros(1, 3))


def test_score_calibrator_p_values_are_exact():
    cal = ScoreCalibrator(torch.arange(1.0, 100.0), level=0.05)  # 99 scores: p = (1 + #>=)/100
    p = cal.p_values(torch.tensor([0.0, 50.0, 95.5, 99.0, 1e9]))
    assert p.tolist() == pytest.approx([1.0, 0.51, 0.05, 0.02, 0.01])
    assert cal.threshold == 95.0
    assert cal.flags(torch.tensor([95.0, 95.5])).tolist() == [False, True]


def test_set_level_test_calibrated_and_powerful(reference):
    g = torch.Generator().manual_seed(8)
    p_null = [misspecification_test(_simulate(10, g), reference, permutations=200, max_simulated=300,
                                    seed=i)["p_value"] for i in range(60)]
    assert stats.kstest(p_null, "uniform").pvalue > 0.01
    res = misspecification_test(_simulate(10, g, shift=0.6), reference, permutations=200, max_simulated=300)
    assert res["flagged"] and res["p_value"] < 0.01
    with pytest.raises(ValueError, match="at least 2 samples"):
        misspecification_test(_simulate(1, g), reference)


def test_warn_outliers_names_the_flagged_observations(reference):
    det = SummaryOutlierDetector(reference, level=0.01)
    s = torch.cat([_simulate(3, torch.Generator().manual_seed(9)), _simulate(1, torch.Generator().manual_seed(9),
                                                                             shift=30.0)])
    with pytest.warns(MisspecificationWarning, match=r"1 of 4 observation\(s\) lie outside.*3 \(p = "):
        flags = det.warn_outliers(s, owner="Posterior.sample")
    assert flags.tolist() == [False, False, False, True]
    det.warn_outliers(s[:3])  # nothing flagged: no warning (warnings are errors in the test suite)
