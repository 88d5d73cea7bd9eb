"""Inverse-problem tasks: a known forward process y = s(x) that loses information, and their references.

The tasks (:class:`AbstractInverseTask`: ballistics, eight modes, inverse kinematics) and the
rejection-ABC reference posterior (:func:`abc_reference`) for those without a closed form.
"""

from .ballistics import Ballistics
from .base import AbstractInverseTask
from .eight_modes import EIGHT_MODES_LABELS, EightModes
from .inverse_kinematics import InverseKinematics
from .rejection_abc import ABCReference, abc_cache_dir, abc_reference

__all__ = [
    "EIGHT_MODES_LABELS",
    "ABCReference",
    "AbstractInverseTask",
    "Ballistics",
    "EightModes",
    "InverseKinematics",
    "abc_cache_dir",
    "abc_reference",
]
