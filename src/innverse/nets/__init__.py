"""Ordinary (non-invertible) networks: subnet constructors, conditioning and summary networks."""

from .subnets import MLP, ConvNet, SubnetConstructor, conv_constructor, mlp_constructor

__all__ = ["MLP", "ConvNet", "SubnetConstructor", "conv_constructor", "mlp_constructor"]
