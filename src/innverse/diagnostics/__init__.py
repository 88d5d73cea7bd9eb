"""Diagnostics that tell whether an estimator can be trusted.

Two-sample tests (:func:`c2st`, :func:`mmd`, :func:`mmd_test`, :func:`mmd_agg_test`), simulation-based calibration
(:func:`sbc_ranks`, :func:`sbc_test`), expected coverage (:func:`credibility_central`,
:func:`credibility_hpd`, :func:`credibility_tarp`, :func:`coverage_test`), recovery
(:func:`recovery`), learning (:func:`learning_test`), misspecification (:class:`SummaryOutlierDetector`,
:func:`misspecification_test`), invertibility (:func:`check_invertibility`) and plots. All take
plain tensors or numpy arrays, so they work with innverse's estimators and anybody else's;
:func:`check` runs the whole battery.

Protocols used by :func:`check` (see :mod:`innverse.diagnostics.protocol`):

* posterior: any object with ``sample(n, x)``: ``x (k, *x_shape) -> (n, k, D)`` (one
  observation ``x_shape -> (n, D)``), and optionally ``log_prob(theta, x)``:
  ``theta (n, k, D), x (k, *x_shape) -> (n, k)`` (one observation ``(n, D) -> (n,)``);
  optionally ``summaries(x) -> (k, S)`` and ``reference_summaries (N, S)``;
* prior: a ``torch.distributions.Distribution`` with event shape ``(D,)``;
* simulator: ``theta (m, D) -> x (m, *x_shape)`` (tensor or array); rows with non-finite output
  are dropped and counted.
"""

from .battery import check
from .classifier_test import ClassifierOptions, c2st
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
from .kernel_test import gaussian_kernel, median_bandwidth, mmd, mmd_agg_test, mmd_test
from .learning import learning_test
from .lipschitz import local_lipschitz
from .misspecification import MisspecificationWarning, SummaryOutlierDetector, misspecification_test
from .parameter_recovery import recovery
from .plot_calibration import coverage_plot, ecdf_difference_plot, rank_histogram_plot, sbc_ecdf_plot
from .plot_posterior import pair_plot
from .plot_recovery import recovery_plot, zscore_contraction_plot
from .plot_training import loss_plot
from .result import CheckResult
from .sbc import randomized_pit, rank_histogram, sbc_ranks, sbc_test

__all__ = [
    "BlockInvertibility",
    "InvertibilityReport",
    "InvertibilityWarning",
    "MisspecificationWarning",
    "check_invertibility",
    "local_lipschitz",
    "LEVELS",
    "CheckResult",
    "ClassifierOptions",
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
    "learning_test",
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
    "mmd_agg_test",
    "mmd_test",
]

from .analysis import count_modes, identifiability, multimodality, posterior_contraction, posterior_correlation  # noqa: I001
__all__ += ["count_modes", "identifiability", "multimodality", "posterior_contraction", "posterior_correlation"]
