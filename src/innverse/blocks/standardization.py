"""Standardisation with statistics fixed from data: the one standardiser of the library."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor

from ..core.module import AbstractInvertible, Context, as_shape

__all__ = ["Standardization"]


def _moments(v: Tensor, finite: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of each column of ``v`` over its finite entries."""
    count = finite.sum(0)
    mean = torch.where(finite, v, 0.0).sum(0) / count.clamp_min(1)
    var = torch.where(finite, (v - mean).square(), 0.0).sum(0) / (count - 1).clamp_min(1)
    return mean, var.sqrt()


#: at most this many values per quantile computation (torch.nanquantile's limit is 2**24)
_QUANTILE_VALUES = 2**23


def _robust(v: Tensor, finite: Tensor) -> tuple[Tensor, Tensor]:
    """Median and a robust scale of each column of ``v`` over its finite entries (see ``Standardization.fit``)."""
    if v.numel() > _QUANTILE_VALUES:  # evenly spaced rows: the statistics need no more
        rows = torch.linspace(0, v.shape[0] - 1, max(2, _QUANTILE_VALUES // v.shape[1])).round().long()
        v, finite = v[rows], finite[rows]
    x = torch.where(finite, v, torch.nan)
    q = torch.nanquantile(x, torch.tensor([0.01, 0.25, 0.5, 0.75, 0.99], dtype=v.dtype), dim=0)
    median = torch.nan_to_num(q[2])
    iqr = torch.nan_to_num(q[3] - q[1]) / 1.349
    central = finite & (v >= q[0]) & (v <= q[4])
    _, central_sd = _moments(v, central)
    _, sd = _moments(v, finite)
    scale = torch.where(iqr > 0, iqr, torch.where(central_sd > 0, central_sd, sd))
    return median, scale


class Standardization(AbstractInvertible):
    r"""Elementwise affine standardisation :math:`y = (x - \mu) / \sigma` with buffers :math:`\mu, \sigma` set by :meth:`fit`.

    .. math::
        y = (x - \mu) / \sigma,\qquad x = \sigma y + \mu,\qquad
        \log|\det J| = -m \textstyle\sum_j \log\sigma_j,

    where the statistics have ``stat_shape`` and broadcast over the event's leading dimensions
    (``m`` = number of elements per statistic): one per element (``stat_shape = event_shape``,
    the default), one per feature of sets or series ``(N, F)`` (``stat_shape = (F,)``), or one
    for everything (``stat_shape = (1,)``). Starts as the identity; the buffers are saved with the
    state dict, so a trained model works in raw units after loading. Unlike
    :class:`~innverse.blocks.ActNorm` nothing is learned: this is the fixed map between the
    user's units and the units a network sees.

    :meth:`standardize` / :meth:`unstandardize` apply the same map to tensors with any leading
    dimensions and without shape checks (e.g. NaN-padded sets of any size).

    Args:
        event_shape: shape of one sample.
        stat_shape: shape of the statistics (trailing dimensions of ``event_shape``, or ``(1,)``).
        name: what errors and ``repr`` call the block (e.g. ``"Standardization(theta)"``).
    """

    def __init__(self, event_shape: int | SequenceABC[int], stat_shape: int | SequenceABC[int] | None = None,
                 name: str | None = None) -> None:
        super().__init__(event_shape)
        self.block_name = name
        stat = self.event_shape if stat_shape is None else as_shape(stat_shape, "stat_shape")
        trailing = self.event_shape[len(self.event_shape) - len(stat):] if len(stat) <= len(self.event_shape) else None
        if stat != (1,) and stat != trailing:
            raise ValueError(f"{self.name}: stat_shape must be (1,) or trailing dimensions of the event shape "
                             f"{self.event_shape}, got {stat}")
        self.stat_shape = stat
        self._per_stat = math.prod(self.event_shape) // math.prod(stat)
        self.register_buffer("shift", torch.zeros(stat))
        self.register_buffer("scale", torch.ones(stat))

    @torch.no_grad()
    def fit(self, data: Tensor, method: str = "moments") -> Standardization:
        r"""Set :math:`\mu, \sigma` from ``data (n, *event)``, per statistic, over the finite values only.

        * ``"moments"``: mean and standard deviation.
        * ``"robust"``: median and :math:`\mathrm{IQR} / 1.349` (the standard deviation of a
          normal distribution with that interquartile range); where the IQR is zero (discrete
          data with a dominant value) the standard deviation of the values between the 1st and
          99th percentile, and only then the plain standard deviation. A small fraction of
          extreme values (a simulator that occasionally blows up) then moves neither location
          nor scale.

        Computed in float64; NaN padding of sets is ignored. A statistic without spread — no
        finite value, a single one, or a scale below :math:`10^{-12}|\mu|` (round-off around a
        constant) — gets :math:`\sigma = 1`, so a constant input maps to zero instead of dividing
        by zero; any real spread, at whatever scale (data in units of :math:`10^{-12}` included),
        is kept.
        """
        if method not in ("moments", "robust"):
            raise ValueError(f"{self.name}.fit: method must be 'moments' or 'robust', got {method!r}")
        v = data.detach().to(torch.float64).reshape(-1, math.prod(self.stat_shape))
        finite = torch.isfinite(v)
        count = finite.sum(0)
        loc, scale = _moments(v, finite) if method == "moments" else _robust(v, finite)
        spread = (count > 1) & (scale > 1e-12 * loc.abs()) & (scale > 0)
        self.shift.copy_(loc.reshape(self.stat_shape))
        self.scale.copy_(torch.where(spread, scale, torch.ones_like(scale)).reshape(self.stat_shape))
        return self

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.shift.to(device=x.device, dtype=x.dtype), self.scale.to(device=x.device, dtype=x.dtype)

    def standardize(self, x: Tensor) -> Tensor:
        """``(x - shift) / scale`` for ``x (..., *stat_shape)`` (broadcast, no shape check; NaN stays NaN)."""
        shift, scale = self._stats(x)
        return (x - shift) / scale

    def unstandardize(self, y: Tensor) -> Tensor:
        """``y * scale + shift``, the inverse of :meth:`standardize`."""
        shift, scale = self._stats(y)
        return y * scale + shift

    def _log_det(self, x: Tensor, sign: float) -> Tensor:
        ld = torch.log(self.scale.to(torch.float64)).sum() * (-sign * self._per_stat)
        return ld.to(device=x.device, dtype=x.dtype).expand(x.shape[0])

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.standardize(x), (self._log_det(x, 1.0) if log_det else None)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.unstandardize(y), (self._log_det(y, -1.0) if log_det else None)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stat_shape={self.stat_shape}"
