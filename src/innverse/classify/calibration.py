r"""Calibration of class probabilities: reliability diagrams, ECE, MCE, ICE and the overconfidence ratio."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._tensors import check_finite, to_tensor
from ._inputs import as_labels

__all__ = [
    "CalibrationReport",
    "ReliabilityDiagram",
    "calibration_report",
    "expected_calibration_error",
    "integrated_calibration_error",
    "maximum_calibration_error",
    "overconfidence",
    "plot_reliability",
    "reliability_diagram",
]

MODES = ("top", "all")


def _probs_labels(owner: str, probs: Any, labels: Any) -> tuple[Tensor, Tensor]:
    p = to_tensor(probs, "probs", owner, torch.float64).detach()
    if p.dim() != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise ValueError(f"{owner}: expected probs of shape (N, K) with K >= 2 classes, got {tuple(p.shape)}")
    check_finite(p, "probs", owner)
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-4):
        raise ValueError(f"{owner}: every row of probs must be a probability vector (>= 0, summing to 1)")
    y, _ = as_labels(owner, labels, p.shape[1], "labels")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{owner}: probs has {p.shape[0]} rows but labels has {y.shape[0]}")
    return p, y


def _forecasts(p: Tensor, y: Tensor, mode: str, owner: str) -> tuple[Tensor, Tensor]:
    """``(forecast probabilities, whether each came true)`` for the chosen mode."""
    if mode == "top":
        conf, pred = p.max(1)
        return conf, (pred == y).to(p.dtype)
    if mode == "all":
        hit = torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)
        return p.reshape(-1), hit.reshape(-1)
    raise ValueError(f"{owner}: mode must be one of {MODES}, got {mode!r}")


@dataclass(frozen=True)
class ReliabilityDiagram:
    r"""Binned calibration curve: per bin the mean forecast (``confidence``), the observed
    frequency (``accuracy``) and the number of forecasts (``counts``); empty bins hold NaN.

    Attributes:
        edges: ``(B + 1,)`` bin edges on ``[0, 1]``.
        confidence, accuracy, counts: ``(B,)`` each.
        mode: ``"top"`` (the top-label confidence, Guo et al. 2017) or ``"all"`` (every class
            probability as a forecast of that class, as in Ardizzone et al. 2020).
    """

    edges: Tensor
    confidence: Tensor
    accuracy: Tensor
    counts: Tensor
    mode: str

    @property
    def gaps(self) -> Tensor:
        """``|accuracy - confidence|`` per bin (NaN for empty bins)."""
        return (self.accuracy - self.confidence).abs()


def reliability_diagram(probs: Any, labels: Any, bins: int = 15, mode: str = "top") -> ReliabilityDiagram:
    r"""The reliability diagram of class probabilities ``probs (N, K)`` against integer ``labels (N,)``.

    Forecasts :math:`p_i` fall into ``bins`` equal-width bins :math:`B_b` of ``[0, 1]`` (the last
    bin closed); :math:`\mathrm{conf}_b = \frac{1}{|B_b|}\sum_{i \in B_b} p_i`,
    :math:`\mathrm{acc}_b = \frac{1}{|B_b|}\sum_{i \in B_b} o_i` where :math:`o_i` is whether the
    forecast came true (``mode="top"``: the predicted class is right).
    """
    owner = "reliability_diagram"
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"{owner}: bins must be a positive int, got {bins!r}")
    p, y = _probs_labels(owner, probs, labels)
    f, hit = _forecasts(p, y, mode, owner)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = torch.clamp(torch.bucketize(f, edges[1:-1], right=True), max=bins - 1)
    counts = torch.bincount(index, minlength=bins).to(torch.float64)
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, f)
    hits = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, hit)
    with torch.no_grad():
        conf = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, math.nan))
        acc = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, math.nan))
    return ReliabilityDiagram(edges, conf, acc, counts.long(), mode)


def expected_calibration_error(probs: Any, labels: Any, bins: int = 15, mode: str = "top") -> float:
    r"""ECE :math:`= \sum_b \frac{|B_b|}{n}\,\lvert \mathrm{acc}_b - \mathrm{conf}_b\rvert` (Naeini et al. 2015; Guo et al. 2017)."""
    d = reliability_diagram(probs, labels, bins, mode)
    filled = d.counts > 0
    return float((d.counts[filled] * d.gaps[filled]).sum() / d.counts.sum())


def maximum_calibration_error(probs: Any, labels: Any, bins: int = 15, mode: str = "top") -> float:
    r"""MCE :math:`= \max_b \lvert \mathrm{acc}_b - \mathrm{conf}_b\rvert` over the non-empty bins."""
    d = reliability_diagram(probs, labels, bins, mode)
    return float(d.gaps[d.counts > 0].max())


def integrated_calibration_error(probs: Any, labels: Any, bins: int = 15, mode: str = "top") -> float:
    r"""ICE :math:`= \int \lvert \mathrm{acc}(c) - c\rvert\,dc`, the area between the reliability curve and the diagonal.

    The curve is linear between the non-empty bins' points :math:`(\mathrm{conf}_b, \mathrm{gap}_b)`
    (trapezoidal rule), so, unlike the ECE, a well-populated bin of confident predictions does
    not hide miscalibration in the sparse bins; 0 with a single non-empty bin.

    References:
        Ardizzone, Mackowiak, Rother, Köthe. NeurIPS 2020 (the "integrated calibration error").
    """
    d = reliability_diagram(probs, labels, bins, mode)
    filled = d.counts > 0
    return float(torch.trapezoid(d.gaps[filled], d.confidence[filled])) if int(filled.sum()) > 1 else 0.0


def overconfidence(probs: Any, labels: Any, tail: float = 0.003) -> float:
    r"""Overconfidence ratio: error rate among predictions with confidence above :math:`1 - \tau`, divided by :math:`\tau`.

    A calibrated classifier errs on at most a fraction :math:`\tau` of the predictions it makes
    with confidence :math:`> 1 - \tau`, so the ratio is :math:`\le 1`; above 1 it is
    overconfident where it matters most. NaN when no prediction is that confident.

    References:
        Ardizzone, Mackowiak, Rother, Köthe. NeurIPS 2020 (the overconfidence measure of their code).
    """
    if not 0 < tail < 1:
        raise ValueError(f"overconfidence: tail must be in (0, 1), got {tail!r}")
    p, y = _probs_labels("overconfidence", probs, labels)
    conf, pred = p.max(1)
    sure = conf > 1 - tail
    if not bool(sure.any()):
        return math.nan
    return float((pred[sure] != y[sure]).double().mean() / tail)


@dataclass(frozen=True)
class CalibrationReport:
    """Accuracy, negative log-likelihood (nats) and the calibration errors of one set of predictions."""

    accuracy: float
    nll: float
    ece: float
    mce: float
    ice: float
    overconfidence: float
    diagram: ReliabilityDiagram

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("accuracy", "nll", "ece", "mce", "ice", "overconfidence")}


def calibration_report(probs: Any, labels: Any, bins: int = 15, mode: str = "top",
                       tail: float = 0.003) -> CalibrationReport:
    """All calibration measures of ``probs (N, K)`` against ``labels (N,)`` (see the functions above)."""
    p, y = _probs_labels("calibration_report", probs, labels)
    nll = float(-torch.log(p.gather(1, y[:, None]).clamp(min=1e-300)).mean())
    return CalibrationReport(float((p.argmax(1) == y).double().mean()), nll,
                             expected_calibration_error(p, y, bins, mode), maximum_calibration_error(p, y, bins, mode),
                             integrated_calibration_error(p, y, bins, mode), overconfidence(p, y, tail),
                             reliability_diagram(p, y, bins, mode))


def plot_reliability(diagram: ReliabilityDiagram, ax: Any = None, label: str | None = None) -> Any:
    """Draw a reliability diagram (accuracy against confidence, the diagonal for reference); returns the axes.

    Needs matplotlib (``pip install 'innverse[plots]'``), imported only here.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    filled = diagram.counts > 0
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    ax.plot(diagram.confidence[filled].numpy(), diagram.accuracy[filled].numpy(), "o-", label=label)
    ax.set_xlabel("confidence" if diagram.mode == "top" else "forecast probability")
    ax.set_ylabel("accuracy" if diagram.mode == "top" else "observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if label is not None:
        ax.legend()
    return ax
