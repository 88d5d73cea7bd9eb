"""Standardisation statistics of parameters and observations, NaN-padding aware."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["x_stat_shape", "moments", "wide_positive_features"]


def x_stat_shape(x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the per-feature statistics of observations of shape ``x_shape``.

    Vectors ``(F,)`` and sets / series ``(N, F)`` get one mean and scale per feature ``F``
    (pooled over elements or steps); any other shape gets one global mean and scale.
    """
    if len(x_shape) in (1, 2):
        return (x_shape[-1],)
    return (1,)


def _per_feature(x: Tensor, x_shape: tuple[int, ...]) -> Tensor:
    """``x`` in float64 as ``(rows, features)``, one column per statistic of :func:`x_stat_shape`."""
    stat = x_stat_shape(x_shape)
    return x.to(torch.float64).reshape(-1, stat[0] if stat != (1,) else 1)


def moments(x: Tensor, x_shape: tuple[int, ...], min_scale: float = 1e-8) -> tuple[Tensor, Tensor]:
    r"""Mean and standard deviation for standardising ``x`` ``(B, *x_shape)``, ignoring NaN padding.

    Computed in float64. A feature with (near-)zero spread gets scale 1, so a constant input
    maps to zero instead of dividing by zero.

    Returns:
        ``(shift, scale)`` each of shape :func:`x_stat_shape`, float64.
    """
    v = _per_feature(x, x_shape)
    finite = torch.isfinite(v)
    count = finite.sum(0).clamp_min(1)
    filled = torch.where(finite, v, 0.0)
    mean = filled.sum(0) / count
    var = torch.where(finite, (v - mean).square(), 0.0).sum(0) / (count - 1).clamp_min(1)
    std = var.sqrt()
    scale = torch.where(std > min_scale * (1 + mean.abs()), std, torch.ones_like(std))
    return mean, scale


def wide_positive_features(x: Tensor, x_shape: tuple[int, ...], decades: float = 3.0) -> Tensor:
    r"""Which features (shape :func:`x_stat_shape`) are strictly positive and span more than ``decades`` decades.

    Such data (population counts, concentrations, rates) usually carry multiplicative noise, and
    an affine standardisation squeezes most of their values into a sliver near the minimum;
    their logarithm is the scale on which a network sees them evenly. NaN padding is ignored; a
    feature with no finite value, or any value <= 0, is never selected.
    """
    v = _per_feature(x, x_shape)
    finite = torch.isfinite(v)
    positive = torch.where(finite, v > 0, True).all(0) & finite.any(0)
    lo = torch.where(finite, v, torch.inf).amin(0)
    hi = torch.where(finite, v, -torch.inf).amax(0)
    wide = torch.log10(hi.clamp_min(1e-300)) - torch.log10(lo.clamp_min(1e-300)) > decades
    return (positive & wide).reshape(x_stat_shape(x_shape))
