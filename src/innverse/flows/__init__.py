"""One-line constructors for standard flow architectures."""

from .coupling import COUPLINGS, PERMUTATIONS, coupling_flow
from .image import multiscale_flow

__all__ = ["COUPLINGS", "PERMUTATIONS", "coupling_flow", "multiscale_flow"]
