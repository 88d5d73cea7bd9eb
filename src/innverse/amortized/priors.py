"""Priors: ``torch.distributions`` over parameter vectors, helpers, support bounds, seeded sampling.

A prior is any continuous :class:`torch.distributions.Distribution` whose samples are vectors
``(D,)``. The helpers build the common cases (box-uniform, Gaussian, log-normal and products of
independent marginals); :func:`prior_bounds` reads the per-dimension support ``[lower, upper]``
that the estimator's bijection to unbounded space is built from.

``torch.distributions`` draws from torch's global generator. Reproducible experiments (the
benchmark tasks' fixed observations, reference runs) need an explicit ``torch.Generator``:
:func:`sample_with_generator` draws from the common priors with one, and
:func:`sample_truncated_normal` and :func:`sample_gamma` are the exact generator-driven samplers
the tasks build on.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    constraints,
)

from .._tensors import check_finite, to_tensor

__all__ = ["ProductPrior", "as_prior", "box_uniform", "gaussian", "log_normal", "prior_bounds", "product",
           "sample_gamma", "sample_truncated_normal", "sample_with_generator"]

ArrayLike = Tensor | Sequence[float] | float


def _tensor(v: ArrayLike, name: str, owner: str, dtype: torch.dtype | None = None) -> Tensor:
    """A finite scalar or vector; numbers and lists become ``dtype`` (default: torch's default dtype)."""
    if dtype is None and not isinstance(v, Tensor):
        dtype = torch.get_default_dtype()
    t = to_tensor(v, name, owner, dtype)
    if t.dim() > 1:
        raise ValueError(f"{owner}: {name} must be a scalar or a vector, got shape {tuple(t.shape)}")
    check_finite(t, name, owner)
    return t


def box_uniform(low: ArrayLike, high: ArrayLike, dim: int | None = None, *, dtype: torch.dtype | None = None,
                validate_args: bool | None = None) -> Distribution:
    r"""Uniform prior on the box :math:`\prod_i [\mathrm{low}_i, \mathrm{high}_i)`: ``Independent(Uniform, 1)``.

    Args:
        low, high: bounds, scalars or vectors ``(D,)``; scalars broadcast to ``dim``.
        dim: number of parameters when both bounds are scalars.
        dtype: dtype of the bounds (default: that of tensor bounds, else torch's default dtype).
        validate_args: as in ``torch.distributions`` (``False``: ``log_prob`` is ``-inf`` off the box).
    """
    lo, hi = _tensor(low, "low", "box_uniform", dtype), _tensor(high, "high", "box_uniform", dtype)
    lo, hi = torch.broadcast_tensors(lo.reshape(-1), hi.reshape(-1))
    if dim is not None:
        lo, hi = lo.expand(dim).clone(), hi.expand(dim).clone()
    if not (hi > lo).all():
        raise ValueError(f"box_uniform: need high > low everywhere, got low={lo.tolist()}, high={hi.tolist()}")
    return Independent(Uniform(lo.clone(), hi.clone(), validate_args=validate_args), 1,
                       validate_args=validate_args)


def gaussian(loc: ArrayLike, scale: ArrayLike | None = None, covariance: Tensor | None = None,
             dim: int | None = None) -> Distribution:
    r"""Gaussian prior :math:`\mathcal N(\mu, \Sigma)`: diagonal (``scale``) or full (``covariance``).

    Args:
        loc: mean, scalar or ``(D,)``.
        scale: standard deviations (scalar or ``(D,)``) for independent components.
        covariance: full covariance ``(D, D)`` (positive definite) instead of ``scale``.
        dim: number of parameters when ``loc`` and ``scale`` are scalars.
    """
    if (scale is None) == (covariance is None):
        raise ValueError("gaussian: give exactly one of scale and covariance")
    mu = _tensor(loc, "loc", "gaussian").reshape(-1)
    if covariance is not None:
        cov = torch.as_tensor(covariance, dtype=mu.dtype)
        d = cov.shape[0] if cov.dim() == 2 else -1
        if cov.dim() != 2 or cov.shape != (d, d):
            raise ValueError(f"gaussian: covariance must be square (D, D), got {tuple(cov.shape)}")
        return MultivariateNormal(mu.expand(d).clone(), covariance_matrix=cov)
    mu, sd = _location_scale(mu, _tensor(scale, "scale", "gaussian").reshape(-1), dim, "gaussian")
    return Independent(Normal(mu, sd), 1)


def log_normal(loc: ArrayLike, scale: ArrayLike, dim: int | None = None, *, dtype: torch.dtype | None = None,
               validate_args: bool | None = None) -> Distribution:
    r"""Log-normal prior: :math:`\log\theta_i \sim \mathcal N(\mathrm{loc}_i, \mathrm{scale}_i^2)`, support ``(0, inf)``.

    Args:
        loc, scale: scalars or vectors ``(D,)`` of the underlying normal; scalars broadcast to ``dim``.
        dim: number of parameters when both are scalars.
        dtype, validate_args: as in :func:`box_uniform`.
    """
    mu = _tensor(loc, "loc", "log_normal", dtype).reshape(-1)
    mu, sd = _location_scale(mu, _tensor(scale, "scale", "log_normal", dtype).reshape(-1), dim, "log_normal")
    return Independent(LogNormal(mu, sd, validate_args=validate_args), 1, validate_args=validate_args)


def _location_scale(mu: Tensor, sd: Tensor, dim: int | None, owner: str) -> tuple[Tensor, Tensor]:
    mu, sd = torch.broadcast_tensors(mu, sd)
    if dim is not None:
        mu, sd = mu.expand(dim), sd.expand(dim)
    if not (sd > 0).all():
        raise ValueError(f"{owner}: scale must be positive, got {sd.tolist()}")
    return mu.clone(), sd.clone()


def _width(d: Distribution) -> int:
    """Number of vector components a marginal contributes (scalar, batched scalars or a vector)."""
    if len(d.event_shape) == 0:
        return int(torch.Size(d.batch_shape).numel())
    if len(d.event_shape) == 1 and len(d.batch_shape) == 0:
        return int(d.event_shape[0])
    raise ValueError(f"ProductPrior: a marginal must be scalar, a batch of scalars or one vector, got "
                     f"{type(d).__name__} with batch_shape {tuple(d.batch_shape)} and event_shape "
                     f"{tuple(d.event_shape)}")


class _ProductSupport(constraints.Constraint):
    """Support of a :class:`ProductPrior`: every marginal's slice lies in that marginal's support."""

    event_dim = 1

    def __init__(self, prior: ProductPrior) -> None:
        self.prior = prior
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        ok: Tensor | None = None
        for d, part in zip(self.prior.marginals, self.prior._split(value)):
            if len(d.event_shape) == 0:
                c = d.support.check(part.reshape(*part.shape[:-1], *d.batch_shape))
                c = c.reshape(*part.shape[:-1], -1).all(-1)
            else:
                c = d.support.check(part)
            ok = c if ok is None else ok & c
        return ok  # type: ignore[return-value]


class ProductPrior(Distribution):
    r"""Product of independent marginals, :math:`p(\theta) = \prod_j p_j(\theta_{[j]})`.

    Each marginal is a univariate distribution (one component), a batch of univariate
    distributions (``batch_shape (d,)``, ``d`` components) or a vector distribution
    (``event_shape (d,)``); the components are concatenated in order.

    Args:
        marginals: the independent factors.
    """

    arg_constraints: dict = {}  # noqa: RUF012 - torch's own class-level convention
    has_rsample = False

    def __init__(self, marginals: Sequence[Distribution]) -> None:
        marginals = list(marginals)
        if not marginals:
            raise ValueError("ProductPrior: needs at least one marginal")
        for i, d in enumerate(marginals):
            if not isinstance(d, Distribution):
                raise TypeError(f"ProductPrior: marginal {i} is not a torch Distribution, got {type(d).__name__}")
        self.marginals = marginals
        self.widths = [_width(d) for d in marginals]
        self.has_rsample = all(d.has_rsample for d in marginals)
        super().__init__(torch.Size(), torch.Size([sum(self.widths)]), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return _ProductSupport(self)

    def _split(self, value: Tensor) -> list[Tensor]:
        return list(value.split(self.widths, -1))

    def _draw(self, sample_shape: torch.Size, reparametrised: bool) -> Tensor:
        parts = []
        for d in self.marginals:
            s = d.rsample(sample_shape) if reparametrised else d.sample(sample_shape)
            parts.append(s.reshape(*sample_shape, -1))
        return torch.cat(parts, -1)

    def sample(self, sample_shape: torch.Size | Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self._draw(torch.Size(sample_shape), False)

    def rsample(self, sample_shape: torch.Size | Sequence[int] = ()) -> Tensor:
        return self._draw(torch.Size(sample_shape), True)

    def log_prob(self, value: Tensor) -> Tensor:
        total: Tensor | None = None
        for d, part in zip(self.marginals, self._split(value)):
            if len(d.event_shape) == 0:
                lp = d.log_prob(part.reshape(*part.shape[:-1], *d.batch_shape))
                lp = lp.reshape(*part.shape[:-1], -1).sum(-1)
            else:
                lp = d.log_prob(part)
            total = lp if total is None else total + lp
        return total  # type: ignore[return-value]

    @property
    def mean(self) -> Tensor:
        return torch.cat([d.mean.reshape(-1) for d in self.marginals])

    @property
    def variance(self) -> Tensor:
        return torch.cat([d.variance.reshape(-1) for d in self.marginals])

    def __repr__(self) -> str:
        return f"ProductPrior({', '.join(repr(d) for d in self.marginals)})"


def product(*marginals: Distribution) -> ProductPrior:
    """Product of independent marginals (see :class:`ProductPrior`)."""
    return ProductPrior(marginals)


def as_prior(prior: Distribution) -> Distribution:
    """Check that ``prior`` is a continuous distribution over vectors; wrap a scalar one as ``(1,)``.

    Raises:
        TypeError: not a ``torch.distributions.Distribution``.
        ValueError: its samples are not vectors or its support is not a box (see :func:`prior_bounds`).
    """
    if not isinstance(prior, Distribution):
        raise TypeError(f"prior must be a torch.distributions.Distribution, got {type(prior).__name__}")
    if len(prior.event_shape) == 0 and len(prior.batch_shape) <= 1:
        prior = ProductPrior([prior])
    if len(prior.event_shape) != 1 or len(prior.batch_shape) != 0:
        raise ValueError(
            f"prior: samples must be vectors (event_shape (D,), batch_shape ()), got event_shape "
            f"{tuple(prior.event_shape)} and batch_shape {tuple(prior.batch_shape)}; wrap independent "
            "components with torch.distributions.Independent(..., 1) or innverse.amortized.product(...)"
        )
    prior_bounds(prior)
    return prior


def _constraint_bounds(c: constraints.Constraint, d: int, owner: str) -> tuple[Tensor, Tensor]:
    """Per-component bounds ``(d,)`` of a box-shaped constraint (also ``cat`` of such constraints)."""
    while isinstance(c, constraints.independent):
        c = c.base_constraint
    if isinstance(c, constraints._Cat):
        if c.dim not in (-1, 0) or sum(c.lengths) != d:
            raise ValueError(f"{owner}: unsupported support {c!r} (a cat along the parameter axis is needed)")
        parts = [_constraint_bounds(ci, n, owner) for ci, n in zip(c.cseq, c.lengths)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    inf = float("inf")
    if c is constraints.real or c is constraints.real_vector:
        lo, hi = -inf, inf
    elif isinstance(c, constraints.interval | constraints.half_open_interval):
        lo, hi = c.lower_bound, c.upper_bound
    elif isinstance(c, constraints.greater_than | constraints.greater_than_eq):
        lo, hi = c.lower_bound, inf
    elif isinstance(c, constraints.less_than):
        lo, hi = -inf, c.upper_bound
    else:
        raise ValueError(
            f"{owner}: unsupported support {c!r}; priors must be continuous with a box-shaped support "
            "(real, interval, positive, greater_than or less_than per component)"
        )
    lo_t = torch.as_tensor(lo, dtype=torch.float64).reshape(-1).expand(d).clone()
    hi_t = torch.as_tensor(hi, dtype=torch.float64).reshape(-1).expand(d).clone()
    return lo_t, hi_t


def prior_bounds(prior: Distribution) -> tuple[Tensor, Tensor]:
    """Per-component support ``(lower, upper)`` of a vector prior (``+-inf`` where unbounded).

    Returns:
        Two float64 tensors of shape ``(D,)``.
    """
    if isinstance(prior, ProductPrior):
        parts = [_constraint_bounds(d.support, w, type(d).__name__) for d, w in zip(prior.marginals, prior.widths)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    d = int(prior.event_shape[0]) if len(prior.event_shape) == 1 else 1
    return _constraint_bounds(prior.support, d, type(prior).__name__)


# ----------------------------------------------------------------- sampling with an explicit generator
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
