r"""Gaussian mixture task: a 2-D mean observed through a mixture of a broad and a narrow Gaussian.

Definition (Lueckmann et al. 2021, task "Gaussian Mixture", after Sisson et al. 2007):

.. math::
    \theta \sim \mathcal U([-10, 10]^2), \qquad
    x \mid \theta \sim \tfrac12\,\mathcal N(\theta, I_2) + \tfrac12\,\mathcal N(\theta, 0.01\,I_2),

with the component drawn independently for every simulation. As a function of :math:`\theta`
each component is a normalised Gaussian centred at :math:`x`, so the posterior is the mixture
:math:`\sum_j \tfrac12\,\mathcal N(\theta; x, s_j^2 I)` restricted to the box. It is sampled
exactly: component :math:`j` with probability proportional to :math:`\tfrac12 Z_j`, where
:math:`Z_j = \prod_d [\Phi((10 - x_d)/s_j) - \Phi((-10 - x_d)/s_j)]` is its mass inside the box,
then each coordinate from the truncated normal.

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.3);
    Sisson, Fan, Tanaka, "Sequential Monte Carlo without likelihoods", PNAS 104 (2007).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from ...amortized.prior_sampling import sample_truncated_normal
from ...amortized.priors import box_uniform
from .base import AbstractSBITask

__all__ = ["GaussianMixture"]

_BOUND = 10.0
_SCALES = (1.0, 0.1)


class GaussianMixture(AbstractSBITask):
    """2-D mean, prior ``U([-10, 10]^2)``, data from ``0.5 N(theta, I) + 0.5 N(theta, 0.01 I)``."""

    name = "gaussian_mixture"
    theta_dim = 2
    x_shape = (2,)
    parameter_names = ("theta_1", "theta_2")
    observation_seeds = tuple(1_000_000 + i for i in range(10))

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return box_uniform(-_BOUND, _BOUND, 2, dtype=dtype, validate_args=validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        kw = {"generator": generator, "dtype": theta.dtype, "device": theta.device}
        narrow = torch.rand(theta.shape[0], 1, **kw) < 0.5
        scale = torch.where(narrow, _SCALES[1], _SCALES[0])
        return theta + scale * torch.randn(theta.shape, **kw)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        d2 = (x - theta).square().sum(-1)
        comps = torch.stack([-0.5 * d2 / s**2 - math.log(2 * math.pi * s**2) for s in _SCALES], -1)
        return torch.logsumexp(comps, -1) - math.log(2.0)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        out, info = [], []
        for i in indices:
            x = self._observed_pair(i)[1]
            mass = torch.stack([
                (torch.special.ndtr((_BOUND - x) / s) - torch.special.ndtr((-_BOUND - x) / s)).prod()
                for s in _SCALES])
            weights = mass / mass.sum()
            comp = torch.multinomial(weights, n, replacement=True, generator=generator)
            scale = torch.tensor(_SCALES, dtype=torch.float64)[comp][:, None]
            out.append(sample_truncated_normal(x.expand(n, 2), scale, -_BOUND, _BOUND, generator))
            info.append({"sampler": "exact truncated Gaussian mixture (inverse CDF)",
                         "component_weights": weights.tolist()})
        return out, info
