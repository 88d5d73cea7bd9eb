r"""Lotka–Volterra task: predator–prey rates from log-normally perturbed population counts.

Definition (Lueckmann et al. 2021, task "Lotka-Volterra", after Lotka 1920 and Volterra 1926):

.. math::
    \alpha, \gamma \sim \operatorname{LogNormal}(-0.125, 0.5^2), \qquad
    \beta, \delta \sim \operatorname{LogNormal}(-3, 0.5^2),

    \dot X = \alpha X - \beta X Y, \qquad \dot Y = -\gamma Y + \delta X Y, \qquad (X, Y)(0) = (30, 1),

observed at :math:`t_j = 2.1 j`, :math:`j = 0..9` (every 21st point of the grid of step 0.1 on
:math:`[0, 20]`), through :math:`x = (X(t_0..t_9), Y(t_0..t_9))` with independent log-normal
noise :math:`x_k \sim \operatorname{LogNormal}(\log \operatorname{clip}(u_k, 10^{-10}, 10^4), 0.1^2)`,
prey first, then predators (``x_shape = (20,)``).

The ODE is solved in log-populations, :math:`\dot u = \alpha - \beta e^{v}`,
:math:`\dot v = -\gamma + \delta e^{u}` (positivity by construction, relative accuracy for
small populations), with the batched Dormand–Prince solver (``rtol=1e-6``, ``atol=1e-9``).
Parameters for which it fails (more than 20,000 steps) give NaN data (a failed simulation) and
zero likelihood. Reference posterior: :func:`~innverse.tasks.sbi.mcmc.sample_reference_mcmc`.

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.10);
    Lotka, "Analytical note on certain rhythmic relations in organic systems", PNAS 6 (1920).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from ...amortized.priors import log_normal
from .base import AbstractSBITask
from .mcmc import MCMCConfig, sample_reference_mcmc
from .ode import solve_ode

__all__ = ["LotkaVolterra", "LotkaVolterraSeries", "lotka_volterra_log_populations"]

_LOC = (-0.125, -3.0, -0.125, -3.0)
_SCALE = (0.5, 0.5, 0.5, 0.5)
_TIMES = tuple(2.1 * j for j in range(10))
_SERIES_TIMES = tuple(0.5 * j for j in range(41))
_NOISE = 0.1
_LOG_MIN, _LOG_MAX = math.log(1e-10), math.log(1e4)


def _rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    u, v = y[:, 0], y[:, 1]
    return torch.stack([p[:, 0] - p[:, 1] * torch.exp(v), -p[:, 2] + p[:, 3] * torch.exp(u)], -1)


def lotka_volterra_log_populations(theta: Tensor, times: Tensor | None = None) -> Tensor:
    """Log prey and predator populations ``(n, T, 2)`` at ``times`` (default: the 10 observation times)."""
    times = torch.tensor(_TIMES, dtype=torch.float64) if times is None else times.to(torch.float64)
    y0 = torch.tensor([math.log(30.0), 0.0], dtype=torch.float64).expand(theta.shape[0], 2)
    return solve_ode(_rhs, y0, theta.detach().to("cpu", torch.float64), times, rtol=1e-6, atol=1e-9)


def _log_means(theta: Tensor) -> Tensor:
    # (n, 20): clipped log populations at the 10 observation times, prey block then predator block
    log_u = lotka_volterra_log_populations(theta).clamp(_LOG_MIN, _LOG_MAX)
    return log_u.transpose(1, 2).reshape(theta.shape[0], -1)


def _log_means_series(theta: Tensor) -> Tensor:
    # (n, 41, 2): clipped log populations every 0.5 time units, columns (prey, predator)
    times = torch.tensor(_SERIES_TIMES, dtype=torch.float64)
    return lotka_volterra_log_populations(theta, times).clamp(_LOG_MIN, _LOG_MAX)


def _prior(dtype: torch.dtype, validate_args: bool) -> Distribution:
    return log_normal(_LOC, _SCALE, dtype=dtype, validate_args=validate_args)


def _observe(log_mean: Tensor, theta: Tensor, generator: torch.Generator | None) -> Tensor:
    # log-normal observation noise around the noise-free log populations, in theta's dtype
    log_mean = log_mean.to(theta.device)
    noise = torch.randn(log_mean.shape, generator=generator, dtype=torch.float64, device=theta.device)
    return torch.exp(log_mean + _NOISE * noise).to(theta.dtype)


def _log_likelihood(x: Tensor, log_mean: Tensor, dtype: torch.dtype) -> Tensor:
    # sum of the log-normal densities of all entries; -inf where the ODE failed (NaN)
    log_x = torch.log(x.to(torch.float64))
    mean = log_mean.to(x.device)
    lp = -0.5 * ((log_x - mean) / _NOISE).square() - log_x - math.log(_NOISE * math.sqrt(2 * math.pi))
    ll = lp.reshape(lp.shape[0], -1).sum(-1)
    return torch.where(torch.isnan(ll), -torch.inf, ll).to(dtype)


class LotkaVolterra(AbstractSBITask):
    """Lotka–Volterra: ``(alpha, beta, gamma, delta)`` from 10 noisy prey and 10 predator counts."""

    name = "lotka_volterra"
    theta_dim = 4
    x_shape = (20,)
    parameter_names = ("alpha", "beta", "gamma", "delta")
    observation_seeds = tuple(1_000_000 + i for i in range(10))
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals
    mcmc_config = MCMCConfig(chains=100, warmup=800, init_draws=5000)

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _observe(_log_means(theta), theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _log_likelihood(x, _log_means(theta), theta.dtype)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return sample_reference_mcmc(self, indices, n, generator, self.mcmc_config)


class LotkaVolterraSeries(AbstractSBITask):
    r"""Lotka–Volterra observed as a time series: ``x_shape = (41, 2)``, rows :math:`t = 0, 0.5, .., 20`.

    Same prior, ODE and log-normal noise (standard deviation 0.1 on the log scale, populations
    clipped to :math:`[10^{-10}, 10^4]`) as :class:`LotkaVolterra`, but every 0.5 time units and
    laid out as (time, species) with columns (prey, predator), the shape a time-series summary
    network consumes. A variant of this package (not one of the published benchmark tasks);
    observation seeds ``3_000_000 + i``.
    """

    name = "lotka_volterra_series"
    theta_dim = 4
    x_shape = (len(_SERIES_TIMES), 2)
    parameter_names = LotkaVolterra.parameter_names
    observation_seeds = tuple(3_000_000 + i for i in range(10))
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals
    mcmc_config = LotkaVolterra.mcmc_config

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _observe(_log_means_series(theta), theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _log_likelihood(x, _log_means_series(theta), theta.dtype)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return sample_reference_mcmc(self, indices, n, generator, self.mcmc_config)
