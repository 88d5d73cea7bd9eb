"""Calibration metrics against hand-computed values; temperature scaling recovers a known temperature."""

from __future__ import annotations

import math

import pytest
import torch

from innverse.classify import (
    TemperatureScaling,
    calibration_report,
    expected_calibration_error,
    integrated_calibration_error,
    maximum_calibration_error,
    overconfidence,
    reliability_diagram,
)

# Six two-class predictions; top-label confidences 0.9 (right), 0.7 (wrong), 0.7 (right), 0.55 (right),
# 0.95 (right), 0.9 (wrong). With 5 bins: [0.4, 0.6): {0.55: right}; [0.6, 0.8): {0.7, 0.7: one right};
# [0.8, 1]: {0.9, 0.95, 0.9: two right}.
PROBS = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.55, 0.45], [0.95, 0.05], [0.1, 0.9]])
LABELS = torch.tensor([0, 1, 1, 0, 0, 0])


def test_metrics_match_hand_computed_values():
    d = reliability_diagram(PROBS, LABELS, bins=5)
    assert d.counts.tolist() == [0, 0, 1, 2, 3]
    torch.testing.assert_close(d.confidence[2:], torch.tensor([0.55, 0.7, 2.75 / 3], dtype=torch.float64))
    torch.testing.assert_close(d.accuracy[2:], torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    assert torch.isnan(d.confidence[:2]).all()
    # gaps 0.45, 0.2, 0.25
    assert expected_calibration_error(PROBS, LABELS, bins=5) == pytest.approx((0.45 + 2 * 0.2 + 3 * 0.25) / 6)
    assert maximum_calibration_error(PROBS, LABELS, bins=5) == pytest.approx(0.45)
    ice = 0.15 * (0.45 + 0.2) / 2 + (2.75 / 3 - 0.7) * (0.2 + 0.25) / 2     # trapezoid over (conf, gap)
    assert integrated_calibration_error(PROBS, LABELS, bins=5) == pytest.approx(ice)
    assert overconfidence(PROBS, LABELS, tail=0.1) == pytest.approx(0.0)     # only 0.95 is above 0.9, and right
    assert overconfidence(PROBS, LABELS, tail=0.15) == pytest.approx((1 / 3) / 0.15)
    assert math.isnan(overconfidence(PROBS, LABELS, tail=0.01))
    report = calibration_report(PROBS, LABELS, bins=5)
    assert report.accuracy == pytest.approx(4 / 6)
    p_true = torch.tensor([0.9, 0.3, 0.7, 0.55, 0.95, 0.1], dtype=torch.float64)
    assert report.nll == pytest.approx(float(-p_true.log().mean()))


def test_all_class_mode_bins_every_probability():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(300, 4, generator=gen) * 2, 1).double()
    labels = torch.randint(4, (300,), generator=gen)
    bins = 10
    # a plain loop over the 1200 forecasts as the reference
    total, hits, count = [0.0] * bins, [0.0] * bins, [0] * bins
    for i in range(300):
        for k in range(4):
            p = float(probs[i, k])
            b = min(int(p * bins), bins - 1)
            total[b] += p
            hits[b] += float(labels[i] == k)
            count[b] += 1
    ece = sum(abs(hits[b] - total[b]) for b in range(bins) if count[b]) / 1200
    mce = max(abs(hits[b] - total[b]) / count[b] for b in range(bins) if count[b])
    assert expected_calibration_error(probs, labels, bins, mode="all") == pytest.approx(ece)
    assert maximum_calibration_error(probs, labels, bins, mode="all") == pytest.approx(mce)


def test_a_calibrated_forecaster_has_small_errors_and_a_shifted_one_does_not():
    gen = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(20000, 3, generator=gen) * 2, 1).double()
    labels = torch.multinomial(probs, 1, generator=gen)[:, 0]   # labels drawn from the forecasts: calibrated
    assert expected_calibration_error(probs, labels) < 0.015
    sharp = torch.softmax(torch.log(probs) * 3, 1)                # overconfident version
    assert expected_calibration_error(sharp, labels) > 0.08


def test_temperature_scaling_recovers_the_temperature():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(20000, 5, generator=gen, dtype=torch.float64) * 3
    labels = torch.multinomial(torch.softmax(logits / 2.0, 1), 1, generator=gen)[:, 0]
    ts = TemperatureScaling().fit(logits, labels)
    assert ts.temperature == pytest.approx(2.0, rel=0.05)
    assert ts.nll(logits, labels, ts.temperature) < ts.nll(logits, labels, 1.0)
    assert torch.equal(ts(logits).argmax(1), logits.argmax(1))
    assert expected_calibration_error(ts(logits), labels) < expected_calibration_error(torch.softmax(logits, 1), labels)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="reliability_diagram: every row of probs must be a probability vector"):
        reliability_diagram(torch.tensor([[0.5, 0.6]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"class labels labels must lie in 0..1"):
        expected_calibration_error(PROBS, torch.tensor([0, 1, 2, 0, 0, 0]))
    with pytest.raises(ValueError, match="probs has 6 rows but labels has 2"):
        calibration_report(PROBS, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="mode must be one of"):
        reliability_diagram(PROBS, LABELS, mode="classwise")
    with pytest.raises(RuntimeError, match="call fit"):
        TemperatureScaling()(torch.zeros(2, 3))


def test_reliability_plot_draws_the_populated_bins(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from innverse.classify import plot_reliability

    ax = plot_reliability(reliability_diagram(PROBS, LABELS, bins=5), label="model")
    curve = ax.get_lines()[1]
    np_x, np_y = curve.get_data()
    assert list(np_x) == pytest.approx([0.55, 0.7, 2.75 / 3]) and list(np_y) == pytest.approx([1.0, 0.5, 2 / 3])
    ax.figure.savefig(tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 5000
    plt.close(ax.figure)
