"""innverse: invertible neural networks, amortized Bayesian inference and the diagnostics to trust them."""

from . import (
           amortized,
           blocks,
           classify,
           core,
           design,
           diagnostics,
           flows,
           imaging,
           interop,
           inverse,
           nets,
           represent,
           reversible,
           tasks,
           train,
)
from .core import Flow, Graph, GraphBuilder, Sequence
from .io import load, save

#: The version of innverse (PEP 440).
__version__ = "0.1.0"

__all__ = ["Flow", "Graph", "GraphBuilder", "Sequence", "blocks", "core", "flows", "nets", "__version__",
           "load", "save"]
__all__ += ["diagnostics"]
__all__ += ["amortized", "train"]
__all__ += ["inverse", "reversible", "tasks"]
__all__ += ["classify", "interop"]
__all__ += ["imaging", "represent", "design"]
