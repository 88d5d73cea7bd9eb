"""A continuous-time flow: the map of an ODE whose velocity field is a network (flow matching, CNF)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context

__all__ = ["ContinuousFlow", "VelocityField"]


class VelocityField(nn.Module):
    r"""The default velocity network :math:`v(x, t, c)`: an MLP on ``[x, time features, c]``.

    Time enters through ``frequencies`` pairs of Fourier features :math:`\sin(2^k\pi t), \cos(2^k\pi t)`
    and :math:`t` itself, so the field can change quickly in time where the transport needs it.

    Args:
        features: ``D``.
        context_features: size of the vector condition (0: none).
        hidden: hidden widths.
        frequencies: number of Fourier frequency pairs of the time embedding.
        activation: hidden activation (a class; smooth ones keep the ODE well behaved).
    """

    def __init__(self, features: int, context_features: int = 0, hidden: tuple[int, ...] = (128, 128, 128),
                 frequencies: int = 3, activation: Callable[[], nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.register_buffer("scales", (2.0 ** torch.arange(frequencies)) * math.pi)
        width = features + 1 + 2 * frequencies + context_features
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        layers.append(nn.Linear(width, features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        """Velocity ``(B, D)`` at states ``x (B, D)``, times ``t (B, 1)`` and conditions ``c (B, C)``."""
        angles = t * self.scales.to(t.dtype)
        parts = [x, t, torch.sin(angles), torch.cos(angles)] + ([] if c is None else [c])
        return self.net(torch.cat(parts, 1))


class ContinuousFlow(AbstractInvertible):
    r"""The flow of the ODE :math:`\dot x = v(x, t; c)` between data (:math:`t = 1`) and latent (:math:`t = 0`).

    .. math::
        z = x(0),\ x(1) = x:\qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = -\int_0^1 \nabla\cdot v(x(t), t; c)\,dt,

    and the inverse integrates forward in time from :math:`z` to :math:`x`, with the opposite
    log-determinant (instantaneous change of variables; Chen et al. 2018). Both directions use the
    same fixed-step fourth-order Runge-Kutta scheme with ``steps`` steps, so forward and inverse
    agree to the scheme's error (``exact_inverse = False``), which shrinks as ``steps**-4``. The
    divergence is computed exactly, with one vector-Jacobian product per dimension (``D`` network
    backward passes per evaluation: fine for the tens of parameters of a posterior); skip it with
    ``log_det=False`` when only samples are needed.

    Trained by flow matching (:class:`innverse.amortized.FlowMatchingLoss`) it is the posterior of
    flow-matching posterior estimation (FMPE); trained by maximum likelihood, a continuous
    normalizing flow.

    Args:
        features: ``D``.
        context_features: size of the vector condition (0: unconditional).
        velocity: the network ``v(x, t, c)`` (default :class:`VelocityField`).
        steps: Runge-Kutta steps between :math:`t = 0` and :math:`t = 1`.

    References:
        Chen, Rubanova, Bettencourt, Duvenaud. "Neural Ordinary Differential Equations". NeurIPS 2018.
        Lipman, Chen, Ben-Hamu, Nickel, Le. "Flow Matching for Generative Modeling". ICLR 2023.
        Wildberger, Dax, Buchholz, Green, Macke, Schölkopf. "Flow Matching for Scalable
        Simulation-Based Inference". NeurIPS 2023.
    """

    exact_inverse = False

    def __init__(self, features: int, context_features: int = 0, velocity: nn.Module | None = None,
                 steps: int = 32) -> None:
        super().__init__((features,), (context_features,) if context_features else None)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"ContinuousFlow: steps must be an int >= 1, got {steps!r}")
        self.velocity = velocity or VelocityField(features, context_features)
        self.steps = steps

    def field(self, x: Tensor, t: float | Tensor, c: Tensor | None) -> Tensor:
        """The velocity at ``x (B, D)`` and time ``t`` (a float or ``(B, 1)``)."""
        tt = t if isinstance(t, Tensor) else x.new_full((x.shape[0], 1), float(t))
        v = self.velocity(x, tt, c)
        if v.shape != x.shape:
            raise ValueError(f"ContinuousFlow: the velocity network must return shape {tuple(x.shape)}, "
                             f"got {tuple(v.shape)}")
        return v

    def _field_and_divergence(self, x: Tensor, t: float, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """The velocity and its exact divergence; differentiable when gradients are being recorded."""
        train = torch.is_grad_enabled()  # keep the divergence's graph only when the caller differentiates
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            v = self.field(xg, t, c)
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(x.shape[1]):
                (g,) = torch.autograd.grad(v[:, i].sum(), xg, create_graph=train, retain_graph=True)
                div = div + g[:, i]
        return (v, div) if train else (v.detach(), div.detach())

    def _integrate(self, x: Tensor, c: Context, t0: float, t1: float, log_det: bool) -> tuple[Tensor, Tensor | None]:
        """RK4 from ``t0`` to ``t1``; the log-det accumulates ``\\int div v dt`` along the way."""
        h = (t1 - t0) / self.steps
        total = x.new_zeros(x.shape[0]) if log_det else None
        cond = c if isinstance(c, Tensor) else None
        for k in range(self.steps):
            t = t0 + k * h
            if log_det:
                k1, d1 = self._field_and_divergence(x, t, cond)
                k2, d2 = self._field_and_divergence(x + 0.5 * h * k1, t + 0.5 * h, cond)
                k3, d3 = self._field_and_divergence(x + 0.5 * h * k2, t + 0.5 * h, cond)
                k4, d4 = self._field_and_divergence(x + h * k3, t + h, cond)
                total = total + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)  # type: ignore[operator]
            else:
                k1 = self.field(x, t, cond)
                k2 = self.field(x + 0.5 * h * k1, t + 0.5 * h, cond)
                k3 = self.field(x + 0.5 * h * k2, t + 0.5 * h, cond)
                k4 = self.field(x + h * k3, t + h, cond)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x, total

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        # data (t = 1) -> latent (t = 0); the integral of the divergence runs with dt < 0
        return self._integrate(x, c, 1.0, 0.0, log_det)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self._integrate(y, c, 0.0, 1.0, log_det)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, steps={self.steps}"
