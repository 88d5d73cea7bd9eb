r"""Sequential inference for one observation: truncated sequential neural posterior estimation (TSNPE).

Round 1 simulates from the prior and trains a posterior. Every later round simulates from the
prior *truncated* to the current posterior's highest-density region

.. math::
    \mathcal H = \{\theta : \log q(\theta \mid x_o) \ge \tau\},\qquad
    \tau = \text{the } \varepsilon\text{-quantile of } \log q(\theta_j \mid x_o),\ \theta_j \sim q(\cdot \mid x_o),

(a region holding :math:`1 - \varepsilon` of the posterior mass), intersected with a box around
those posterior draws: per parameter, their central 99.8% interval (0.1% and 99.9% quantiles)
widened by half its width on each side (about :math:`\pm 6` standard deviations of a Gaussian
posterior). A flow's density far from the simulated data is an extrapolation: it can stay above
:math:`\tau` in regions the posterior does not reach, and thin tails of the estimate can stretch
the region over a volume far larger than the posterior's, so that most of the round's
simulations would land where the posterior has no mass. The box is set by quantiles, not by the
extreme draws, because those extremes are exactly such tails. It then retrains on all
simulations so far with the ordinary NPE loss. Within :math:`\mathcal H` the truncated prior is
proportional to the prior, so the posterior there needs no proposal correction (Deistler et al.
2022); the simulations concentrate where the posterior of :math:`x_o` lives.

The truncated prior is sampled by rejection from the prior while that is cheap. When the region
holds too little prior mass for rejection (a narrow posterior under a wide prior: a pilot of
prior draws predicts more than ``max_draws`` of them), it is sampled by importance resampling
instead, from the defensive mixture

.. math::
    g(\theta) = \tfrac13\,\mathcal U(\theta; B) + \tfrac13\,\mathcal N(\theta; \mu, 9\,\Sigma)
        + \tfrac13\, q(\theta \mid x_o),\qquad
    w(\theta) = \frac{p(\theta)\,\mathbb 1[\theta \in \mathcal H \cap B]}{g(\theta)},

with :math:`B` the box above (clipped to the prior's support) and :math:`\mu, \Sigma` the mean
and covariance of the posterior draws. The region is nearly uniform under a wide prior, while
:math:`q` is peaked: the Gaussian, three times as wide as the posterior, covers the region's
bulk with nearly even weights, the uniform the corners of the box it misses, and the posterior
itself any non-Gaussian shape; every weight is bounded by :math:`3\,p(\theta)\,|B|`.
Candidates are drawn until the weights' effective sample size is ``ess_factor`` times the draws
needed, and the draws are resampled from them in proportion to the weights
(sampling-importance-resampling: exact as the candidates grow; sbi's restricted prior offers the
same with ``sample_with="sir"``).

References:
    Deistler, Goncalves, Macke. "Truncated proposals for scalable and hassle-free simulation-based
    inference". NeurIPS 2022.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .executor import simulate
from .posterior import Posterior
from .priors import prior_bounds
from .simulation import batch_seed

__all__ = ["SequentialReport", "fit_sequential", "resampled_truncated_prior_sample", "truncated_prior_sample"]


@dataclass
class SequentialReport:
    """Per round: simulations run, the HPD threshold ``tau``, the truncation's acceptance rate and how it was sampled.

    ``samplers``: ``"prior"`` (the first round), ``"rejection"`` or ``"importance"``.
    ``acceptance``: the fraction of prior draws kept (rejection) or of candidates inside the
    region (importance). ``ess``: the effective sample size of the importance weights (``None``
    for the other samplers).
    """

    simulations: list[int] = field(default_factory=list)
    thresholds: list[float | None] = field(default_factory=list)
    acceptance: list[float] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    ess: list[float | None] = field(default_factory=list)


def _in_region(posterior: Posterior, x_obs: Tensor, theta: Tensor, threshold: float,
               box: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """``(log q(theta | x_obs), mask of theta inside the region)``."""
    log_q = posterior.log_prob(theta, x_obs, outside="-inf")
    ok = log_q >= threshold
    if box is not None:
        ok &= ((theta >= box[0]) & (theta <= box[1])).all(-1)
    return log_q, ok


def _no_mass(accepted: int, drawn: int, n: int, what: str) -> ValueError:
    return ValueError(f"fit_sequential: the truncation to the posterior's highest-density region leaves "
                      f"(almost) no prior mass: {accepted} of {drawn} {what} accepted, {n} needed")


def truncated_prior_sample(prior: Distribution, posterior: Posterior, x_obs: Any, n: int, threshold: float,
                           seed: int, max_draws: int = 10_000_000,
                           box: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, float]:
    """``n`` prior draws with ``log q(theta | x_obs) >= threshold`` (and inside ``box``) by rejection; and the acceptance rate.

    Raises:
        ValueError: fewer than ``n`` of ``max_draws`` prior draws are accepted (the region has
            (almost) no prior mass: the posterior is far narrower than the prior can reach by
            sampling, or wrong; :func:`resampled_truncated_prior_sample` reaches it).
    """
    gen = torch.Generator().manual_seed(seed)
    x_obs = torch.as_tensor(x_obs)
    kept: list[Tensor] = []
    drawn = accepted = 0
    batch = max(1000, 4 * n)
    while accepted < n:
        if drawn >= max_draws:
            raise _no_mass(accepted, drawn, n, "prior draws")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            theta = prior.sample((batch,)).reshape(batch, -1)
        ok = _in_region(posterior, x_obs, theta, threshold, box)[1]
        kept.append(theta[ok])
        drawn += batch
        accepted += int(ok.sum())
    return torch.cat(kept)[:n], accepted / drawn


def resampled_truncated_prior_sample(prior: Distribution, posterior: Posterior, x_obs: Any, n: int,
                                     threshold: float, seed: int, box: tuple[Tensor, Tensor],
                                     ess_factor: float = 4.0,
                                     max_candidates: int = 4_000_000) -> tuple[Tensor, float, float]:
    """``n`` draws of the prior truncated to the region by importance resampling (see the module docstring).

    Returns:
        ``(theta (n, D), the fraction of candidates inside the region, the weights' effective sample size)``.

    Raises:
        ValueError: the weights' effective sample size stays below ``ess_factor * n`` after
            ``max_candidates`` candidates, or the box does not overlap the prior's support.
    """
    x_obs = torch.as_tensor(x_obs)
    lo, hi = prior_bounds(prior)
    low = torch.maximum(box[0].double(), lo).to(box[0].dtype)
    high = torch.minimum(box[1].double(), hi).to(box[1].dtype)
    if not bool((high > low).all()):
        raise ValueError(f"fit_sequential: the posterior's box {box[0].tolist()} .. {box[1].tolist()} does not "
                         f"overlap the prior's support {lo.tolist()} .. {hi.tolist()}")
    log_volume = float(torch.log(high - low).sum())
    gen = torch.Generator().manual_seed(seed)
    d = low.shape[0]
    def posterior_draws(k: int) -> Tensor:   # on the CPU, seeded from ``gen`` (the posterior may live on a GPU)
        return posterior.sample(k, x_obs, seed=int(torch.randint(0, 2**62, (1,), generator=gen))).cpu()

    # the wide Gaussian: three times the posterior's spread, from its draws (float64; a ridge keeps it definite)
    pilot = posterior_draws(max(2_000, 20 * d)).double()
    cov = torch.cov(pilot.T).reshape(d, d) * 9.0
    cov += 1e-9 * float(cov.diagonal().mean()) * torch.eye(d, dtype=cov.dtype)
    wide = torch.distributions.MultivariateNormal(pilot.mean(0), covariance_matrix=cov)
    third = max(5_000, int(ess_factor * n))
    thetas: list[Tensor] = []
    log_w: list[Tensor] = []
    drawn = inside = 0
    ess = 0.0
    while ess < ess_factor * n:
        if drawn >= max_candidates:
            raise _no_mass(inside, drawn, n, f"candidates (effective sample size {ess:.0f} < {ess_factor:g} x n)")
        uniform = low + (high - low) * torch.rand(third, d, generator=gen, dtype=low.dtype)
        gauss = wide.loc + torch.randn(third, d, generator=gen, dtype=cov.dtype) @ wide.scale_tril.T
        draws = posterior_draws(third)
        theta = torch.cat([uniform, gauss.to(low.dtype), draws.to(low.dtype)])
        log_q, ok = _in_region(posterior, x_obs, theta, threshold, (low, high))
        theta, log_q = theta[ok], log_q[ok]
        parts = torch.stack([torch.full_like(log_q, -log_volume, dtype=torch.float64),
                             wide.log_prob(theta.double()), log_q.double()])
        log_g = torch.logsumexp(parts, 0) - math.log(3.0)
        thetas.append(theta)
        log_w.append(prior.log_prob(theta).double() - log_g)
        drawn += 3 * third
        inside += int(ok.sum())
        w = torch.cat(log_w)
        w = torch.exp(w - w.max()) if w.numel() else w
        ess = float(w.sum() ** 2 / (w**2).sum()) if w.numel() else 0.0
    pick = torch.multinomial(w, n, replacement=True, generator=gen)
    return torch.cat(thetas)[pick], inside / drawn, ess


def _truncated_round(prior: Distribution, posterior: Posterior, x_obs: Tensor, n: int, epsilon: float,
                     posterior_samples: int, sampler: str, max_draws: int, seed: int,
                     r: int) -> tuple[Tensor, float, float, str, float | None]:
    """Round ``r``'s parameters: ``(theta, threshold, acceptance, sampler used, ess)``."""
    draws = posterior.sample(posterior_samples, x_obs, seed=batch_seed(seed, r, 1)).cpu()
    threshold = float(torch.quantile(posterior.log_prob(draws, x_obs, outside="-inf").double(), epsilon))
    low, high = torch.quantile(draws.double(), torch.tensor([1e-3, 1 - 1e-3], dtype=torch.float64), dim=0)
    margin = 0.5 * (high - low)
    box = ((low - margin).to(draws.dtype), (high + margin).to(draws.dtype))
    if sampler == "auto":   # a pilot of prior draws predicts the cost of rejection
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(batch_seed(seed, r, 3))
            pilot = prior.sample((100_000,)).reshape(100_000, -1)
        rate = float(_in_region(posterior, x_obs, pilot, threshold, box)[1].double().mean())
        sampler = "rejection" if rate * max_draws >= 2 * n else "importance"
    if sampler == "rejection":
        theta, rate = truncated_prior_sample(prior, posterior, x_obs, n, threshold, batch_seed(seed, r, 2),
                                             max_draws=max_draws, box=box)
        return theta, threshold, rate, sampler, None
    theta, rate, ess = resampled_truncated_prior_sample(prior, posterior, x_obs, n, threshold, batch_seed(seed, r, 2),
                                                        box)
    return theta, threshold, rate, sampler, ess


# exempt from the size rule: every option is a documented keyword of the one sequential entry point
def fit_sequential(simulator: Callable[..., Any], prior: Distribution, x_obs: Any, *, rounds: int = 4,
                   simulations_per_round: int = 1000, epsilon: float = 1e-4, posterior_samples: int = 20_000,
                   sampler: str = "auto", max_draws: int = 10_000_000, seed: int = 0,
                   **options: Any) -> tuple[Posterior, SequentialReport]:
    """TSNPE (see the module docstring): a posterior for ``x_obs`` from ``rounds`` rounds of simulations.

    Args:
        simulator: batched simulator, as for :func:`~innverse.amortized.simulate`.
        prior: the prior.
        x_obs: the one observation (shape ``x_shape``).
        rounds: simulation rounds (the first from the prior).
        simulations_per_round: simulations per round.
        epsilon: posterior mass outside the truncation region.
        posterior_samples: draws that set the threshold of the region.
        sampler: how the truncated prior is sampled: ``"rejection"`` from the prior (exact; at most
            ``max_draws`` prior draws per round), ``"importance"`` resampling (see the module
            docstring), or ``"auto"``: rejection unless a pilot of 100,000 prior draws predicts
            that ``max_draws`` would not suffice.
        max_draws: prior draws rejection may spend per round.
        seed: seed of everything.
        options: further keyword arguments of :func:`~innverse.amortized.fit_posterior`.

    Returns:
        ``(posterior, report)``; the posterior is amortized in form but trustworthy only near ``x_obs``.

    Raises:
        ValueError: no observation, bad round counts or sampler, or a truncation without prior mass.
    """
    from .fit import fit_posterior

    if x_obs is None:
        raise ValueError("fit_sequential: sequential inference is for one observation; x_obs is None")
    for name, value in (("rounds", rounds), ("simulations_per_round", simulations_per_round),
                        ("max_draws", max_draws)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"fit_sequential: {name} must be an int >= 1, got {value!r}")
    if not 0 < epsilon < 1:
        raise ValueError(f"fit_sequential: epsilon must be in (0, 1), got {epsilon}")
    if sampler not in ("auto", "rejection", "importance"):
        raise ValueError(f"fit_sequential: sampler must be 'auto', 'rejection' or 'importance', got {sampler!r}")
    x_obs = torch.as_tensor(x_obs)
    report, thetas, xs = SequentialReport(), [], []
    posterior: Posterior | None = None
    for r in range(rounds):
        if posterior is None:
            threshold, rate, used, ess = None, 1.0, "prior", None
            sims = simulate(simulator, prior=prior, n=simulations_per_round, seed=batch_seed(seed, r), progress=False)
        else:
            theta, threshold, rate, used, ess = _truncated_round(prior, posterior, x_obs, simulations_per_round,
                                                                 epsilon, posterior_samples, sampler, max_draws,
                                                                 seed, r)
            sims = simulate(simulator, theta, seed=batch_seed(seed, r), progress=False)
        thetas.append(sims.theta)
        xs.append(sims.x)
        report.simulations.append(int(sims.theta.shape[0]))
        report.thresholds.append(threshold)
        report.acceptance.append(rate)
        report.samplers.append(used)
        report.ess.append(ess)
        posterior = fit_posterior(torch.cat(thetas), torch.cat(xs), prior=prior, seed=seed + r,
                                  **{"progress": False, **options})
    assert posterior is not None
    return posterior, report
