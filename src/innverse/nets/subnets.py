"""Default subnetwork constructors for couplings: ``constructor(in, out) -> nn.Module``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "LinearSkipMLP", "ConvNet", "Parallel", "mlp_constructor", "conv_constructor", "parallel_constructor",
           "SubnetConstructor"]

#: ``subnet_constructor(in_features, out_features) -> nn.Module``: builds one subnetwork of a block.
SubnetConstructor = Callable[[int, int], nn.Module]


class MLP(nn.Sequential):
    """Fully connected network ``in -> hidden... -> out`` with the last layer zero-initialised.

    A zero last layer makes every coupling start as the identity, the usual choice for
    stable training of deep INNs (Kingma & Dhariwal 2018).
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (256, 256),
                 activation: Callable[[], nn.Module] = nn.ReLU, zero_init: bool = True) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        last = nn.Linear(width, out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


class LinearSkipMLP(nn.Module):
    r"""An :class:`MLP` plus a linear shortcut: :math:`f(x) = W x + b + \mathrm{MLP}(x)`.

    The linear part lets a conditioner represent maps that are (nearly) linear in its input
    exactly and cheaply, with the MLP left to learn the nonlinear remainder; both parts start at
    zero when ``zero_init`` is set. Its parameters are ``linear`` and ``mlp``, so the linear part
    can be trained alone. ``input_bound`` = :math:`b` feeds the linear part
    :math:`b \tanh(x / b)` instead of :math:`x`: linear for :math:`|x| \ll b`, bounded for outliers.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (256, 256),
                 activation: Callable[[], nn.Module] = nn.ReLU, zero_init: bool = True,
                 input_bound: float | None = None) -> None:
        super().__init__()
        if input_bound is not None and not input_bound > 0:
            raise ValueError(f"LinearSkipMLP: input_bound must be positive or None, got {input_bound}")
        self.input_bound = input_bound
        self.linear = nn.Linear(in_features, out_features)
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        self.mlp = MLP(in_features, out_features, hidden, activation, zero_init)

    def linear_input(self, x: Tensor) -> Tensor:
        """What the linear part sees: ``x``, or ``b tanh(x / b)`` with an ``input_bound``."""
        b = self.input_bound
        return x if b is None else b * torch.tanh(x / b)

    @torch.no_grad()
    def set_linear(self, weight: Tensor, bias: Tensor) -> None:
        """Set the linear part (while the MLP part is still zero, the whole map is then linear).

        Raises:
            ValueError: the MLP part's last layer is no longer zero (it has been trained).
        """
        if any(bool(p.detach().any()) for p in self.mlp[-1].parameters()):
            raise ValueError("LinearSkipMLP.set_linear: the MLP part is no longer zero")
        self.linear.weight.copy_(weight)
        self.linear.bias.copy_(bias)

    def forward(self, x: Tensor) -> Tensor:
        b = self.input_bound
        # a soft bound on what the linear part sees: linear extrapolation to heavy-tailed outliers
        # (e.g. Student-t distractors) would otherwise dominate the output
        lin = self.linear(x if b is None else b * torch.tanh(x / b))
        return lin + self.mlp(x)


class Parallel(nn.Module):
    """Several subnetworks on the same input, outputs concatenated along dim 1 (e.g. RealNVP's scale and shift nets)."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([net(x) for net in self.nets], 1)


class ConvNet(nn.Sequential):
    """Convolutional subnet for image couplings: 3x3 conv, 1x1 conv(s), 3x3 conv (zero-init last)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: Sequence[int] = (64, 64),
                 kernel_size: int = 3, activation: Callable[[], nn.Module] = nn.ReLU,
                 zero_init: bool = True) -> None:
        layers: list[nn.Module] = []
        width = in_channels
        for i, h in enumerate(hidden):
            k = kernel_size if i == 0 else 1
            layers += [nn.Conv2d(width, h, k, padding=k // 2), activation()]
            width = h
        last = nn.Conv2d(width, out_channels, kernel_size, padding=kernel_size // 2)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


def mlp_constructor(hidden: Sequence[int] = (256, 256), activation: Callable[[], nn.Module] = nn.ReLU,
                    zero_init: bool = True, linear_skip: bool = False,
                    input_bound: float | None = None) -> SubnetConstructor:
    """A ``subnet_constructor`` building :class:`MLP` (or, with ``linear_skip``, :class:`LinearSkipMLP`) subnets."""
    hidden = tuple(hidden)

    def construct(in_features: int, out_features: int) -> nn.Module:
        if linear_skip:
            return LinearSkipMLP(in_features, out_features, hidden, activation, zero_init, input_bound)
        return MLP(in_features, out_features, hidden, activation, zero_init)

    return construct


def parallel_constructor(make: SubnetConstructor, parts: int) -> SubnetConstructor:
    """A ``subnet_constructor`` building ``parts`` separate subnets by ``make``, each emitting ``out / parts`` outputs."""

    def construct(in_features: int, out_features: int) -> nn.Module:
        if out_features % parts:
            raise ValueError(f"parallel_constructor: {out_features} outputs do not split into {parts} equal parts")
        return Parallel([make(in_features, out_features // parts) for _ in range(parts)])

    return construct


def conv_constructor(hidden: Sequence[int] = (64, 64), kernel_size: int = 3,
                     activation: Callable[[], nn.Module] = nn.ReLU, zero_init: bool = True) -> SubnetConstructor:
    """A ``subnet_constructor`` building :class:`ConvNet` subnets (channels in, channels out)."""
    hidden = tuple(hidden)

    def construct(in_channels: int, out_channels: int) -> nn.Module:
        return ConvNet(in_channels, out_channels, hidden, kernel_size, activation, zero_init)

    return construct
