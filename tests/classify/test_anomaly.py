"""AnomalyDetector: conformal p-values uniform under the null (KS test), anomalies flagged, clear errors."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from innverse.classify import AnomalyDetector
from innverse.flows import coupling_flow


def _normal_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """A curved 3-D distribution (x2 depends on x1 nonlinearly)."""
    u = torch.randn(n, 3, generator=gen)
    return torch.stack([u[:, 0], u[:, 1], torch.sin(2 * u[:, 0]) + 0.2 * u[:, 2]], 1)


def test_conformal_p_values_are_uniform_under_the_null():
    torch.manual_seed(0)
    detector = AnomalyDetector(coupling_flow(3, blocks=2, hidden=(16,)))  # any flow: validity needs no training
    gen = torch.Generator().manual_seed(1)
    p = []
    for _ in range(400):  # independent calibration sets, one fresh normal input each: i.i.d. p-values
        detector.fit(_normal_data(99, gen), train=False)
        p.append(float(detector.p_value(_normal_data(1, gen))[0]))
    assert detector.calibration_size == 99
    # p takes the values k/100, k = 1..100, each with probability 1/100 (KS against U(0, 1) up to that grid)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert stats.kstest([q - 0.01 * float(torch.rand(1, generator=gen)) for q in p], "uniform").pvalue > 0.01
    shifted = [min(1.0, q * 3) for q in p]                      # the test has power against non-uniform p-values
    assert stats.kstest(shifted, "uniform").pvalue < 1e-6


def test_trained_detector_flags_anomalies_at_the_stated_rate():
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    detector = AnomalyDetector(coupling_flow(3, blocks=3, hidden=(32,)))
    detector.fit(_normal_data(1500, gen), training={"epochs": 30, "batch_size": 128, "lr": 3e-3, "ema": None},
                 calibration_fraction=0.3)
    assert detector.history is not None and len(detector.history.records) >= 5
    normal = _normal_data(4000, gen)
    off_manifold = normal.clone()
    off_manifold[:, 2] = -off_manifold[:, 2]                    # same marginals per coordinate, wrong relation
    flags = detector.predict(normal, fpr=0.05)
    assert float(flags.double().mean()) == pytest.approx(0.05, abs=0.02)
    assert float(detector.predict(off_manifold, fpr=0.05).double().mean()) > 0.5
    t = detector.threshold(0.05)
    torch.testing.assert_close(detector.score(normal) > t, flags)


def test_bad_input_is_named():
    detector = AnomalyDetector(coupling_flow(3, blocks=1, hidden=(8,)))
    with pytest.raises(ValueError, match=r"AnomalyDetector.threshold: needs calibration on normal data"):
        detector.threshold(0.05)
    with pytest.raises(ValueError, match=r"AnomalyDetector.p_value: needs calibration"):
        detector.p_value(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"AnomalyDetector.fit: expected X of shape \(N, 3\)"):
        detector.fit(torch.zeros(10, 4), train=False)
    with pytest.raises(TypeError, match="unconditional innverse Flow"):
        AnomalyDetector(coupling_flow(3, context_features=2, blocks=1))
