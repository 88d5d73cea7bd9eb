"""Invertible blocks: couplings, elementwise and autoregressive maps, linear maps, normalisation, reshapes, residual blocks."""

from .affine import AllInOne
from .autoregressive import MaskedAffineAutoregressive, MaskedAutoregressive, MaskedSplineAutoregressive
from .continuous import ContinuousFlow, VelocityField
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    Coupling,
    GINCoupling,
    RealNVPCoupling,
    SplineCoupling,
    default_subnet,
)
from .elementwise import ConditionalAffine, ContextElementwise
from .fixed_point import FixedPointError, FixedPointResult, FixedPointSolver, FixedPointWarning
from .linear import ActNorm, InvertibleConv1x1, LULinear, Orthogonal, RandomPermutation
from .logdet import AbstractLogDetEstimator, AutoLogDet, ExactLogDet, PowerSeriesLogDet, RouletteLogDet
from .reshape import Flatten, HaarDownsample, Squeeze, Unflatten
from .residual import ResidualBlock, lipschitz_bounds, log_det_estimator
from .revnet import IRevNetBlock
from .standardization import Standardization
from .support import SupportTransform, half_width_for
from .transformers import (
    AbstractTransformer,
    AdditiveTransformer,
    AffineTransformer,
    RationalQuadraticSpline,
)

__all__ = [
    "IRevNetBlock",
    "AbstractLogDetEstimator",
    "AbstractTransformer",
    "ActNorm",
    "AdditiveCoupling",
    "AdditiveTransformer",
    "AffineCoupling",
    "AffineTransformer",
    "AllInOne",
    "AutoLogDet",
    "ConditionalAffine",
    "ContextElementwise",
    "ContinuousFlow",
    "Coupling",
    "ExactLogDet",
    "FixedPointError",
    "FixedPointResult",
    "FixedPointSolver",
    "FixedPointWarning",
    "Flatten",
    "GINCoupling",
    "HaarDownsample",
    "InvertibleConv1x1",
    "LULinear",
    "MaskedAffineAutoregressive",
    "MaskedAutoregressive",
    "MaskedSplineAutoregressive",
    "Orthogonal",
    "PowerSeriesLogDet",
    "RandomPermutation",
    "RationalQuadraticSpline",
    "RealNVPCoupling",
    "ResidualBlock",
    "RouletteLogDet",
    "SplineCoupling",
    "Squeeze",
    "Standardization",
    "SupportTransform",
    "Unflatten",
    "VelocityField",
    "default_subnet",
    "half_width_for",
    "lipschitz_bounds",
    "log_det_estimator",
]
