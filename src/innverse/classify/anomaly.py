r"""Anomaly detection with a flow: fit on normal data, score, threshold, and a conformal p-value per input."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..core import Flow
from ..diagnostics.conformal import ScoreCalibrator
from ..train import History, TrainConfig
from ._inputs import as_inputs, batched_log_prob, check_fraction
from .classifier import split_indices
from .density import fit_density
from .ood_metrics import threshold_at_fpr

__all__ = ["AnomalyDetector"]


class AnomalyDetector:
    r"""Flags inputs unlike the data a flow was fitted on, with a controlled false-positive rate.

    :meth:`fit` splits the normal data ``X`` into a training part and a calibration part,
    trains the flow on the first (maximum likelihood with :func:`fit_density`, the one training
    loop, early stopping on a further split) and keeps the scores :math:`c_1..c_n` of the
    calibration part. The score of an input is its negative log-likelihood
    :math:`s(x) = -\log p(x)` in raw units, and its conformal p-value

    .. math::
        p(x) = \frac{1 + \#\{i : c_i \ge s(x)\}}{n + 1}

    is uniform on :math:`\{1/(n+1), \dots, 1\}` for a new normal input (exchangeable with the
    calibration inputs), so flagging :math:`p(x) \le \alpha` has a false-positive rate at most
    :math:`\alpha` whatever the quality of the flow; a good flow makes anomalies get small
    p-values. Typical use: simulator outputs as the normal data, to flag real measurements
    unlike any simulation; or tabular records.

    Args:
        flow: an unconditional :class:`~innverse.core.Flow` over the input shape (e.g.
            ``innverse.flows.coupling_flow(D)``); :meth:`fit` trains it, behind a fitted
            standardisation (:attr:`flow` is the trained flow in raw units).

    References:
        Vovk, Gammerman, Shafer. "Algorithmic Learning in a Random World". 2005; Bates, Candès,
        Lei, Romano, Sesia. "Testing for Outliers with Conformal p-values". Ann. Statist. 2023.
    """

    def __init__(self, flow: Flow) -> None:
        if not isinstance(flow, Flow) or flow.conditional:
            raise TypeError(f"AnomalyDetector: expected an unconditional innverse Flow, got {type(flow).__name__}")
        self.flow = flow
        self.calibrator: ScoreCalibrator | None = None
        self.history: History | None = None

    def fit(self, X: Any, *, calibration_fraction: float = 0.2, train: bool = True,
            training: TrainConfig | dict[str, Any] | None = None, noise: float = 0.0, seed: int = 0,
            progress: bool | str = False) -> AnomalyDetector:
        """Train on part of the normal data ``X (N, *event)`` and calibrate on the rest; returns ``self``.

        ``train=False`` keeps the flow as it is (already trained on other data) and uses all of
        ``X`` for calibration. ``noise``: Gaussian training noise (raw units).
        """
        x = as_inputs("AnomalyDetector.fit", X, self.flow.event_shape)
        if train:
            frac = check_fraction("AnomalyDetector.fit", "calibration_fraction", calibration_fraction)
            fit_idx, cal_idx = split_indices(x.shape[0], frac, seed)
            if len(cal_idx) < 1 or len(fit_idx) < 2:
                raise ValueError(f"AnomalyDetector.fit: {x.shape[0]} rows are too few to train and calibrate")
            self.flow, self.history = fit_density(self.flow, x[fit_idx], training=training, noise=noise, seed=seed,
                                                  progress=progress)
            x = x[cal_idx]
        self.calibrator = ScoreCalibrator(self.score(x), 0.5)
        return self

    def score(self, X: Any) -> Tensor:
        r"""Anomaly scores :math:`-\log p(x)`, ``(N,)`` (float64)."""
        x = as_inputs("AnomalyDetector.score", X, self.flow.event_shape)
        return -batched_log_prob("AnomalyDetector.score", self.flow, x).double()

    def _calibrated(self, owner: str) -> ScoreCalibrator:
        if self.calibrator is None:
            raise ValueError(f"AnomalyDetector.{owner}: needs calibration on normal data; call fit(X) first")
        return self.calibrator

    def p_value(self, X: Any) -> Tensor:
        """Conformal p-values ``(N,)``: small for anomalies, uniform for new normal inputs."""
        return self._calibrated("p_value").p_values(self.score(X))

    def threshold(self, fpr: float = 0.05) -> float:
        """Score threshold with false-positive rate at most ``fpr`` (flag ``score > threshold``)."""
        return threshold_at_fpr(self._calibrated("threshold").calibration_scores, fpr)

    def predict(self, X: Any, fpr: float = 0.05) -> Tensor:
        """Boolean flags ``(N,)``: ``True`` for inputs whose p-value is at most ``fpr``."""
        check_fraction("AnomalyDetector.predict", "fpr", fpr)
        return self.p_value(X) <= fpr + 1e-12

    @property
    def calibration_size(self) -> int:
        return 0 if self.calibrator is None else int(self.calibrator.calibration_scores.numel())
