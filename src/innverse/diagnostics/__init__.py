"""Diagnostics that tell whether an estimator can be trusted: two-sample tests, calibration,
coverage, misspecification and invertibility checks, and their plots.

Every function takes plain tensors or numpy arrays, so it works with innverse's estimators and
with anybody else's.
"""

from .c2st import c2st
from .check import check
from .conformal import ScoreCalibrator
from .coverage import (
    LEVELS,
    coverage_curve,
    coverage_test,
    credibility_central,
    credibility_hpd,
    credibility_tarp,
)
from .ecdf import ECDFBand, ecdf_band, uniformity_test
from .invertibility import BlockInvertibility, InvertibilityReport, InvertibilityWarning, check_invertibility
from .lipschitz import local_lipschitz
from .misspecification import SummaryOutlierDetector, misspecification_test
from .mmd import gaussian_kernel, median_bandwidth, mmd, mmd_test
from .plot_calibration import coverage_plot, ecdf_difference_plot, rank_histogram_plot, sbc_ecdf_plot
from .plot_posterior import pair_plot
from .plot_recovery import recovery_plot, zscore_contraction_plot
from .plot_training import loss_plot
from .recovery import recovery
from .result import CheckResult
from .sbc import randomized_pit, rank_histogram, sbc_ranks, sbc_test

__all__ = [
    "BlockInvertibility",
    "InvertibilityReport",
    "InvertibilityWarning",
    "check_invertibility",
    "local_lipschitz",
    "LEVELS",
    "CheckResult",
    "check",
    "coverage_curve",
    "coverage_plot",
    "coverage_test",
    "credibility_central",
    "credibility_hpd",
    "credibility_tarp",
    "ecdf_difference_plot",
    "loss_plot",
    "pair_plot",
    "rank_histogram_plot",
    "recovery",
    "recovery_plot",
    "sbc_ecdf_plot",
    "zscore_contraction_plot",
    "ECDFBand",
    "ScoreCalibrator",
    "SummaryOutlierDetector",
    "c2st",
    "ecdf_band",
    "misspecification_test",
    "randomized_pit",
    "rank_histogram",
    "sbc_ranks",
    "sbc_test",
    "uniformity_test",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd",
    "mmd_test",
]
