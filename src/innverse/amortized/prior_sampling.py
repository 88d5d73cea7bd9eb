"""Drawing from priors with an explicit ``torch.Generator`` (reproducible, no global random state).

``torch.distributions`` draws from torch's global generator. Reproducible experiments (the
benchmark tasks' fixed observations, reference runs) need an explicit generator:
:func:`sample_with_generator` draws from the common priors of :mod:`innverse.amortized.priors`
with one, and :func:`sample_truncated_normal` and :func:`sample_gamma` are the exact
generator-driven samplers the tasks build on.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import (
    Beta,
    Distribution,
    Exponential,
    Gamma,
    HalfNormal,
    Independent,
    LogNormal,
    MultivariateNormal,
    Normal,
    Uniform,
)

from .priors import ProductPrior

__all__ = ["sample_gamma", "sample_truncated_normal", "sample_with_generator"]


def sample_with_generator(prior: Distribution, n: int, generator: torch.Generator | None) -> Tensor:
    r"""``n`` draws ``(n, D)`` from a vector prior, using only ``generator`` for randomness.

    Standard noise is drawn from ``generator`` in the prior's dtype and transformed:
    uniform :math:`l + (h - l)\,U`, normal :math:`\mu + \sigma Z`, log-normal
    :math:`\exp(\mu + \sigma Z)`, half-normal :math:`|\sigma Z|`, exponential
    :math:`-\log(1 - U)/\lambda`, gamma (:func:`sample_gamma`) divided by the rate, beta
    :math:`G_1 / (G_1 + G_0)`, multivariate normal :math:`\mu + L Z` (:math:`L` the Cholesky
    factor), ``Independent`` and :class:`ProductPrior` of these (marginals in order). A
    distribution with a ``sample_with_generator(sample_shape, generator)`` method (e.g. a task's
    own prior) is asked to draw itself.

    Raises:
        TypeError: any other distribution (use ``prior.sample`` under ``torch.random.fork_rng``).
    """
    return _draw(prior, torch.Size([n]), generator).reshape(n, -1)


def _draw(d: Distribution, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    own = getattr(d, "sample_with_generator", None)
    if callable(own):
        return own(shape, generator)
    if isinstance(d, Independent):
        return _draw(d.base_dist, shape, generator)
    if isinstance(d, ProductPrior):
        return torch.cat([_draw(m, shape, generator).reshape(*shape, -1) for m in d.marginals], -1)
    full = shape + d.batch_shape + d.event_shape
    like = d.mean  # dtype and device of the draws
    kw = {"generator": generator, "dtype": like.dtype, "device": like.device}
    kind = type(d)
    if kind is Uniform:
        return d.low + (d.high - d.low) * torch.rand(full, **kw)
    if kind in (Normal, LogNormal):
        v = d.loc + d.scale * torch.randn(full, **kw)
        return v if kind is Normal else torch.exp(v)
    if kind is HalfNormal:
        return (d.scale * torch.randn(full, **kw)).abs()
    if kind is MultivariateNormal and not d.batch_shape:
        return d.loc + torch.randn(full, **kw) @ d.scale_tril.mT
    if kind is Exponential:
        return -torch.log1p(-torch.rand(full, **kw)) / d.rate
    if kind in (Gamma, Beta):
        params = (d.concentration,) if kind is Gamma else (d.concentration1, d.concentration0)
        g = [sample_gamma(c.expand(full).cpu(), generator).to(like) for c in params]
        return g[0] / d.rate if kind is Gamma else g[0] / (g[0] + g[1])
    raise TypeError(f"sample_with_generator: cannot draw from {kind.__name__} with a generator; supported: "
                    "Uniform, Normal, LogNormal, HalfNormal, Exponential, Gamma, Beta, MultivariateNormal, "
                    "Independent and ProductPrior of these, and distributions with a sample_with_generator method")


def sample_truncated_normal(mean: Tensor, std: Tensor | float, low: Tensor | float, high: Tensor | float,
                            generator: torch.Generator | None) -> Tensor:
    r"""Exact draws from :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)` restricted to ``[low, high]``.

    Inverse-CDF sampling, :math:`z = \Phi^{-1}(\Phi(a) + u\,(\Phi(b) - \Phi(a)))` with
    :math:`a, b` the standardised bounds, computed in the lower tail (upper intervals reflected)
    through :math:`\log\Phi`, accurate even with both bounds ~35 standard deviations out (float64).

    Args:
        mean: ``(*)`` means (computed in float64); ``std``, ``low``, ``high`` broadcast against it.
        generator: source of the uniforms.

    Returns:
        float64 tensor of ``mean``'s shape.
    """
    mean = mean.to(torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64)
    a = (torch.as_tensor(low, dtype=torch.float64) - mean) / std
    b = (torch.as_tensor(high, dtype=torch.float64) - mean) / std
    a, b = torch.broadcast_tensors(a, b)
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    # Phi(lo) + u (Phi(hi) - Phi(lo)) = Phi(hi) (r + u (1 - r)), r = Phi(lo) / Phi(hi), in logs
    # (torch.special.ndtr loses all relative precision below about -8; log_ndtr does not)
    log_hi = torch.special.log_ndtr(hi)
    ratio = torch.exp(torch.special.log_ndtr(lo) - log_hi)
    u = torch.rand(lo.shape, generator=generator, dtype=torch.float64)
    z = torch.special.ndtri(torch.exp(log_hi + torch.log(ratio + u * (1 - ratio)))).clamp(lo, hi)
    z = torch.where(flip, -z, z)
    return mean + std * z


def sample_gamma(concentration: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Exact ``Gamma(concentration, rate=1)`` draws (float64), one per entry, from an explicit generator.

    Marsaglia–Tsang squeeze-rejection for :math:`\alpha \ge 1`: with :math:`d = \alpha - 1/3`,
    :math:`c = 1/\sqrt{9d}`, propose :math:`v = (1 + cz)^3`, :math:`z \sim \mathcal N(0, 1)`, and
    accept when :math:`\log u < z^2/2 + d - dv + d\log v`; the draw is :math:`dv`. For
    :math:`\alpha < 1` the boost :math:`G_\alpha = G_{\alpha+1} U^{1/\alpha}` is used.

    References:
        Marsaglia, Tsang, "A simple method for generating gamma variables", ACM TOMS 26 (2000).
    """
    alpha = concentration.to(torch.float64)
    boosted = alpha < 1
    a = torch.where(boosted, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.full_like(a, torch.nan)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        z = torch.randn(a.shape, generator=generator, dtype=torch.float64)
        u = torch.rand(a.shape, generator=generator, dtype=torch.float64)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out = torch.where(todo & ok, d * v, out)
        todo = todo & ~ok
    u = torch.rand(a.shape, generator=generator, dtype=torch.float64)
    return torch.where(boosted, out * u ** (1.0 / alpha), out)
