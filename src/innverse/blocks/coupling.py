"""The coupling block: one part of the input parametrises an elementwise map of the other.

One class, :class:`Coupling`, takes any elementwise transformer (compose, don't subclass); the
familiar names of the literature are factories that pick the transformer and the subnetwork
layout: :func:`AffineCoupling` (GLOW), :func:`RealNVPCoupling`, :func:`AdditiveCoupling` (NICE),
:func:`GINCoupling` (volume-preserving) and :func:`SplineCoupling` (RQ-NSF).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor

from ..core.module import AbstractInvertible, Context, as_shape
from ..nets.subnets import SubnetConstructor, conv_constructor, mlp_constructor, parallel_constructor
from .transformers import (
    AbstractTransformer,
    AdditiveTransformer,
    AffineTransformer,
    RationalQuadraticSpline,
)

__all__ = [
    "Coupling",
    "AffineCoupling",
    "RealNVPCoupling",
    "AdditiveCoupling",
    "GINCoupling",
    "SplineCoupling",
    "default_subnet",
]

EventShape = int | SequenceABC[int]


def default_subnet(event_shape: tuple[int, ...]) -> SubnetConstructor:
    """MLP (2 x 256, ReLU) for vectors, conv net (3x3, 1x1, 3x3; 64 channels) for images."""
    return mlp_constructor((256, 256)) if len(event_shape) == 1 else conv_constructor((64, 64))


class Coupling(AbstractInvertible):
    r"""A coupling with any elementwise transformer :math:`T` and one subnetwork :math:`g` emitting its parameters.

    Split along dim 1 (features or channels) and transform one part:

    .. math::
        x = [x_1, x_2],\quad y_1 = x_1,\quad y_2 = T(x_2;\, g(x_1, c)),\quad
        \log|\det J| = \textstyle\sum \log|\partial T / \partial x_2|.

    Inverse: :math:`x_2 = T^{-1}(y_2;\, g(y_1, c))`. Works on vectors ``(B, D)`` (any ``D >= 2``;
    ``x_1`` gets ``D // 2`` features unless ``split`` says otherwise) and on images
    ``(B, C, H, W)`` split along channels. A vector condition is concatenated to the
    subnetwork's input (broadcast over pixels for images); an image condition ``(C', H, W)`` is
    concatenated along channels. The subnetwork emits ``transformer.params`` values per element
    of :math:`x_2`, parameter-major along dim 1 (see :meth:`AbstractTransformer.split`).

    Args:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        transformer: the elementwise map (:class:`AffineTransformer`, :class:`AdditiveTransformer`,
            :class:`RationalQuadraticSpline`, or your own :class:`AbstractTransformer`).
        subnet_constructor: ``f(in_features, out_features) -> nn.Module``; default
            :func:`default_subnet` (zero-initialised last layer: the block starts as identity).
        context_shape: shape of the condition, or None.
        split: number of features/channels in the conditioning part ``x_1``.
        name: what errors and ``repr`` call the block (the factories set it).
    """

    def __init__(self, event_shape: EventShape, transformer: AbstractTransformer,
                 subnet_constructor: SubnetConstructor | None = None, context_shape: EventShape | None = None,
                 split: int | None = None, name: str | None = None) -> None:
        super().__init__(event_shape, context_shape)
        self.block_name = name
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"{self.name}: expected a vector (D,) or image (C, H, W) event shape, "
                             f"got {self.event_shape}")
        total = self.event_shape[0]
        if total < 2:
            raise ValueError(f"{self.name}: needs at least 2 features/channels to split, got {total}")
        d1 = total // 2 if split is None else int(split)
        if not 0 < d1 < total:
            raise ValueError(f"{self.name}: split must be in [1, {total - 1}], got {d1}")
        self.sizes = (d1, total - d1)
        self.transformer = transformer
        self._broadcast = self._check_context_shape()
        ctx = 0 if self.context_shape is None else self.context_shape[0]
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(d1 + ctx, transformer.params * self.sizes[1])

    def _check_context_shape(self) -> bool:
        """Validate the condition's shape against the event's; whether a vector condition is broadcast over pixels."""
        if self.context_shape is None:
            return False
        if len(self.event_shape) == 1:
            if len(self.context_shape) != 1:
                raise ValueError(f"{self.name}: a vector block takes a vector context (C,), "
                                 f"got context_shape {self.context_shape}")
            return False
        if len(self.context_shape) == 1:
            return True
        if self.context_shape[1:] != self.event_shape[1:]:
            raise ValueError(f"{self.name}: an image context must be (C', H, W) with "
                             f"H, W = {self.event_shape[1:]}, got {self.context_shape}")
        return False

    def _params(self, x1: Tensor, x2: Tensor, c: Tensor | None) -> list[Tensor]:
        """The transformer's parameters for ``x2`` from the conditioning part ``x1`` and the condition."""
        h = x1
        if c is not None:
            if self._broadcast:
                c = c[:, :, None, None].expand(-1, -1, *x1.shape[2:])
            h = torch.cat([x1, c], 1)
        out = self.subnet(h)
        n = x2.shape[1] * self.transformer.params
        if out.dim() != x2.dim() or out.shape[0] != x2.shape[0] or out.shape[1] != n or out.shape[2:] != x2.shape[2:]:
            expected = (x2.shape[0], n, *x2.shape[2:])
            raise ValueError(f"{self.name}: the subnetwork must output shape {expected} ({self.transformer.params} x "
                             f"{x2.shape[1]} features/channels), got {tuple(out.shape)}")
        return self.transformer.split(out)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        x1, x2 = x[:, :self.sizes[0]], x[:, self.sizes[0]:]
        y2, ld = self.transformer.forward(x2, self._params(x1, x2, c), log_det)  # type: ignore[arg-type]
        return torch.cat([x1, y2], 1), ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        y1, y2 = y[:, :self.sizes[0]], y[:, self.sizes[0]:]
        x2, ld = self.transformer.inverse(y2, self._params(y1, y2, c), log_det)  # type: ignore[arg-type]
        return torch.cat([y1, x2], 1), ld

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, split={self.sizes}, transformer={self.transformer!r}"


def AffineCoupling(event_shape: EventShape, subnet_constructor: SubnetConstructor | None = None,
                   context_shape: EventShape | None = None, split: int | None = None,
                   clamp: float | None = 2.0) -> Coupling:
    r"""Affine coupling in the GLOW form: one subnetwork emits both log-scale and shift.

    .. math::
        [\tilde s, t] = g(x_1, c),\quad s = \alpha\tanh(\tilde s/\alpha),\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    ``Coupling(event_shape, AffineTransformer(clamp), ...)``; arguments as :class:`Coupling`,
    ``clamp`` the bound :math:`\alpha` of the log-scale.

    References:
        Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """
    return Coupling(event_shape, AffineTransformer(clamp), subnet_constructor, context_shape, split,
                    name="AffineCoupling")


def RealNVPCoupling(event_shape: EventShape, subnet_constructor: SubnetConstructor | None = None,
                    context_shape: EventShape | None = None, split: int | None = None,
                    clamp: float | None = 2.0) -> Coupling:
    r"""Affine coupling in the RealNVP form: separate subnetworks for log-scale and shift.

    .. math::
        s = \alpha\tanh(g_s(x_1, c)/\alpha),\quad t = g_t(x_1, c),\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    References:
        Dinh, Sohl-Dickstein, Bengio. "Density estimation using Real NVP". ICLR 2017.
    """
    make = subnet_constructor or default_subnet(as_shape(event_shape, "event_shape"))
    return Coupling(event_shape, AffineTransformer(clamp), parallel_constructor(make, 2), context_shape, split,
                    name="RealNVPCoupling")


def AdditiveCoupling(event_shape: EventShape, subnet_constructor: SubnetConstructor | None = None,
                     context_shape: EventShape | None = None, split: int | None = None) -> Coupling:
    r"""Additive coupling (NICE): :math:`y_2 = x_2 + t(x_1, c)`, log-det 0.

    References:
        Dinh, Krueger, Bengio. "NICE: Non-linear Independent Components Estimation". 2014.
    """
    return Coupling(event_shape, AdditiveTransformer(), subnet_constructor, context_shape, split,
                    name="AdditiveCoupling")


def GINCoupling(event_shape: EventShape, subnet_constructor: SubnetConstructor | None = None,
                context_shape: EventShape | None = None, split: int | None = None,
                clamp: float | None = 2.0) -> Coupling:
    r"""Volume-preserving affine coupling (GIN): log-scales centred to sum to zero.

    .. math::
        \hat s = \alpha\tanh(\tilde s/\alpha),\quad s = \hat s - \overline{\hat s},\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = 0.

    References:
        Sorrenson, Rother, Köthe. "Disentanglement by Nonlinear ICA with General
        Incompressible-flow Networks (GIN)". ICLR 2020.
    """
    block = Coupling(event_shape, AffineTransformer(clamp, volume_preserving=True), subnet_constructor,
                     context_shape, split, name="GINCoupling")
    if block.sizes[1] < 2:
        raise ValueError("GINCoupling: the transformed part needs >= 2 elements to preserve "
                         f"volume non-trivially, got split {block.sizes}")
    return block


def SplineCoupling(event_shape: EventShape, subnet_constructor: SubnetConstructor | None = None,
                   context_shape: EventShape | None = None, split: int | None = None, bins: int = 8,
                   bound: float = 3.0, affine: bool = False, clamp: float = 2.0) -> Coupling:
    r"""Rational-quadratic spline coupling (RQ-NSF) with identity tails outside ``[-bound, bound]``.

    :math:`y_2 = \mathrm{RQS}(x_2; g(x_1, c))` elementwise, see
    :class:`~innverse.blocks.transformers.RationalQuadraticSpline` for the equations.

    Args:
        bins: number of spline segments K (the subnet emits ``3K - 1`` values per element).
        bound: half-width B of the spline interval.
        affine: put a conditional affine map (log-scale soft-clamped at ``clamp``) in front of
            each spline, :math:`y_2 = \mathrm{RQS}(x_2 e^{s} + t)` (``3K + 1`` values per element).

    References:
        Durkan, Bekasov, Murray, Papamakarios. "Neural Spline Flows". NeurIPS 2019.
    """
    return Coupling(event_shape, RationalQuadraticSpline(bins, bound, affine=affine, clamp=clamp), subnet_constructor,
                    context_shape, split, name="SplineCoupling")
