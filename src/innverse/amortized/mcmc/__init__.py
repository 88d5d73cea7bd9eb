"""Posterior sampling from a likelihood: the adaptive MCMC sampler, its independence proposal and its diagnostics.

:func:`sample_mcmc` samples :math:`p(\\theta \\mid x) \\propto p(x \\mid \\theta)\\,p(\\theta)` for
any batched log likelihood: the exact one of a benchmark task (its reference posterior) or a
learned one (:func:`~innverse.amortized.fit_likelihood`). :mod:`.convergence` holds the
rank-normalised split-:math:`\\hat R` and bulk ESS it is checked with, :mod:`.proposal` the
Student-t mixture of its independence moves.
"""

from .convergence import bulk_ess, split_rhat
from .proposal import StudentTMixture
from .sampler import LogLikelihood, MCMCConfig, sample_mcmc

__all__ = ["LogLikelihood", "MCMCConfig", "StudentTMixture", "bulk_ess", "sample_mcmc", "split_rhat"]
