r"""Gaussian linear tasks: infer the mean of a 10-D Gaussian (conjugate and box-uniform priors).

Gaussian linear (Lueckmann et al. 2021, task "Gaussian Linear"):

.. math::
    \theta \sim \mathcal N(0, 0.1\,I_{10}), \qquad x \mid \theta \sim \mathcal N(\theta, 0.1\,I_{10}).

The prior is conjugate, so the posterior is exact:
:math:`\theta \mid x \sim \mathcal N(\Sigma_p\,\Sigma^{-1} x, \Sigma_p)` with
:math:`\Sigma_p = (\Sigma_0^{-1} + \Sigma^{-1})^{-1} = 0.05\,I` and mean :math:`x / 2`.

Gaussian linear uniform (task "Gaussian Linear Uniform"): same simulator,
:math:`\theta \sim \mathcal U([-1, 1]^{10})`. Prior and likelihood factorise over coordinates,
so the posterior is a product of normals :math:`\mathcal N(x_d, 0.1)` truncated to
:math:`[-1, 1]`, sampled exactly by inverse CDF (no rejection loop whose cost depends on the
observation).

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9`` (both tasks).

References:
    Lueckmann, Boelts, Greenberg, Gonçalves, Macke, "Benchmarking Simulation-Based Inference",
    AISTATS 2021, https://arxiv.org/abs/2101.04653 (appendix T.1, T.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, MultivariateNormal

from ...amortized.prior_sampling import sample_truncated_normal
from ...amortized.priors import box_uniform
from .base import AbstractSBITask

__all__ = ["GaussianLinear", "GaussianLinearUniform"]

_DIM = 10
_NOISE_VAR = 0.1
_PRIOR_VAR = 0.1
_SEEDS = tuple(1_000_000 + i for i in range(10))


def _simulate_gaussian(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
    return theta + math.sqrt(_NOISE_VAR) * noise


def _log_likelihood_gaussian(theta: Tensor, x: Tensor) -> Tensor:
    # isotropic normal N(x; theta, 0.1 I), summed over the last axis
    return (-0.5 * (x - theta).square().sum(-1) / _NOISE_VAR
            - 0.5 * x.shape[-1] * math.log(2 * math.pi * _NOISE_VAR))


class GaussianLinear(AbstractSBITask):
    """10-D Gaussian mean with conjugate prior ``N(0, 0.1 I)`` and noise ``N(0, 0.1 I)``.

    Beyond the task protocol, :meth:`posterior` returns the exact posterior distribution.
    """

    name = "gaussian_linear"
    theta_dim = _DIM
    x_shape = (_DIM,)
    parameter_names = tuple(f"theta_{d + 1}" for d in range(_DIM))
    observation_seeds = _SEEDS

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return MultivariateNormal(torch.zeros(_DIM, dtype=dtype), _PRIOR_VAR * torch.eye(_DIM, dtype=dtype),
                                  validate_args=validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _simulate_gaussian(theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _log_likelihood_gaussian(theta, x)

    def posterior(self, x: Tensor) -> MultivariateNormal:
        """The exact posterior ``N(x * s0 / (s0 + s), s0 * s / (s0 + s) I)`` for one ``x (10,)``."""
        x = self._check_x(x, 1, self.dtype, "posterior")[0]
        var = 1.0 / (1.0 / _PRIOR_VAR + 1.0 / _NOISE_VAR)
        return MultivariateNormal(var / _NOISE_VAR * x, var * torch.eye(_DIM, dtype=x.dtype))

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        out, info = [], []
        var = 1.0 / (1.0 / _PRIOR_VAR + 1.0 / _NOISE_VAR)
        for i in indices:
            x = self._observed_pair(i)[1]
            z = torch.randn(n, _DIM, generator=generator, dtype=torch.float64)
            out.append(var / _NOISE_VAR * x + math.sqrt(var) * z)
            info.append({"sampler": "analytic conjugate Gaussian"})
        return out, info


class GaussianLinearUniform(AbstractSBITask):
    """10-D Gaussian mean with box prior ``U([-1, 1]^10)`` and noise ``N(0, 0.1 I)``."""

    name = "gaussian_linear_uniform"
    theta_dim = _DIM
    x_shape = (_DIM,)
    parameter_names = tuple(f"theta_{d + 1}" for d in range(_DIM))
    observation_seeds = _SEEDS

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return box_uniform(-1.0, 1.0, _DIM, dtype=dtype, validate_args=validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _simulate_gaussian(theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _log_likelihood_gaussian(theta, x)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        out, info = [], []
        for i in indices:
            x = self._observed_pair(i)[1].expand(n, _DIM)
            out.append(sample_truncated_normal(x, math.sqrt(_NOISE_VAR), -1.0, 1.0, generator))
            info.append({"sampler": "exact truncated normal per coordinate (inverse CDF)"})
        return out, info
