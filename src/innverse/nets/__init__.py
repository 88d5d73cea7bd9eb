"""Ordinary (non-invertible) networks: subnet constructors, conditioning and summary networks."""

from .lipschitz import LipschitzConvNet, LipschitzMLP, LipSwish
from .spectral import SpectralConv2d, SpectralLinear
from .subnets import MLP, ConvNet, SubnetConstructor, conv_constructor, mlp_constructor

__all__ = ["MLP", "ConvNet", "SubnetConstructor", "conv_constructor", "mlp_constructor"]
__all__ += ["LipSwish", "LipschitzConvNet", "LipschitzMLP", "SpectralConv2d", "SpectralLinear"]
