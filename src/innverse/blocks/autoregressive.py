"""Masked autoregressive blocks: every feature is transformed conditioned on the ones before it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context
from ..nets.made import MADE
from .transformers import AbstractTransformer, AffineTransformer, RationalQuadraticSpline

__all__ = ["MaskedAutoregressive", "MaskedAffineAutoregressive", "MaskedSplineAutoregressive"]


class MaskedAutoregressive(AbstractInvertible):
    r"""Autoregressive block with any elementwise transformer and a :class:`~innverse.nets.MADE` conditioner.

    .. math::
        y_i = T\big(x_i;\, \theta_i(x_{<i}, c)\big),\qquad
        \log|\det J| = \textstyle\sum_i \log|\partial T / \partial x_i|.

    The Jacobian is triangular, so the forward map and its log-determinant take one network
    pass (density evaluation, i.e. training, is cheap). The inverse is sequential:
    :math:`x_i = T^{-1}(y_i;\, \theta_i(x_{<i}, c))` needs ``D`` passes, after pass ``k`` the
    first ``k`` features are exact, and the log-determinant comes from the parameters of the
    last pass, which are all exact by then. Unlike a coupling, every feature is transformed in
    every block, and with an affine transformer and the MADE's linear path a single block is
    already a full-covariance conditional Gaussian.

    Args:
        features: ``D``.
        transformer: the elementwise map.
        hidden: hidden widths of the MADE.
        context_features: size of the vector condition, or 0.
        activation: hidden activation (a class).
        linear_skip: see :class:`~innverse.nets.MADE`.
        name: what errors and ``repr`` call the block (the factories set it).

    References:
        Papamakarios, Pavlakou, Murray. "Masked Autoregressive Flow for Density Estimation".
        NeurIPS 2017.
    """

    def __init__(self, features: int, transformer: AbstractTransformer, hidden: Sequence[int] = (64, 64),
                 context_features: int = 0, activation: Callable[[], nn.Module] = nn.ReLU,
                 linear_skip: bool = True, name: str | None = None) -> None:
        super().__init__((features,), (context_features,) if context_features else None)
        self.block_name = name
        self.transformer = transformer
        self.made = MADE(features, transformer.params, hidden, context_features, activation, linear_skip)

    def _params(self, x: Tensor, c: Context) -> list[Tensor]:
        return self.transformer.split(self.made(x, c))  # type: ignore[arg-type]

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.transformer.forward(x, self._params(x, c), log_det)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        # one feature per pass (MADE.sequential): all D passes cost about one MADE forward pass
        outputs = self.made.sequential(c, y.shape[0])  # type: ignore[arg-type]
        columns: list[Tensor] = []
        ld: Tensor | None = None
        for k in range(self.event_shape[0]):
            x_k, ld_k = self.transformer.inverse(y[:, k:k + 1], self.transformer.split(outputs(k, columns)), log_det)
            columns.append(x_k)
            if log_det:
                ld = ld_k if ld is None else ld + ld_k
        return torch.cat(columns, 1), ld

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, transformer={self.transformer!r}"


def MaskedAffineAutoregressive(features: int, hidden: Sequence[int] = (64, 64), context_features: int = 0,
                               activation: Callable[[], nn.Module] = nn.ReLU, linear_skip: bool = True,
                               clamp: float | None = 2.0) -> MaskedAutoregressive:
    r"""Masked autoregressive flow layer (MAF): :math:`y_i = x_i e^{s_i} + t_i`, :math:`(s_i, t_i)` from :math:`x_{<i}, c`.

    ``MaskedAutoregressive(features, AffineTransformer(clamp), ...)``: the log-scale is
    soft-clamped at ``clamp`` as in :func:`~innverse.blocks.AffineCoupling`.

    References:
        Papamakarios, Pavlakou, Murray. "Masked Autoregressive Flow for Density Estimation".
        NeurIPS 2017.
    """
    return MaskedAutoregressive(features, AffineTransformer(clamp), hidden, context_features, activation, linear_skip,
                                name="MaskedAffineAutoregressive")


def MaskedSplineAutoregressive(features: int, hidden: Sequence[int] = (64, 64), context_features: int = 0,
                               activation: Callable[[], nn.Module] = nn.ReLU, linear_skip: bool = True,
                               bins: int = 8, bound: float = 3.0) -> MaskedAutoregressive:
    """Autoregressive rational-quadratic spline layer (RQ-NSF (AR)), identity outside ``[-bound, bound]``.

    ``MaskedAutoregressive(features, RationalQuadraticSpline(bins, bound), ...)``.

    References:
        Durkan, Bekasov, Murray, Papamakarios. "Neural Spline Flows". NeurIPS 2019.
    """
    return MaskedAutoregressive(features, RationalQuadraticSpline(bins, bound), hidden, context_features, activation,
                                linear_skip, name="MaskedSplineAutoregressive")
