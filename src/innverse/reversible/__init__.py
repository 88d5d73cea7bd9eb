"""Memory-saving backprop: recompute activations from outputs with exact inverses."""

from .wrapper import Reversible

__all__ = ["Reversible"]
