"""Generated tasks for comparing measurement setups and for misspecified simulators with real-data stand-ins.

* :class:`MultispectralCamera` (3, 8 or 27 nested bands; water unidentifiable through the 3 visible ones);
* :class:`WindkesselWaveform` (pressure, a PPG-like signal, or both);
* misspecified, with labelled "real" pairs: :class:`PendulumFriction`, :class:`SIRReportingDelay`,
  :class:`WindkesselDrift`.
"""

from .base import AbstractDesignTask, AbstractMisspecifiedTask
from .camera import BAND_SETS, MultispectralCamera, band_reflectances, chromophore_spectra, reflectance
from .misspecified import PendulumFriction, SIRReportingDelay
from .windkessel import MODALITIES, WindkesselDrift, WindkesselWaveform, windkessel_signals

__all__ = [
    "BAND_SETS",
    "MODALITIES",
    "AbstractDesignTask",
    "AbstractMisspecifiedTask",
    "MultispectralCamera",
    "PendulumFriction",
    "SIRReportingDelay",
    "WindkesselDrift",
    "WindkesselWaveform",
    "band_reflectances",
    "chromophore_spectra",
    "reflectance",
    "windkessel_signals",
]
