r"""Bernoulli GLM tasks: a neuron's spike-train GLM from summary statistics or from raw spikes.

Definition (Lueckmann et al. 2021, tasks "Bernoulli GLM" and "Bernoulli GLM Raw"): a fixed
white-noise stimulus :math:`I_t \sim \mathcal N(0, 1)`, :math:`t = 0..99` (drawn once with
``numpy.random.RandomState(42).randn(100)``, as in the benchmark), design matrix
:math:`V_{t,0} = 1`, :math:`V_{t,1+j} = I_{t-j}` for :math:`t \ge j` (0 before), and

.. math::
    \theta = (\beta, f_1..f_9), \qquad \beta \sim \mathcal N(0, 2), \qquad
    f \sim \mathcal N(0, (F^\top F)^{-1}), \quad F = D^2 + \operatorname{diag}\big(\sqrt{j/9}\big)_{j=0..8},

with :math:`D = I - (\text{subdiagonal of ones})` (penalised second differences: a smooth
filter); spikes :math:`z_t \sim \operatorname{Bernoulli}(\sigma(V_t^\top\theta))`. The summary task
observes :math:`x = V^\top z` (spike count and spike-triggered sums of the 9 lagged stimuli,
``x_shape = (10,)``); the raw task observes :math:`z` (``x_shape = (100,)``).

Likelihood: raw :math:`\sum_t z_t\psi_t - \log(1 + e^{\psi_t})`, :math:`\psi = V\theta`. The
summary :math:`V^\top z` is sufficient and, for a continuous stimulus, determines :math:`z`
uniquely (almost surely), so the summary likelihood is the same function,
:math:`\theta^\top x - \sum_t \log(1 + e^{\psi_t})`, and both tasks have the same posterior:
observation ``i`` of the two tasks comes from the same seed and the same spike train, and they
share the cached reference, sampled by :func:`~innverse.tasks.sbi.mcmc.sample_reference_mcmc` (the
posterior is log-concave).

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.7, T.8);
    Lueckmann et al., "Flexible statistical inference for mechanistic models of neural
    dynamics", NeurIPS 2017; Pillow et al., Nature 454 (2008).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, MultivariateNormal

from .base import AbstractSBITask
from .mcmc import MCMCConfig, sample_reference_mcmc

__all__ = ["BernoulliGLM", "BernoulliGLMRaw", "bernoulli_glm_design"]

_T, _FILTER = 100, 9


def bernoulli_glm_design() -> Tensor:
    """The fixed design matrix ``V (100, 10)`` (float64): a column of ones, then 9 stimulus lags."""
    stimulus = torch.from_numpy(np.random.RandomState(42).randn(_T).astype(np.float32)).to(torch.float64)
    design = torch.zeros(_T, _FILTER + 1, dtype=torch.float64)
    design[:, 0] = 1.0
    for j in range(_FILTER):
        design[j:, 1 + j] = stimulus[: _T - j]
    return design


def _prior_precision() -> Tensor:
    m = _FILTER
    d = torch.eye(m, dtype=torch.float64) - torch.diag(torch.ones(m - 1, dtype=torch.float64), -1)
    f = d @ d + torch.diag(torch.sqrt(torch.arange(m, dtype=torch.float64) / m))
    precision = torch.zeros(m + 1, m + 1, dtype=torch.float64)
    precision[0, 0] = 0.5
    precision[1:, 1:] = f.T @ f
    return precision


@functools.cache
def _design_and_prior_factor() -> tuple[Tensor, Tensor]:
    # V (100, 10) and the Cholesky factor of the prior covariance (10, 10), float64, computed once
    return bernoulli_glm_design(), torch.linalg.cholesky(torch.linalg.inv(_prior_precision()))


def _prior(dtype: torch.dtype, validate_args: bool) -> Distribution:
    factor = _design_and_prior_factor()[1].to(dtype, copy=True)
    return MultivariateNormal(torch.zeros(_FILTER + 1, dtype=dtype), scale_tril=factor, validate_args=validate_args)


def _log_odds(theta: Tensor) -> Tensor:
    # psi = V theta per time bin, (n, 100)
    return theta @ _design_and_prior_factor()[0].to(theta).T


def _spikes(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    psi = _log_odds(theta)
    u = torch.rand(psi.shape, generator=generator, dtype=theta.dtype, device=theta.device)
    return (u < torch.sigmoid(psi)).to(theta.dtype)


_MCMC = MCMCConfig(chains=100, warmup=1000, init_draws=20_000)


class BernoulliGLM(AbstractSBITask):
    """Bernoulli GLM observed through its 10 sufficient statistics ``V^T z``."""

    name = "bernoulli_glm"
    theta_dim = _FILTER + 1
    x_shape = (_FILTER + 1,)
    parameter_names = ("bias", *(f"filter_{j + 1}" for j in range(_FILTER)))
    observation_seeds = tuple(1_000_000 + i for i in range(10))
    reference_key = "bernoulli_glm"
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _spikes(theta, generator) @ _design_and_prior_factor()[0].to(theta)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return (theta * x).sum(-1) - F.softplus(_log_odds(theta)).sum(-1)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return sample_reference_mcmc(self, indices, n, generator, _MCMC)


class BernoulliGLMRaw(AbstractSBITask):
    """Bernoulli GLM observed through its raw binary spike train ``z`` (100 time bins)."""

    name = "bernoulli_glm_raw"
    theta_dim = _FILTER + 1
    x_shape = (_T,)
    parameter_names = BernoulliGLM.parameter_names
    observation_seeds = BernoulliGLM.observation_seeds
    reference_key = "bernoulli_glm"
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _spikes(theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        psi = _log_odds(theta)
        return (x * psi).sum(-1) - F.softplus(psi).sum(-1)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        # same posterior, same cache key: always computed by the summary task, bit for bit
        return BernoulliGLM(torch.float64)._sample_reference(indices, n, generator)
