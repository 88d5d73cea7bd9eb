r"""Normal–inverse-gamma distribution over a Gaussian's mean and standard deviation.

The conjugate prior of a Gaussian with unknown mean :math:`\mu` and scale :math:`\sigma`,
written over :math:`\theta = (\mu, \sigma)` (the standard deviation, not the variance):

.. math::
    \sigma^2 \sim \operatorname{InvGamma}(\alpha, \beta), \qquad
    \mu \mid \sigma \sim \mathcal N(\mu_0, \sigma^2 / \kappa),

    \log p(\mu, \sigma) = \alpha\log\beta - \log\Gamma(\alpha) - (2\alpha + 2)\log\sigma
    - \frac{\beta}{\sigma^2} + \log 2\sigma
    - \tfrac12\log\frac{2\pi\sigma^2}{\kappa} - \frac{\kappa(\mu - \mu_0)^2}{2\sigma^2},

(the :math:`\log 2\sigma` is the Jacobian of :math:`\sigma \mapsto \sigma^2`). Support: real
mean, positive scale (``constraints.independent(constraints.cat([real, positive]), 1)``, so
``torch.distributions.biject_to(support)`` maps to it from :math:`\mathbb R^2`).

After observing :math:`x_1..x_k` the posterior is normal–inverse-gamma with
:math:`\kappa' = \kappa + k`, :math:`\mu_0' = (\kappa\mu_0 + k\bar x)/\kappa'`,
:math:`\alpha' = \alpha + k/2`,
:math:`\beta' = \beta + \tfrac12\sum_i (x_i - \bar x)^2 + \frac{k\kappa(\bar x - \mu_0)^2}{2\kappa'}`
(see :meth:`NormalInverseGamma.update`).

References:
    Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007), section 6;
    Gelman et al., "Bayesian Data Analysis", 3rd ed., section 3.3.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from ...amortized.prior_sampling import sample_gamma

__all__ = ["NormalInverseGamma"]


class NormalInverseGamma(Distribution):
    """Distribution over ``(mu, sigma)``: ``sigma^2 ~ InvGamma(concentration, rate)``, ``mu ~ N(loc, sigma^2/kappa)``.

    Args:
        loc: prior mean :math:`\\mu_0`.
        kappa: pseudo-count of the mean, :math:`\\kappa > 0`.
        concentration: inverse-gamma shape :math:`\\alpha > 0`.
        rate: inverse-gamma scale :math:`\\beta > 0`.
        validate_args: as in ``torch.distributions``.

    All four parameters are scalars or tensors of a common batch shape; ``event_shape == (2,)``.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "kappa": constraints.positive,
                                       "concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.independent(constraints.cat([constraints.real, constraints.positive], -1, [1, 1]), 1)
    has_rsample = True

    def __init__(self, loc: Tensor | float, kappa: Tensor | float, concentration: Tensor | float,
                 rate: Tensor | float, validate_args: bool | None = None):
        params = [torch.as_tensor(p) for p in (loc, kappa, concentration, rate)]
        dtype = next((p.dtype for p in params if p.is_floating_point()), torch.get_default_dtype())
        self.loc, self.kappa, self.concentration, self.rate = torch.broadcast_tensors(
            *[p.to(dtype) for p in params])
        super().__init__(self.loc.shape, torch.Size([2]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return NormalInverseGamma(self.loc.expand(shape), self.kappa.expand(shape),
                                  self.concentration.expand(shape), self.rate.expand(shape),
                                  validate_args=self._validate_args)

    @property
    def mean(self) -> Tensor:
        a = self.concentration
        sigma = torch.exp(0.5 * torch.log(self.rate) + torch.lgamma(a - 0.5) - torch.lgamma(a))
        sigma = torch.where(a > 0.5, sigma, torch.inf)
        return torch.stack([self.loc, sigma], -1)

    @property
    def variance(self) -> Tensor:
        a, b = self.concentration, self.rate
        second_moment = torch.where(a > 1, b / (a - 1), torch.inf)  # E[sigma^2]
        mean_sigma = self.mean[..., 1]
        return torch.stack([second_moment / self.kappa, second_moment - mean_sigma**2], -1)

    def sample_with_generator(self, sample_shape: torch.Size | tuple = (),
                              generator: torch.Generator | None = None) -> Tensor:
        """Draws of shape ``sample_shape + batch_shape + (2,)`` using only ``generator``."""
        shape = torch.Size(sample_shape) + self.batch_shape
        tau = sample_gamma(self.concentration.expand(shape).to(torch.float64), generator)
        sigma = torch.sqrt(self.rate.expand(shape).to(torch.float64) / tau)
        z = torch.randn(shape, generator=generator, dtype=torch.float64)
        mu = self.loc.to(torch.float64) + sigma / torch.sqrt(self.kappa.to(torch.float64)) * z
        return torch.stack([mu, sigma], -1).to(self.loc.dtype)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        tau = torch._standard_gamma(self.concentration.expand(shape)) / self.rate.expand(shape)
        sigma = tau.rsqrt()
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return torch.stack([self.loc + sigma / self.kappa.sqrt() * z, sigma], -1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        mu, sigma = value[..., 0], value[..., 1]
        a, b, k = self.concentration, self.rate, self.kappa
        log_sigma = torch.log(sigma)
        # InvGamma(sigma^2) times the Jacobian 2 sigma of sigma -> sigma^2
        lp_sigma = a * torch.log(b) - torch.lgamma(a) - (2 * a + 1) * log_sigma - b / sigma**2 + math.log(2.0)
        lp_mu = (-0.5 * (math.log(2 * math.pi) + 2 * log_sigma - torch.log(k))
                 - 0.5 * k * (mu - self.loc) ** 2 / sigma**2)
        return torch.where(sigma > 0, lp_sigma + lp_mu, -torch.inf)

    def update(self, data: Tensor) -> NormalInverseGamma:
        """The posterior after observing ``data (k,)`` (NaN entries are ignored as padding)."""
        if self.batch_shape:
            raise ValueError(f"NormalInverseGamma.update: needs an unbatched prior, got batch shape "
                             f"{tuple(self.batch_shape)}")
        x = data.reshape(-1).to(self.loc.dtype)
        x = x[~torch.isnan(x)]
        k = x.numel()
        mean = x.mean() if k else self.loc
        ss = (x - mean).square().sum()
        kappa = self.kappa + k
        loc = (self.kappa * self.loc + k * mean) / kappa
        rate = self.rate + 0.5 * ss + k * self.kappa * (mean - self.loc) ** 2 / (2 * kappa)
        return NormalInverseGamma(loc, kappa, self.concentration + 0.5 * k, rate,
                                  validate_args=self._validate_args)
