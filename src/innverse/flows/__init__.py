"""One-line constructors for standard flow architectures."""

from .coupling import COUPLINGS, PERMUTATIONS, coupling_flow
from .image import multiscale_flow
from .residual import residual_flow

__all__ = ["COUPLINGS", "PERMUTATIONS", "coupling_flow", "multiscale_flow"]
__all__ += ["residual_flow"]
