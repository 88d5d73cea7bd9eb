"""The invertible-module protocol, compositions, base distributions and flows."""

from .adapter import TorchTransform
from .conditional import ConditionalDensity
from .distributions import AbstractBase, DiagonalGaussian, GaussianMixture, StandardNormal
from .flow import Flow
from .flow_distribution import FlowDistribution
from .graph import ConditionPort, Graph, GraphBuilder, Port
from .module import AbstractInvertible, Inverse
from .sequence import Sequence

__all__ = [
    "AbstractBase",
    "AbstractInvertible",
    "ConditionalDensity",
    "ConditionPort",
    "DiagonalGaussian",
    "Flow",
    "FlowDistribution",
    "GaussianMixture",
    "Graph",
    "GraphBuilder",
    "Inverse",
    "Port",
    "Sequence",
    "StandardNormal",
    "TorchTransform",
]
