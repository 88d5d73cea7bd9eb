r"""The i-RevNet block: a reversible additive coupling with a swap, optionally with invertible downsampling."""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.module import AbstractInvertible, Context, as_shape
from ..nets.subnets import SubnetConstructor
from .coupling import default_subnet

__all__ = ["IRevNetBlock"]


class IRevNetBlock(AbstractInvertible):
    r"""One block of the i-RevNet: ``y = [S(x_2), S(x_1) + F(S(x_2))]``, exactly invertible, log-det 0.

    The input is split along dim 1 (features or channels) into :math:`x = [x_1, x_2]`, ``x_1``
    the first ``C // 2``. With :math:`S` the identity (``stride=1``) or the 2x2 space-to-depth
    squeeze (``stride=2``, images ``(C, H, W) -> (4C, H/2, W/2)``, a permutation of coordinates):

    .. math::
        y_1 = S(x_2),\qquad y_2 = S(x_1) + F(y_1),\qquad
        x_2 = S^{-1}(y_1),\quad x_1 = S^{-1}\big(y_2 - F(y_1)\big),\qquad \log|\det J| = 0.

    The swap of the two parts makes consecutive blocks update alternate halves, as in the
    i-RevNet; a strided block is the i-RevNet's invertible downsampling (its residual function
    works on the squeezed input, which is what a stride-2 convolution sees). Nothing is
    discarded: the block is a bijection.

    Args:
        event_shape: ``(D,)`` (``D >= 2``, stride 1) or ``(C, H, W)`` (``C >= 2``).
        subnet_constructor: ``f(in, out) -> nn.Module`` for :math:`F`; default
            :func:`~innverse.blocks.default_subnet` (zero-initialised last layer).
        stride: 1, or 2 for images with even ``H`` and ``W``.

    References:
        Jacobsen, Smeulders, Oyallon. "i-RevNet: Deep Invertible Networks". ICLR 2018;
        Gomez, Ren, Urtasun, Grosse. "The Reversible Residual Network". NeurIPS 2017.
    """

    def __init__(self, event_shape: int | SequenceABC[int], subnet_constructor: SubnetConstructor | None = None,
                 stride: int = 1) -> None:
        shape = as_shape(event_shape, "event_shape")
        name = type(self).__name__
        if len(shape) not in (1, 3):
            raise ValueError(f"{name}: expected a vector (D,) or image (C, H, W) event shape, got {shape}")
        if shape[0] < 2:
            raise ValueError(f"{name}: needs at least 2 features/channels to split, got {shape[0]} (shape {shape})")
        if stride not in (1, 2):
            raise ValueError(f"{name}: stride must be 1 or 2, got {stride!r}")
        if stride == 2:
            if len(shape) != 3:
                raise ValueError(f"{name}: stride 2 downsamples images (C, H, W); got the vector shape {shape}")
            if shape[1] % 2 or shape[2] % 2:
                raise ValueError(f"{name}: stride 2 halves height and width, which must be even; got {shape}")
            out = (4 * shape[0], shape[1] // 2, shape[2] // 2)
        else:
            out = shape
        super().__init__(shape, output_shape=out)
        self.stride = stride
        self.sizes = (shape[0] // 2, shape[0] - shape[0] // 2)
        factor = 4 if stride == 2 else 1
        make = subnet_constructor or default_subnet(shape)
        self.subnet = make(factor * self.sizes[1], factor * self.sizes[0])

    def _squeeze(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(x, 2) if self.stride == 2 else x

    def _unsqueeze(self, y: Tensor) -> Tensor:
        return F.pixel_shuffle(y, 2) if self.stride == 2 else y

    def _residual(self, y1: Tensor, like: Tensor) -> Tensor:
        out = self.subnet(y1)
        if out.shape != like.shape:
            raise ValueError(f"{self.name}: the subnetwork must output shape {tuple(like.shape)}, got {tuple(out.shape)}")
        return out

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        x1, x2 = x[:, :self.sizes[0]], x[:, self.sizes[0]:]
        y1 = self._squeeze(x2)
        s1 = self._squeeze(x1)
        return torch.cat([y1, s1 + self._residual(y1, s1)], 1), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        factor = 4 if self.stride == 2 else 1
        y1, y2 = y[:, :factor * self.sizes[1]], y[:, factor * self.sizes[1]:]
        x1 = self._unsqueeze(y2 - self._residual(y1, y2))
        return torch.cat([x1, self._unsqueeze(y1)], 1), None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stride={self.stride}"
