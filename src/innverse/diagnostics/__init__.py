"""Diagnostics that tell whether an estimator can be trusted: two-sample tests, calibration,
coverage, misspecification and invertibility checks, and their plots.

Every function takes plain tensors or numpy arrays, so it works with innverse's estimators and
with anybody else's.
"""

from .c2st import c2st
from .conformal import ScoreCalibrator
from .ecdf import ECDFBand, ecdf_band, uniformity_test
from .misspecification import SummaryOutlierDetector, misspecification_test
from .mmd import gaussian_kernel, median_bandwidth, mmd, mmd_test
from .sbc import randomized_pit, rank_histogram, sbc_ranks, sbc_test

__all__ = [
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
