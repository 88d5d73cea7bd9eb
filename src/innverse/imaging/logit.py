r"""The logit transform of bounded pixel values (RealNVP's preprocessing), an invertible block of any event shape."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.module import AbstractInvertible, Context

__all__ = ["Logit"]


class Logit(AbstractInvertible):
    r"""Elementwise logit of values in an interval :math:`(a, b)`, squeezed by :math:`\alpha`.

    .. math::
        p = \alpha + (1 - 2\alpha)\,\frac{x - a}{b - a},\qquad y = \log p - \log(1 - p),

        \log|\det J| = \textstyle\sum \big[\log(1 - 2\alpha) - \log(b - a) - \log p - \log(1 - p)\big].

    Inverse: :math:`x = a + (b - a)\,(\sigma(y) - \alpha) / (1 - 2\alpha)`, with
    :math:`\log|\det J^{-1}| = \sum[\log(b - a) - \log(1 - 2\alpha) + \log\sigma(y) + \log\sigma(-y)]`.
    With :math:`\alpha > 0` the whole closed interval maps to the finite range
    :math:`[\operatorname{logit}\alpha, \operatorname{logit}(1-\alpha)]`, so dequantised pixels at
    the interval's ends stay finite; :math:`\alpha = 0` is the plain logit (its inverse, the
    sigmoid, maps :math:`\mathbb R` onto :math:`(a, b)`). Inputs outside the interval give NaN.

    Args:
        event_shape: any shape, e.g. ``(C, H, W)``.
        alpha: squeeze :math:`\alpha \in [0, 1/2)` (0.05 in RealNVP).
        bounds: the interval :math:`(a, b)`, default ``(0, 1)``.

    References:
        Dinh, Sohl-Dickstein, Bengio. "Density estimation using Real NVP". ICLR 2017.
    """

    def __init__(self, event_shape: int | SequenceABC[int], alpha: float = 0.05,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(event_shape)
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"Logit: alpha must be in [0, 0.5), got {alpha}")
        low, high = (float(v) for v in bounds)
        if not high > low:
            raise ValueError(f"Logit: bounds must satisfy low < high, got {bounds}")
        self.alpha, self.low, self.high = float(alpha), low, high
        self._log_const = math.log1p(-2 * self.alpha) - math.log(high - low)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        p = self.alpha + (1 - 2 * self.alpha) * (x - self.low) / (self.high - self.low)
        log_p, log_q = torch.log(p), torch.log1p(-p)
        y = log_p - log_q
        if not log_det:
            return y, None
        per = self._log_const - log_p - log_q
        return y, per.reshape(x.shape[0], -1).sum(1)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        x = self.low + (self.high - self.low) * (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        if not log_det:
            return x, None
        per = F.logsigmoid(y) + F.logsigmoid(-y) - self._log_const
        return x, per.reshape(y.shape[0], -1).sum(1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}, bounds=({self.low}, {self.high})"
