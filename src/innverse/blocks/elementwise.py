"""Elementwise blocks whose parameters depend on the condition only."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

from torch import Tensor

from ..core.module import AbstractInvertible, Context
from ..nets.subnets import SubnetConstructor, mlp_constructor
from .transformers import AbstractTransformer, AffineTransformer

__all__ = ["ContextElementwise", "ConditionalAffine"]

EventShape = int | SequenceABC[int]


class ContextElementwise(AbstractInvertible):
    r"""Elementwise map with parameters from the condition alone: :math:`y_i = T(x_i;\ g(c)_i)`.

    .. math::
        \log|\det J| = \textstyle\sum_i \log|\partial T / \partial x_i|,\qquad
        x_i = T^{-1}(y_i;\ g(c)_i).

    A coupling needs at least two features to split; this block conditions every element on the
    context alone, so a stack of them is a conditional flow for a single parameter, and with an
    affine transformer it is a conditional location-scale map (the head of an amortized
    posterior). ``g`` emits ``transformer.params * prod(event_shape)`` values per sample,
    parameter-major (the first ``prod(event_shape)`` values are the transformer's first
    parameter, and so on).

    Args:
        event_shape: any event shape.
        transformer: the elementwise map (affine, additive, rational-quadratic spline, ...).
        context_shape: ``(C,)`` (required).
        subnet_constructor: builds ``g``; default MLP (2 x 64, zero-initialised last layer, so the
            block starts as the identity for affine and spline transformers).
        name: what errors and ``repr`` call the block.
    """

    def __init__(self, event_shape: EventShape, transformer: AbstractTransformer, context_shape: EventShape,
                 subnet_constructor: SubnetConstructor | None = None, name: str | None = None) -> None:
        super().__init__(event_shape, context_shape)
        self.block_name = name
        if self.context_shape is None or len(self.context_shape) != 1:
            raise ValueError(f"{self.name}: needs a vector context (C,), got {context_shape}")
        self.transformer = transformer
        self.numel = math.prod(self.event_shape)
        make = subnet_constructor or mlp_constructor((64, 64))
        self.subnet = make(self.context_shape[0], transformer.params * self.numel)

    def _params(self, c: Tensor) -> list[Tensor]:
        h = self.subnet(c)
        p = self.transformer.params
        if h.shape != (c.shape[0], p * self.numel):
            raise ValueError(f"{self.name}: the subnetwork must output shape {(c.shape[0], p * self.numel)}, "
                             f"got {tuple(h.shape)}")
        if len(self.event_shape) > 1:
            h = h.reshape(c.shape[0], p * self.event_shape[0], *self.event_shape[1:])
        return self.transformer.split(h)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.transformer.forward(x, self._params(c), log_det)  # type: ignore[arg-type]

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.transformer.inverse(y, self._params(c), log_det)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, transformer={self.transformer!r}"


def ConditionalAffine(event_shape: EventShape, context_shape: EventShape,
                      subnet_constructor: SubnetConstructor | None = None, clamp: float = 2.0) -> ContextElementwise:
    r"""Elementwise affine map whose scale and shift depend on the condition only.

    .. math::
        [\tilde s, t] = g(c),\quad s = \alpha\tanh(\tilde s/\alpha),\quad
        y = x \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    ``ContextElementwise(event_shape, AffineTransformer(clamp), context_shape, subnet_constructor)``.
    """
    return ContextElementwise(event_shape, AffineTransformer(clamp), context_shape, subnet_constructor,
                              name="ConditionalAffine")
