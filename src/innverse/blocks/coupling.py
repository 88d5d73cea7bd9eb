"""Coupling blocks: one part of the input parametrises an elementwise map of the other."""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor

from ..core.module import AbstractInvertible, Context
from ..nets.subnets import SubnetConstructor, conv_constructor, mlp_constructor
from .transformers import (
    AbstractTransformer,
    AdditiveTransformer,
    AffineTransformer,
    RationalQuadraticSpline,
)

__all__ = [
    "AbstractCoupling",
    "Coupling",
    "AffineCoupling",
    "RealNVPCoupling",
    "AdditiveCoupling",
    "GINCoupling",
    "SplineCoupling",
    "default_subnet",
]


def default_subnet(event_shape: tuple[int, ...]) -> SubnetConstructor:
    """MLP (2 x 256, ReLU) for vectors, conv net (3x3, 1x1, 3x3; 64 channels) for images."""
    return mlp_constructor((256, 256)) if len(event_shape) == 1 else conv_constructor((64, 64))


class AbstractCoupling(AbstractInvertible):
    r"""Base of all couplings: split along dim 1 (features or channels), transform one part.

    .. math::
        x = [x_1, x_2],\quad y_1 = x_1,\quad y_2 = T(x_2;\, \theta(x_1, c)),\quad
        \log|\det J| = \sum \log|\partial T / \partial x_2|.

    Inverse: :math:`x_2 = T^{-1}(y_2; \theta(y_1, c))`. Works on vectors ``(B, D)`` (any
    ``D >= 2``; ``x_1`` gets ``D // 2`` features unless ``split`` says otherwise) and on images
    ``(B, C, H, W)`` split along channels. A vector condition is concatenated to the
    subnetwork's input (broadcast over pixels for images); an image condition ``(C', H, W)`` is
    concatenated along channels.
    """

    def __init__(self, event_shape: int | SequenceABC[int], transformer: AbstractTransformer,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None) -> None:
        super().__init__(event_shape, context_shape)
        name = type(self).__name__
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"{name}: expected a vector (D,) or image (C, H, W) event shape, "
                             f"got {self.event_shape}")
        total = self.event_shape[0]
        if total < 2:
            raise ValueError(f"{name}: needs at least 2 features/channels to split, got {total}")
        d1 = total // 2 if split is None else int(split)
        if not 0 < d1 < total:
            raise ValueError(f"{name}: split must be in [1, {total - 1}], got {d1}")
        self.sizes = (d1, total - d1)
        self.transformer = transformer
        self._broadcast = False
        ctx = 0
        if self.context_shape is not None:
            ctx = self.context_shape[0]
            if len(self.event_shape) == 1 and len(self.context_shape) != 1:
                raise ValueError(f"{name}: a vector block takes a vector context (C,), "
                                 f"got context_shape {self.context_shape}")
            if len(self.event_shape) == 3:
                if len(self.context_shape) == 1:
                    self._broadcast = True
                elif self.context_shape[1:] != self.event_shape[1:]:
                    raise ValueError(f"{name}: an image context must be (C', H, W) with "
                                     f"H, W = {self.event_shape[1:]}, got {self.context_shape}")
        self.conditioner_features = d1 + ctx

    def _conditioner_input(self, x1: Tensor, c: Tensor | None) -> Tensor:
        if c is None:
            return x1
        if self._broadcast:
            c = c[:, :, None, None].expand(-1, -1, *x1.shape[2:])
        return torch.cat([x1, c], 1)

    def _checked(self, h: Tensor, x2: Tensor, per_element: int) -> Tensor:
        """Check that a subnetwork output has ``per_element`` values per element of ``x2``."""
        n = x2.shape[1] * per_element
        if h.dim() != x2.dim() or h.shape[1] != n or h.shape[2:] != x2.shape[2:] or h.shape[0] != x2.shape[0]:
            expected = (x2.shape[0], n, *x2.shape[2:])
            raise ValueError(
                f"{type(self).__name__}: the subnetwork must output shape {expected} "
                f"({per_element} x {x2.shape[1]} features/channels), got {tuple(h.shape)}"
            )
        return h

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        d1 = self.sizes[0]
        x1, x2 = x[:, :d1], x[:, d1:]
        p = self._params(self._conditioner_input(x1, c), x2)  # type: ignore[arg-type]
        y2, ld = self.transformer.forward(x2, p, log_det)
        return torch.cat([x1, y2], 1), ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        d1 = self.sizes[0]
        y1, y2 = y[:, :d1], y[:, d1:]
        p = self._params(self._conditioner_input(y1, c), y2)  # type: ignore[arg-type]
        x2, ld = self.transformer.inverse(y2, p, log_det)
        return torch.cat([y1, x2], 1), ld

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, split={self.sizes}, transformer={self.transformer!r}"


class Coupling(AbstractCoupling):
    """A coupling with any elementwise transformer and one subnetwork emitting all its parameters.

    Args:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        transformer: the elementwise map (:class:`AffineTransformer`, :class:`AdditiveTransformer`,
            :class:`RationalQuadraticSpline`, or your own).
        subnet_constructor: ``f(in_features, out_features) -> nn.Module``; default
            :func:`default_subnet` (zero-initialised last layer: the block starts as identity).
        context_shape: shape of the condition, or None.
        split: number of features/channels in the conditioning part ``x_1``.
    """

    def __init__(self, event_shape: int | SequenceABC[int], transformer: AbstractTransformer,
                 subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None) -> None:
        super().__init__(event_shape, transformer, context_shape, split)
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(self.conditioner_features, transformer.params * self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return self.transformer.split(self._checked(self.subnet(h), x2, self.transformer.params))


class AffineCoupling(AbstractCoupling):
    r"""Affine coupling in the GLOW form: one subnetwork emits both log-scale and shift.

    .. math::
        [\tilde s, t] = g(x_1, c),\quad s = \alpha\tanh(\tilde s/\alpha),\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    Args:
        event_shape, subnet_constructor, context_shape, split: as :class:`Coupling`.
        clamp: bound :math:`\alpha` of the log-scale (default 2).

    References:
        Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None,
                 clamp: float | None = 2.0) -> None:
        super().__init__(event_shape, AffineTransformer(clamp), context_shape, split)
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(self.conditioner_features, 2 * self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return list(self._checked(self.subnet(h), x2, 2).chunk(2, 1))


class RealNVPCoupling(AbstractCoupling):
    r"""Affine coupling in the RealNVP form: separate subnetworks for log-scale and shift.

    .. math::
        s = \alpha\tanh(g_s(x_1, c)/\alpha),\quad t = g_t(x_1, c),\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    References:
        Dinh, Sohl-Dickstein, Bengio. "Density estimation using Real NVP". ICLR 2017.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None,
                 clamp: float | None = 2.0) -> None:
        super().__init__(event_shape, AffineTransformer(clamp), context_shape, split)
        make = subnet_constructor or default_subnet(self.event_shape)
        self.scale_net = make(self.conditioner_features, self.sizes[1])
        self.shift_net = make(self.conditioner_features, self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return [self._checked(self.scale_net(h), x2, 1), self._checked(self.shift_net(h), x2, 1)]


class AdditiveCoupling(AbstractCoupling):
    r"""Additive coupling (NICE): :math:`y_2 = x_2 + t(x_1, c)`, log-det 0.

    References:
        Dinh, Krueger, Bengio. "NICE: Non-linear Independent Components Estimation". 2014.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None) -> None:
        super().__init__(event_shape, AdditiveTransformer(), context_shape, split)
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(self.conditioner_features, self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return [self._checked(self.subnet(h), x2, 1)]


class GINCoupling(AbstractCoupling):
    r"""Volume-preserving affine coupling (GIN): log-scales centred to sum to zero.

    .. math::
        \hat s = \alpha\tanh(\tilde s/\alpha),\quad s = \hat s - \overline{\hat s},\quad
        y_2 = x_2 \odot e^{s} + t,\quad \log|\det J| = 0.

    References:
        Sorrenson, Rother, Köthe. "Disentanglement by Nonlinear ICA with General
        Incompressible-flow Networks (GIN)". ICLR 2020.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None,
                 clamp: float | None = 2.0) -> None:
        super().__init__(event_shape, AffineTransformer(clamp, volume_preserving=True), context_shape, split)
        if self.sizes[1] < 2:
            raise ValueError("GINCoupling: the transformed part needs >= 2 elements to preserve "
                             f"volume non-trivially, got split {self.sizes}")
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(self.conditioner_features, 2 * self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return list(self._checked(self.subnet(h), x2, 2).chunk(2, 1))


class SplineCoupling(AbstractCoupling):
    r"""Rational-quadratic spline coupling (RQ-NSF) with identity tails outside ``[-bound, bound]``.

    :math:`y_2 = \mathrm{RQS}(x_2; \theta(x_1, c))` elementwise, see
    :class:`~innverse.blocks.transformers.RationalQuadraticSpline` for the equations.

    Args:
        bins: number of spline segments K (subnet emits ``3K - 1`` values per element).
        bound: half-width B of the spline interval.
        affine: put a conditional affine map (log-scale soft-clamped at ``clamp``) in front of
            each spline, :math:`y_2 = \mathrm{RQS}(x_2 e^{s} + t)` (``3K + 1`` values per element).

    References:
        Durkan, Bekasov, Murray, Papamakarios. "Neural Spline Flows". NeurIPS 2019.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, split: int | None = None,
                 bins: int = 8, bound: float = 3.0, affine: bool = False, clamp: float = 2.0) -> None:
        spline = RationalQuadraticSpline(bins, bound, affine=affine, clamp=clamp)
        super().__init__(event_shape, spline, context_shape, split)
        make = subnet_constructor or default_subnet(self.event_shape)
        self.subnet = make(self.conditioner_features, spline.params * self.sizes[1])

    def _params(self, h: Tensor, x2: Tensor) -> list[Tensor]:
        return self.transformer.split(self._checked(self.subnet(h), x2, self.transformer.params))


