"""One-line constructors for coupling flows on vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..blocks import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    GINCoupling,
    LULinear,
    MaskedAffineAutoregressive,
    MaskedSplineAutoregressive,
    Orthogonal,
    RandomPermutation,
    SplineCoupling,
)
from ..core import AbstractBase, AbstractInvertible, Flow
from ..core import Sequence as InvSequence
from ..io.recipes import attach_recipe
from ..nets.subnets import mlp_constructor

__all__ = ["coupling_flow", "COUPLINGS", "PERMUTATIONS"]

#: Block kinds ``coupling_flow(coupling=...)`` accepts.
COUPLINGS = ("affine", "additive", "gin", "spline", "autoregressive", "autoregressive_spline")
#: Mixing layers between blocks ``coupling_flow(permutation=...)`` accepts.
PERMUTATIONS = ("random", "orthogonal", "lu", "none")


# exempt from the size rule: the one-line constructor exposes each architecture choice as a keyword,
# as the constructors of zuko, nflows and FrEIA do; the body is a short loop.
def coupling_flow(
    features: int,
    context_features: int = 0,
    blocks: int = 8,
    hidden: Sequence[int] = (256, 256),
    coupling: str = "affine",
    permutation: str = "random",
    actnorm: bool = False,
    clamp: float = 2.0,
    bins: int = 8,
    bound: float = 3.0,
    spline_affine: bool = False,
    activation: Callable[[], nn.Module] = nn.ReLU,
    base: AbstractBase | None = None,
    context_net: nn.Module | None = None,
    context_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Flow:
    """A coupling flow on vectors: ``blocks`` x ``[ActNorm?] -> coupling -> permutation``.

    Each coupling transforms half of the features conditioned on the other half (and on the
    context); the permutation between couplings mixes which features are transformed next.

    Args:
        features: dimension D of the data (D >= 2).
        context_features: dimension of the condition the couplings see (0 = unconditional);
            with a ``context_net`` this is the net's output size.
        blocks: number of coupling blocks.
        hidden: hidden widths of each coupling's MLP.
        coupling: ``"affine"`` (GLOW form, clamped), ``"additive"`` (NICE), ``"gin"``
            (volume-preserving) or ``"spline"`` (rational-quadratic, ``bins``, ``bound``); or,
            instead of couplings, masked autoregressive blocks that transform every feature
            conditioned on the ones before it: ``"autoregressive"`` (affine, MAF) or
            ``"autoregressive_spline"`` (:class:`~innverse.blocks.MaskedAutoregressive`; the
            inverse, i.e. sampling, takes D network passes per block).
        permutation: ``"random"`` (the swap for D = 2), ``"orthogonal"`` (fixed random
            rotation), ``"lu"`` (learnable LU linear map) or ``"none"``.
        actnorm: put an ActNorm (data-initialised) before each coupling.
        clamp: soft bound of affine log-scales.
        spline_affine: spline couplings put a conditional affine map in front of each spline
            (see :class:`~innverse.blocks.SplineCoupling`); it also uses ``clamp``.
        activation: hidden activation of the subnets.
        base: base distribution (default standard normal).
        context_net: optional network applied once per batch to the raw context.
        context_shape: raw context shape (required with ``context_net``).
        seed: seed of the random permutations / rotations (block ``i`` uses ``seed + i``).
    """
    arguments = dict(locals())
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling_flow: coupling must be one of {COUPLINGS}, got {coupling!r}")
    if permutation not in PERMUTATIONS:
        raise ValueError(f"coupling_flow: permutation must be one of {PERMUTATIONS}, got {permutation!r}")
    if features < 2:
        raise ValueError(f"coupling_flow: needs features >= 2, got {features}")
    if blocks < 1:
        raise ValueError(f"coupling_flow: needs blocks >= 1, got {blocks}")
    ctx = (context_features,) if context_features else None
    subnet = mlp_constructor(hidden, activation)
    coupling_block: dict[str, Callable[[], AbstractInvertible]] = {
        "affine": lambda: AffineCoupling(features, subnet, ctx, clamp=clamp),
        "additive": lambda: AdditiveCoupling(features, subnet, ctx),
        "gin": lambda: GINCoupling(features, subnet, ctx, clamp=clamp),
        "spline": lambda: SplineCoupling(features, subnet, ctx, bins=bins, bound=bound, affine=spline_affine,
                                         clamp=clamp),
        "autoregressive": lambda: MaskedAffineAutoregressive(features, hidden, context_features, activation,
                                                             clamp=clamp),
        "autoregressive_spline": lambda: MaskedSplineAutoregressive(features, hidden, context_features, activation,
                                                                    bins=bins, bound=bound),
    }
    # With two features a random permutation is the identity half of the time, which would leave
    # the same coordinate untransformed twice in a row: swap instead.
    mixing: dict[str, Callable[[int], AbstractInvertible | None]] = {
        "random": lambda i: RandomPermutation(features, seed=seed + i, permutation=[1, 0] if features == 2 else None),
        "orthogonal": lambda i: Orthogonal(features, seed=seed + i),
        "lu": lambda i: LULinear(features, seed=seed + i),
        "none": lambda i: None,
    }
    layers: list[AbstractInvertible] = []
    for i in range(blocks):
        block = [ActNorm(features)] if actnorm else []
        block += [coupling_block[coupling](), mixing[permutation](i)]
        layers += [b for b in block if b is not None]
    return attach_recipe(Flow(InvSequence(layers), base=base, context_net=context_net, context_shape=context_shape), "coupling_flow", arguments)
