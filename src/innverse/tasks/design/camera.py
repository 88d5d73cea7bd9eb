r"""Multispectral camera design: tissue parameters -> diffuse reflectance spectrum -> camera bands.

Tissue model (after the multispectral oximetry setting of Wirkert et al. 2016): absorption and
reduced scattering coefficients (1/cm) at wavelength :math:`\lambda` (nm) are

.. math::
    \mu_a(\lambda) = v\,[s\,\epsilon_{\mathrm{HbO_2}}(\lambda) + (1 - s)\,\epsilon_{\mathrm{Hb}}(\lambda)]
                     + w\,\epsilon_{\mathrm{H_2O}}(\lambda) + \mu_{a,0},\qquad
    \mu_s'(\lambda) = a\,(\lambda / 500)^{-1.3},

with oxygenation :math:`s`, blood volume fraction :math:`v`, water fraction :math:`w` and
scattering amplitude :math:`a`. The spectra :math:`\epsilon` are *stylised* stand-ins for the
tabulated ones (Prahl's haemoglobin, Hale & Querry's water; no data are downloaded): sums of
Gaussian bands placed where the real ones are (HbO2 Q bands at 542 and 577 nm, Hb at 556 and
760 nm, a deoxy-dominated red band, oxy-dominated NIR, water at 970 nm) on a decaying
Soret tail. Water absorbs only above about 880 nm in this model, so through visible bands the
water fraction is not identifiable at all, by construction.

The diffuse reflectance of a semi-infinite medium is the diffusion-theory expression of
Groenhuis et al. (1983), with reduced albedo :math:`\alpha = \mu_s' / (\mu_a + \mu_s')`,

.. math::
    R(\lambda) = \frac{\alpha}{1 + 2A(1 - \alpha) + (1 + 2A/3)\sqrt{3(1 - \alpha)}}, \qquad A = 2.2,

and a band :math:`b` with centre :math:`c_b` measures the Gaussian-filter average (FWHM
``fwhm`` nm) of :math:`R` on a 2-nm grid over 450-1000 nm, with multiplicative noise:
:math:`x_b = \bar R_b \exp(\sigma \varepsilon_b)`, :math:`\varepsilon_b \sim \mathcal N(0, 1)`.
The band sets are nested (:data:`BAND_SETS`: 3 visible bands, 8 adding NIR bands, 27 every
20 nm from 470 to 990 nm), so by the data-processing inequality the information about every
parameter cannot decrease from 3 to 8 to 27 bands.

References:
    Wirkert et al. "Robust near real-time estimation of physiological parameters from
    megapixel multispectral images with inverse Monte Carlo and random forest regression".
    IJCARS 2016; Adler, Ardizzone et al. "Uncertainty-aware performance assessment of optical
    imaging modalities with invertible neural networks". IJCARS 2019; Groenhuis, Ferwerda,
    Ten Bosch. "Scattering and absorption of turbid materials determined from reflection
    measurements". Applied Optics 1983.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .base import F64, AbstractDesignTask, normal

__all__ = ["BAND_SETS", "MultispectralCamera", "band_reflectances", "chromophore_spectra", "reflectance"]

WAVELENGTHS = torch.arange(450.0, 1000.1, 2.0, dtype=F64)
#: nested band centres (nm) of the three cameras compared in the benchmark
BAND_SETS: dict[int, tuple[float, ...]] = {
    3: (470.0, 550.0, 650.0),
    8: (470.0, 550.0, 650.0, 750.0, 810.0, 890.0, 930.0, 970.0),
    27: tuple(470.0 + 20.0 * i for i in range(27)),
}


def _band(lam: Tensor, centre: float | Tensor, width: float) -> Tensor:
    return torch.exp(-0.5 * ((lam - centre) / width) ** 2)


def chromophore_spectra(lam: Tensor = WAVELENGTHS) -> dict[str, Tensor]:
    """Stylised absorption spectra (1/cm at full concentration) of HbO2, Hb and water at ``lam`` (nm)."""
    soret = 250.0 * torch.exp(-(lam - 450.0) / 45.0)
    oxy = soret + 280.0 * _band(lam, 542.0, 12.0) + 300.0 * _band(lam, 577.0, 9.0) + 1.2 \
        + 5.0 * torch.sigmoid((lam - 800.0) / 40.0)
    deoxy = soret + 330.0 * _band(lam, 556.0, 20.0) + 8.0 * torch.exp(-(lam - 600.0) / 80.0) \
        + 6.0 * _band(lam, 760.0, 20.0) + 3.5
    water = 0.45 * _band(lam, 970.0, 25.0)
    return {"oxy": oxy, "deoxy": deoxy, "water": water}


def reflectance(theta: Tensor, lam: Tensor = WAVELENGTHS) -> Tensor:
    """Diffuse reflectance ``(n, L)`` of tissue ``theta (n, 4)`` = (oxygenation, blood volume, scattering, water)."""
    spectra = chromophore_spectra(lam)
    s, v, a, w = (theta[:, i:i + 1] for i in range(4))
    mu_a = v * (s * spectra["oxy"] + (1 - s) * spectra["deoxy"]) + w * spectra["water"] + 0.02
    mu_s = a * (lam / 500.0) ** -1.3
    albedo = mu_s / (mu_a + mu_s)
    big_a = 2.2
    return albedo / (1 + 2 * big_a * (1 - albedo) + (1 + 2 * big_a / 3) * torch.sqrt(3 * (1 - albedo)))


def band_reflectances(theta: Tensor, centres: Tensor, fwhm: float = 20.0, noise: float = 0.02,
                      generator: torch.Generator | None = None) -> Tensor:
    """Noisy band reflectances ``(n, P)`` of tissue ``theta (n, 4)`` through bands centred at ``centres (n, P)`` nm.

    One camera per row: the design-conditional form of :class:`MultispectralCamera` (same
    optical model, filters and noise), for optimising band positions.
    """
    theta64, c = theta.to(F64), centres.to(F64)
    filters = _band(WAVELENGTHS[None, :, None], c[:, None, :], fwhm / 2.3548)          # (n, L, P)
    filters = filters / filters.sum(1, keepdim=True)
    bands = torch.einsum("nl,nlp->np", reflectance(theta64), filters)
    return (bands * torch.exp(noise * normal(tuple(bands.shape), generator))).to(theta.dtype)


class MultispectralCamera(AbstractDesignTask):
    """Tissue parameters seen through a multispectral camera: ``bands`` noisy band reflectances (see module).

    Args:
        bands: 3, 8 or 27 (the nested sets of :data:`BAND_SETS`) or explicit band centres (nm,
            within 450-1000).
        fwhm: full width at half maximum of each band's Gaussian filter (nm).
        noise: standard deviation :math:`\\sigma` of the multiplicative log-normal noise.
        dtype: dtype of the returned tensors.
    """

    name = "multispectral_camera"
    parameter_names = ("oxygenation", "blood_volume", "scattering", "water")
    bounds = ((0.0, 1.0), (0.01, 0.1), (10.0, 30.0), (0.5, 0.9))

    def __init__(self, bands: int | Sequence[float] = 8, fwhm: float = 20.0, noise: float = 0.02,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(dtype)
        if isinstance(bands, int):
            if bands not in BAND_SETS:
                raise ValueError(f"MultispectralCamera: bands must be one of {sorted(BAND_SETS)} or a sequence of "
                                 f"band centres, got {bands}")
            centres = BAND_SETS[bands]
        else:
            centres = tuple(float(c) for c in bands)
        if not centres or min(centres) < 450 or max(centres) > 1000:
            raise ValueError(f"MultispectralCamera: band centres must lie in [450, 1000] nm, got {centres}")
        if not fwhm > 0 or not noise > 0:
            raise ValueError(f"MultispectralCamera: fwhm and noise must be positive, got {fwhm} and {noise}")
        self.centres, self.fwhm, self.noise = centres, float(fwhm), float(noise)
        sigma = self.fwhm / 2.3548
        filters = torch.stack([_band(WAVELENGTHS, c, sigma) for c in centres], 1)   # (L, bands)
        self._filters = filters / filters.sum(0)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (len(self.centres),)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        bands = reflectance(theta) @ self._filters
        return bands * torch.exp(self.noise * normal(tuple(bands.shape), generator))

    def config(self) -> dict[str, Any]:
        return {"bands": list(self.centres), "fwhm": self.fwhm, "noise": self.noise,
                "dtype": str(self.dtype).replace("torch.", "")}
