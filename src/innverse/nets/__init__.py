"""Ordinary (non-invertible) networks: subnet constructors, conditioning and summary networks."""

from .lipschitz import LipschitzConvNet, LipschitzMLP, LipSwish
from .made import MADE, MaskedLinear
from .set_transformer import MultiheadAttentionBlock, SetTransformer
from .sets import DeepSet, masked_mean, padding_mask
from .spectral import SpectralConv2d, SpectralLinear
from .subnets import (
    MLP,
    ConvNet,
    LinearSkipMLP,
    Parallel,
    SubnetConstructor,
    conv_constructor,
    mlp_constructor,
    parallel_constructor,
)
from .summaries import (
    SUMMARY_NETWORKS,
    MLPSummary,
    register_summary,
    registered_summaries,
    summary_from_config,
    summary_type,
)
from .time_series import TimeSeriesNet

__all__ = ["MLP", "LinearSkipMLP", "ConvNet", "Parallel", "SubnetConstructor", "conv_constructor", "mlp_constructor",
           "parallel_constructor"]
__all__ += ["MADE", "MaskedLinear"]
__all__ += ["LipSwish", "LipschitzConvNet", "LipschitzMLP", "SpectralConv2d", "SpectralLinear"]
__all__ += [
    "SUMMARY_NETWORKS",
    "register_summary",
    "registered_summaries",
    "summary_type",
    "DeepSet",
    "MLPSummary",
    "MultiheadAttentionBlock",
    "SetTransformer",
    "TimeSeriesNet",
    "masked_mean",
    "padding_mask",
    "summary_from_config",
]
