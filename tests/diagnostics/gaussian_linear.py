"""A closed-form Gaussian-linear model and its exact posterior, with deliberately broken variants.

theta ~ N(0, s0^2 I_D), x = A theta + eps, eps ~ N(0, s^2 I_M):
posterior N(mu(x), Sigma), Sigma = (I / s0^2 + A^T A / s^2)^{-1}, mu(x) = Sigma A^T x / s^2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianLinear:
    """Prior, simulator and exact posterior; ``scale``/``bias`` break the posterior on purpose."""

    def __init__(self, dims: int = 2, obs: int = 3, prior_std: float = 1.0, noise_std: float = 0.5,
                 seed: int = 0, A: Tensor | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(obs, dims, generator=g, dtype=torch.float64) / math.sqrt(dims) if A is None \
            else A.to(torch.float64)
        self.s0, self.s = prior_std, noise_std
        self.prior = torch.distributions.Independent(
            torch.distributions.Normal(torch.zeros(dims), torch.full((dims,), prior_std)), 1)
        precision = torch.eye(dims, dtype=torch.float64) / prior_std**2 + self.A.T @ self.A / noise_std**2
        self.cov = torch.linalg.inv(precision)
        self.chol = torch.linalg.cholesky(self.cov)

    def simulator(self, theta: Tensor) -> Tensor:
        eps = torch.randn(theta.shape[0], self.A.shape[0], dtype=torch.float64)
        return (theta.to(torch.float64) @ self.A.T + self.s * eps).to(torch.float32)

    def mean(self, x: Tensor) -> Tensor:
        return x.to(torch.float64) @ (self.cov @ self.A.T / self.s**2).T

    def posterior(self, scale: float = 1.0, bias: float = 0.0, flip_correlation: bool = False) -> Posterior:
        return Posterior(self, scale, bias, flip_correlation)


class Posterior:
    """``N(mu(x) + bias, scale^2 Sigma)``; exact for ``scale=1, bias=0``. Batched protocol."""

    def __init__(self, model: GaussianLinear, scale: float, bias: float, flip_correlation: bool = False) -> None:
        self.model, self.scale, self.bias = model, scale, bias
        self.sample_calls = 0
        cov = model.cov
        if flip_correlation:  # same marginals, correlations of the opposite sign
            sd = cov.diagonal().sqrt()
            corr = cov / torch.outer(sd, sd)
            cov = torch.outer(sd, sd) * (2 * torch.eye(len(sd), dtype=cov.dtype) - corr)
        self.chol = torch.linalg.cholesky(cov)

    def _dist(self, x: Tensor) -> torch.distributions.MultivariateNormal:
        m = self.model
        return torch.distributions.MultivariateNormal(m.mean(x) + self.bias, scale_tril=self.scale * self.chol)

    def sample(self, n: int, x: Tensor) -> Tensor:
        self.sample_calls += 1
        single = x.dim() == 1
        out = self._dist(x[None] if single else x).sample((n,))
        return out[:, 0] if single else out

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        return self._dist(x).log_prob(theta.to(torch.float64))
