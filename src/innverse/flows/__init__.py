"""One-line constructors for standard flow architectures."""

from .coupling import COUPLINGS, PERMUTATIONS, coupling_flow
from .image import image_flow, multiscale_flow
from .image_conditioning import ConditionCNN, ConditionMLP, ConditionPyramid, level_resolutions
from .residual import residual_flow
from .super_resolution import ObservationResidual, super_resolution_flow

__all__ = ["COUPLINGS", "PERMUTATIONS", "coupling_flow", "multiscale_flow"]
__all__ += ["residual_flow"]
__all__ += ["ConditionCNN", "ConditionMLP", "ConditionPyramid", "image_flow", "level_resolutions"]
__all__ += ["ObservationResidual", "super_resolution_flow"]
