"""Amortized Bayesian inference: priors, simulators, simulation stores, posterior estimators.

Train once on simulations, then get the posterior for any observation in milliseconds::

    prior = box_uniform(-1.0, 1.0, dim=2)
    theta, x, report = simulate(my_simulator, prior=prior, n=10_000)
    posterior = fit_posterior(theta, x, prior=prior)
    samples = posterior.sample(1000, x_obs)          # (1000, 2), all inside the prior's support
    posterior.report.training                        # the training options used, defaults resolved
"""

from ..blocks import SupportTransform
from .dask_executor import DaskCluster
from .embedding import ObservationEmbedding
from .ensemble import EnsemblePosterior, fit_ensemble
from .estimator import FORMAT_VERSION, PosteriorEstimator
from .executor import ProcessPool, SimulationReport, Simulations, sample_prior, simulate
from .fit import build_summary, default_training, fit_posterior, summary_candidates
from .fit_report import CandidateRun, FitReport, GaussianStartReport
from .flow_matching import FlowMatchingLoss
from .gaussian_likelihood import GaussianLikelihood
from .likelihood import LikelihoodPosterior, fit_likelihood
from .mcmc import MCMCConfig, sample_mcmc
from .online import OnlineBatches
from .options import FlowOptions
from .posterior import Posterior
from .prior_config import PRIOR_TYPES, prior_from_config, prior_to_config
from .prior_sampling import sample_with_generator
from .priors import ProductPrior, as_prior, box_uniform, gaussian, log_normal, prior_bounds, product
from .sequential import SequentialReport, fit_sequential
from .sequential_likelihood import SequentialLikelihoodReport, fit_sequential_likelihood
from .simulation import batch_seed, calling_style, pad_rows, simulator_name
from .store import SimulationStore, StoreBatches
from .store_lock import StoreBusyError

__all__ = [
    "DaskCluster",
    "CandidateRun",
    "EnsemblePosterior",
    "FlowMatchingLoss",
    "FORMAT_VERSION",
    "FitReport",
    "GaussianStartReport",
    "GaussianLikelihood",
    "LikelihoodPosterior",
    "SequentialLikelihoodReport",
    "MCMCConfig",
    "ObservationEmbedding",
    "PRIOR_TYPES",
    "ProcessPool",
    "FlowOptions",
    "OnlineBatches",
    "Posterior",
    "PosteriorEstimator",
    "ProductPrior",
    "SequentialReport",
    "SimulationReport",
    "SimulationStore",
    "Simulations",
    "StoreBatches",
    "StoreBusyError",
    "SupportTransform",
    "as_prior",
    "batch_seed",
    "box_uniform",
    "build_summary",
    "calling_style",
    "default_training",
    "fit_ensemble",
    "fit_likelihood",
    "fit_posterior",
    "fit_sequential",
    "fit_sequential_likelihood",
    "gaussian",
    "log_normal",
    "pad_rows",
    "prior_bounds",
    "prior_from_config",
    "prior_to_config",
    "product",
    "sample_mcmc",
    "sample_prior",
    "sample_with_generator",
    "simulate",
    "simulator_name",
    "summary_candidates",
]
