"""Benchmark problems: densities, simulators, priors and reference posteriors."""

from .ballistics import Ballistics
from .densities import DENSITIES, Density2D, density
from .eight_modes import EIGHT_MODES_LABELS, EightModes
from .inverse_base import AbstractInverseTask
from .inverse_kinematics import InverseKinematics
from .rejection_abc import ABCReference, abc_reference, cache_dir

__all__ = ["DENSITIES", "Density2D", "density"]
__all__ += ["ABCReference", "AbstractInverseTask", "Ballistics", "EIGHT_MODES_LABELS", "EightModes",
            "InverseKinematics", "abc_reference", "cache_dir"]
