"""Registry of invertible modules run through the generic property suite.

A new block joins the suite with one line in ``CASES``: a name, and a factory
``seed -> (module, context_shape_or_shapes)``. Factories must build the same structure for every
seed (the seed only varies random buffers such as permutations).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from innverse import blocks as B
from innverse.core import AbstractInvertible, GraphBuilder, Sequence
from innverse.flows import multiscale_flow, residual_flow
from innverse.nets import conv_constructor, mlp_constructor
from innverse.reversible import Reversible

Factory = Callable[[int], AbstractInvertible]

MLP = mlp_constructor((16, 16))
CONV = conv_constructor((8, 8))
IMG = (4, 4, 4)


def _graph_two_conditions(seed: int) -> AbstractInvertible:
    """Two scales, a latent split off after the first, a different condition at each scale."""
    b = GraphBuilder((2, 4, 4))
    c_img = b.condition((1, 2, 2))
    c_vec = b.condition((3,))
    h = b.add(B.HaarDownsample(b.input.shape), b.input)                    # (8, 2, 2)
    h = b.add(B.AffineCoupling(h.shape, CONV, c_img.shape), h, c_img)
    z, h = b.split(h, [3, 5])
    h = b.add(B.Flatten(h.shape), h)                                         # (20,)
    h = b.add(B.SplineCoupling(h.shape, MLP, c_vec.shape, bins=4), h, c_vec)
    z = b.add(B.Flatten(z.shape), z)
    m = b.merge([z, h])                                                      # (32,)
    m = b.add(B.RandomPermutation(m.shape, seed=seed), m)
    a, bb = b.split(m, [16, 16])
    return b.build([bb, a])


def _sequence(seed: int) -> AbstractInvertible:
    return Sequence(
        B.ActNorm(5),
        B.AffineCoupling(5, MLP, (3,)),
        B.RandomPermutation(5, seed=seed),
        B.SplineCoupling(5, MLP, (3,), bins=5),
        B.LULinear(5, seed=seed),
        B.ConditionalAffine(5, (3,), MLP),
    )


def _reversible(seed: int) -> AbstractInvertible:
    return Reversible(Sequence(B.ActNorm(5), B.AffineCoupling(5, MLP, (3,)), B.RandomPermutation(5, seed=seed),
                               B.SplineCoupling(5, MLP, (3,), bins=5), B.LULinear(5, seed=seed)))


def _standardization(event_shape, stat_shape=None):
    gen = torch.Generator().manual_seed(3)
    data = 3.0 * torch.randn(50, *event_shape, generator=gen) + 1.0
    return B.Standardization(event_shape, stat_shape).fit(data)


INF = float("inf")

CASES: dict[str, Factory] = {
    "affine_vec_odd_cond": lambda s: B.AffineCoupling(5, MLP, (3,)),
    "affine_vec_even": lambda s: B.AffineCoupling(4, MLP, split=1),
    "affine_img_veccond": lambda s: B.AffineCoupling(IMG, CONV, (3,)),
    "affine_img_imgcond": lambda s: B.AffineCoupling(IMG, CONV, (2, 4, 4)),
    "realnvp_vec_cond": lambda s: B.RealNVPCoupling(5, MLP, (3,)),
    "realnvp_img": lambda s: B.RealNVPCoupling(IMG, CONV),
    "additive_vec": lambda s: B.AdditiveCoupling(3, MLP),
    "additive_img_cond": lambda s: B.AdditiveCoupling(IMG, CONV, (3,)),
    "gin_vec_cond": lambda s: B.GINCoupling(5, MLP, (3,), split=2),
    "gin_img": lambda s: B.GINCoupling(IMG, CONV),
    "spline_vec_cond": lambda s: B.SplineCoupling(5, MLP, (3,), bins=6, bound=2.0),
    "spline_img": lambda s: B.SplineCoupling(IMG, CONV, bins=4),
    "spline_affine_vec_cond": lambda s: B.SplineCoupling(5, MLP, (3,), bins=6, bound=2.0, affine=True, clamp=1.5),
    "maf_vec_cond": lambda s: B.MaskedAffineAutoregressive(5, (16, 16), 3, clamp=1.5),
    "maf_vec_noskip": lambda s: B.MaskedAffineAutoregressive(4, (9,), linear_skip=False),
    "ar_generic_additive": lambda s: B.MaskedAutoregressive(3, B.AdditiveTransformer(), (8,)),
    "spline_ar_vec_cond": lambda s: B.MaskedSplineAutoregressive(4, (12, 12), 2, bins=5, bound=2.0),
    "coupling_generic": lambda s: B.Coupling(3, B.RationalQuadraticSpline(3), MLP, (2,)),
    "coupling_generic_affine": lambda s: B.Coupling(4, B.AffineTransformer(1.0), MLP),
    "coupling_generic_additive": lambda s: B.Coupling(4, B.AdditiveTransformer(), MLP),
    "conditional_affine_vec": lambda s: B.ConditionalAffine(3, (2,), MLP),
    "conditional_affine_img": lambda s: B.ConditionalAffine((2, 2, 2), (3,), MLP),
    "allinone_vec_cond": lambda s: B.AllInOne(5, MLP, (3,), seed=s),
    "allinone_img": lambda s: B.AllInOne(IMG, CONV, seed=s),
    "standardization_vec": lambda s: _standardization((4,)),
    "standardization_sets": lambda s: _standardization((3, 2), (2,)),
    "standardization_global": lambda s: _standardization((2, 3, 3), (1,)),
    "support_mixed_bounds": lambda s: B.SupportTransform(torch.tensor([-10.0, -10.0, -INF, -INF, -INF]),
                                                         torch.tensor([10.0, INF, 10.0, INF, 12.0])),
    "support_linear": lambda s: B.SupportTransform(torch.tensor([-10.0, -6.0, -INF]), torch.tensor([10.0, 5.0, INF]),
                                                   "linear"),
    "actnorm_vec": lambda s: B.ActNorm(4),
    "actnorm_img": lambda s: B.ActNorm(IMG),
    "permutation_vec": lambda s: B.RandomPermutation(5, seed=s),
    "permutation_img": lambda s: B.RandomPermutation(IMG, seed=s),
    "orthogonal_vec": lambda s: B.Orthogonal(5, seed=s),
    "orthogonal_img": lambda s: B.Orthogonal(IMG, seed=s),
    "lu_vec": lambda s: B.LULinear(5, seed=s),
    "lu_img": lambda s: B.InvertibleConv1x1(IMG, seed=s),
    "haar": lambda s: B.HaarDownsample((2, 4, 4)),
    "haar_interleaved": lambda s: B.HaarDownsample((2, 4, 4), order_by_wavelet=False),
    "squeeze": lambda s: B.Squeeze((2, 4, 4)),
    "flatten": lambda s: B.Flatten((2, 2, 3)),
    "unflatten": lambda s: B.Unflatten((2, 2, 3)),
    "sequence_cond": _sequence,
    "graph_two_conditions": _graph_two_conditions,
    "graph_multiscale": lambda s: multiscale_flow((1, 8, 8), scales=2, blocks_per_scale=1,
                                                  hidden_channels=8, dense_blocks=1,
                                                  dense_hidden=(16,), context_features=2,
                                                  seed=s).transform,
    "residual_vec": lambda s: B.ResidualBlock(3, hidden=(16, 16), coeff=0.9),
    "residual_vec_cond_power": lambda s: B.ResidualBlock(4, (3,), hidden=(16,), coeff=0.9, spectral="power"),
    "residual_img_veccond": lambda s: B.ResidualBlock((2, 4, 4), (3,), hidden=(8,), coeff=0.9),
    "residual_img_imgcond_power": lambda s: B.ResidualBlock((2, 4, 4), (1, 4, 4), hidden=(8,), coeff=0.9,
                                                            spectral="power"),
    "residual_anderson": lambda s: B.ResidualBlock(3, (2,), hidden=(16,), coeff=0.9,
                                                   solver=B.FixedPointSolver(method="anderson")),
    "residual_newton": lambda s: B.ResidualBlock(3, hidden=(16,), coeff=0.9, solver=B.FixedPointSolver(method="newton")),
    "residual_flow": lambda s: residual_flow(3, context_features=2, blocks=2, hidden=(16,), coeff=0.9).transform,
    "reversible_sequence_cond": _reversible,
    "continuous_flow_cond": lambda s: B.ContinuousFlow(3, 2, B.VelocityField(3, 2, hidden=(16, 16)), steps=48),
    "continuous_flow": lambda s: B.ContinuousFlow(2, steps=48),
    "image_flow_rgb_haar_dense": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).rgb_haar_dense(s),
    "image_flow_squeeze_imgcond": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).squeeze_image_condition(s),
    "image_flow_reversible_veccond": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).reversible_vector_condition(s),
    "logit_img": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).logit(s),
    "super_resolution_x4": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).super_resolution_x4(s),
    "super_resolution_rgb_x2": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).super_resolution_rgb_x2(s),
    "observation_residual": lambda s: __import__("tests.imaging.cases", fromlist=["_"]).observation_residual(s),
    "irevnet_block_vec": lambda s: __import__("tests.represent.cases", fromlist=["_"]).irevnet_vector(s),
    "irevnet_block_img": lambda s: __import__("tests.represent.cases", fromlist=["_"]).irevnet_image(s),
    "irevnet_block_img_stride2": lambda s: __import__("tests.represent.cases", fromlist=["_"]).irevnet_image_downsampling(s),
    "irevnet_classifier_body": lambda s: __import__("tests.represent.cases", fromlist=["_"]).irevnet_classifier_body(s),
    "iresnet_classifier_body": lambda s: __import__("tests.represent.cases", fromlist=["_"]).iresnet_classifier_body(s),
    "iresnet_pooled_body": lambda s: __import__("tests.represent.cases", fromlist=["_"]).iresnet_pooled_body(s),
}
