"""The misspecification-aware workflow: test real observations against the simulations, and say what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import diagnostics
from ..amortized import Posterior
from .rope import MIN_CALIBRATION

__all__ = ["MisspecificationReport", "check_misspecification"]


@dataclass(frozen=True)
class MisspecificationReport:
    """Whether real observations look like the simulations, and the recommended next step.

    Attributes:
        p_value: of the set-level MMD test between real and simulated summaries
            (:func:`innverse.diagnostics.misspecification_test`).
        flagged: ``p_value <= level``.
        outlier_share: share of real observations flagged one by one by the summary-space
            outlier detector at level 0.01 (:class:`innverse.diagnostics.SummaryOutlierDetector`),
            or ``None`` when the posterior keeps too few reference summaries for it.
        level: the test's level.
        calibration_pairs: labelled real pairs available.
        recommendation: what to do, in one paragraph.
    """

    p_value: float
    flagged: bool
    outlier_share: float | None
    level: float
    calibration_pairs: int
    recommendation: str

    def __str__(self) -> str:
        share = "" if self.outlier_share is None else f"; {self.outlier_share:.0%} flagged one by one"
        return f"misspecification test p = {self.p_value:.3g}{share}. {self.recommendation}"


def _recommend(flagged: bool, p: float, level: float, pairs: int) -> str:
    if not flagged:
        return (f"No evidence that the simulator misses these data at level {level}: the posterior can be used as "
                "it is (a calibration would change little).")
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


def check_misspecification(posterior: Posterior, x_real: Any, *, calibration_pairs: int = 0, level: float = 0.05,
                           seed: int = 0) -> MisspecificationReport:
    """Test real observations ``x_real (k, *x_shape)`` (``k >= 2``) against the simulations the posterior was trained on.

    Args:
        posterior: a trained :class:`~innverse.amortized.Posterior` (its reference summaries are
            summaries of training simulations).
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
    share = None
    if reference.shape[0] >= 250:
        detector = diagnostics.SummaryOutlierDetector(reference, level=0.01, seed=seed)
        share = float(detector.flags(summaries).float().mean())
    flagged = bool(test["flagged"])
    return MisspecificationReport(float(test["p_value"]), flagged, share, float(level), int(calibration_pairs),
                                  _recommend(flagged, float(test["p_value"]), level, int(calibration_pairs)))
