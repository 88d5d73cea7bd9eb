r"""Lipschitz-constrained networks for invertible residual blocks: LipSwish, MLP and conv net.

A network :math:`g = W_L \circ \phi \circ \dots \circ \phi \circ W_1` with spectrally normalised
layers (:math:`\|W_i\| \le c`) and 1-Lipschitz activations :math:`\phi` satisfies
:math:`\mathrm{Lip}(g) \le \prod_i \|W_i\| \le c^L < 1`, which makes :math:`x \mapsto x + g(x)`
invertible. ``lipschitz_bound()`` reports the product of the layers' current operator norms
(exact for dense layers, a certified upper bound for convolutions).

References:
    Behrmann et al. "Invertible Residual Networks". ICML 2019;
    Chen et al. "Residual Flows for Invertible Generative Modeling". NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spectral import SpectralConv2d, SpectralLinear

__all__ = ["LipSwish", "LipschitzMLP", "LipschitzConvNet"]


class LipSwish(nn.Module):
    r"""The 1-Lipschitz Swish: :math:`\phi(x) = x\,\sigma(\beta x) / 1.1`, :math:`\beta = \mathrm{softplus}(\rho)`.

    :math:`\frac{d}{dx}\, x\sigma(\beta x) = h(\beta x)` with
    :math:`h(z) = \sigma(z) + z\sigma(z)(1 - \sigma(z)) \in [-0.0998, 1.0998]` for every
    :math:`\beta > 0`, so dividing by 1.1 makes :math:`\phi` 1-Lipschitz. Unlike ReLU or ELU its
    second derivative does not vanish, which keeps the gradient of the log-det (a function of
    :math:`\phi''`) informative. :math:`\rho` is learnable (initial :math:`\beta = 0.5`).

    References:
        Chen et al. "Residual Flows for Invertible Generative Modeling". NeurIPS 2019.
    """

    lipschitz = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.rho = nn.Parameter(torch.tensor(math.log(math.expm1(0.5))))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x * F.softplus(self.rho)) / 1.1


def _bound(layers: nn.Module) -> float:
    bound = 1.0
    for m in layers.children():
        if isinstance(m, (SpectralLinear, SpectralConv2d)):
            bound *= m.lipschitz_bound()
        elif isinstance(m, LipSwish):
            bound *= m.lipschitz
        else:
            raise TypeError(f"{type(layers).__name__}: no Lipschitz bound known for {type(m).__name__}")
    return bound


class LipschitzMLP(nn.Sequential):
    r"""Fully connected :math:`g(h) = W_L \phi(\dots \phi(W_1 h))` with :math:`\|W_i\|_2 \le c`, LipSwish :math:`\phi`.

    Args:
        in_features, out_features: sizes (``in_features`` may include a concatenated condition).
        hidden: hidden widths.
        coeff: per-layer bound ``c``; :math:`\mathrm{Lip}(g) \le c^{L}`.
        mode, n_power_iterations: passed to :class:`~innverse.nets.spectral.SpectralLinear`.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (128, 128),
                 coeff: float = 0.97, mode: str = "auto", n_power_iterations: int = 1) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [SpectralLinear(width, h, coeff, mode=mode, n_power_iterations=n_power_iterations),
                       LipSwish()]
            width = h
        layers.append(SpectralLinear(width, out_features, coeff, mode=mode,
                                     n_power_iterations=n_power_iterations))
        super().__init__(*layers)

    def lipschitz_bound(self) -> float:
        """Product of the layers' exact spectral norms (as currently normalised)."""
        return _bound(self)


class LipschitzConvNet(nn.Sequential):
    r"""Convolutional :math:`g`: ``k x k`` conv, then ``1 x 1`` convs, then ``k x k`` conv, LipSwish between.

    Each convolution's operator norm on ``input_size`` images is at most ``coeff``
    (see :class:`~innverse.nets.spectral.SpectralConv2d`).

    Args:
        in_channels, out_channels: channels (``in_channels`` may include condition channels).
        input_size: ``(H, W)``.
        hidden: hidden channel counts.
        kernel_size: size of the first and last kernels.
        coeff, mode, n_power_iterations: as :class:`LipschitzMLP`.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size: Sequence[int],
                 hidden: Sequence[int] = (64, 64), kernel_size: int = 3, coeff: float = 0.97,
                 mode: str = "auto", n_power_iterations: int = 1) -> None:
        layers: list[nn.Module] = []
        width = in_channels
        for i, h in enumerate(hidden):
            k = kernel_size if i == 0 else 1
            layers += [SpectralConv2d(width, h, k, input_size, coeff, mode=mode,
                                      n_power_iterations=n_power_iterations), LipSwish()]
            width = h
        layers.append(SpectralConv2d(width, out_channels, kernel_size, input_size, coeff, mode=mode,
                                     n_power_iterations=n_power_iterations))
        super().__init__(*layers)

    def lipschitz_bound(self) -> float:
        """Product of certified upper bounds of the convolutions' operator norms."""
        return _bound(self)
