"""Invertible blocks: couplings, splines, linear maps, normalisation and reshapes."""

from .affine import AllInOne, ConditionalAffine
from .coupling import (
    AbstractCoupling,
    AdditiveCoupling,
    AffineCoupling,
    Coupling,
    GINCoupling,
    RealNVPCoupling,
    SplineCoupling,
    default_subnet,
)
from .linear import ActNorm, InvertibleConv1x1, LULinear, Orthogonal, RandomPermutation
from .reshape import Flatten, HaarDownsample, Squeeze, Unflatten
from .transformers import (
    AbstractTransformer,
    AdditiveTransformer,
    AffineTransformer,
    RationalQuadraticSpline,
)

__all__ = [
    "AbstractCoupling",
    "AbstractTransformer",
    "ActNorm",
    "AdditiveCoupling",
    "AdditiveTransformer",
    "AffineCoupling",
    "AffineTransformer",
    "AllInOne",
    "ConditionalAffine",
    "Coupling",
    "Flatten",
    "GINCoupling",
    "HaarDownsample",
    "InvertibleConv1x1",
    "LULinear",
    "Orthogonal",
    "RandomPermutation",
    "RationalQuadraticSpline",
    "RealNVPCoupling",
    "SplineCoupling",
    "Squeeze",
    "Unflatten",
    "default_subnet",
]
