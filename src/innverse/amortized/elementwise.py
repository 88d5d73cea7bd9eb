"""A conditional elementwise block whose parameters depend on the context only (for 1-D parameters)."""

from __future__ import annotations

from torch import Tensor

from ..blocks.transformers import AbstractTransformer
from ..core.module import AbstractInvertible, Context
from ..nets.subnets import SubnetConstructor

__all__ = ["ContextElementwise"]


class ContextElementwise(AbstractInvertible):
    r"""Elementwise map with context-dependent parameters: :math:`y_i = T(x_i;\ g(c)_i)`.

    .. math::
        \log|\det J| = \sum_i \log|\partial T / \partial x_i|,\qquad x_i = T^{-1}(y_i;\ g(c)_i).

    A coupling needs at least two features to split; this block conditions every feature on the
    context alone, so a stack of them is a conditional flow for one-dimensional parameters.

    Args:
        features: dimension ``D``.
        transformer: elementwise map (affine or rational-quadratic spline).
        subnet_constructor: ``f(context_features, params * D) -> nn.Module``.
        context_features: size of the (vector) context.
    """

    def __init__(self, features: int, transformer: AbstractTransformer, subnet_constructor: SubnetConstructor,
                 context_features: int) -> None:
        super().__init__((features,), (context_features,))
        self.transformer = transformer
        self.subnet = subnet_constructor(context_features, transformer.params * features)

    def _params(self, c: Tensor) -> list[Tensor]:
        return self.transformer.split(self.subnet(c))

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.transformer.forward(x, self._params(c), log_det)  # type: ignore[arg-type]

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.transformer.inverse(y, self._params(c), log_det)  # type: ignore[arg-type]
