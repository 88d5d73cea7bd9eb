"""Affine whitening of summaries with a Ledoit-Wolf shrunk covariance (well defined for any n, d)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ledoit_wolf", "whitening"]


def ledoit_wolf(x: Tensor) -> Tensor:
    r"""Ledoit-Wolf shrinkage estimate of the covariance of ``x`` ``(n, d)``.

    With :math:`S` the sample covariance (divisor ``n``), :math:`m = \mathrm{tr}(S)/d`,
    :math:`d^2 = \lVert S - mI\rVert_F^2`,
    :math:`\bar b^2 = n^{-2}\sum_k \lVert x_k x_k^\top - S\rVert_F^2` and
    :math:`b^2 = \min(\bar b^2, d^2)`:

    .. math:: \hat\Sigma = \tfrac{b^2}{d^2}\, m I + \big(1 - \tfrac{b^2}{d^2}\big) S.

    References:
        Ledoit, Wolf. "A well-conditioned estimator for large-dimensional covariance
        matrices". Journal of Multivariate Analysis 2004.
    """
    n, d = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    m = torch.trace(s) / d
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    d2 = (s - m * eye).square().sum()
    # sum_k ||x_k x_k^T - S||_F^2 = sum_k ||x_k||^4 - n ||S||_F^2
    b2_bar = (xc.square().sum(1).square().sum() - n * s.square().sum()) / n**2
    if float(d2) <= 0.0:
        return s
    shrink = torch.clamp(b2_bar / d2, 0.0, 1.0)
    return shrink * m * eye + (1 - shrink) * s


def whitening(x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Shift ``(d,)`` and matrix ``W (d, d)`` with :math:`z = (x - \mu) W^\top` of identity covariance.

    Coordinates are first scaled to unit variance (so shrinkage acts on correlations, not on
    units), then decorrelated with the Ledoit-Wolf estimate: :math:`W = L^{-1}\,
    \mathrm{diag}(1/\sigma)`, :math:`L L^\top = \hat\Sigma_{\text{standardised}}`. Constant
    coordinates keep scale 1.
    """
    mean = x.mean(0)
    std = x.std(0) if x.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-12 * std.max().clamp_min(1e-300), std, torch.ones_like(std))
    cov = ledoit_wolf((x - mean) / std)
    jitter = 1e-10 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky(cov + jitter)
    inv = torch.linalg.solve_triangular(chol, torch.eye(x.shape[1], dtype=x.dtype, device=x.device),
                                        upper=False)
    return mean, inv / std[None, :]
