r"""The invertible bodies of the i-RevNet and i-ResNet classifiers, for images and vectors.

Images ``(C, H, W)`` are first squeezed to ``(4C, H/2, W/2)`` (so the i-RevNet has channels to
split), then pass ``len(stages)`` stages; every stage after the first halves the resolution
(``H`` and ``W`` must be divisible by ``2 ** len(stages)``). The output is flattened to the
representation :math:`z \in \mathbb R^{C H W}`: the whole map is a bijection.

With ``pool=True`` the last stage's output ``(C', h, w)`` (``h = w = 2^m``) goes through ``m``
orthonormal Haar transforms before it is flattened. Their coarsest band comes first: the first
``C'`` coordinates of :math:`z` are :math:`2^m` times each channel's spatial mean, so a linear head
on them is the global-average-pooling head of a ResNet (or of the i-RevNet paper), while the map
stays a bijection and the other coordinates (the spatial detail) are the nuisance.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

import torch
from torch import nn

from ..blocks import ActNorm, Flatten, HaarDownsample, ResidualBlock, Squeeze
from ..blocks.fixed_point import FixedPointSolver
from ..blocks.revnet import IRevNetBlock
from ..core import AbstractInvertible, Sequence
from ..core.module import as_shape
from ..nets.lipschitz import LipschitzConvNet, LipschitzMLP
from ..nets.subnets import SubnetConstructor, conv_constructor, mlp_constructor

__all__ = ["check_stages", "irevnet_body", "iresnet_body", "pooled_features", "residual_blocks"]


def check_stages(owner: str, shape: SequenceABC[int], stages: SequenceABC[int],
                 squeeze: bool = True) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate an input shape and the blocks per stage (``squeeze``: an initial squeeze too); raise a ``ValueError`` naming ``owner`` otherwise."""
    shape = as_shape(shape, "input_shape")
    stages = tuple(int(s) for s in stages)
    if not stages or any(s < 1 for s in stages):
        raise ValueError(f"{owner}: stages must list at least one stage of >= 1 blocks, got {stages}")
    if len(shape) == 1:
        if shape[0] < 2:
            raise ValueError(f"{owner}: needs vectors of at least 2 features, got input_shape {shape}")
        return shape, stages
    if len(shape) != 3:
        raise ValueError(f"{owner}: expected vectors (D,) or images (C, H, W), got input_shape {shape}")
    halvings = len(stages) - (0 if squeeze else 1)
    factor = 2 ** halvings
    if shape[1] % factor or shape[2] % factor:
        first = "one squeeze, then " if squeeze else ""
        raise ValueError(f"{owner}: the downsampling halves height and width {halvings} times ({first}once per stage "
                         f"after the first), so they must be divisible by {factor}; got input_shape "
                         f"{shape}. Use fewer stages or pad the images")
    return shape, stages


def _tail(owner: str, blocks: list[AbstractInvertible], pool: bool) -> list[AbstractInvertible]:
    """``Flatten`` (after Haar transforms down to 1x1 with ``pool``) of the last stage's output."""
    shape = blocks[-1].output_shape
    if pool:
        c, h, w = shape
        if h != w or h & (h - 1):
            raise ValueError(f"{owner}: pool=True needs a square last stage whose size is a power of two (Haar "
                             f"transforms down to 1x1), got a last stage of {c} x {h} x {w}")
        while blocks[-1].output_shape[1] > 1:
            blocks.append(HaarDownsample(blocks[-1].output_shape))
    blocks.append(Flatten(blocks[-1].output_shape))
    return blocks


def pooled_features(body: AbstractInvertible) -> int | None:
    """The number of pooled coordinates (channels of the last stage) of a body built with ``pool=True``, else None."""
    modules = list(body) if isinstance(body, Sequence) else []
    if len(modules) < 3 or not isinstance(modules[-2], HaarDownsample):
        return None
    k = len(modules) - 2
    while k > 0 and isinstance(modules[k - 1], HaarDownsample):
        k -= 1
    return modules[k].event_shape[0]


def _lipschitz_subnet(event: tuple[int, ...], stride: int, hidden: int, bound: float) -> SubnetConstructor:
    """Residual functions with Lipschitz constant at most ``bound`` (three spectrally normalised layers)."""
    coeff = bound ** (1 / 3)

    def make(c_in: int, c_out: int) -> nn.Module:
        if len(event) == 1:
            return LipschitzMLP(c_in, c_out, (4 * hidden, 4 * hidden), coeff, "power")
        size = (event[1] // stride, event[2] // stride)
        return LipschitzConvNet(c_in, c_out, size, (hidden, hidden), 3, coeff, "power")

    return make


def irevnet_body(input_shape: SequenceABC[int], stages: SequenceABC[int] = (2, 2, 2), hidden: int = 64,
                 actnorm: bool = True, lipschitz: float | None = None, pool: bool = False,
                 owner: str = "irevnet_body") -> AbstractInvertible:
    r"""The bijective i-RevNet: ``Squeeze``, then :class:`~innverse.blocks.IRevNetBlock` stages, then ``Flatten``.

    The first block of every stage after the first has stride 2 (invertible downsampling,
    channels x4, resolution / 2). Residual functions are conv nets with ``hidden`` channels
    (3x3, 1x1, 3x3) for images and MLPs with two hidden layers of ``4 * hidden`` units for
    vectors (which have no resolution to halve: ``sum(stages)`` blocks of the alternating
    additive coupling). ``actnorm`` puts a data-initialised :class:`~innverse.blocks.ActNorm`
    (per-channel scale and shift, exactly invertible) in front of every block, as the fully
    invertible RevNet of Jacobsen et al. (2019) does (a hybrid of the i-RevNet and Glow); without
    it every layer preserves volume.

    ``lipschitz`` bounds every residual function, :math:`\mathrm{Lip}(F) \le` ``lipschitz``
    (spectrally normalised layers, LipSwish), which bounds the Lipschitz constants of the block
    and of its inverse by :math:`1 + \mathrm{Lip}(F)`. An unconstrained i-RevNet inverts exactly
    on its training distribution but its inverse can explode on representations it has never
    produced, such as metamers; the bound keeps such inverses finite and smooth.

    ``pool``: Haar transforms after the last stage, so that the first coordinates are the
    channels' spatial means (see the module docstring; images only).
    """
    shape, stages = check_stages(owner, input_shape, stages)
    if pool and len(shape) == 1:
        raise ValueError(f"{owner}: pool=True needs images (C, H, W); vectors have no spatial mean to pool, got "
                         f"input_shape {shape}")
    if lipschitz is not None and not lipschitz > 0:
        raise ValueError(f"{owner}: lipschitz must be positive or None, got {lipschitz}")

    def subnet(event: tuple[int, ...], stride: int) -> SubnetConstructor:
        if lipschitz is not None:
            return _lipschitz_subnet(event, stride, hidden, lipschitz)
        if len(event) == 1:
            return mlp_constructor((4 * hidden, 4 * hidden))
        return conv_constructor((hidden, hidden), zero_init=False)

    def norm(event: tuple[int, ...]) -> list[AbstractInvertible]:
        return [ActNorm(event, data_init=False)] if actnorm else []

    if len(shape) == 1:
        return Sequence(*[m for _ in range(sum(stages)) for m in [*norm(shape), IRevNetBlock(shape, subnet(shape, 1))]])
    blocks: list[AbstractInvertible] = [Squeeze(shape)]
    for i, n in enumerate(stages):
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            event = blocks[-1].output_shape
            blocks += [*norm(event), IRevNetBlock(event, subnet(event, stride), stride=stride)]
    return Sequence(*_tail(owner, blocks, pool))


def iresnet_body(input_shape: SequenceABC[int], stages: SequenceABC[int] = (2, 2, 2), hidden: int = 64,
                 coeff: float = 0.9, actnorm: bool = True, solver: FixedPointSolver | None = None,
                 spectral: str = "power", pool: bool = False, squeeze: bool = True,
                 owner: str = "iresnet_body") -> AbstractInvertible:
    r"""The i-ResNet: ``[Squeeze]``, then stages of ``[ActNorm] -> ResidualBlock``, a ``Squeeze`` between stages, ``Flatten``.

    Every :class:`~innverse.blocks.ResidualBlock` computes :math:`x + g(x)` with a spectrally
    normalised :math:`g` (per-layer bound ``coeff``, so :math:`\mathrm{Lip}(g) < 1`) and is
    inverted by the fixed-point iteration of ``solver``. Conv nets of ``hidden`` channels for
    images, MLPs of ``(4 * hidden,) * 2`` for vectors (``sum(stages)`` blocks). ``actnorm`` puts a data-initialised
    :class:`~innverse.blocks.ActNorm` in front of each residual block (exactly invertible).
    ``spectral``: the normalisation of :class:`~innverse.blocks.ResidualBlock` (default
    ``"power"``: one power-iteration step per optimiser step, as in the i-ResNet, converged
    in eval mode; ``"exact"`` costs an SVD of every layer per step). ``pool``: Haar transforms
    after the last stage, so that the first coordinates are the channels' spatial means (see the
    module docstring; images only). ``squeeze=False`` leaves out the initial squeeze, so the first
    stage works at full resolution (the i-ResNet classifier of Behrmann et al., with injective
    padding giving it channels; see :func:`~innverse.represent.IResNetClassifier`).
    """
    shape, stages = check_stages(owner, input_shape, stages, squeeze)
    if pool and len(shape) == 1:
        raise ValueError(f"{owner}: pool=True needs images (C, H, W); vectors have no spatial mean to pool, got "
                         f"input_shape {shape}")
    solver = solver or FixedPointSolver()

    def residual(event: tuple[int, ...]) -> list[AbstractInvertible]:
        width = (4 * hidden,) * 2 if len(event) == 1 else (hidden, hidden)
        block = ResidualBlock(event, hidden=width, coeff=coeff, spectral=spectral, solver=solver)
        return [ActNorm(event), block] if actnorm else [block]

    if len(shape) == 1:
        return Sequence(*[m for _ in range(sum(stages)) for m in residual(shape)])
    blocks: list[AbstractInvertible] = [Squeeze(shape)] if squeeze else []

    def current() -> tuple[int, ...]:
        return blocks[-1].output_shape if blocks else shape

    for i, n in enumerate(stages):
        if i > 0:
            blocks.append(Squeeze(current()))
        for _ in range(n):
            blocks += residual(current())
    return Sequence(*_tail(owner, blocks, pool))


def residual_blocks(module: torch.nn.Module) -> list[ResidualBlock]:
    """The residual blocks inside ``module``, in order (empty for an exactly invertible body)."""
    return [m for m in module.modules() if isinstance(m, ResidualBlock)]
