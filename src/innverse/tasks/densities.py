"""Two-dimensional densities with exact log-densities, for testing and benchmarking flows.

Each density can be sampled and evaluated exactly (closed form or accurate 1-D quadrature),
so a flow's test negative log-likelihood can be compared with the true differential entropy,
the best any model can achieve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Density2D", "two_moons", "eight_gaussians", "rings", "checkerboard", "DENSITIES", "density"]


@dataclass(frozen=True)
class Density2D:
    """A 2-D density: ``sample(n, generator) -> (n, 2)`` and exact ``log_prob(x) -> (n,)``."""

    name: str
    sample: object
    log_prob: object

    def entropy(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """Monte-Carlo estimate of the differential entropy and its standard error (nats)."""
        gen = torch.Generator().manual_seed(seed)
        x = self.sample(n, gen)
        lp = self.log_prob(x)
        return float(-lp.mean()), float(lp.std() / math.sqrt(n))


_LOG_2PI = math.log(2 * math.pi)


def _gauss_mixture_log_prob(x: Tensor, means: Tensor, sigma: float) -> Tensor:
    d2 = (x[:, None, :] - means.to(x)).square().sum(-1)
    comp = -0.5 * d2 / sigma**2 - _LOG_2PI - 2 * math.log(sigma)
    return torch.logsumexp(comp, 1) - math.log(means.shape[0])


def eight_gaussians(sigma: float = 0.3, radius: float = 2.0) -> Density2D:
    """Equal mixture of 8 isotropic Gaussians (std ``sigma``) on a circle of ``radius``."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], 1)

    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(0, 8, (n,), generator=generator)
        return means[k] + sigma * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    return Density2D("eight_gaussians", sample, lambda x: _gauss_mixture_log_prob(x, means, sigma))


def _arc(t: Tensor, moon: Tensor) -> Tensor:
    upper = torch.stack([t.cos(), t.sin()], -1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], -1)
    return torch.where(moon[..., None] == 0, upper, lower)


def two_moons(sigma: float = 0.1, nodes: int = 1024) -> Density2D:
    r"""Two interleaved half-circles blurred by isotropic Gaussian noise of std ``sigma``.

    Generative definition: moon :math:`m \sim \{0, 1\}`, :math:`t \sim U(0, \pi)`, point on the
    arc plus :math:`\mathcal N(0, \sigma^2 I)`. The density
    :math:`p(x) = \tfrac12 \sum_m \tfrac1\pi \int_0^\pi \mathcal N(x; a_m(t), \sigma^2 I)\,dt`
    is evaluated with a composite midpoint rule on ``nodes`` points per arc (error far below
    the Monte-Carlo error of any entropy estimate here).
    """
    t = (torch.arange(nodes, dtype=torch.float64) + 0.5) * (math.pi / nodes)
    pts = torch.cat([_arc(t, torch.zeros(nodes)), _arc(t, torch.ones(nodes))], 0)

    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        moon = torch.randint(0, 2, (n,), generator=generator)
        tt = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
        return _arc(tt, moon) + sigma * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def log_prob(x: Tensor) -> Tensor:
        out = []
        for chunk in x.to(torch.float64).split(4096):
            out.append(_gauss_mixture_log_prob(chunk, pts, sigma))
        return torch.cat(out).to(x.dtype)

    return Density2D("two_moons", sample, log_prob)


def rings(radii: tuple[float, ...] = (0.75, 1.5, 2.25), sigma: float = 0.08) -> Density2D:
    r"""Concentric rings: radius :math:`r = r_k + \sigma\varepsilon` (ring k uniform), angle uniform.

    In polar coordinates the density is exact:
    :math:`p(x) = \frac{1}{2\pi |x|} \frac1K \sum_k \mathcal N(|x|; r_k, \sigma^2)` (the radii are
    many standard deviations from 0, so the mass at negative radius is negligible, < 1e-20).
    """
    r_k = torch.tensor(radii, dtype=torch.float64)

    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(0, len(radii), (n,), generator=generator)
        r = r_k[k] + sigma * torch.randn(n, generator=generator, dtype=torch.float64)
        a = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi
        return torch.stack([r * a.cos(), r * a.sin()], 1)

    def log_prob(x: Tensor) -> Tensor:
        r = x.to(torch.float64).norm(dim=1)
        comp = -0.5 * ((r[:, None] - r_k) / sigma).square() - 0.5 * _LOG_2PI - math.log(sigma)
        lp = torch.logsumexp(comp, 1) - math.log(len(radii)) - math.log(2 * math.pi) - r.log()
        return lp.to(x.dtype)

    return Density2D("rings", sample, log_prob)


def checkerboard(cells: int = 4, size: float = 4.0) -> Density2D:
    """Uniform density on the black squares of a ``cells x cells`` board of side ``size``."""
    w = size / cells
    area = (cells * cells // 2 + (cells * cells) % 2) * w * w

    def _black(x: Tensor) -> Tensor:
        i = torch.floor((x[:, 0] + size / 2) / w)
        j = torch.floor((x[:, 1] + size / 2) / w)
        inside = (x.abs() <= size / 2).all(1)
        return inside & ((i + j) % 2 == 0)

    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        out = torch.empty(0, 2, dtype=torch.float64)
        while out.shape[0] < n:
            u = (torch.rand(2 * n, 2, generator=generator, dtype=torch.float64) - 0.5) * size
            out = torch.cat([out, u[_black(u)]])
        return out[:n]

    def log_prob(x: Tensor) -> Tensor:
        inside = _black(x)
        return torch.where(inside, torch.full_like(x[:, 0], -math.log(area)),
                           torch.full_like(x[:, 0], -math.inf))

    return Density2D("checkerboard", sample, log_prob)


#: Name -> constructor of each 2-D density (:func:`density` looks names up here).
DENSITIES = {"two_moons": two_moons, "eight_gaussians": eight_gaussians, "rings": rings,
             "checkerboard": checkerboard}


def density(name: str) -> Density2D:
    """The built-in 2-D density called ``name`` (one of :data:`DENSITIES`)."""
    if name not in DENSITIES:
        raise ValueError(f"unknown density {name!r}; choose one of {sorted(DENSITIES)}")
    return DENSITIES[name]()
