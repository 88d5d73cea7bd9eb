r"""Defensive Student-t mixture: the independence proposal of the reference MCMC sampler.

Fitted to the pooled chain states of each of ``K`` targets: a Gaussian mixture with ``M``
components by expectation–maximisation (k-means++ seeding), turned into Student-t components
(``df`` degrees of freedom, scales widened by ``inflation``), plus one *defensive* component, the
Student-t of the states' overall mean and covariance, with weight ``defensive``:

.. math::
    q(z) = \delta\, t_\nu(z; \bar\mu, s^2 \bar\Sigma)
         + (1 - \delta) \sum_{m=1}^M w_m\, t_\nu(z; \mu_m, s^2 \Sigma_m).

The mixture follows several modes (SLCP's four) and curved posteriors; the defensive
component keeps :math:`\pi / q` bounded where the fitted components are too narrow, so the
independence Metropolis–Hastings move stays efficient (Hesterberg 1995).

References:
    Dempster, Laird, Rubin, "Maximum likelihood from incomplete data via the EM algorithm",
    JRSS B 39 (1977); Arthur, Vassilvitskii, "k-means++", SODA 2007; Hesterberg, "Weighted
    average importance sampling and defensive mixture distributions", Technometrics 37 (1995).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["StudentTMixture"]


def _kmeans_pp(x: Tensor, m: int, generator: torch.Generator) -> Tensor:
    # x (K, N, d) -> m seeds per target (K, m, d), each drawn with probability ~ squared distance
    k, n, _ = x.shape
    rows = torch.arange(k)
    first = torch.randint(0, n, (k,), generator=generator)
    seeds = [x[rows, first]]
    dist = (x - seeds[0][:, None]).square().sum(-1)
    for _ in range(1, m):
        idx = torch.multinomial(dist + 1e-300, 1, generator=generator)[:, 0]
        seeds.append(x[rows, idx])
        dist = torch.minimum(dist, (x - seeds[-1][:, None]).square().sum(-1))
    return torch.stack(seeds, 1)


class StudentTMixture:
    """Per-target mixture of multivariate Student-t components (see the module docstring).

    Args:
        states: ``(K, N, d)`` float64 samples to fit, one set per target.
        components: number ``M`` of fitted components.
        generator: randomness of the k-means++ seeding and of :meth:`sample`.
        df: degrees of freedom of every component.
        inflation: factor applied to every component's scale.
        defensive: weight of the overall-moments component.
        iterations: EM iterations.
    """

    def __init__(self, states: Tensor, components: int, generator: torch.Generator, df: int = 5,
                 inflation: float = 1.3, defensive: float = 0.2, iterations: int = 30):
        x = states.to(torch.float64)
        k, n, d = x.shape
        self.df, self.dim = df, d
        eye = torch.eye(d, dtype=torch.float64)
        mean = x.mean(1, keepdim=True)
        total = (x - mean).transpose(1, 2) @ (x - mean) / max(n - 1, 1)
        floor = 1e-6 * total.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None, None] * eye + 1e-12 * eye
        means = _kmeans_pp(x, components, generator)
        covs = total[:, None].expand(k, components, d, d).clone()
        log_w = torch.full((k, components), -math.log(components), dtype=torch.float64)
        for _ in range(iterations):
            resp = torch.softmax(self._gauss_log_prob(x, means, torch.linalg.cholesky(covs + floor), log_w), -1)
            nk = resp.sum(1) + 1e-10                                            # (K, M)
            means = (resp.transpose(1, 2) @ x) / nk[..., None]
            dev = x[:, :, None, :] - means[:, None]                              # (K, N, M, d)
            covs = torch.einsum("knm,knmi,knmj->kmij", resp, dev, dev) / nk[..., None, None]
            log_w = torch.log(nk / n)
        means = torch.cat([mean, means], 1)
        covs = torch.cat([total[:, None], covs], 1) + torch.cat([floor, floor.expand_as(covs)], 1)
        self.log_weights = torch.cat([torch.full((k, 1), math.log(defensive), dtype=torch.float64),
                                      math.log(1 - defensive) + log_w], 1)
        self.means = means
        self.chol = torch.linalg.cholesky(covs) * inflation                     # (K, M+1, d, d)
        self.chol_inv = torch.linalg.inv(self.chol)
        self.log_det = torch.log(self.chol.diagonal(dim1=-2, dim2=-1)).sum(-1)  # (K, M+1)
        self.generator = generator

    @staticmethod
    def _gauss_log_prob(x: Tensor, means: Tensor, chol: Tensor, log_w: Tensor) -> Tensor:
        white = torch.einsum("kmij,knmj->knmi", torch.linalg.inv(chol), x[:, :, None, :] - means[:, None])
        log_det = torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
        return log_w[:, None] - 0.5 * white.square().sum(-1) - log_det[:, None]

    def log_prob(self, z: Tensor) -> Tensor:
        """Normalised log density ``(K, C)`` of ``z (K, C, d)``."""
        dev = z[:, :, None, :] - self.means[:, None]                              # (K, C, M+1, d)
        white = torch.einsum("kmij,kcmj->kcmi", self.chol_inv, dev)
        nu = self.df
        const = math.lgamma((nu + self.dim) / 2) - math.lgamma(nu / 2) - 0.5 * self.dim * math.log(nu * math.pi)
        comp = -0.5 * (nu + self.dim) * torch.log1p(white.square().sum(-1) / nu) - self.log_det[:, None]
        return torch.logsumexp(self.log_weights[:, None] + comp, -1) + const

    def sample(self, chains: int) -> Tensor:
        """``chains`` draws per target, ``(K, chains, d)``."""
        k = self.means.shape[0]
        comp = torch.multinomial(self.log_weights.exp(), chains, replacement=True, generator=self.generator)
        rows = torch.arange(k)[:, None]
        eps = torch.randn(k, chains, self.dim, generator=self.generator, dtype=torch.float64)
        chi2 = torch.randn(k, chains, self.df, generator=self.generator, dtype=torch.float64).square().sum(-1)
        step = (self.chol[rows, comp] @ eps[..., None])[..., 0] / torch.sqrt(chi2 / self.df)[..., None]
        return self.means[rows, comp] + step
