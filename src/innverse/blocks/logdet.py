r"""Estimators of :math:`\log\det(I + J_g(x))` for invertible residual blocks :math:`y = x + g(x)`.

With :math:`\mathrm{Lip}(g) < 1` the log-determinant has the convergent power series

.. math::
    \log\det(I + J_g) = \sum_{k \ge 1} \frac{(-1)^{k+1}}{k}\, \mathrm{tr}(J_g^k),
    \qquad \mathrm{tr}(A) = \mathbb E_v[v^\top A v]\ \ (\mathbb E[v v^\top] = I),

and every :math:`v^\top J_g^k` is ``k`` vector-Jacobian products. The estimators:

* :class:`ExactLogDet` — the brute-force Jacobian (``D`` vector-Jacobian products) and
  ``slogdet``; exact and deterministic, for small ``D`` and evaluation.
* :class:`PowerSeriesLogDet` — the series truncated at ``n`` terms with Hutchinson's trace
  estimator; gradients by backpropagating through the series (i-ResNet). Biased by the
  truncation (:math:`O(\mathrm{Lip}^{n+1} D / (n+1))`).
* :class:`RouletteLogDet` — the series truncated at a random :math:`N` and reweighted by
  :math:`1/P(N \ge k)`, an unbiased estimator (Russian roulette), with the Neumann-series
  gradient (Residual Flows)

  .. math::
      \partial_\theta \log\det(I + J_g) = \mathrm{tr}\big((I + J_g)^{-1} \partial_\theta J_g\big)
      = \mathbb E\Big[\sum_{k=0}^{N-1} \frac{(-1)^k}{P(N \ge k+1)}\, v^\top J_g^k\,(\partial_\theta J_g)\, v\Big],

  computed as the gradient of the surrogate :math:`w^\top J_g v` with the detached
  :math:`w^\top = \sum_k \frac{(-1)^k}{P(N\ge k+1)} v^\top J_g^k`: only one vector-Jacobian
  product keeps a graph, so memory does not grow with the number of terms.
* :class:`AutoLogDet` — the default: exact in eval mode for ``D <= exact_max_features``,
  else the roulette estimator.

Every estimator is called as ``estimator(gx, x, create_graph=..., training=...)`` with
``gx = g(x)`` still attached to ``x``, and returns the per-sample log-det ``(B,)``.

References:
    Behrmann et al. "Invertible Residual Networks". ICML 2019;
    Chen et al. "Residual Flows for Invertible Generative Modeling". NeurIPS 2019;
    Hutchinson. "A stochastic estimator of the trace of the influence matrix". 1989.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "AbstractLogDetEstimator",
    "AutoLogDet",
    "ExactLogDet",
    "PowerSeriesLogDet",
    "RouletteLogDet",
    "jacobian",
    "neumann_estimate",
    "series_estimate",
]


def _vjp(gx: Tensor, x: Tensor, w: Tensor, create_graph: bool) -> Tensor:
    (out,) = torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(x) if out is None else out


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def jacobian(gx: Tensor, x: Tensor, create_graph: bool = False) -> Tensor:
    """Per-sample Jacobians ``(B, D, D)`` of ``gx`` w.r.t. ``x`` by ``D`` vector-Jacobian products.

    Samples must be independent (``g`` acts row-wise), as for every block in this library.
    """
    b = x.shape[0]
    flat = gx.reshape(b, -1)
    d = flat.shape[1]
    ones = torch.ones(b, dtype=gx.dtype, device=gx.device)
    rows = []
    for i in range(d):
        (r,) = torch.autograd.grad(flat[:, i], x, ones, retain_graph=True, create_graph=create_graph,
                                   allow_unused=True)
        rows.append(torch.zeros(b, d, dtype=x.dtype, device=x.device) if r is None else r.reshape(b, d))
    return torch.stack(rows, 1)


def series_estimate(gx: Tensor, x: Tensor, v: Tensor, weights: list[float], create_graph: bool) -> Tensor:
    r""":math:`\sum_{k=1}^{n} \frac{(-1)^{k+1}}{k} w_k\, v^\top J^k v` with ``n = len(weights)``.

    Differentiable (backprop through the series) when ``create_graph``.
    """
    w, total = v, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k, weight in enumerate(weights, start=1):
        w = _vjp(gx, x, w, create_graph)
        total = total + ((-1) ** (k + 1) * weight / k) * _dot(w, v)
    return total


def neumann_estimate(gx: Tensor, x: Tensor, v: Tensor, weights: list[float], create_graph: bool) -> Tensor:
    r"""Value of :func:`series_estimate`, gradient of the Neumann series (see module docstring).

    Returns ``value + s - s.detach()`` with ``value`` computed without a graph and
    :math:`s = w^\top J v`, :math:`w = \sum_{k=0}^{n-1} (-1)^k w_{k+1} (v^\top J^k)` detached.
    """
    w = v
    value = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    acc = weights[0] * v
    for k, weight in enumerate(weights, start=1):
        w = _vjp(gx, x, w, create_graph=False)
        value = value + ((-1) ** (k + 1) * weight / k) * _dot(w, v)
        if k < len(weights):
            acc = acc + ((-1) ** k * weights[k]) * w
    if not create_graph:
        return value
    surrogate = _dot(_vjp(gx, x, acc, create_graph=True), v)
    return value + (surrogate - surrogate.detach())


def _noise(x: Tensor, kind: str, generator: torch.Generator | None) -> Tensor:
    device = x.device if generator is None else generator.device
    if kind == "gaussian":
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device)
    else:
        v = torch.randint(0, 2, x.shape, generator=generator, device=device).to(x.dtype) * 2 - 1
    return v.to(x.device)


class AbstractLogDetEstimator:
    """Estimates :math:`\\log\\det(I + \\partial g / \\partial x)` per sample."""

    def __call__(self, gx: Tensor, x: Tensor, *, create_graph: bool, training: bool) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


class ExactLogDet(AbstractLogDetEstimator):
    """Exact log-det from the brute-force per-sample Jacobian (``D`` vector-Jacobian products).

    Args:
        max_features: refuse (``ValueError``) events with more elements than this.
    """

    def __init__(self, max_features: int = 1024) -> None:
        self.max_features = int(max_features)

    def __call__(self, gx: Tensor, x: Tensor, *, create_graph: bool, training: bool) -> Tensor:
        d = x[0].numel()
        if d > self.max_features:
            raise ValueError(f"ExactLogDet: the event has {d} elements, more than max_features="
                             f"{self.max_features}; use RouletteLogDet or PowerSeriesLogDet")
        jac = jacobian(gx, x, create_graph)
        eye = torch.eye(d, dtype=jac.dtype, device=jac.device)
        return torch.linalg.slogdet(eye + jac).logabsdet


class _Stochastic(AbstractLogDetEstimator):
    def __init__(self, samples: int, noise: str, generator: torch.Generator | None) -> None:
        name = type(self).__name__
        if samples < 1:
            raise ValueError(f"{name}: samples must be >= 1, got {samples}")
        if noise not in ("gaussian", "rademacher"):
            raise ValueError(f"{name}: noise must be 'gaussian' or 'rademacher', got {noise!r}")
        self.samples, self.noise, self.generator = int(samples), noise, generator


class PowerSeriesLogDet(_Stochastic):
    """Truncated power series with Hutchinson traces; gradients through the series (i-ResNet).

    Args:
        terms: number of series terms ``n``.
        samples: Hutchinson probe vectors per call (averaged).
        noise: ``"gaussian"`` or ``"rademacher"`` probes.
        generator: source of the probes (default: torch's global generator).
    """

    def __init__(self, terms: int = 10, samples: int = 1, noise: str = "gaussian",
                 generator: torch.Generator | None = None) -> None:
        super().__init__(samples, noise, generator)
        if terms < 1:
            raise ValueError(f"PowerSeriesLogDet: terms must be >= 1, got {terms}")
        self.terms = int(terms)

    def __call__(self, gx: Tensor, x: Tensor, *, create_graph: bool, training: bool) -> Tensor:
        weights = [1.0] * self.terms
        total = sum(series_estimate(gx, x, _noise(x, self.noise, self.generator), weights, create_graph)
                    for _ in range(self.samples))
        return total / self.samples  # type: ignore[operator]


class RouletteLogDet(_Stochastic):
    r"""Unbiased Russian-roulette estimator with the memory-saving Neumann gradient (Residual Flows).

    The number of terms is :math:`N = n_{exact} + M` with :math:`M` geometric
    (:math:`P(M \ge m) = (1-p)^m`) or Poisson (:math:`P(M \ge m) = P_{\Gamma}(m, \lambda)`);
    term ``k`` is reweighted by :math:`1 / P(N \ge k)`. ``N`` is capped at ``max_terms``, which
    biases the estimate by a term of probability below :math:`(1-p)^{max\_terms - n_{exact}}`.

    Args:
        n_exact_terms: terms always computed.
        distribution: ``"geometric"`` (parameter ``p``) or ``"poisson"`` (rate ``rate``).
        neumann_gradient: use the Neumann-series gradient (else backprop through the terms).
        samples, noise, generator: as :class:`PowerSeriesLogDet`.
    """

    def __init__(self, n_exact_terms: int = 2, distribution: str = "geometric", p: float = 0.5,
                 rate: float = 2.0, samples: int = 1, noise: str = "gaussian",
                 neumann_gradient: bool = True, max_terms: int = 200,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(samples, noise, generator)
        if distribution not in ("geometric", "poisson"):
            raise ValueError(f"RouletteLogDet: distribution must be 'geometric' or 'poisson', got {distribution!r}")
        if not 0.0 < p < 1.0:
            raise ValueError(f"RouletteLogDet: p must be in (0, 1), got {p}")
        if not rate > 0.0:
            raise ValueError(f"RouletteLogDet: rate must be positive, got {rate}")
        if n_exact_terms < 1 or max_terms < n_exact_terms:
            raise ValueError(f"RouletteLogDet: need 1 <= n_exact_terms <= max_terms, got "
                             f"{n_exact_terms}, {max_terms}")
        self.n_exact_terms, self.distribution, self.p, self.rate = int(n_exact_terms), distribution, p, rate
        self.neumann_gradient, self.max_terms = neumann_gradient, int(max_terms)

    def tail(self, m: int) -> float:
        """:math:`P(M \\ge m)`."""
        if m <= 0:
            return 1.0
        if self.distribution == "geometric":
            return (1.0 - self.p) ** m
        return float(torch.special.gammainc(torch.tensor(float(m), dtype=torch.float64),
                                            torch.tensor(self.rate, dtype=torch.float64)))

    def weights(self, n: int) -> list[float]:
        """Reweighting :math:`1 / P(N \\ge k)` of the terms ``k = 1..n``."""
        return [1.0 / self.tail(k - self.n_exact_terms) for k in range(1, n + 1)]

    def sample_terms(self) -> int:
        """Draw the number of terms :math:`N`."""
        g = self.generator
        if self.distribution == "geometric":
            u = float(torch.rand((), generator=g, dtype=torch.float64).clamp_min(1e-300))
            m = math.floor(math.log(u) / math.log(1.0 - self.p))
        else:
            m = int(torch.poisson(torch.tensor(self.rate, dtype=torch.float64), generator=g))
        return min(self.n_exact_terms + m, self.max_terms)

    def __call__(self, gx: Tensor, x: Tensor, *, create_graph: bool, training: bool) -> Tensor:
        estimate = neumann_estimate if self.neumann_gradient else series_estimate
        total = 0.0
        for _ in range(self.samples):
            weights = self.weights(self.sample_terms())
            total = total + estimate(gx, x, _noise(x, self.noise, self.generator), weights, create_graph)
        return total / self.samples  # type: ignore[return-value]


class AutoLogDet(AbstractLogDetEstimator):
    """The default: :class:`ExactLogDet` in eval mode for small events, else ``unbiased``.

    Args:
        exact_max_features: largest event size evaluated exactly in eval mode.
        unbiased: the estimator for training and large events (default :class:`RouletteLogDet`).
    """

    def __init__(self, exact_max_features: int = 64, unbiased: AbstractLogDetEstimator | None = None) -> None:
        self.exact_max_features = int(exact_max_features)
        self.exact = ExactLogDet(max(self.exact_max_features, 1))
        self.unbiased = RouletteLogDet() if unbiased is None else unbiased

    def select(self, features: int, training: bool) -> AbstractLogDetEstimator:
        """The estimator used for an event of ``features`` elements in the given mode."""
        return self.exact if not training and features <= self.exact_max_features else self.unbiased

    def __call__(self, gx: Tensor, x: Tensor, *, create_graph: bool, training: bool) -> Tensor:
        return self.select(x[0].numel(), training)(gx, x, create_graph=create_graph, training=training)
