"""Ballistics with linear drag (Kruse et al. 2021): launch point, angle, speed -> impact point."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import lambertw
from torch import Tensor

from .base import AbstractInverseTask

__all__ = ["Ballistics"]


def _psi(s: np.ndarray) -> np.ndarray:
    """(1 - e^{-s}) / s, accurate for small s."""
    small = np.abs(s) < 1e-4
    safe = np.where(small, 1.0, s)
    return np.where(small, 1.0 - s / 2 + s * s / 6, -np.expm1(-safe) / safe)


def _phi(s: np.ndarray) -> np.ndarray:
    """(1 - e^{-s} - s) / s^2, accurate for small s."""
    small = np.abs(s) < 1e-3
    safe = np.where(small, 1.0, s)
    return np.where(small, -0.5 + s / 6 - s * s / 24, (-np.expm1(-safe) - safe) / (safe * safe))


class Ballistics(AbstractInverseTask):
    r"""A body thrown from :math:`(x_1, x_2)` at angle :math:`x_3` with speed :math:`x_4`, with drag.

    Linear (Stokes) drag with coefficient :math:`k`, mass :math:`m`, gravity :math:`g`;
    :math:`a = k/m`, :math:`v = x_4(\cos x_3, \sin x_3)`. The trajectory is

    .. math::
        p_1(t) = x_1 + \frac{v_1}{a}(1 - e^{-at}),\qquad
        p_2(t) = x_2 + \frac{g/a + v_2}{a}(1 - e^{-at}) - \frac{g}{a} t,

    and the observation is where it comes down to the ground, :math:`y = p_1(t^*)` with
    :math:`p_2(t^*) = 0` on the descending branch. With :math:`u = at`,
    :math:`A = a^2 x_2 / g` and :math:`B = 1 + a v_2 / g`, the ground condition reads
    :math:`A + B(1 - e^{-u}) = u`, solved exactly by the principal branch of Lambert's W:

    .. math::
        u^* = A + B + W_0\!\left(-B e^{-(A+B)}\right).

    (The other branch :math:`W_{-1}` is the ascending crossing, e.g. the launch itself when
    :math:`x_2 = 0`.) Where the body never reaches the ground (argument below :math:`-1/e`, only
    possible for launch points below ground) the observation is NaN.

    Prior, as published: :math:`x_1 \sim \mathcal N(0, 1/4)`,
    :math:`x_2 = \max(0, \tilde x_2)` with :math:`\tilde x_2 \sim \mathcal N(3/2, 1/4)`,
    :math:`x_3 \sim U(0.1\,\pi/2,\ 0.9\,\pi/2)`, :math:`x_4 \sim \mathrm{Poisson}(15)`. The
    integer speed has no density, so density-based posteriors (a cINN) and classifier tests
    (C2ST) would be dominated by the lattice; with ``dequantize=True`` (default) the speed is
    :math:`x_4 = N + U(-1/2, 1/2)`, :math:`N \sim \mathrm{Poisson}(15)`, a continuous prior
    whose rounding recovers the published one exactly. ``dequantize=False`` gives the original.

    Args:
        gravity, drag, mass: :math:`g`, :math:`k`, :math:`m` (defaults 9.81, 0.25, 0.2).
        dequantize: continuous speed prior (see above).

    References:
        Kruse, Ardizzone, Rother, Köthe. "Benchmarking Invertible Architectures on Inverse
        Problems". arXiv:2101.10763 (2021), Sec. 3.2.
    """

    name = "ballistics"
    x_dim = 4
    y_dim = 1
    parameter_names = ("start_x", "start_height", "angle", "speed")
    observation_names = ("impact_x",)

    def __init__(self, gravity: float = 9.81, drag: float = 0.25, mass: float = 0.2,
                 dequantize: bool = True) -> None:
        for nm, v in (("gravity", gravity), ("drag", drag), ("mass", mass)):
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"Ballistics: {nm} must be a positive number, got {v!r}")
        self.gravity, self.drag, self.mass = float(gravity), float(drag), float(mass)
        self.dequantize = bool(dequantize)

    def config(self) -> dict[str, Any]:
        return {"gravity": self.gravity, "drag": self.drag, "mass": self.mass,
                "dequantize": self.dequantize}

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_count(n, "sample_prior")
        f64 = torch.float64
        start_x = 0.5 * torch.randn(n, generator=generator, dtype=f64)
        height = (1.5 + 0.5 * torch.randn(n, generator=generator, dtype=f64)).clamp_min(0.0)
        angle = math.pi / 2 * (0.1 + 0.8 * torch.rand(n, generator=generator, dtype=f64))
        speed = torch.poisson(torch.full((n,), 15.0, dtype=f64), generator=generator)
        if self.dequantize:
            speed = speed + torch.rand(n, generator=generator, dtype=f64) - 0.5
        return torch.stack([start_x, height, angle, speed], 1)

    def trajectory(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Positions ``(batch, T)`` at times ``t`` (``(T,)``): horizontal and vertical."""
        x = self.check_x(x)
        a, g = self.drag / self.mass, self.gravity
        v1, v2 = x[:, 3:] * torch.cos(x[:, 2:3]), x[:, 3:] * torch.sin(x[:, 2:3])
        decay = -torch.expm1(-a * t.to(torch.float64))[None]            # 1 - e^{-at}
        p1 = x[:, :1] + v1 / a * decay
        p2 = x[:, 1:2] + (g / a + v2) / a * decay - g / a * t.to(torch.float64)[None]
        return p1, p2

    def impact_time(self, x: Tensor) -> Tensor:
        r"""Time :math:`t^*` of the descending ground crossing, ``(batch,)`` (NaN if none).

        The Lambert-W solution loses digits near its branch point (weak drag, where
        :math:`-B e^{-(A+B)} \to -1/e`), so it is refined by three Newton steps on
        :math:`p_2(t) = x_2 + v_2 t\,\psi(at) + g t^2 \phi(at)` with
        :math:`\psi(s) = (1 - e^{-s})/s` and :math:`\phi(s) = (1 - e^{-s} - s)/s^2`, both
        evaluated without cancellation (series for small s).
        """
        x = self.check_x(x)
        a, g = self.drag / self.mass, self.gravity
        height = x[:, 1].cpu().numpy()
        v2 = (x[:, 3] * torch.sin(x[:, 2])).cpu().numpy()
        big_a, big_b = a * a * height / g, 1.0 + a * v2 / g
        with np.errstate(over="ignore", invalid="ignore"):
            arg = -big_b * np.exp(-(big_a + big_b))
            # Round-off can push the branch point (launch from the ground straight along it)
            # a hair below -1/e.
            arg = np.where((arg < -1 / math.e) & (arg > -1 / math.e - 1e-12), -1 / math.e, arg)
            u = np.where(arg >= -1 / math.e, big_a + big_b + lambertw(arg, 0).real, np.nan)
            t = np.where(u >= 0, u / a, np.nan)
            for _ in range(3):
                s = a * t
                decay = np.exp(-s)
                p2 = height + v2 * t * _psi(s) + g * t * t * _phi(s)
                dp2 = v2 * decay - g * t * _psi(s)
                t = np.where(dp2 < 0, t - p2 / np.where(dp2 < 0, dp2, 1.0), t)
        return torch.from_numpy(np.where(t >= 0, t, np.nan)).to(x.device)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = self.check_x(x)
        t = self.impact_time(x)
        v1 = x[:, 3] * torch.cos(x[:, 2])
        # p_1(t) = x_1 + v_1 t psi(a t), stable for weak drag.
        psi = torch.from_numpy(_psi((self.drag / self.mass * t).cpu().numpy())).to(x.device)
        return (x[:, 0] + v1 * t * psi)[:, None]
