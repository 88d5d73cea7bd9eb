"""Diagnostics that tell whether an estimator can be trusted: two-sample tests, calibration,
coverage, misspecification and invertibility checks, and their plots.

Every function takes plain tensors or numpy arrays, so it works with innverse's estimators and
with anybody else's.
"""

from .c2st import c2st
from .mmd import gaussian_kernel, median_bandwidth, mmd, mmd_test

__all__ = [
    "c2st",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd",
    "mmd_test",
]
