"""Affine blocks beyond couplings: the conditional affine transform and the all-in-one block."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context, add_log_det
from ..nets.subnets import SubnetConstructor, mlp_constructor
from .coupling import AffineCoupling
from .linear import Orthogonal, _bcast, _mix

__all__ = ["ConditionalAffine", "AllInOne"]


class ConditionalAffine(AbstractInvertible):
    r"""Elementwise affine map whose scale and shift depend on the condition only.

    .. math::
        [\tilde s, t] = g(c),\quad s = \alpha\tanh(\tilde s/\alpha),\quad
        y = x \odot e^{s} + t,\quad \log|\det J| = \textstyle\sum s.

    Args:
        event_shape: any event shape; ``g`` emits ``2 * prod(event_shape)`` values.
        context_shape: ``(C,)`` (required).
        subnet_constructor: builds ``g``; default MLP (2 x 64, zero-initialised last layer).
        clamp: bound of the log-scale.
    """

    def __init__(self, event_shape: int | SequenceABC[int], context_shape: int | SequenceABC[int],
                 subnet_constructor: SubnetConstructor | None = None, clamp: float = 2.0) -> None:
        super().__init__(event_shape, context_shape)
        if self.context_shape is None or len(self.context_shape) != 1:
            raise ValueError(f"ConditionalAffine: needs a vector context (C,), got {context_shape}")
        make = subnet_constructor or mlp_constructor((64, 64))
        self.numel = math.prod(self.event_shape)
        self.subnet = make(self.context_shape[0], 2 * self.numel)
        self.clamp = clamp

    def _params(self, c: Tensor) -> tuple[Tensor, Tensor]:
        h = self.subnet(c)
        if h.shape != (c.shape[0], 2 * self.numel):
            raise ValueError(f"ConditionalAffine: the subnetwork must output shape "
                             f"{(c.shape[0], 2 * self.numel)}, got {tuple(h.shape)}")
        s, t = h.reshape(c.shape[0], 2, *self.event_shape).unbind(1)
        return self.clamp * torch.tanh(s / self.clamp), t

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        s, t = self._params(c)  # type: ignore[arg-type]
        return x * torch.exp(s) + t, (s.flatten(1).sum(1) if log_det else None)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        s, t = self._params(c)  # type: ignore[arg-type]
        return (y - t) * torch.exp(-s), (-s.flatten(1).sum(1) if log_det else None)


class AllInOne(AbstractInvertible):
    r"""Affine coupling, global affine (ActNorm-style) and soft permutation in one block.

    .. math::
        u = \mathrm{AffineCoupling}(x; c),\qquad
        y = Q\,(\gamma \odot u + \beta),\qquad
        \log|\det J| = \log|\det J_{\mathrm{coupling}}| + (HW)\textstyle\sum_i \log\gamma_i,

    with :math:`\gamma = \mathrm{softplus}(\rho)` learnable per feature/channel (initialised to
    ``global_scale``), :math:`\beta` a learnable offset and :math:`Q` a fixed random orthogonal
    matrix (a "soft permutation" mixing all features). This is the block users of FrEIA know as
    ``AllInOneBlock``.

    Args:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        subnet_constructor, context_shape, clamp: as :class:`AffineCoupling`.
        global_scale: initial :math:`\gamma`.
        seed / generator: source of :math:`Q`.

    References:
        Ardizzone et al. "Guided Image Generation with Conditional Invertible Neural Networks". 2019;
        Kingma, Dhariwal. "Glow". NeurIPS 2018.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 context_shape: int | SequenceABC[int] | None = None, clamp: float = 2.0,
                 global_scale: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(event_shape, context_shape)
        self.coupling = AffineCoupling(self.event_shape, subnet_constructor, self.context_shape, clamp=clamp)
        self.mixing = Orthogonal(self.event_shape, seed=seed, generator=generator)
        ch = self.event_shape[0]
        # softplus^{-1}(global_scale)
        raw = math.log(math.expm1(global_scale))
        self.scale_raw = nn.Parameter(torch.full((ch,), raw))
        self.offset = nn.Parameter(torch.zeros(ch))
        self._spatial = math.prod(self.event_shape[1:])

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        u, ld = self.coupling._forward(x, c, log_det)
        gamma = F.softplus(self.scale_raw)
        y = _mix(u * _bcast(gamma, u) + _bcast(self.offset, u), self.mixing.matrix())
        if log_det:
            ld = add_log_det(ld, (torch.log(gamma).sum() * self._spatial).expand(x.shape[0]))
        return y, ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        gamma = F.softplus(self.scale_raw)
        u = (_mix(y, self.mixing.matrix().T) - _bcast(self.offset, y)) / _bcast(gamma, y)
        x, ld = self.coupling._inverse(u, c, log_det)
        if log_det:
            ld = add_log_det(ld, (-torch.log(gamma).sum() * self._spatial).expand(y.shape[0]))
        return x, ld
