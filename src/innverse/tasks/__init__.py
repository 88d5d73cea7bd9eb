"""Benchmark problems: densities, simulators, priors and reference posteriors."""

from .densities import DENSITIES, Density2D, density

__all__ = ["DENSITIES", "Density2D", "density"]
