"""The misspecification-aware workflow: test real observations against the simulations, and say what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import diagnostics
from ..amortized import Posterior
from ..amortized.inputs import check_x
from .rope import MIN_CALIBRATION

__all__ = ["MisspecificationReport", "check_misspecification"]


@dataclass(frozen=True)
class MisspecificationReport:
    """Whether real observations look like the simulations, and the recommended next step.

    Attributes:
        p_value: of the set-level MMD test between real and simulated summaries
            (:func:`innverse.diagnostics.misspecification_test`) or, when simulated observations
            were given, the Bonferroni combination ``min(1, 2 min(p_summaries, p_data))``.
        flagged: ``p_value <= level``.
        outlier_share: share of real observations flagged one by one by the summary-space
            outlier detector at level 0.01 (:class:`innverse.diagnostics.SummaryOutlierDetector`),
            or ``None`` when the posterior keeps too few reference summaries for it.
        level: the test's level.
        calibration_pairs: labelled real pairs available.
        recommendation: what to do, in one paragraph.
        p_summaries: the summary-space test's p-value.
        p_data: the p-value of the test on the observations themselves (``None``: not run).
    """

    p_value: float
    flagged: bool
    outlier_share: float | None
    level: float
    calibration_pairs: int
    recommendation: str
    p_summaries: float | None = None
    p_data: float | None = None

    def __str__(self) -> str:
        share = "" if self.outlier_share is None else f"; {self.outlier_share:.0%} flagged one by one"
        return f"misspecification test p = {self.p_value:.3g}{share}. {self.recommendation}"


def _recommend(flagged: bool, p: float, level: float, pairs: int, data_tested: bool) -> str:
    if not flagged:
        caveat = "" if data_tested else (
            " Only the summaries were tested; a summary network can hide a difference it learned to ignore: "
            "pass x_simulated= to test the observations themselves.")
        return (f"No evidence that the simulator misses these data at level {level}: the posterior can be used as "
                f"it is (a calibration would change little).{caveat}")
    head = f"The real observations are unlike the simulations (p = {p:.2g}): the posterior extrapolates and is " \
           "likely over-confident."
    if pairs >= MIN_CALIBRATION:
        return (f"{head} Calibrate it with the {pairs} labelled real pairs: "
                "innverse.design.rope(posterior, theta_cal, x_cal, simulator); check the result on held-out pairs "
                "with innverse.design.score_posterior (LPP, ACAUC).")
    need = f"at least {MIN_CALIBRATION} (better 50-200)"
    if pairs > 0:
        return f"{head} {pairs} labelled real pairs are too few for a calibration: collect {need}, then use " \
               "innverse.design.rope."
    return (f"{head} Improve the simulator, or collect a calibration set of {need} real observations with "
            "independently measured parameters and correct the posterior with innverse.design.rope.")


def check_misspecification(posterior: Posterior, x_real: Any, *, x_simulated: Any = None, calibration_pairs: int = 0,
                           level: float = 0.05, seed: int = 0) -> MisspecificationReport:
    """Test real observations ``x_real (k, *x_shape)`` (``k >= 2``) against the simulations the posterior was trained on.

    Args:
        posterior: a trained :class:`~innverse.amortized.Posterior` (its reference summaries are
            summaries of training simulations).
        x_simulated: simulated observations ``(N, *x_shape)`` (e.g. those it was trained on), to
            test the real observations themselves as well: a summary network trained on
            simulations can map misspecified data onto ordinary summaries (a sensor drift it
            learned to ignore). The two p-values are combined by Bonferroni.
        calibration_pairs: how many labelled real pairs exist (0: none); the recommendation depends on it.
        level: level of the set-level test.
        seed: seed of the permutation test and of the detector's split.
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"check_misspecification: expected an innverse.amortized.Posterior, got "
                        f"{type(posterior).__name__}")
    if isinstance(calibration_pairs, bool) or not isinstance(calibration_pairs, int) or calibration_pairs < 0:
        raise ValueError(f"check_misspecification: calibration_pairs must be an integer >= 0, got {calibration_pairs!r}")
    summaries = posterior.summaries(x_real)
    if summaries.dim() != 2 or summaries.shape[0] < 2:
        raise ValueError("check_misspecification: needs at least 2 real observations (k, *x_shape); for one, use "
                         "innverse.diagnostics.SummaryOutlierDetector")
    reference = posterior.reference_summaries
    test = diagnostics.misspecification_test(summaries, reference, level=level, seed=seed)
    p_summaries, p_data = float(test["p_value"]), None
    if x_simulated is not None:
        real, _ = check_x(x_real, posterior.x_shape, "check_misspecification", posterior.estimator.variable_size)
        sim, _ = check_x(x_simulated, posterior.x_shape, "check_misspecification", posterior.estimator.variable_size)
        real, sim = real.reshape(real.shape[0], -1), sim.reshape(sim.shape[0], -1)
        if sim.shape[0] < 2 or real.shape[1] != sim.shape[1] or not bool(torch.isfinite(torch.cat([real, sim])).all()):
            raise ValueError("check_misspecification: x_simulated must hold at least 2 simulated observations of the "
                             f"real ones' shape without NaN padding, got {tuple(sim.shape)} vs {tuple(real.shape)}")
        p_data = float(diagnostics.misspecification_test(real, sim, level=level, seed=seed)["p_value"])
    p = p_summaries if p_data is None else min(1.0, 2 * min(p_summaries, p_data))
    share = None
    if reference.shape[0] >= 250:
        detector = diagnostics.SummaryOutlierDetector(reference, level=0.01, seed=seed)
        share = float(detector.flags(summaries).float().mean())
    flagged = p <= level
    return MisspecificationReport(p, flagged, share, float(level), int(calibration_pairs),
                                  _recommend(flagged, p, level, int(calibration_pairs), p_data is not None),
                                  p_summaries, p_data)
