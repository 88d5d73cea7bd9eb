"""Elementwise invertible transformers used inside couplings.

A transformer maps an element ``x`` to ``y = T(x; θ)`` with parameters ``θ`` produced by a
coupling's subnetwork. It returns the per-sample log-determinant summed over all transformed
elements. Couplings take a transformer as an argument (compose, don't subclass).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._rqs import SplineConfig, rq_spline

__all__ = [
    "AbstractTransformer",
    "AffineTransformer",
    "AdditiveTransformer",
    "RationalQuadraticSpline",
]


def _sum(t: Tensor) -> Tensor:
    return t.sum(1) if t.dim() == 2 else t.flatten(1).sum(1)


class AbstractTransformer:
    """Elementwise bijection with ``params`` parameter tensors, each shaped like the input."""

    #: number of parameter tensors the subnetwork must produce per transformed element
    params: int = 1

    def split(self, h: Tensor) -> list[Tensor]:
        """Split a subnet output ``(B, params * d, ...)`` into ``params`` tensors ``(B, d, ...)``."""
        return list(h.chunk(self.params, 1)) if self.params > 1 else [h]

    def forward(self, x: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def inverse(self, y: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AffineTransformer(AbstractTransformer):
    r"""Affine map with a soft-clamped log-scale.

    Forward: :math:`y = x \odot e^{s} + t`, with :math:`s = \alpha \tanh(\tilde s / \alpha)`;
    log-det :math:`\sum s`. Inverse: :math:`x = (y - t) \odot e^{-s}`.

    The clamp :math:`\alpha` bounds the log-scale to :math:`(-\alpha, \alpha)`, which bounds the
    Lipschitz constants of forward and inverse (guarding against exploding inverses,
    Behrmann et al. 2021). ``clamp=None`` disables it (only for diagnostics experiments).

    With ``volume_preserving=True`` (GIN) the clamped log-scales are centred over the transformed
    elements of each sample, :math:`s \leftarrow s - \mathrm{mean}(s)`, so
    :math:`\log|\det J| = \sum s = 0` exactly.

    References:
        Dinh, Sohl-Dickstein, Bengio. "Density estimation using Real NVP". ICLR 2017.
        Sorrenson, Rother, Köthe. "Disentanglement by Nonlinear ICA with General
        Incompressible-flow Networks (GIN)". ICLR 2020.
    """

    params = 2

    def __init__(self, clamp: float | None = 2.0, volume_preserving: bool = False) -> None:
        if clamp is not None and not clamp > 0:
            raise ValueError(f"AffineTransformer: clamp must be positive or None, got {clamp}")
        self.clamp = clamp
        self.volume_preserving = volume_preserving

    def log_scale(self, s: Tensor) -> Tensor:
        if self.clamp is not None:
            s = self.clamp * torch.tanh(s / self.clamp)
        if self.volume_preserving:
            s = s - s.flatten(1).mean(1).reshape(-1, *([1] * (s.dim() - 1)))
        return s

    def raw_log_scale(self, s: Tensor) -> Tensor:
        r"""The raw value :math:`\tilde s` whose clamped log-scale is ``s`` (``|s| < clamp``): the inverse of the soft clamp."""
        if self.clamp is None:
            return s
        if bool((s.abs() >= self.clamp).any()):
            raise ValueError(f"AffineTransformer.raw_log_scale: log-scales must lie within the clamp (-{self.clamp}, "
                             f"{self.clamp}), got max |s| = {float(s.abs().max()):g}")
        return self.clamp * torch.atanh(s / self.clamp)

    def _log_det(self, s: Tensor, log_det: bool, sign: float) -> Tensor | None:
        if not log_det:
            return None
        if self.volume_preserving:
            return None
        if s.dtype in (torch.float16, torch.bfloat16):   # under autocast: the log-det is summed in float32
            s = s.float()
        return _sum(s) if sign > 0 else -_sum(s)

    def forward(self, x: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        s = self.log_scale(p[0])
        return x * torch.exp(s) + p[1], self._log_det(s, log_det, 1.0)

    def inverse(self, y: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        s = self.log_scale(p[0])
        return (y - p[1]) * torch.exp(-s), self._log_det(s, log_det, -1.0)

    def __repr__(self) -> str:
        return f"AffineTransformer(clamp={self.clamp}, volume_preserving={self.volume_preserving})"


class AdditiveTransformer(AbstractTransformer):
    r"""Additive map (NICE): :math:`y = x + t`, log-det 0, inverse :math:`x = y - t`.

    References:
        Dinh, Krueger, Bengio. "NICE: Non-linear Independent Components Estimation". 2014.
    """

    params = 1

    def forward(self, x: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        return x + p[0], None

    def inverse(self, y: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        return y - p[0], None


class RationalQuadraticSpline(AbstractTransformer):
    r"""Monotonic rational-quadratic spline on :math:`[-B, B]` with identity (linear) tails.

    ``bins`` = K segments with knots :math:`(x_k, y_k)` and positive knot derivatives
    :math:`\delta_k` (the two boundary derivatives are 1 so the map is :math:`C^1` with the
    identity tails). Inside bin k, with :math:`\xi = (x - x_k)/w_k` and :math:`s_k = h_k / w_k`:

    .. math::
        y = y_k + \frac{h_k [s_k \xi^2 + \delta_k \xi(1-\xi)]}
                       {s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,\xi(1-\xi)},

    the inverse solves a quadratic in :math:`\xi` in closed form, and the log-det is the sum of
    :math:`\log \partial y / \partial x`. Outside :math:`[-B, B]`, :math:`y = x`.

    Parameters per element: K widths, K heights, K-1 interior derivatives (``3K - 1``).

    ``affine=True`` puts an elementwise affine map with a soft-clamped log-scale (clamp
    :math:`\alpha`) in front of the spline: :math:`y = \mathrm{RQS}(x e^{s} + t)`, log-det
    :math:`s + \log \mathrm{RQS}'`, two more parameters per element (``3K + 1``). A spline maps
    :math:`[-B, B]` onto itself, so it cannot shift or rescale a coordinate by an amount that
    depends on the conditioner's input (which is how a coupling builds linear correlations); the
    affine part can, and the spline then acts on the conditionally standardised coordinate.

    References:
        Durkan, Bekasov, Murray, Papamakarios. "Neural Spline Flows". NeurIPS 2019.
    """

    def __init__(self, bins: int = 8, bound: float = 3.0, min_width: float = 1e-3,
                 min_height: float = 1e-3, min_derivative: float = 1e-3, affine: bool = False,
                 clamp: float = 2.0) -> None:
        if bins < 1:
            raise ValueError(f"RationalQuadraticSpline: bins must be >= 1, got {bins}")
        if not bound > 0:
            raise ValueError(f"RationalQuadraticSpline: bound must be positive, got {bound}")
        if min_width * bins >= 1 or min_height * bins >= 1:
            raise ValueError("RationalQuadraticSpline: min_width/min_height too large for the bin count")
        self.bins = bins
        self.bound = float(bound)
        self.min_width = min_width
        self.min_height = min_height
        self.min_derivative = min_derivative
        if affine and not clamp > 0:
            raise ValueError(f"RationalQuadraticSpline: clamp must be positive, got {clamp}")
        self.affine = bool(affine)
        self.clamp = float(clamp)
        self._scale_shift = AffineTransformer(self.clamp)
        self.params = 3 * bins - 1 + (2 if self.affine else 0)
        self._config = SplineConfig(bins, self.bound, min_width, min_height, min_derivative,
                                    math.log(math.expm1(1.0 - min_derivative)))

    def split(self, h: Tensor) -> list[Tensor]:
        # (B, P*d, ...) -> (B, d, ..., P): the P parameters of each element last.
        b = h.shape[0]
        h = h.reshape(b, self.params, h.shape[1] // self.params, *h.shape[2:])
        return [torch.movedim(h, 1, -1)]

    def _transform(self, v: Tensor, theta: Tensor, inverse: bool, log_det: bool) -> tuple[Tensor, Tensor | None]:
        out, ld = rq_spline(v, theta, self._config, inverse)
        if not log_det:
            return out, None
        return out, (-_sum(ld) if inverse else _sum(ld))

    def forward(self, x: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        if not self.affine:
            return self._transform(x, p[0], False, log_det)
        a, ld_a = self._scale_shift.forward(x, [p[0][..., -2], p[0][..., -1]], log_det)
        y, ld = self._transform(a, p[0], False, log_det)
        return y, (None if ld is None else ld + ld_a)

    def inverse(self, y: Tensor, p: list[Tensor], log_det: bool) -> tuple[Tensor, Tensor | None]:
        if not self.affine:
            return self._transform(y, p[0], True, log_det)
        a, ld = self._transform(y, p[0], True, log_det)
        x, ld_a = self._scale_shift.inverse(a, [p[0][..., -2], p[0][..., -1]], log_det)
        return x, (None if ld is None else ld + ld_a)

    def __repr__(self) -> str:
        extra = f", affine=True, clamp={self.clamp}" if self.affine else ""
        return f"RationalQuadraticSpline(bins={self.bins}, bound={self.bound}{extra})"
