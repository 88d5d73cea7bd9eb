r"""One posterior for a whole continuous design space, and design optimisation through it.

A design-conditional NPE :math:`q(\theta \mid x, \xi)` is trained once on
:math:`\xi \sim p(\xi)`, :math:`\theta \sim p(\theta)`, :math:`x \sim p(x \mid \theta, \xi)`
(the observation fed to the estimator is :math:`[x, \xi]`). At a fixed design it is the
posterior of that setup, so setups along the design space are compared without training one NPE
each (:func:`~innverse.design.compare` with ``posterior=``), and the design maximising the
expected-information-gain lower bound

.. math::
    \widehat{\mathrm{EIG}}(\xi) = \frac1N \sum_i \big[\log q(\theta_i \mid x_i(\xi), \xi) - \log p(\theta_i)\big]

is searched with common random numbers (the same :math:`\theta_i` and the same simulator noise
stream at every :math:`\xi`, so that differences between designs are not Monte Carlo noise):
the best of ``candidates`` designs drawn uniformly in the box, refined by Nelder-Mead within it.

References:
    Foster et al. "Variational Bayesian optimal experimental design". NeurIPS 2019; Kleinegesse,
    Gutmann. "Bayesian experimental design for implicit models by mutual information neural
    estimation". ICML 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .._tensors import to_tensor
from ..amortized import Posterior, as_prior, fit_posterior, sample_with_generator
from ..amortized.simulation import calling_style
from .information import information_gain

__all__ = ["DesignConditionalPosterior", "DesignOptimum", "train_design_posterior", "optimize_design"]


def _run(simulator: Callable[..., Any], theta: Tensor, design: Tensor, generator: torch.Generator) -> Tensor:
    """``simulator(theta, design=design[, generator=...])`` as a float tensor ``(n, F)``."""
    style = calling_style(simulator)
    if style not in ("generator", "global"):
        raise ValueError(f"design: the simulator must take its randomness as generator= (or none), got {style}=")
    x = simulator(theta, design=design, generator=generator) if style == "generator" else simulator(theta, design=design)
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[0] != theta.shape[0]:
        raise ValueError(f"design: the simulator must return (n, F) vectors, got shape {tuple(x.shape)}")
    return x


class DesignConditionalPosterior:
    """:math:`q(\\theta \\mid x, \\xi)`: a :class:`~innverse.amortized.Posterior` on observations ``[x, design]``.

    Args:
        posterior: the NPE trained on ``(theta, cat(x, design))``.
        design_dim: number of design variables ``P`` (the last ``P`` observation features).
    """

    def __init__(self, posterior: Posterior, design_dim: int) -> None:
        if len(posterior.x_shape) != 1 or posterior.x_shape[0] <= design_dim:
            raise ValueError(f"DesignConditionalPosterior: expected vector observations longer than design_dim "
                             f"{design_dim}, got x_shape {posterior.x_shape}")
        self.posterior, self.design_dim = posterior, int(design_dim)

    @property
    def theta_dim(self) -> int:
        return self.posterior.theta_dim

    def design_vector(self, design: Any) -> Tensor:
        d = to_tensor(design, "design", "DesignConditionalPosterior", torch.float64).reshape(-1)
        if d.shape[0] != self.design_dim:
            raise ValueError(f"DesignConditionalPosterior: expected a design of {self.design_dim} values, got "
                             f"{d.shape[0]}")
        return d

    def at(self, design: Any) -> _AtDesign:
        """The posterior of the setup with this design: ``sample(n, x)``, ``log_prob(theta, x)`` on plain ``x``."""
        return _AtDesign(self, self.design_vector(design))


class _AtDesign:
    def __init__(self, owner: DesignConditionalPosterior, design: Tensor) -> None:
        self.owner, self.design = owner, design

    def _x(self, x: Any) -> Tensor:
        xt = torch.as_tensor(x)
        xt = xt[None] if xt.dim() == 1 else xt
        return torch.cat([xt.to(torch.float64), self.design.expand(xt.shape[0], -1)], 1)

    def sample(self, n: int, x: Any, generator: torch.Generator | None = None) -> Tensor:
        out = self.owner.posterior.sample(n, self._x(x), generator=generator)
        return out[:, 0] if torch.as_tensor(x).dim() == 1 else out

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor:
        single = torch.as_tensor(x).dim() == 1
        xx = self._x(x)
        return self.owner.posterior.log_prob(theta, xx[0] if single else xx, outside=outside)


def train_design_posterior(simulator: Callable[..., Any], prior: Distribution, design_prior: Distribution,
                           simulations: int = 20_000, *, seed: int = 0, progress: bool = False,
                           **fit_options: Any) -> DesignConditionalPosterior:
    """Train :math:`q(\\theta \\mid x, \\xi)` once over the design space (see the module docstring).

    Args:
        simulator: ``simulator(theta (n, D), design=(n, P)[, generator=...]) -> x (n, F)``, one
            design per row.
        prior: prior over the parameters; design_prior: distribution of designs during training
            (e.g. ``box_uniform`` over the design box).
        simulations: training simulations.
        fit_options: keyword arguments of :func:`~innverse.amortized.fit_posterior`.
    """
    prior, design_prior = as_prior(prior), as_prior(design_prior)
    gen = torch.Generator().manual_seed(seed)
    theta = sample_with_generator(prior, simulations, gen)
    design = sample_with_generator(design_prior, simulations, gen)
    x = _run(simulator, theta, design, gen)
    obs = torch.cat([x.to(torch.float64), design.to(torch.float64)], 1).to(x.dtype)
    post = fit_posterior(theta, obs, prior=prior, seed=seed, progress=progress, **fit_options)
    return DesignConditionalPosterior(post, design.shape[1])


@dataclass(frozen=True)
class DesignOptimum:
    """The best design found, its EIG lower bound (nats) with standard error, and every design tried."""

    design: Tensor
    information_gain: float
    information_gain_se: float
    tried: list[tuple[list[float], float]]


def _eig_at(posterior: DesignConditionalPosterior, simulator: Callable[..., Any], prior: Distribution,
            theta: Tensor, design: Tensor, seed: int) -> tuple[float, float]:
    x = _run(simulator, theta, design.expand(theta.shape[0], -1).to(theta.dtype), torch.Generator().manual_seed(seed))
    log_q = posterior.at(design).log_prob(theta, x, outside="-inf").to(torch.float64)
    return information_gain(log_q, prior.log_prob(theta).to(torch.float64))


def optimize_design(posterior: DesignConditionalPosterior, simulator: Callable[..., Any], prior: Distribution,
                    low: Any, high: Any, *, candidates: int = 16, test_size: int = 500, max_iter: int = 40,
                    seed: int = 0) -> DesignOptimum:
    """Maximise the EIG lower bound over the design box ``[low, high]`` (see the module docstring)."""
    from scipy.optimize import minimize

    prior = as_prior(prior)
    lo = to_tensor(low, "low", "optimize_design", torch.float64).reshape(-1)
    hi = to_tensor(high, "high", "optimize_design", torch.float64).reshape(-1)
    if lo.shape != (posterior.design_dim,) or hi.shape != lo.shape or not (hi > lo).all():
        raise ValueError(f"optimize_design: low and high must be {posterior.design_dim} values with high > low, got "
                         f"{lo.tolist()} and {hi.tolist()}")
    gen = torch.Generator().manual_seed(seed)
    theta = sample_with_generator(prior, test_size, gen)
    tried: list[tuple[list[float], float]] = []

    def objective(u: np.ndarray) -> float:
        design = lo + (hi - lo) * torch.as_tensor(np.clip(u, 0.0, 1.0), dtype=torch.float64)
        eig, _ = _eig_at(posterior, simulator, prior, theta, design, seed + 1)
        tried.append((design.tolist(), eig))
        return -eig

    starts = torch.rand((candidates, lo.shape[0]), generator=gen, dtype=torch.float64).numpy()
    values = [objective(u) for u in starts]
    best = starts[int(np.argmin(values))]
    res = minimize(objective, best, method="Nelder-Mead", options={"maxiter": max_iter, "xatol": 1e-3, "fatol": 1e-4})
    u = np.clip(res.x if res.fun <= min(values) else best, 0.0, 1.0)
    design = lo + (hi - lo) * torch.as_tensor(u, dtype=torch.float64)
    eig, se = _eig_at(posterior, simulator, prior, theta, design, seed + 1)
    return DesignOptimum(design, eig, se, tried)
