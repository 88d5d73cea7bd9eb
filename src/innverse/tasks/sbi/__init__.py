"""Simulation-based-inference benchmark tasks (Lueckmann et al. 2021) and their reference machinery.

The tasks (:class:`AbstractSBITask`: prior, stochastic simulator with a tractable likelihood,
ten fixed observations, cached reference posteriors), the registry (:func:`get_task`), and what
the references are computed with: the batched ODE solver (:mod:`.ode`) and the adaptive MCMC
sampler of :mod:`innverse.amortized.mcmc`, fed each task's exact likelihood (:mod:`.mcmc`).
"""

from .base import AbstractSBITask
from .bernoulli_glm import BernoulliGLM, BernoulliGLMRaw
from .gaussian_iid import GaussianIID
from .gaussian_linear import GaussianLinear, GaussianLinearUniform
from .gaussian_mixture import GaussianMixture
from .lotka_volterra import LotkaVolterra, LotkaVolterraSeries
from .mcmc import MCMCConfig, sample_reference_mcmc
from .normal_inverse_gamma import NormalInverseGamma
from .registry import SBI_TASKS, TASKS, get_task
from .sir import SIR
from .slcp import SLCP, SLCPDistractors
from .two_moons import TwoMoons

__all__ = [
    "SBI_TASKS",
    "SIR",
    "SLCP",
    "TASKS",
    "AbstractSBITask",
    "BernoulliGLM",
    "BernoulliGLMRaw",
    "GaussianIID",
    "GaussianLinear",
    "GaussianLinearUniform",
    "GaussianMixture",
    "LotkaVolterra",
    "LotkaVolterraSeries",
    "MCMCConfig",
    "NormalInverseGamma",
    "SLCPDistractors",
    "TwoMoons",
    "get_task",
    "sample_reference_mcmc",
]
