"""Benchmark problems with reference posteriors: SBI tasks, inverse problems, and 2-D densities.

Every task follows one protocol, :class:`AbstractTask` (:mod:`innverse.tasks.base`): named
parameters, prior and joint draws through an explicit ``torch.Generator``, a simulator, a
``config()`` and cached reference posteriors. Two families implement it, each with its
literature's names:

* :mod:`innverse.tasks.sbi` (:class:`AbstractSBITask`): the simulation-based-inference
  benchmarks of Lueckmann et al. (2021), parameters ``theta``, data ``x``;
* :mod:`innverse.tasks.inverse` (:class:`AbstractInverseTask`): inverse problems (Ardizzone et
  al. 2019, Kruse et al. 2021), hidden parameters ``x``, observations ``y``, with the rejection-ABC
  reference :func:`abc_reference`.

:mod:`innverse.tasks.densities` holds 2-D densities with exact log-densities (targets for
unconditional density estimation, not inference tasks).

SBI task API (every task returned by :func:`get_task` follows it)::

    task = innverse.tasks.get_task("two_moons")          # dtype=torch.float64 also accepted
    task.name, task.theta_dim, task.x_shape, task.parameter_names
    task.prior                                # torch Distribution, event_shape (theta_dim,)
    theta = task.prior.sample((n,))           # or task.sample_prior(n, generator) (reproducible)
    x = task.simulate(theta, generator)       # (n, *x_shape), deterministic given the generator;
    x = task(theta, generator)                #   same thing
    theta, x = task.sample_joint(n, generator)
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
reference posterior is sampled: exactly for two moons, the Gaussian tasks and ``gaussian_iid``;
by the validated MCMC sampler of :mod:`innverse.tasks.sbi.mcmc` for SLCP, Bernoulli GLM, SIR and
Lotka–Volterra, where a cache miss samples all 10 observations in one vectorised run
(``benchmarks/task_references.py`` reports the cost and an independent importance-sampling check).

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021,
    https://arxiv.org/abs/2101.04653.
"""

from .base import AbstractTask
from .densities import DENSITIES, Density2D, density
from .inverse import (
    EIGHT_MODES_LABELS,
    ABCReference,
    AbstractInverseTask,
    Ballistics,
    EightModes,
    InverseKinematics,
    abc_cache_dir,
    abc_reference,
)
from .sbi import (
    SBI_TASKS,
    SIR,
    SLCP,
    TASKS,
    AbstractSBITask,
    BernoulliGLM,
    BernoulliGLMRaw,
    GaussianIID,
    GaussianLinear,
    GaussianLinearUniform,
    GaussianMixture,
    LotkaVolterra,
    LotkaVolterraSeries,
    MCMCConfig,
    NormalInverseGamma,
    SLCPDistractors,
    TwoMoons,
    get_task,
    sample_reference_mcmc,
)

__all__ = [
    "DENSITIES",
    "EIGHT_MODES_LABELS",
    "SBI_TASKS",
    "SIR",
    "SLCP",
    "TASKS",
    "ABCReference",
    "AbstractInverseTask",
    "AbstractSBITask",
    "AbstractTask",
    "Ballistics",
    "BernoulliGLM",
    "BernoulliGLMRaw",
    "Density2D",
    "EightModes",
    "GaussianIID",
    "GaussianLinear",
    "GaussianLinearUniform",
    "GaussianMixture",
    "InverseKinematics",
    "LotkaVolterra",
    "LotkaVolterraSeries",
    "MCMCConfig",
    "NormalInverseGamma",
    "SLCPDistractors",
    "TwoMoons",
    "abc_cache_dir",
    "abc_reference",
    "density",
    "get_task",
    "sample_reference_mcmc",
]
