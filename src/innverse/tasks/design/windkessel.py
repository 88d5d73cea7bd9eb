r"""A windkessel-flavoured cardiovascular task: arterial pressure and a PPG-like signal, and a drifting sensor.

The two-element windkessel (Frank 1899; Westerhof et al. 2009) relates the aortic inflow
:math:`Q(t)` to the arterial pressure :math:`P(t)` through peripheral resistance :math:`R`
(mmHg s/ml) and total arterial compliance :math:`C` (ml/mmHg):

.. math::
    C\,\dot P = Q(t) - P / R, \qquad
    Q(t) = \frac{\pi\,SV}{2 T_s} \sin\!\Big(\frac{\pi t}{T_s}\Big)\ \text{for } t < T_s,\ 0 \text{ otherwise},

with :math:`t` the time since the beat started, heart period :math:`T = 60/\mathrm{HR}`,
ejection time :math:`T_s = 0.37\sqrt{T}` and stroke volume :math:`SV = 70` ml. The PPG-like
signal is the arterial volume :math:`V = C P` seen through the microvascular bed, a first-order
low-pass with time constant :math:`\tau_d` (s), :math:`\tau_d \dot U = V - U`; like a real PPG
it is uncalibrated: only its shape counts (standardised to zero mean and unit variance over the
window). Both are the periodic steady state, computed in closed form (see
:func:`windkessel_signals`); a recording starts at a beat onset and lasts 2 s at 32 Hz (64 values), with
noise :math:`\mathcal N(0, 1)` mmHg on the pressure and :math:`\mathcal N(0, 0.05^2)` on the PPG.

What each signal can tell, by construction: the pressure is calibrated, so its mean pins
:math:`R` (:math:`\bar P = R\,SV/T`) and its pulse pressure :math:`C`; it carries no trace of
:math:`\tau_d`. The PPG is scale-free, so it sees :math:`R` and :math:`C` only through their
product :math:`RC` (the shape of the diastolic decay), but :math:`\tau_d` shapes it directly.
Both see the heart rate.

References:
    Westerhof, Lankhaar, Westerhof. "The arterial Windkessel". Med Biol Eng Comput 2009;
    Wehenkel et al. "Simulation-based inference for cardiovascular models". arXiv:2307.13918, 2023.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import F64, AbstractDesignTask, AbstractMisspecifiedTask, normal

__all__ = ["WindkesselWaveform", "WindkesselDrift", "windkessel_signals", "MODALITIES"]

#: Measurement setups compared: arterial pressure, photoplethysmogram (PPG), or both.
MODALITIES = ("pressure", "ppg", "both")
STROKE_VOLUME = 70.0
_RATE, _SAMPLES, _GRID = 32.0, 64, 512


def _pressure(t: Tensor, p0: Tensor, k: Tensor, omega: Tensor, tau: Tensor, systole: Tensor) -> Tensor:
    """The periodic pressure at times ``t (n, m)`` since the beat started (closed form, see the module)."""
    wt = omega * tau
    during = (p0 + k * wt) * torch.exp(-t / tau) + k * (torch.sin(omega * t) - wt * torch.cos(omega * t))
    end = (p0 + k * wt) * torch.exp(-systole / tau) + k * wt
    return torch.where(t < systole, during, end * torch.exp(-(t - systole) / tau))


def windkessel_signals(resistance: Tensor, compliance: Tensor, heart_rate: Tensor,
                       microvascular_time: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    r"""Noise-free pressure ``(n, 64)`` (mmHg) and, given ``microvascular_time``, the standardised PPG ``(n, 64)``.

    Parameters are ``(n,)``. The pressure is the periodic steady state in closed form: with
    :math:`\tau = RC`, :math:`\omega = \pi / T_s`, peak inflow :math:`A` and
    :math:`K = RA / (1 + \omega^2\tau^2)`, during ejection
    :math:`P(t) = (P_0 + K\omega\tau)e^{-t/\tau} + K(\sin\omega t - \omega\tau\cos\omega t)`, then
    exponential decay, with the periodic start value
    :math:`P_0 = K\omega\tau\,(e^{-T/\tau} + e^{-(T - T_s)/\tau}) / (1 - e^{-T/\tau})`. The PPG
    low-pass acts on the Fourier coefficients of one period (512 points) as
    :math:`1 / (1 + 2\pi i k \tau_d / T)`. Recordings start at a beat onset (gated) and last 2 s
    at 32 Hz.
    """
    r, c, hr = (v.reshape(-1, 1).to(F64) for v in (resistance, compliance, heart_rate))
    period = 60.0 / hr
    systole = 0.37 * torch.sqrt(period)
    omega = math.pi / systole
    tau = r * c
    k = r * (math.pi * STROKE_VOLUME / (2 * systole)) / (1 + (omega * tau) ** 2)
    decay = torch.exp(-period / tau)
    p0 = k * omega * tau * (decay + torch.exp(-(period - systole) / tau)) / (1 - decay)
    args = (p0, k, omega, tau, systole)
    times = torch.arange(_SAMPLES, dtype=F64) / _RATE
    pressure = _pressure(torch.remainder(times, period), *args)
    if microvascular_time is None:
        return pressure, None
    grid = torch.arange(_GRID, dtype=F64) / _GRID * period                      # (n, M) one period
    coef = torch.fft.rfft(c * _pressure(grid, *args), dim=1)
    freq = torch.arange(coef.shape[1], dtype=F64) / period
    lowpassed = torch.fft.irfft(coef / (1 + 2j * math.pi * freq * microvascular_time.reshape(-1, 1).to(F64)),
                                n=_GRID, dim=1)
    pos = torch.remainder(times, period) / period * _GRID                       # fractional grid index
    lo = pos.floor().long() % _GRID
    frac = pos - pos.floor()
    v = (1 - frac) * lowpassed.gather(1, lo) + frac * lowpassed.gather(1, (lo + 1) % _GRID)
    return pressure, (v - v.mean(1, keepdim=True)) / v.std(1, keepdim=True).clamp_min(1e-12)


class WindkesselWaveform(AbstractDesignTask):
    """Resistance, compliance, heart rate and microvascular time from pressure, PPG or both (see module).

    Args:
        modality: ``"pressure"`` (64 values), ``"ppg"`` (64) or ``"both"`` (128: pressure, then PPG).
        pressure_noise: standard deviation of the pressure noise (mmHg).
        ppg_noise: standard deviation of the noise on the standardised PPG.
        dtype: dtype of the returned tensors.
    """

    name = "windkessel_waveform"
    parameter_names = ("resistance", "compliance", "heart_rate", "microvascular_time")
    bounds = ((0.7, 1.5), (0.8, 2.0), (55.0, 95.0), (0.05, 0.4))

    def __init__(self, modality: str = "both", pressure_noise: float = 1.0, ppg_noise: float = 0.05,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(dtype)
        if modality not in MODALITIES:
            raise ValueError(f"WindkesselWaveform: modality must be one of {MODALITIES}, got {modality!r}")
        if not pressure_noise > 0 or not ppg_noise > 0:
            raise ValueError(f"WindkesselWaveform: noise levels must be positive, got {pressure_noise} and {ppg_noise}")
        self.modality, self.pressure_noise, self.ppg_noise = modality, float(pressure_noise), float(ppg_noise)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (128 if self.modality == "both" else 64,)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        pressure, ppg = windkessel_signals(*theta.unbind(1))
        assert ppg is not None
        parts = []
        if self.modality in ("pressure", "both"):
            parts.append(pressure + self.pressure_noise * normal(tuple(pressure.shape), generator))
        if self.modality in ("ppg", "both"):
            parts.append(ppg + self.ppg_noise * normal(tuple(ppg.shape), generator))
        return torch.cat(parts, 1)

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "pressure_noise": self.pressure_noise, "ppg_noise": self.ppg_noise,
                "dtype": str(self.dtype).replace("torch.", "")}


class WindkesselDrift(AbstractMisspecifiedTask):
    r"""Resistance and compliance from a short pressure recording whose real sensor drifts.

    Simulator: the windkessel pressure (module docstring) at an unknown heart rate, a nuisance
    drawn per recording from :math:`U(55, 95)` bpm (not inferred), read at 16 Hz over 2 s (32
    values) with :math:`\mathcal N(0, 4^2)` mmHg noise. Reality adds what an uncalibrated,
    warming sensor does and the model lacks: an offset :math:`\delta_0 \sim U(-8, 8)` mmHg and
    a linear drift :math:`\delta_1 t`, :math:`\delta_1 \sim U(-4, 4)` mmHg/s, drawn anew for
    every recording; the offset is confounded with the resistance (the mean pressure).
    """

    name = "windkessel_drift"
    parameter_names = ("resistance", "compliance")
    bounds = ((0.7, 1.5), (0.8, 2.0))

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (32,)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        heart_rate = 55.0 + 40.0 * torch.rand(theta.shape[0], generator=generator, dtype=F64)
        pressure, _ = windkessel_signals(theta[:, 0], theta[:, 1], heart_rate)
        pressure = pressure[:, ::2]
        return pressure + 4.0 * normal(tuple(pressure.shape), generator)

    def _simulate_real(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        x = self._simulate(theta, generator)
        u = torch.rand((theta.shape[0], 2), generator=generator, dtype=F64) * 2 - 1
        t = torch.arange(x.shape[1], dtype=F64) / 16.0
        return x + 8.0 * u[:, :1] + 4.0 * u[:, 1:] * t
