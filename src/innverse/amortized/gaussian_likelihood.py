r"""A Gaussian likelihood with a mean linear in the parameters, fitted in closed form.

.. math::
    q(x \mid \theta) = \mathcal N\!\big(x;\; A^\top \theta + c,\; \Sigma\big)

with :math:`A, c` the ridge least-squares fit of the data on the parameters
(:func:`~innverse.amortized.gaussian_start.ridge_fit`, penalty by leave-one-out error) and
:math:`\Sigma` the covariance of its residuals. Where the data are sums of many small
contributions (counts, spike-triggered averages, sample moments), the likelihood is close to
Gaussian; over the width of a posterior its mean is close to linear. There, 110 numbers fitted by
least squares are a far more efficient estimator than a flow trained by gradient steps on the
same simulations: on Bernoulli GLM with 1,000 simulations at exact-posterior parameters the
posterior's C2ST is .611, against .670 for the flow likelihood and .649 for a 5-member ensemble
of them (``benchmarks/posterior_error_sources.py``).

Globally it is wrong on almost every simulator, so it is only fitted to simulations drawn near
one observation's posterior, and only chosen where its likelihood ratios identify the parameters
of held-out simulations better than the flow's
(:func:`~innverse.amortized.fit_sequential_likelihood` with ``likelihood="auto"``). It is a
Gaussian synthetic likelihood (Wood 2010; Price et al. 2018) whose mean is a regression on the
parameters instead of an average of simulations repeated at each of them. Fitted directly
(``fit_likelihood(model="gaussian")``), it warns where :func:`nonlinear_mean` finds a data
feature's mean not linear in the parameters.

References:
    Wood. "Statistical inference for noisy nonlinear ecological dynamic systems". Nature 2010.
    Price, Drovandi, Lee, Nott. "Bayesian Synthetic Likelihood". JCGS 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import stats
from torch import Tensor, nn

from .gaussian_start import ridge_fit

__all__ = ["GaussianLikelihood", "NonlinearMean", "nonlinear_mean"]

#: smallest residual variance kept, relative to the data's variance (a constant feature stays invertible)
MIN_RELATIVE_VARIANCE = 1e-6


#: the amortized Gaussian likelihood warns where quadratic terms in the parameters explain at least this share of a
#: data feature's residual variance ...
NONLINEAR_SHARE = 0.05
#: ... with a nested F-test p-value below this, Bonferroni-corrected over the features
NONLINEAR_P = 1e-3


@dataclass(frozen=True)
class NonlinearMean:
    """The data feature whose mean departs most from linear in the parameters (:func:`nonlinear_mean`).

    Attributes:
        feature: its index.
        share: the share of its residual variance under the linear fit that quadratic terms explain.
        p_value: the nested F-test's p-value (linear against quadratic in the parameters, Gaussian
            residuals), Bonferroni-corrected over the features.
    """

    feature: int
    share: float
    p_value: float

    @property
    def detected(self) -> bool:
        """Significant (:data:`NONLINEAR_P`) and large enough to matter (:data:`NONLINEAR_SHARE`)."""
        return self.p_value < NONLINEAR_P and self.share >= NONLINEAR_SHARE


def nonlinear_mean(theta: Tensor, x: Tensor) -> NonlinearMean | None:
    r"""Test, per data feature, whether its mean is linear in the parameters over the given simulations.

    Least squares of each feature of ``x (n, F)`` on an intercept and the standardised
    parameters, against the same plus all their squares and products; the nested F-test compares
    the two residual sums of squares. Returns the feature with the smallest p-value (Bonferroni
    over the ``F`` features), or ``None`` where there are too few simulations for the quadratic fit
    (``n`` at most its ``1 + D + D (D + 1) / 2`` coefficients plus 10).
    """
    theta, x = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
    n, d = theta.shape
    t = (theta - theta.mean(0)) / theta.std(0).clamp_min(1e-12)
    rows, cols = torch.triu_indices(d, d)
    linear = torch.cat([torch.ones(n, 1, dtype=torch.float64), t], 1)
    full = torch.cat([linear, t[:, rows] * t[:, cols]], 1)
    q, dof = full.shape[1] - linear.shape[1], n - full.shape[1]
    if dof <= 10:
        return None

    def rss(a: Tensor) -> Tensor:
        return (x - a @ torch.linalg.lstsq(a, x).solution).square().sum(0)

    r0, r1 = rss(linear), rss(full).clamp_min(1e-300)
    f_stat = ((r0 - r1).clamp_min(0.0) / q) / (r1 / dof)
    p = torch.as_tensor(stats.f.sf(f_stat.numpy(), q, dof)) * x.shape[1]
    j = int(torch.argmin(p))
    return NonlinearMean(j, float((r0[j] - r1[j]) / r0[j].clamp_min(1e-300)), min(float(p[j]), 1.0))


class GaussianLikelihood(nn.Module):
    r""":math:`\mathcal N(x;\, A^\top\theta + c,\, L L^\top)` over data features, given parameters.

    It speaks the part of the conditional-flow interface that
    :class:`~innverse.amortized.LikelihoodPosterior` uses, in a flow's naming: the modelled
    variable (here the data, ``theta_dim`` features) given a condition (here the parameters,
    ``x_shape``).

    Args:
        coef: :math:`A`, ``(D, F)`` for ``D`` parameters and ``F`` data features.
        intercept: :math:`c`, ``(F,)``.
        scale_tril: :math:`L`, the lower Cholesky factor of the residual covariance ``(F, F)``.
    """

    def __init__(self, coef: Tensor, intercept: Tensor, scale_tril: Tensor) -> None:
        super().__init__()
        coef, intercept, scale_tril = (torch.as_tensor(t, dtype=torch.float64) for t in (coef, intercept, scale_tril))
        f = coef.shape[1] if coef.dim() == 2 else 0
        if coef.dim() != 2 or intercept.shape != (f,) or scale_tril.shape != (f, f):
            raise ValueError(f"GaussianLikelihood: expected coef (D, F), intercept (F,) and scale_tril (F, F); got "
                             f"{tuple(coef.shape)}, {tuple(intercept.shape)} and {tuple(scale_tril.shape)}")
        diag = scale_tril.diagonal()
        if not bool(torch.isfinite(scale_tril).all()) or not bool((diag > 0).all()):
            raise ValueError("GaussianLikelihood: scale_tril must be finite with a positive diagonal")
        self.register_buffer("coef", coef)
        self.register_buffer("intercept", intercept)
        self.register_buffer("scale_tril", scale_tril.tril())

    @classmethod
    def fit(cls, theta: Tensor, x: Tensor) -> GaussianLikelihood:
        """Least-squares fit of ``x (n, F)`` on ``theta (n, D)``; needs more than ``D + F + 1`` rows.

        Raises:
            ValueError: too few rows for a full residual covariance, or non-finite values.
        """
        theta, x = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
        n, d = theta.shape
        f = x.shape[1]
        if n <= d + f + 1:
            raise ValueError(f"GaussianLikelihood.fit: a mean linear in {d} parameters and a full covariance of {f} "
                             f"data features need more than {d + f + 1} simulations, got {n}")
        if not (bool(torch.isfinite(theta).all()) and bool(torch.isfinite(x).all())):
            raise ValueError("GaussianLikelihood.fit: theta and x must be finite")
        ridge = ridge_fit(theta, x)
        resid = x - theta @ ridge.coef - ridge.intercept
        cov = resid.T @ resid / (n - d - 1)
        floor = MIN_RELATIVE_VARIANCE * x.var(0).clamp_min(1e-12)
        cov = cov + torch.diag(floor)
        return cls(ridge.coef, ridge.intercept, torch.linalg.cholesky(cov))

    @property
    def theta_dim(self) -> int:
        """Data features modelled (the flow interface's name for the modelled variable)."""
        return int(self.intercept.shape[0])

    @property
    def x_shape(self) -> tuple[int]:
        """Shape of the conditioning parameters."""
        return (int(self.coef.shape[0]),)

    @property
    def device(self) -> torch.device:
        """Where its tensors are."""
        return self.coef.device

    def log_prob(self, value: Tensor, condition: Tensor, outside: str = "-inf") -> Tensor:
        r""":math:`\log q(x \mid \theta)` for rows of ``value (n, F)`` against rows of ``condition (n, D)``.

        ``outside`` is accepted for the flow interface; the Gaussian has full support.
        """
        value = torch.as_tensor(value).to(self.device, torch.float64)
        condition = torch.as_tensor(condition).to(self.device, torch.float64)
        mean = condition @ self.coef + self.intercept
        dist = torch.distributions.MultivariateNormal(mean, scale_tril=self.scale_tril, validate_args=False)
        return dist.log_prob(value).to(torch.float32)
