r"""Temperature scaling: the one-parameter recalibration baseline for classifiers."""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from .._tensors import check_finite, to_tensor
from ._inputs import as_labels

__all__ = ["TemperatureScaling"]


def _logits(owner: str, logits: Any) -> Tensor:
    t = to_tensor(logits, "logits", owner, torch.float64).detach()
    if t.dim() != 2 or t.shape[1] < 2 or t.shape[0] == 0:
        raise ValueError(f"{owner}: expected logits of shape (N, K) with K >= 2, got {tuple(t.shape)}")
    check_finite(t, "logits", owner)
    return t


class TemperatureScaling:
    r"""Recalibrate class logits by one temperature: :math:`p_T(k \mid x) = \mathrm{softmax}(\ell(x) / T)_k`.

    :meth:`fit` chooses :math:`T` to minimise the negative log-likelihood of held-out labels,

    .. math::
        T^\star = \arg\min_T\; -\frac1n\sum_i \log \mathrm{softmax}(\ell_i / T)_{y_i},

    a convex problem in :math:`1/T` solved by a bounded scalar search over :math:`\log T`.
    Accuracy is unchanged (the ranking of the classes is), only confidence moves; the usual
    baseline against which intrinsically calibrated models are compared. Log-probabilities
    (e.g. an IB-INN's :math:`\log p(k \mid x)`) are valid logits.

    Args:
        bounds: search interval of :math:`\log T`.

    References:
        Guo, Pleiss, Sun, Weinberger. "On Calibration of Modern Neural Networks". ICML 2017.
    """

    def __init__(self, bounds: tuple[float, float] = (-5.0, 5.0)) -> None:
        if not bounds[0] < bounds[1]:
            raise ValueError(f"TemperatureScaling: bounds must be (low, high) with low < high, got {bounds}")
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.temperature: float | None = None

    @staticmethod
    def nll(logits: Tensor, labels: Tensor, temperature: float) -> float:
        """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
        return float(-torch.log_softmax(logits / temperature, 1).gather(1, labels[:, None]).mean())

    def fit(self, logits: Any, labels: Any) -> TemperatureScaling:
        """Choose :math:`T` on validation ``logits (N, K)`` and ``labels (N,)``; returns ``self``."""
        ell = _logits("TemperatureScaling.fit", logits)
        y, _ = as_labels("TemperatureScaling.fit", labels, ell.shape[1], "labels")
        if y.shape[0] != ell.shape[0]:
            raise ValueError(f"TemperatureScaling.fit: logits has {ell.shape[0]} rows but labels has {y.shape[0]}")
        result = minimize_scalar(lambda log_t: self.nll(ell, y, math.exp(log_t)), bounds=self.bounds,
                                 method="bounded", options={"xatol": 1e-6})
        self.temperature = math.exp(float(result.x))
        return self

    def log_proba(self, logits: Any) -> Tensor:
        r"""Calibrated :math:`\log p_T(k \mid x)`, ``(N, K)`` (float64)."""
        if self.temperature is None:
            raise RuntimeError("TemperatureScaling.log_proba: call fit(logits, labels) on validation data first")
        return torch.log_softmax(_logits("TemperatureScaling.log_proba", logits) / self.temperature, 1)

    def __call__(self, logits: Any) -> Tensor:
        r"""Calibrated probabilities :math:`p_T(k \mid x)`, ``(N, K)`` (float64)."""
        return self.log_proba(logits).exp()
