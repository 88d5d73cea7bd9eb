"""Image flows and the logit block for the generic property suite (``tests/registry.py`` lists them)."""

from __future__ import annotations

from innverse.blocks import Squeeze
from innverse.core import AbstractInvertible
from innverse.flows.image import image_flow
from innverse.flows.image_conditioning import ConditionCNN
from innverse.flows.super_resolution import ObservationResidual, super_resolution_flow
from innverse.imaging import Logit
from innverse.nets import conv_constructor, mlp_constructor

CONV = conv_constructor((8, 8))
MLP = mlp_constructor((16,))


def rgb_haar_dense(seed: int) -> AbstractInvertible:
    """Unconditional, 3 (odd) channels, Haar, two levels and a dense coupling."""
    return image_flow((3, 8, 8), levels=2, blocks_per_level=1, subnet=CONV, dense_blocks=1, dense_subnet=MLP,
                      seed=seed).transform


def squeeze_image_condition(seed: int) -> AbstractInvertible:
    """Squeeze downsampling; a ConditionCNN feeds a map per level and global features (three condition inputs)."""
    net = ConditionCNN((1, 4, 4), (1, 8, 8), levels=2, width=4, global_features=3)
    return image_flow((1, 8, 8), net, levels=2, blocks_per_level=1, subnet=CONV, dense_blocks=1, dense_subnet=MLP,
                      downsampling=Squeeze, seed=seed).transform


def reversible_vector_condition(seed: int) -> AbstractInvertible:
    """Reversible levels, a vector condition through the default ConditionMLP, no dense part (3 channels)."""
    return image_flow((3, 4, 4), levels=2, blocks_per_level=2, condition_shape=(2,), subnet=CONV, dense_blocks=0,
                      reversible=True, seed=seed).transform


def logit(seed: int) -> AbstractInvertible:
    """An image-shaped logit on (-10, 10), so that the suite's Gaussian inputs lie inside the interval."""
    return Logit((2, 3, 3), alpha=0.05, bounds=(-10.0, 10.0))


def _quiet(transform: AbstractInvertible) -> AbstractInvertible:
    """The suite's inputs are random, not observations: switch off the observation-model warning."""
    for m in transform.modules():
        if isinstance(m, ObservationResidual):
            m.warn_rms = None
    return transform


def super_resolution_x4(seed: int) -> AbstractInvertible:
    """Two Haar bands and the low-pass flow; five condition inputs (four feature maps and the raw 2x2 observation)."""
    net = ConditionCNN((1, 2, 2), (1, 8, 8), levels=3, width=4, skip=True)
    return _quiet(super_resolution_flow((1, 8, 8), 4, 0.1, blocks_per_level=1, condition_net=net, subnet=CONV,
                                        seed=seed).transform)


def super_resolution_rgb_x2(seed: int) -> AbstractInvertible:
    """Three channels (nine detail channels, split 3 + 4 | 5), the default conditioning network."""
    return _quiet(super_resolution_flow((3, 4, 4), 2, 0.05, blocks_per_level=2, width=4, subnet=CONV,
                                        seed=seed).transform)


def observation_residual(seed: int) -> AbstractInvertible:
    return ObservationResidual((2, 3, 3), gain=2.0, scale=0.3, warn_rms=None)
