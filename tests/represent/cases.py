"""Factories of the invertible modules of the represent package for the property suite (``tests/registry.py``)."""

from __future__ import annotations

from innverse.blocks.revnet import IRevNetBlock
from innverse.core import AbstractInvertible
from innverse.nets import conv_constructor, mlp_constructor
from innverse.represent import iresnet_body, irevnet_body

MLP = mlp_constructor((16, 16), zero_init=False)  # a non-trivial residual: round trips test the inverse
CONV = conv_constructor((8, 8), zero_init=False)


def irevnet_vector(seed: int) -> AbstractInvertible:
    return IRevNetBlock(5, MLP)


def irevnet_image(seed: int) -> AbstractInvertible:
    return IRevNetBlock((3, 4, 4), CONV)


def irevnet_image_downsampling(seed: int) -> AbstractInvertible:
    return IRevNetBlock((4, 4, 2), CONV, stride=2)


def irevnet_classifier_body(seed: int) -> AbstractInvertible:
    return irevnet_body((1, 8, 8), stages=(1, 1, 1), hidden=4)


def iresnet_classifier_body(seed: int) -> AbstractInvertible:
    return iresnet_body((4,), stages=(2,), hidden=4, coeff=0.9)


def iresnet_pooled_body(seed: int) -> AbstractInvertible:
    """Images with the pooling tail: a (4, 4, 4) last stage, two Haar transforms down to 1x1."""
    return iresnet_body((1, 8, 8), stages=(1,), hidden=4, coeff=0.9, pool=True)
