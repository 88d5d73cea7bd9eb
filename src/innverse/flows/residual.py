"""One-line constructor for residual flows (i-ResNet / Residual Flow)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..blocks import ActNorm, ResidualBlock
from ..blocks.fixed_point import FixedPointSolver
from ..blocks.logdet import AbstractLogDetEstimator
from ..core import AbstractBase, AbstractInvertible, Flow
from ..core import Sequence as InvSequence
from ..io.recipes import attach_recipe

__all__ = ["residual_flow"]


# exempt from the size rule: the one-line constructor exposes each architecture choice as a keyword,
# as the constructors of zuko and nflows do; the body is a short loop.
def residual_flow(
    features: int | Sequence[int],
    context_features: int = 0,
    blocks: int = 8,
    hidden: Sequence[int] = (128, 128),
    coeff: float = 0.97,
    actnorm: bool = True,
    kernel_size: int = 3,
    spectral: str = "auto",
    n_power_iterations: int = 1,
    estimator: AbstractLogDetEstimator | None = None,
    solver: FixedPointSolver | None = None,
    base: AbstractBase | None = None,
    context_net: nn.Module | None = None,
    context_shape: tuple[int, ...] | None = None,
) -> Flow:
    """A residual flow: ``blocks`` x ``[ActNorm?] -> ResidualBlock``.

    Each block is :math:`y = x + g(x; c)` with a spectrally normalised LipSwish network
    (:class:`~innverse.blocks.ResidualBlock`); ActNorm (data-initialised) between blocks as in
    Residual Flows. Density evaluation uses each block's log-det estimator (exact in eval mode for
    events of at most 64 elements, unbiased Russian roulette otherwise and in training);
    sampling inverts each block by fixed-point iteration.

    Args:
        features: data dimension ``D`` (vectors, MLP residual branches) or an image shape
            ``(C, H, W)`` (conv residual branches).
        context_features: size of the vector condition seen by every block (0 = none); with a
            ``context_net`` this is the net's output size.
        blocks: number of residual blocks.
        hidden: hidden widths (channels for images) of each residual branch.
        coeff: per-layer spectral bound ``c < 1``.
        actnorm: put an ActNorm before each residual block.
        kernel_size, spectral, n_power_iterations, estimator, solver: passed to every
            :class:`~innverse.blocks.ResidualBlock` (``estimator``/``solver`` objects are shared).
        base, context_net, context_shape: as :class:`~innverse.core.Flow`.

    References:
        Chen, Behrmann, Duvenaud, Jacobsen. "Residual Flows for Invertible Generative Modeling".
        NeurIPS 2019.
    """
    arguments = dict(locals())
    shape = (features,) if isinstance(features, int) else tuple(int(f) for f in features)
    if len(shape) not in (1, 3):
        raise ValueError(f"residual_flow: features must be an int D or an image shape (C, H, W), got {features!r}")
    if shape[0] < 1:
        raise ValueError(f"residual_flow: needs features >= 1, got {features!r}")
    if blocks < 1:
        raise ValueError(f"residual_flow: needs blocks >= 1, got {blocks}")
    if context_features < 0:
        raise ValueError(f"residual_flow: context_features must be >= 0, got {context_features}")
    ctx = (context_features,) if context_features else None
    layers: list[AbstractInvertible] = []
    for _ in range(blocks):
        if actnorm:
            layers.append(ActNorm(shape))
        layers.append(ResidualBlock(shape, ctx, hidden=hidden, coeff=coeff, kernel_size=kernel_size,
                                    spectral=spectral, n_power_iterations=n_power_iterations,
                                    estimator=estimator, solver=solver))
    return attach_recipe(Flow(InvSequence(layers), base=base, context_net=context_net, context_shape=context_shape), "residual_flow", arguments)
