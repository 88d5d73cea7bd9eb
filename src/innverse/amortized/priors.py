"""Priors: ``torch.distributions`` over parameter vectors, helpers, support bounds, seeded sampling.

A prior is any continuous :class:`torch.distributions.Distribution` whose samples are vectors
``(D,)``. The helpers build the common cases (box-uniform, Gaussian, log-normal and products of
independent marginals); :func:`prior_bounds` reads the per-dimension support ``[lower, upper]``
that the estimator's bijection to unbounded space is built from. Drawing from them with an
explicit ``torch.Generator``: :mod:`innverse.amortized.prior_sampling`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import (
    Distribution,
    Independent,
    LogNormal,
    MultivariateNormal,
    Normal,
    Uniform,
    constraints,
)

from .._tensors import check_finite, to_tensor

__all__ = ["ProductPrior", "as_prior", "box_uniform", "gaussian", "log_normal", "prior_bounds", "product"]

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
                validate_args: bool = True) -> Distribution:
    r"""Uniform prior on the box :math:`\prod_i [\mathrm{low}_i, \mathrm{high}_i)`: ``Independent(Uniform, 1)``.

    Args:
        low, high: bounds, scalars or vectors ``(D,)``; scalars broadcast to ``dim``.
        dim: number of parameters when both bounds are scalars.
        dtype: dtype of the bounds (default: that of tensor bounds, else torch's default dtype).
        validate_args: as in ``torch.distributions`` (``False``: ``log_prob`` is ``-inf`` off the box). On by
            default whatever torch's global default is: importing some libraries (anything that starts
            ``torch.compile``'s tracer, sbi among them) switches that global off for every distribution.
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
               validate_args: bool = True) -> Distribution:
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
