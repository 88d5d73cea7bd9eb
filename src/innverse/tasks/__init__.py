"""Benchmark problems: simulation-based-inference tasks with reference posteriors, 2-D densities.

Task API (every task returned by :func:`get_task` follows it)::

    task = innverse.tasks.get_task("two_moons")          # dtype=torch.float64 also accepted
    task.name, task.theta_dim, task.x_shape, task.parameter_names
    task.prior                                # torch Distribution, event_shape (theta_dim,)
    theta = task.prior.sample((n,))           # or task.sample_prior(n, generator) (reproducible)
    x = task.simulate(theta, generator)       # (n, *x_shape), deterministic given the generator;
    x = task(theta, generator)                #   same thing
    task.num_observations                     # 10
    task.observation(i)                       # x_shape, i = 0..9, from a documented fixed seed
    task.true_parameters(i)                   # (theta_dim,) that generated observation(i)
    task.reference_posterior(i, n=10_000, cache_dir=None)   # (n, theta_dim) exact posterior draws
    task.log_likelihood(theta, x)             # (n,) exact log p(x | theta)
    task.log_joint(theta, x)                  # (n,) log p(x | theta) + log p(theta)

Box-uniform priors are ``Independent(Uniform(low, high), 1)``, so ``prior.support`` is the box
(and ``torch.distributions.biject_to(prior.support)`` maps R^D onto it). Everything is float32
by default; ``get_task(name, dtype=torch.float64)`` gives a float64 task, and ``simulate``
follows the dtype of ``theta``.

Time series (``lotka_volterra_series``): ``x_shape = (T, channels)``.

Set-valued data (``gaussian_iid``): a simulation is ``(max_count, d)`` with NaN rows as padding
(a row entirely NaN is padding); a single observation may be given unpadded, ``(k, d)``.

Reference posteriors are cached on disk, keyed by task, observation, ``n`` and a version string
(see :mod:`innverse.tasks.cache`: ``cache_dir`` argument, else ``$INNVERSE_CACHE/references``,
else ``~/.cache/innverse/references``), written atomically. Each task's module docstring states
its definition (prior, simulator, noise, summary statistics), its observation seeds and how its
reference posterior is sampled: exactly for two moons, the Gaussian tasks and ``gaussian_iid``
(milliseconds); by the validated MCMC sampler of :mod:`innverse.tasks.mcmc` for SLCP, Bernoulli
GLM, SIR and Lotka–Volterra, where a cache miss samples all 10 observations in one vectorised
run (minutes of CPU; ``benchmarks/task_references.py`` reports the cost and an independent
importance-sampling check).

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021,
    https://arxiv.org/abs/2101.04653.
"""

from .base import AbstractTask
from .bernoulli_glm import BernoulliGLM, BernoulliGLMRaw
from .densities import DENSITIES, Density2D, density
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
    "DENSITIES",
    "Density2D",
    "density",
    "AbstractTask",
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
    "SBI_TASKS",
    "SIR",
    "SLCP",
    "SLCPDistractors",
    "TASKS",
    "TwoMoons",
    "get_task",
    "sample_reference_mcmc",
]
