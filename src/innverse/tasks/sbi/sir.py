r"""SIR epidemic task: contact and recovery rates from noisy counts of infected people.

Definition (Lueckmann et al. 2021, task "SIR", after Kermack & McKendrick 1927):

.. math::
    \beta \sim \operatorname{LogNormal}(\log 0.4, 0.5^2), \qquad
    \gamma \sim \operatorname{LogNormal}(\log 0.125, 0.2^2),

    \dot S = -\beta \frac{S I}{N}, \quad \dot I = \beta \frac{S I}{N} - \gamma I, \quad
    \dot R = \gamma I, \qquad N = 10^6,\ (S, I, R)(0) = (N - 1, 1, 0),

observed at the days :math:`t_j = 17 j`, :math:`j = 0..9` (every 17th of the 161 daily values
on :math:`[0, 160]`) through :math:`x_j \sim \operatorname{Binomial}(1000, I(t_j)/N)`. The ODE
is solved in population fractions with the batched Dormand–Prince solver
(:func:`~innverse.tasks.sbi.ode.solve_ode`, ``rtol=1e-6``, ``atol=1e-12``); Runge–Kutta methods
conserve the linear invariant :math:`S + I + R = N` to rounding error.

Likelihood: :math:`\sum_j \log\operatorname{Binomial}(x_j; 1000, I(t_j)/N)` (exact given the ODE
solution); reference posterior: :func:`~innverse.tasks.sbi.mcmc.sample_reference_mcmc`.

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.9);
    Kermack, McKendrick, "A contribution to the mathematical theory of epidemics", Proc. R. Soc.
    A 115 (1927).
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

__all__ = ["SIR"]

_POPULATION = 1e6
_TRIALS = 1000
_DAYS = tuple(17.0 * j for j in range(10))
_LOC = (math.log(0.4), math.log(0.125))
_SCALE = (0.5, 0.2)


def _rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    infection = p[:, 0] * y[:, 0] * y[:, 1]
    recovery = p[:, 1] * y[:, 1]
    return torch.stack([-infection, infection - recovery, recovery], -1)


def sir_trajectories(theta: Tensor, days: Tensor | None = None) -> Tensor:
    """Population fractions ``(n, T, 3)`` = (S, I, R) / N at ``days`` (default: the 10 observation days)."""
    days = torch.tensor(_DAYS, dtype=torch.float64) if days is None else days.to(torch.float64)
    n = theta.shape[0]
    y0 = torch.tensor([1.0 - 1.0 / _POPULATION, 1.0 / _POPULATION, 0.0], dtype=torch.float64).expand(n, 3)
    return solve_ode(_rhs, y0, theta.detach().to("cpu", torch.float64), days, rtol=1e-6, atol=1e-12)


class SIR(AbstractSBITask):
    """SIR model: ``(beta, gamma)`` from 10 binomial(1000) samples of the infected fraction."""

    name = "sir"
    theta_dim = 2
    x_shape = (10,)
    parameter_names = ("beta", "gamma")
    observation_seeds = tuple(1_000_000 + i for i in range(10))
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals
    mcmc_config = MCMCConfig(chains=100, warmup=600, init_draws=5000)

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return log_normal(_LOC, _SCALE, dtype=dtype, validate_args=validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        infected = sir_trajectories(theta)[..., 1].clamp(0.0, 1.0)
        failed = torch.isnan(infected).any(-1, keepdim=True)
        probs = torch.where(failed, 0.0, infected).to(theta.device)
        counts = torch.binomial(torch.full_like(probs, float(_TRIALS)), probs, generator=generator)
        return torch.where(failed.to(theta.device), torch.nan, counts).to(theta.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        p = sir_trajectories(theta)[..., 1].clamp(0.0, 1.0).to(x.device)
        k = x.to(torch.float64)
        log_binom = (math.lgamma(_TRIALS + 1) - torch.lgamma(k + 1) - torch.lgamma(_TRIALS - k + 1)
                     + torch.xlogy(k, p) + torch.xlogy(_TRIALS - k, 1 - p))
        ll = log_binom.sum(-1)
        return torch.where(torch.isnan(ll), -torch.inf, ll).to(theta.dtype)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return sample_reference_mcmc(self, indices, n, generator, self.mcmc_config)
