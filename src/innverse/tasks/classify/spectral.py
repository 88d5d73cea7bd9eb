r"""A generated multispectral-imaging task: tissue parameters -> reflectance -> camera bands, with OOD tissue and light.

Forward model (per pixel), on a wavelength grid :math:`\lambda` = 440..660 nm:

.. math::
    \mu_a(\lambda) &= v\,\ln 10\; c_\text{Hb}\,\big(s\,\varepsilon_{\text{HbO}_2}(\lambda) + (1-s)\,\varepsilon_\text{Hb}(\lambda)\big)
        \;[+\ \mu_{a,\text{extra}}(\lambda)],\\
    \mu_s'(\lambda) &= a\,(\lambda / 500\,\text{nm})^{-b},\qquad
    R(\lambda) = \exp\!\big(-7\,\mu_a\,\delta\big),\quad \delta = 1/\sqrt{3\mu_a(\mu_a + \mu_s')},\\
    c_j &= k\,\frac{\sum_\lambda S_j(\lambda) L_T(\lambda) R(\lambda)}{\sum_\lambda S_j(\lambda) L_{T_0}(\lambda)},\qquad
    x_j = \log\big(c_j (1 + \sigma \eta_j)\big),\ \eta_j \sim \mathcal N(0, 1),

with blood volume fraction :math:`v`, oxygen saturation :math:`s`, haemoglobin concentration
:math:`c_\text{Hb}` = 150 g/l (2.33 mM), reduced scattering amplitude :math:`a` and power
:math:`b`, the diffusion-theory rule of thumb for the diffuse reflectance (Jacques 2013),
16 Gaussian camera bands :math:`S_j` (centres 470..630 nm, FWHM 20 nm, like a 4x4 snapshot
mosaic sensor), a black-body light source :math:`L_T` of colour temperature :math:`T` white-
balanced once at :math:`T_0` = 3200 K, a brightness factor :math:`k` (distance, angle) and
multiplicative noise :math:`\sigma`. The haemoglobin spectra are smooth stylised curves with
the real features (Soret tails, HbO2 bands at 542/576 nm, Hb band at 555 nm, the red contrast),
not tabulated data.

In distribution: :math:`v \in [0.01, 0.08]`, :math:`s \in [0.3, 1]`, :math:`a \in [10, 30]`
cm^-1, :math:`b \in [0.8, 2]`, :math:`T \in [2900, 3500]` K, :math:`k \in [0.5, 1]`.
Out of distribution (:meth:`SpectralTissueTask.sample_ood`), never produced by the simulator:
``"fat"`` (an unseen tissue: 0.1-0.6 % blood, 40-60 cm^-1 scattering), ``"bile"`` (tissue
stained by bilirubin, an absorber around 460 nm the simulator does not know) and ``"led"``
(an unseen illumination: a white LED, blue emitter plus phosphor).

References:
    Adler, Ayala, Ardizzone, et al. "Out of Distribution Detection for Intra-operative Functional
    Imaging". UNSURE (MICCAI) 2019; Jacques. "Optical properties of biological tissues: a
    review". Phys. Med. Biol. 58 (2013) R37.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..base import AbstractTask

__all__ = ["OOD_KINDS", "SpectralTissueTask"]

#: Out-of-distribution tissue kinds the task can simulate.
OOD_KINDS = ("fat", "bile", "led")
_LOW = (0.01, 0.3, 10.0, 0.8, 2900.0, 0.5)
_HIGH = (0.08, 1.0, 30.0, 2.0, 3500.0, 1.0)
_C_HB = 150.0 / 64500.0  # mol/l


def _gauss(lam: Tensor, centre: float | Tensor, width: float) -> Tensor:
    return torch.exp(-0.5 * ((lam - centre) / width) ** 2)


def _extinction(lam: Tensor) -> tuple[Tensor, Tensor]:
    """Stylised molar extinction of HbO2 and Hb (cm^-1 / M) on the grid ``lam`` (nm)."""
    hbo2 = (524e3 * _gauss(lam, 415, 18) + 53e3 * _gauss(lam, 542, 10) + 55e3 * _gauss(lam, 576, 8)
            + 18e3 * _gauss(lam, 500, 30) + 400 * torch.exp(-(lam - 650) / 60))
    hb = 528e3 * _gauss(lam, 430, 12) + 54e3 * _gauss(lam, 555, 20) + 3.5e3 * torch.exp(-(lam - 650) / 60)
    return hbo2, hb


def _planck(lam: Tensor, temperature: Tensor) -> Tensor:
    """Black-body spectral radiance (arbitrary units) at ``lam`` nm for temperatures ``(n, 1)`` K."""
    c2 = 1.4388e7  # nm K
    return lam ** -5 / torch.expm1(c2 / (lam * temperature))


class SpectralTissueTask(AbstractTask):
    """Tissue parameters -> 16-band log camera signals, with OOD tissue types and illumination (module docstring).

    Parameters (``parameter_names``): blood volume fraction, oxygen saturation, scattering
    amplitude (cm^-1), scattering power, light colour temperature (K), brightness. Observations:
    ``(16,)`` log band signals. Everything is float64.

    Args:
        noise: relative camera noise :math:`\\sigma`.
    """

    name = "spectral_tissue"
    parameter_names = ("blood_volume", "oxygenation", "scattering_amplitude", "scattering_power",
                       "light_temperature", "brightness")

    def __init__(self, noise: float = 0.01) -> None:
        if not 0 <= noise < 1:
            raise ValueError(f"SpectralTissueTask: noise must be in [0, 1), got {noise!r}")
        self.noise = float(noise)
        self.wavelengths = torch.arange(440.0, 661.0, 2.0, dtype=torch.float64)
        self.band_centres = torch.linspace(470.0, 630.0, 16, dtype=torch.float64)
        sigma = 20.0 / (2 * math.sqrt(2 * math.log(2)))
        self.bands = _gauss(self.wavelengths[None], self.band_centres[:, None], sigma)  # (16, L)
        self.extinction = _extinction(self.wavelengths)
        self.white = self.bands @ _planck(self.wavelengths, torch.tensor([[3200.0]], dtype=torch.float64))[0]

    @property
    def parameter_dim(self) -> int:
        return 6

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (16,)

    def config(self) -> dict[str, Any]:
        return {"noise": self.noise}

    def _uniform(self, n: int, low: tuple[float, ...], high: tuple[float, ...], generator: torch.Generator | None) -> Tensor:
        lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
        return lo + (hi - lo) * torch.rand(n, len(low), generator=generator, dtype=torch.float64)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_count(n, "sample_prior")
        return self._uniform(n, _LOW, _HIGH, generator)

    def reflectance(self, parameters: Tensor, extra_absorption: Tensor | None = None) -> Tensor:
        """Diffuse reflectance ``(n, L)`` on ``wavelengths`` for parameters ``(n, 6)`` (+ extra ``mu_a`` ``(n, L)``)."""
        v, s, a, b = (parameters[:, i:i + 1] for i in range(4))
        hbo2, hb = self.extinction
        mu_a = v * math.log(10) * _C_HB * (s * hbo2 + (1 - s) * hb)
        if extra_absorption is not None:
            mu_a = mu_a + extra_absorption
        mu_s = a * (self.wavelengths / 500.0) ** (-b)
        return torch.exp(-7 * mu_a / torch.sqrt(3 * mu_a * (mu_a + mu_s)))

    def _camera(self, reflectance: Tensor, light: Tensor, brightness: Tensor,
                generator: torch.Generator | None) -> Tensor:
        signal = brightness * ((reflectance * light) @ self.bands.T) / self.white
        eta = torch.randn(signal.shape, generator=generator, dtype=signal.dtype)
        return torch.log(signal * (1 + self.noise * eta).clamp(min=1e-3))

    def simulate(self, parameters: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = self._check_parameters(parameters, "parameters", f"{self.name}.simulate", torch.float64)
        light = _planck(self.wavelengths, p[:, 4:5])
        return self._camera(self.reflectance(p), light, p[:, 5:6], generator)

    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        theta = self.sample_prior(n, generator)
        return theta, self.simulate(theta, generator)

    def sample_ood(self, kind: str, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` observations ``(n, 16)`` of an out-of-distribution kind: ``"fat"``, ``"bile"`` or ``"led"``."""
        if kind not in OOD_KINDS:
            raise ValueError(f"{self.name}.sample_ood: kind must be one of {OOD_KINDS}, got {kind!r}")
        n = self._check_count(n, "sample_ood")
        p = self.sample_prior(n, generator)
        extra = None
        light = _planck(self.wavelengths, p[:, 4:5])
        if kind == "fat":
            p[:, 0:1] = 0.001 + 0.005 * torch.rand(n, 1, generator=generator, dtype=torch.float64)
            p[:, 2:3] = 40.0 + 20.0 * torch.rand(n, 1, generator=generator, dtype=torch.float64)
        elif kind == "bile":
            amount = 2.0 + 8.0 * torch.rand(n, 1, generator=generator, dtype=torch.float64)  # cm^-1 at the peak
            extra = amount * _gauss(self.wavelengths, 460.0, 30.0)
        else:
            led = 1.0 * _gauss(self.wavelengths, 450.0, 10.0) + 0.8 * _gauss(self.wavelengths, 570.0, 50.0)
            scale = (self.bands @ _planck(self.wavelengths, p[:, 4:5]).T).mean(0) / (self.bands @ led).mean()
            light = led * scale[:, None]
        return self._camera(self.reflectance(p, extra), light, p[:, 5:6], generator)
