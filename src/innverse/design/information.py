r"""Expected information gain of a measurement, estimated from an amortized posterior (Barber-Agakov bound).

The expected information gain of a setup is the mutual information between parameters and
data, :math:`\mathrm{EIG} = I(\theta; x) = \mathbb E_{p(\theta, x)}[\log p(\theta \mid x) - \log p(\theta)]`.
Any conditional density :math:`q(\theta \mid x)` gives the Barber-Agakov lower bound

.. math::
    \widehat{\mathrm{EIG}} = \frac1N \sum_{i=1}^N \big[\log q(\theta_i \mid x_i) - \log p(\theta_i)\big],
    \qquad (\theta_i, x_i) \sim p(\theta)\,p(x \mid \theta),

whose expectation is :math:`I(\theta; x) - \mathbb E_x\,\mathrm{KL}(p(\theta \mid x)\,\|\,q(\theta \mid x)) \le I(\theta; x)`:
the bias is never positive and vanishes as :math:`q` approaches the posterior, so a better
estimator can only raise it. Evaluated on held-out pairs (not the training pairs, on which
an overfitted :math:`q` could exceed the bound), its Monte Carlo standard error is the sample
standard deviation over :math:`\sqrt N`. Per parameter, :math:`I(\theta_d; x)` is bounded the
same way with a one-dimensional density of :math:`\theta_d` given :math:`x`: a Gaussian kernel
density estimate of the posterior samples' marginal, reflected at the prior's bounds (a
sub-probability density, so the bound still holds; the kernel's smoothing adds to the
negative bias).

References:
    Barber, Agakov. "The IM algorithm: a variational approach to information maximization".
    NeurIPS 2003; Foster et al. "Variational Bayesian optimal experimental design". NeurIPS 2019.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from ..amortized import ProductPrior, prior_bounds

__all__ = ["information_gain", "marginal_information_gain", "prior_marginal_log_prob", "reflected_kde_log_prob"]


def information_gain(log_q: Tensor, log_prior: Tensor) -> tuple[float, float]:
    """Barber-Agakov estimate of :math:`I(\\theta; x)` (nats) and its standard error, from ``(N,)`` log-densities.

    Args:
        log_q: :math:`\\log q(\\theta_i \\mid x_i)` at held-out joint draws, ``(N,)``.
        log_prior: :math:`\\log p(\\theta_i)`, ``(N,)``.
    """
    if log_q.shape != log_prior.shape or log_q.dim() != 1 or log_q.shape[0] < 2:
        raise ValueError(f"information_gain: expected two (N,) tensors with N >= 2, got {tuple(log_q.shape)} and "
                         f"{tuple(log_prior.shape)}")
    diff = (log_q - log_prior).to(torch.float64)
    if not torch.isfinite(diff).all():
        raise ValueError("information_gain: non-finite log-densities (a true parameter outside the estimator's support?)")
    return float(diff.mean()), float(diff.std() / math.sqrt(diff.shape[0]))


def _marginals(prior: Distribution) -> list[Distribution] | None:
    """One univariate distribution per parameter where the prior factorises that way, else None."""
    if isinstance(prior, Independent) and prior.reinterpreted_batch_ndims == 1 and prior.base_dist.event_shape == ():
        base = prior.base_dist
        return [_Slice(base, d) for d in range(int(prior.event_shape[0]))]  # type: ignore[misc]
    if isinstance(prior, MultivariateNormal):
        std = prior.covariance_matrix.diagonal().sqrt()
        return [Normal(prior.loc[d], std[d]) for d in range(int(prior.event_shape[0]))]
    if isinstance(prior, ProductPrior):
        out: list[Distribution] = []
        for m, w in zip(prior.marginals, prior.widths):
            sub = [m] if w == 1 and m.batch_shape == () and m.event_shape == () else _marginals(m)
            if sub is None:
                return None
            out += sub
        return out
    return None


class _Slice:
    """Marginal ``d`` of a batched univariate distribution: ``log_prob`` of column ``d``.

    The other columns are filled with an interior point (the mean, or a draw where the mean is
    not finite), so that a distribution validating its arguments accepts the row.
    """

    def __init__(self, base: Distribution, d: int) -> None:
        self.base, self.d = base, d
        ref = base.mean
        if not torch.isfinite(ref).all():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                ref = base.sample()
        self.ref = ref

    def log_prob(self, v: Tensor) -> Tensor:
        full = self.ref.expand(v.numel(), -1).clone()
        full[:, self.d] = v.reshape(-1).to(full.dtype)
        return self.base.log_prob(full)[:, self.d].reshape(v.shape)


def prior_marginal_log_prob(prior: Distribution, values: Tensor, prior_samples: Tensor | None = None) -> Tensor:
    """Log-density of each parameter's prior marginal at ``values (k, D)`` -> ``(k, D)`` float64.

    Exact for independent priors (``Independent`` of univariate ones, :class:`ProductPrior`) and
    Gaussians; otherwise a reflected kernel density estimate of ``prior_samples (m, D)``.
    """
    marginals = _marginals(prior)
    if marginals is not None and len(marginals) == values.shape[1]:
        return torch.stack([m.log_prob(values[:, d]).to(torch.float64) for d, m in enumerate(marginals)], 1)
    if prior_samples is None:
        raise ValueError(f"prior_marginal_log_prob: the prior {type(prior).__name__} does not factorise into known "
                         "marginals; pass prior_samples")
    lower, upper = prior_bounds(prior)
    return reflected_kde_log_prob(prior_samples[:, None, :].expand(-1, values.shape[0], -1), values, lower, upper)


def reflected_kde_log_prob(samples: Tensor, values: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    r"""Log of a 1-D Gaussian KDE per (observation, parameter), reflected at finite bounds.

    :math:`\hat q(t) = \frac1n \sum_l [\phi_h(t - s_l) + \phi_h(t - (2a - s_l)) + \phi_h(t - (2b - s_l))]`
    for :math:`t \in [a, b]` (a reflection only where the bound is finite), with Silverman's
    bandwidth :math:`h = 0.9\min(\hat\sigma, \mathrm{IQR}/1.34)\,n^{-1/5}` per column.

    Args:
        samples: ``(n, k, D)``; values: ``(k, D)``; lower, upper: ``(D,)`` bounds (``+-inf`` allowed).

    Returns:
        ``(k, D)`` float64.
    """
    s = samples.to(torch.float64)
    v = values.to(torch.float64)
    n = s.shape[0]
    q = torch.quantile(s, torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)
    spread = torch.minimum(s.std(0), (q[1] - q[0]) / 1.34)
    spread = torch.where(spread > 0, spread, s.std(0)).clamp_min(1e-12)
    h = 0.9 * spread * n ** -0.2                                                       # (k, D)
    lo, hi = lower.to(s), upper.to(s)
    centres = [s]
    if torch.isfinite(lo).any():
        centres.append(torch.where(torch.isfinite(lo), 2 * lo - s, torch.full_like(s, math.inf)))
    if torch.isfinite(hi).any():
        centres.append(torch.where(torch.isfinite(hi), 2 * hi - s, torch.full_like(s, math.inf)))
    z = torch.cat([(v - c) / h for c in centres])                                       # (r n, k, D)
    log_k = -0.5 * z.square() - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_k, 0) - math.log(n) - torch.log(h)


def marginal_information_gain(samples: Tensor, truth: Tensor, prior: Distribution,
                              prior_samples: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-parameter Barber-Agakov estimates of :math:`I(\\theta_d; x)` and their standard errors, ``(D,)`` each.

    Args:
        samples: posterior samples ``(n, k, D)`` for ``k`` held-out observations.
        truth: the parameters they were simulated from, ``(k, D)``.
        prior: the prior; prior_samples: ``(m, D)``, needed only for priors without known marginals.
    """
    lower, upper = prior_bounds(prior)
    log_q = reflected_kde_log_prob(samples, truth, lower, upper)
    diff = log_q - prior_marginal_log_prob(prior, truth, prior_samples)
    return diff.mean(0), diff.std(0) / math.sqrt(diff.shape[0])
