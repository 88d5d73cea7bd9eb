"""Volume-preserving reshapes: Haar downsampling, squeeze, flatten / unflatten."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.module import AbstractInvertible, Context, as_shape

__all__ = ["HaarDownsample", "Squeeze", "Flatten", "Unflatten"]


def _image(block: str, shape: tuple[int, ...], factor: int = 2) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{block}: expected an image event shape (C, H, W), got {shape}")
    c, h, w = shape
    if h % factor or w % factor:
        raise ValueError(f"{block}: height and width must be divisible by {factor}, got {shape}")
    return c, h, w


class HaarDownsample(AbstractInvertible):
    r"""Orthonormal 2-D Haar wavelet downsampling: ``(C, H, W) -> (4C, H/2, W/2)``.

    Each 2x2 patch :math:`(a, b; c, d)` becomes
    :math:`\tfrac12(a+b+c+d,\; a-b+c-d,\; a+b-c-d,\; a-b-c+d)` (average, horizontal, vertical
    and diagonal detail). The transform is orthogonal, so :math:`\log|\det J| = 0`.
    With ``order_by_wavelet=True`` (default) the output channels are grouped as
    ``[LL (C), LH (C), HL (C), HH (C)]`` so a channel split separates coarse from detail.

    References:
        Ardizzone et al. "Guided Image Generation with Conditional Invertible Neural Networks". 2019.
    """

    def __init__(self, event_shape: SequenceABC[int], order_by_wavelet: bool = True) -> None:
        c, h, w = _image("HaarDownsample", as_shape(event_shape))
        super().__init__((c, h, w), output_shape=(4 * c, h // 2, w // 2))
        self.order_by_wavelet = order_by_wavelet
        haar = 0.5 * torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]],
                                  dtype=torch.get_default_dtype())
        self.register_buffer("haar", haar, persistent=False)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        b, ch, h, w = x.shape
        patches = F.pixel_unshuffle(x, 2).reshape(b, ch, 4, h // 2, w // 2)
        y = torch.einsum("ij,bcjhw->bcihw", self.haar.to(x.dtype), patches)
        if self.order_by_wavelet:
            y = y.transpose(1, 2)
        return y.reshape(b, 4 * ch, h // 2, w // 2), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        b, c4, h, w = y.shape
        ch = c4 // 4
        if self.order_by_wavelet:
            y = y.reshape(b, 4, ch, h, w).transpose(1, 2)
        y = y.reshape(b, ch, 4, h, w)
        patches = torch.einsum("ji,bcjhw->bcihw", self.haar.to(y.dtype), y)  # haar^T = haar^-1
        x = F.pixel_shuffle(patches.reshape(b, 4 * ch, h, w), 2)
        return x, None


class Squeeze(AbstractInvertible):
    r"""Space-to-depth squeeze (RealNVP checkerboard / i-RevNet downsampling).

    ``(C, H, W) -> (C f^2, H/f, W/f)``: every ``f x f`` patch of a channel becomes ``f^2``
    channels (a permutation of coordinates, :math:`\log|\det J| = 0`).

    References:
        Dinh et al. "Density estimation using Real NVP". ICLR 2017;
        Jacobsen, Smeulders, Oyallon. "i-RevNet: Deep Invertible Networks". ICLR 2018.
    """

    def __init__(self, event_shape: SequenceABC[int], factor: int = 2) -> None:
        if factor < 2:
            raise ValueError(f"Squeeze: factor must be >= 2, got {factor}")
        c, h, w = _image("Squeeze", as_shape(event_shape), factor)
        super().__init__((c, h, w), output_shape=(c * factor**2, h // factor, w // factor))
        self.factor = factor

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return F.pixel_unshuffle(x, self.factor), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return F.pixel_shuffle(y, self.factor), None


class Flatten(AbstractInvertible):
    """Flatten an event of any shape to a vector: ``(*shape) -> (prod(shape),)``; log-det 0."""

    def __init__(self, event_shape: int | SequenceABC[int]) -> None:
        shape = as_shape(event_shape)
        super().__init__(shape, output_shape=(math.prod(shape),))

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return x.reshape(x.shape[0], -1), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return y.reshape(y.shape[0], *self.event_shape), None


class Unflatten(AbstractInvertible):
    """Reshape a vector to an event shape: ``(prod(shape),) -> shape``; log-det 0."""

    def __init__(self, shape: SequenceABC[int]) -> None:
        shape = as_shape(shape)
        super().__init__((math.prod(shape),), output_shape=shape)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return x.reshape(x.shape[0], *self.output_shape), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return y.reshape(y.shape[0], -1), None
