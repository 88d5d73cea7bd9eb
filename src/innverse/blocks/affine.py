"""The all-in-one block: affine coupling, global affine map and soft permutation in one."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context, add_log_det
from ..nets.subnets import SubnetConstructor
from .coupling import AffineCoupling
from .linear import Orthogonal, _bcast, _mix

__all__ = ["AllInOne"]


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
