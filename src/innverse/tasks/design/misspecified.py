r"""Misspecified simulators with real-data stand-ins: a pendulum without friction, an SIR model without reporting delays.

Each task's :meth:`simulate` is the model an NPE is trained on and :meth:`simulate_real` the
stand-in for real measurements, which add an effect the model lacks (drawn anew for every
observation). Labelled real pairs come from :meth:`~AbstractMisspecifiedTask.sample_real`. The
third task of the kind, a windkessel with a drifting pressure sensor, is
:class:`~innverse.tasks.design.windkessel.WindkesselDrift`.

References:
    Wehenkel, Gamella, Sener, Behrmann, Sapiro, Jacobsen, Cuturi. "Addressing Misspecification
    in Simulation-based Inference through Data-driven Calibration". ICML 2025 (a pendulum with
    unmodelled friction is one of its tasks).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import F64, AbstractMisspecifiedTask, normal

__all__ = ["PendulumFriction", "SIRReportingDelay"]

_GRAVITY = 9.81


class PendulumFriction(AbstractMisspecifiedTask):
    r"""Length and release angle of a pendulum from 25 noisy angle readings; the real one has friction.

    Model (small angles, released from rest): :math:`\varphi(t) = A\cos(\omega_0 t)`,
    :math:`\omega_0 = \sqrt{g/L}`, read at :math:`t = 0.2, 0.4, \dots, 5` s with
    :math:`\mathcal N(0, 0.05^2)` rad noise. Reality: viscous friction with damping rate
    :math:`\gamma \sim U(0.1, 0.4)` 1/s per recording,
    :math:`\varphi(t) = A e^{-\gamma t}(\cos\omega_d t + (\gamma/\omega_d)\sin\omega_d t)`,
    :math:`\omega_d = \sqrt{\omega_0^2 - \gamma^2}`: the swing decays and slows a little, which
    the model can only read as a smaller release angle and a longer pendulum.
    """

    name = "pendulum_friction"
    parameter_names = ("length", "amplitude")
    bounds = ((0.5, 2.0), (0.1, 0.5))

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (25,)

    @staticmethod
    def _times() -> Tensor:
        return torch.arange(1, 26, dtype=F64) / 5.0

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        omega = torch.sqrt(_GRAVITY / theta[:, :1])
        phi = theta[:, 1:] * torch.cos(omega * self._times())
        return phi + 0.05 * normal(tuple(phi.shape), generator)

    def _simulate_real(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        gamma = 0.1 + 0.3 * torch.rand((theta.shape[0], 1), generator=generator, dtype=F64)
        omega_d = torch.sqrt(_GRAVITY / theta[:, :1] - gamma**2)
        t = self._times()
        phi = theta[:, 1:] * torch.exp(-gamma * t) * (torch.cos(omega_d * t) + gamma / omega_d * torch.sin(omega_d * t))
        return phi + 0.05 * normal(tuple(phi.shape), generator)


def _susceptible(theta: Tensor, days: int, substeps: int = 8) -> Tensor:
    """Susceptible fraction ``(n, days + 1)`` on days 0..days: classic RK4, ``substeps`` steps a day."""
    beta, gamma = theta[:, 0], theta[:, 1]

    def rhs(y: Tensor) -> Tensor:
        infection = beta * y[:, 0] * y[:, 1]
        return torch.stack([-infection, infection - gamma * y[:, 1]], 1)

    y = torch.tensor([1.0 - 1e-6, 1e-6], dtype=F64).expand(theta.shape[0], 2)
    h = 1.0 / substeps
    out = [y[:, 0]]
    for _ in range(days):
        for _ in range(substeps):
            k1 = rhs(y)
            k2 = rhs(y + h / 2 * k1)
            k3 = rhs(y + h / 2 * k2)
            k4 = rhs(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(y[:, 0])
    return torch.stack(out, 1)


def _delay_kernel(mean: float, sd: float, days: int) -> Tensor:
    """Discretised gamma distribution of the reporting delay (days 0..days-1), normalised."""
    shape, scale = (mean / sd) ** 2, sd**2 / mean
    d = torch.arange(days, dtype=F64) + 0.5
    w = torch.exp((shape - 1) * torch.log(d) - d / scale)
    return w / w.sum()


class SIRReportingDelay(AbstractMisspecifiedTask):
    r"""Infection and recovery rates from reported cases every other day for 40 days; real reports arrive late.

    Model: the SIR ODE of :class:`~innverse.tasks.SIR` (population :math:`10^6`, one initial
    case; classic Runge-Kutta, 8 steps a day), daily new infections
    :math:`c_t = N(S_{t-1} - S_t)`, observed on days :math:`t = 2, 4, \dots, 40` as
    :math:`x_t = \log(1 + c_t) + \mathcal N(0, 0.5^2)` (counting and reporting noise). Reality: each day's cases are reported
    with a gamma-distributed delay (mean :math:`m \sim U(3, 7)` days per outbreak, sd 2 days),
    :math:`\tilde c_t = \sum_d k_m(d)\,c_{t-d}`, then observed the same way; the model reads
    the late, smoothed curve as a slower epidemic.

    Prior: :math:`\beta \sim U(0.3, 0.8)`, :math:`\gamma \sim U(0.05, 0.2)` (per day).
    """

    name = "sir_reporting_delay"
    parameter_names = ("beta", "gamma")
    bounds = ((0.3, 0.8), (0.05, 0.2))
    days = 40

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.days // 2,)

    def _cases(self, theta: Tensor) -> Tensor:
        s = _susceptible(theta, self.days)
        return (1e6 * (s[:, :-1] - s[:, 1:])).clamp_min(0.0)

    def _observe(self, cases: Tensor, generator: torch.Generator | None) -> Tensor:
        cases = cases[:, 1::2]
        return torch.log1p(cases) + 0.5 * normal(tuple(cases.shape), generator)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return self._observe(self._cases(theta), generator)

    def _simulate_real(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        cases = self._cases(theta)
        means = 3.0 + 4.0 * torch.rand(theta.shape[0], generator=generator, dtype=F64)
        kernels = torch.stack([_delay_kernel(float(m), 2.0, self.days) for m in means])     # (n, days)
        padded = torch.nn.functional.pad(cases, (self.days - 1, 0))
        windows = padded.unfold(1, self.days, 1)                                             # (n, days, days)
        delayed = (windows * kernels.flip(1)[:, None, :]).sum(-1)
        return self._observe(delayed, generator)

