"""Inverse problems with INNs: the split-latent INN, its baselines, losses and training."""

from .baselines import ConditionalINN, PointRegressor, hidden_width_for
from .losses import SplitLatentLoss
from .mmd import MMDLoss, imq_kernel, mmd_imq
from .split_latent import SPLIT_LATENT_BLOCKS, SplitLatentINN
from .trainers import train_conditional_inn, train_regressor, train_split_latent

__all__ = [
    "ConditionalINN",
    "MMDLoss",
    "PointRegressor",
    "SPLIT_LATENT_BLOCKS",
    "SplitLatentINN",
    "SplitLatentLoss",
    "hidden_width_for",
    "imq_kernel",
    "mmd_imq",
    "train_conditional_inn",
    "train_regressor",
    "train_split_latent",
]
