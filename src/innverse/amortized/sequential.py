r"""Sequential inference for one observation: truncated sequential neural posterior estimation (TSNPE).

Round 1 simulates from the prior and trains a posterior. Every later round simulates from the
prior *truncated* to the current posterior's highest-density region

.. math::
    \mathcal H = \{\theta : \log q(\theta \mid x_o) \ge \tau\},\qquad
    \tau = \text{the } \varepsilon\text{-quantile of } \log q(\theta_j \mid x_o),\ \theta_j \sim q(\cdot \mid x_o),

(a region holding :math:`1 - \varepsilon` of the posterior mass), intersected with the box
spanned by those posterior draws (widened by a quarter of its width on each side): a flow's
density far from the simulated data is an extrapolation and can stay above :math:`\tau` in
regions the posterior does not reach, which would waste the round's simulations there. It then
retrains on all simulations
so far with the ordinary NPE loss. Within :math:`\mathcal H` the truncated prior is proportional
to the prior, so the posterior there needs no proposal correction (Deistler et al. 2022); the
simulations concentrate where the posterior of :math:`x_o` lives.

References:
    Deistler, Goncalves, Macke. "Truncated proposals for scalable and hassle-free simulation-based
    inference". NeurIPS 2022.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .executor import simulate
from .posterior import Posterior
from .simulation import batch_seed

__all__ = ["SequentialReport", "fit_sequential", "truncated_prior_sample"]


@dataclass
class SequentialReport:
    """Per round: simulations run, the HPD threshold ``tau`` and the prior acceptance rate of the truncation."""

    simulations: list[int] = field(default_factory=list)
    thresholds: list[float | None] = field(default_factory=list)
    acceptance: list[float] = field(default_factory=list)


def truncated_prior_sample(prior: Distribution, posterior: Posterior, x_obs: Any, n: int, threshold: float,
                           seed: int, max_draws: int = 10_000_000,
                           box: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, float]:
    """``n`` prior draws with ``log q(theta | x_obs) >= threshold`` (and inside ``box``) by rejection; and the acceptance rate.

    Raises:
        ValueError: fewer than ``n`` of ``max_draws`` prior draws are accepted (the region has
            (almost) no prior mass: the posterior is far narrower than the prior can reach by
            sampling, or wrong).
    """
    gen = torch.Generator().manual_seed(seed)
    kept: list[Tensor] = []
    drawn = accepted = 0
    batch = max(1000, 4 * n)
    while accepted < n:
        if drawn >= max_draws:
            raise ValueError(f"fit_sequential: the truncation to the posterior's highest-density region leaves "
                             f"(almost) no prior mass: {accepted} of {drawn} prior draws accepted, {n} needed")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            theta = prior.sample((batch,)).reshape(batch, -1)
        ok = posterior.log_prob(theta, x_obs, outside="-inf") >= threshold
        if box is not None:
            ok &= ((theta >= box[0]) & (theta <= box[1])).all(-1)
        kept.append(theta[ok])
        drawn += batch
        accepted += int(ok.sum())
    return torch.cat(kept)[:n], accepted / drawn


def fit_sequential(simulator: Callable[..., Any], prior: Distribution, x_obs: Any, *, rounds: int = 4,
                   simulations_per_round: int = 1000, epsilon: float = 1e-4, posterior_samples: int = 20_000,
                   seed: int = 0, **options: Any) -> tuple[Posterior, SequentialReport]:
    """TSNPE (see the module docstring): a posterior for ``x_obs`` from ``rounds`` rounds of simulations.

    Args:
        simulator: batched simulator, as for :func:`~innverse.amortized.simulate`.
        prior: the prior.
        x_obs: the one observation (shape ``x_shape``).
        rounds: simulation rounds (the first from the prior).
        simulations_per_round: simulations per round.
        epsilon: posterior mass outside the truncation region.
        posterior_samples: draws that set the threshold of the region.
        seed: seed of everything.
        options: further keyword arguments of :func:`~innverse.amortized.fit_posterior`.

    Returns:
        ``(posterior, report)``; the posterior is amortized in form but trustworthy only near ``x_obs``.

    Raises:
        ValueError: no observation, bad round counts, or a truncation without prior mass.
    """
    from .fit import fit_posterior

    if x_obs is None:
        raise ValueError("fit_sequential: sequential inference is for one observation; x_obs is None")
    for name, value in (("rounds", rounds), ("simulations_per_round", simulations_per_round)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"fit_sequential: {name} must be an int >= 1, got {value!r}")
    if not 0 < epsilon < 1:
        raise ValueError(f"fit_sequential: epsilon must be in (0, 1), got {epsilon}")
    x_obs = torch.as_tensor(x_obs)
    report, thetas, xs = SequentialReport(), [], []
    posterior: Posterior | None = None
    for r in range(rounds):
        if posterior is None:
            theta, threshold, rate = None, None, 1.0
            sims = simulate(simulator, prior=prior, n=simulations_per_round, seed=batch_seed(seed, r), progress=False)
        else:
            draws = posterior.sample(posterior_samples, x_obs, seed=batch_seed(seed, r, 1))
            threshold = float(torch.quantile(posterior.log_prob(draws, x_obs, outside="-inf").double(), epsilon))
            low, high = draws.min(0).values, draws.max(0).values
            margin = 0.25 * (high - low)
            theta, rate = truncated_prior_sample(prior, posterior, x_obs, simulations_per_round, threshold,
                                                 batch_seed(seed, r, 2), box=(low - margin, high + margin))
            sims = simulate(simulator, theta, seed=batch_seed(seed, r), progress=False)
        thetas.append(sims.theta)
        xs.append(sims.x)
        report.simulations.append(int(sims.theta.shape[0]))
        report.thresholds.append(threshold)
        report.acceptance.append(rate)
        posterior = fit_posterior(torch.cat(thetas), torch.cat(xs), prior=prior, seed=seed + r,
                                  **{"progress": False, **options})
    assert posterior is not None
    return posterior, report
