r"""Multi-scale image flows, unconditional or conditional (GLOW / cINN), built with :class:`GraphBuilder`.

Level :math:`\ell = 0, \dots, L-1` of :func:`image_flow` downsamples its input (Haar wavelet or
squeeze: ``(C, H, W) -> (4C, H/2, W/2)``), applies ``blocks_per_level`` GLOW steps

.. math::
    x \mapsto \mathrm{coupling}\big(W\,(x \odot e^{s} + b);\ f_\ell\big)
    \qquad(\text{ActNorm, invertible 1x1 convolution, affine coupling with a conv subnet}),

and splits half of its channels off as latents; the rest goes on to the next level. After the
last level the remainder is flattened and passed through ``dense_blocks`` fully connected
couplings conditioned on the global features :math:`g`. The latent is the concatenation of all
flattened parts, :math:`z = [z_0, \dots, z_{L-1}]`, with a standard normal base, so

.. math::
    \log p(x \mid c) = \log \mathcal N(z(x; h(c)); 0, I) + \sum_k \log|\det J_k|.

The conditioning network :math:`h` (:mod:`~innverse.flows.image_conditioning`) runs once per
batch and feeds level :math:`\ell` its own feature map :math:`f_\ell` at that level's resolution;
every coupling of the level receives it (concatenated to the subnet's input). With
``reversible=True`` each level and the dense part are wrapped in
:class:`~innverse.reversible.Reversible`, so training keeps one block's activations per level
instead of all of them (memory does not grow with ``blocks_per_level``).

References:
    Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018;
    Ardizzone et al. "Guided Image Generation with Conditional Invertible Neural Networks". 2019;
    Ardizzone et al. "Conditional Invertible Neural Networks for Diverse Image-to-Image
    Translation". GCPR 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor, nn

from ..blocks import ActNorm, AffineCoupling, Flatten, HaarDownsample, InvertibleConv1x1, LULinear
from ..core import Flow, GraphBuilder, Port, Sequence
from ..core.graph import ConditionPort, Graph
from ..core.module import AbstractInvertible, Shape, as_shape
from ..io.recipes import attach_recipe
from ..nets.subnets import SubnetConstructor, conv_constructor, mlp_constructor
from ..reversible import Reversible
from .image_conditioning import ConditionCNN, ConditionMLP, level_resolutions

__all__ = ["LevelFeatures", "image_flow", "multiscale_flow"]

Downsampling = Callable[[Shape], AbstractInvertible]


class LevelFeatures(nn.Module):
    """Runs a conditioning network and checks that it returns one feature per level (and the global vector).

    Returns a single tensor when the flow's graph has one condition input, else the list, in the
    order of the graph's condition ports.

    Args:
        net: the conditioning network.
        shapes: expected per-sample shape of each output, levels first, then the global vector.
    """

    def __init__(self, net: nn.Module, shapes: SequenceABC[Shape], levels: int) -> None:
        super().__init__()
        self.net = net
        self.shapes = [tuple(s) for s in shapes]
        self.levels = levels

    def forward(self, c: Tensor) -> Tensor | list[Tensor]:
        out = self.net(c)
        outs = [out] if isinstance(out, Tensor) else list(out)
        if len(outs) != len(self.shapes):
            raise ValueError(f"image_flow: the condition network returned {len(outs)} tensor(s), expected "
                             f"{len(self.shapes)} (one per level, then the global features)")
        for i, (f, s) in enumerate(zip(outs, self.shapes)):
            if tuple(f.shape[1:]) != s:
                what = f"feature map for level {i}" if i < self.levels else "global features"
                raise ValueError(f"image_flow: the condition network's {what} has shape {tuple(f.shape)}, "
                                 f"expected (batch, {', '.join(map(str, s))})")
        return outs[0] if len(outs) == 1 else outs


def _param_dtype(net: nn.Module) -> torch.dtype:
    p = next(net.parameters(), None)
    return p.dtype if p is not None else torch.get_default_dtype()


@torch.no_grad()
def _feature_shapes(net: nn.Module, condition_shape: Shape, resolutions: list[tuple[int, int]]) -> list[Shape]:
    """Run ``net`` once on zeros and check its outputs against the levels' resolutions."""
    was_training = net.training
    net.eval()
    try:
        out = net(torch.zeros(2, *condition_shape, dtype=_param_dtype(net)))
    finally:
        net.train(was_training)
    outs = [out] if isinstance(out, Tensor) else list(out)
    n = len(resolutions)
    if len(outs) not in (n, n + 1):
        raise ValueError(f"image_flow: the condition network returned {len(outs)} tensor(s); expected one feature "
                         f"map per level ({n}), optionally followed by one global feature vector")
    for level, (f, res) in enumerate(zip(outs, resolutions)):
        if f.dim() == 4 and tuple(f.shape[2:]) != res:
            raise ValueError(f"image_flow: the condition network's feature map for level {level} has spatial size "
                             f"{f.shape[2]}x{f.shape[3]}, but level {level} works at {res[0]}x{res[1]}")
        if f.dim() not in (2, 4):
            raise ValueError(f"image_flow: the condition network's output for level {level} must be a feature map "
                             f"(batch, C, {res[0]}, {res[1]}) or a vector (batch, C), got shape {tuple(f.shape)}")
    if len(outs) == n + 1 and outs[n].dim() != 2:
        raise ValueError(f"image_flow: the global features (output {n} of the condition network) must be a vector "
                         f"(batch, G), got shape {tuple(outs[n].shape)}")
    return [tuple(f.shape[1:]) for f in outs]


def _default_net(condition_shape: Shape, shape: Shape, levels: int, dense_blocks: int) -> nn.Module:
    """ConditionCNN for image conditions, ConditionMLP for vectors (global features when dense blocks exist)."""
    if len(condition_shape) == 3:
        return ConditionCNN(condition_shape, shape, levels, global_features=64 if dense_blocks else 0)
    if len(condition_shape) == 1:
        return ConditionMLP(condition_shape[0], levels, global_features=64 if dense_blocks else 0)
    raise ValueError(f"image_flow: the default condition network takes a condition shape (F,) or (C, H, W), "
                     f"got {condition_shape}; pass your own condition_net")


def _add(b: GraphBuilder, blocks: list[AbstractInvertible], x: Port, cond: ConditionPort | None,
         reversible: bool) -> Port:
    """Add ``blocks`` in sequence (or as one memory-saving :class:`Reversible` node)."""
    if reversible:
        blocks = [Reversible(Sequence(blocks))]
    for block in blocks:
        x = b.add(block, x, cond if block.conditional else None)
    return x


def _glow_steps(shape: Shape, n: int, subnet: SubnetConstructor, cond: Shape | None, clamp: float,
                seed: int) -> list[AbstractInvertible]:
    """``n`` x [ActNorm, invertible 1x1 convolution (LU), affine coupling] on images or vectors."""
    out: list[AbstractInvertible] = []
    for k in range(n):
        out += [ActNorm(shape), InvertibleConv1x1(shape, seed=seed + k) if len(shape) == 3 else LULinear(shape, seed=seed + k),
                AffineCoupling(shape, subnet, cond, clamp=clamp)]
    return out


def _downsample(downsampling: Downsampling, shape: Shape, level: int) -> AbstractInvertible:
    down = downsampling(shape)
    c, h, w = shape
    if down.event_shape != shape or down.output_shape != (4 * c, h // 2, w // 2):
        raise ValueError(f"image_flow: downsampling at level {level} must map {shape} to {(4 * c, h // 2, w // 2)}, "
                         f"got {down.event_shape} -> {down.output_shape}")
    return down


def _conditioning(net: nn.Module | None, condition_shape: SequenceABC[int] | None, shape: Shape, levels: int,
                  dense_blocks: int) -> tuple[nn.Module | None, Shape | None, list[Shape]]:
    """The conditioning network (the default one where needed), the raw condition shape and the feature shapes."""
    if condition_shape is None and net is not None:
        condition_shape = getattr(net, "condition_shape", None)
        if condition_shape is None:
            raise ValueError("image_flow: condition_shape is required with a condition_net that does not declare one")
    if condition_shape is None:
        return None, None, []
    cshape = as_shape(condition_shape, "condition_shape")
    net = net if net is not None else _default_net(cshape, shape, levels, dense_blocks)
    features = _feature_shapes(net, cshape, level_resolutions(shape, levels))
    if len(features) > levels and not dense_blocks:
        raise ValueError("image_flow: the condition network returns global features, but dense_blocks=0 leaves "
                         "nothing to condition on them")
    return net, cshape, features


def image_flow(shape: SequenceABC[int], condition_net: nn.Module | None = None, levels: int = 3,
               blocks_per_level: int = 4, *, condition_shape: SequenceABC[int] | None = None,
               subnet: SubnetConstructor | None = None, dense_blocks: int = 2,
               dense_subnet: SubnetConstructor | None = None, downsampling: Downsampling = HaarDownsample,
               clamp: float = 2.0, reversible: bool = False, seed: int = 0) -> Flow:
    r"""A multi-scale image flow :math:`p(x)` or conditional image flow :math:`p(x \mid c)` (see the module docstring).

    Args:
        shape: image shape ``(C, H, W)``; ``H`` and ``W`` divisible by ``2 ** levels``.
        condition_net: conditioning network ``h(c) -> [f_0, ..., f_{L-1}(, g)]`` (see
            :mod:`~innverse.flows.image_conditioning`); ``None`` with a ``condition_shape``: the
            default (:class:`ConditionCNN` for image conditions, :class:`ConditionMLP` for vectors).
        levels: number of levels ``L`` (downsamplings).
        blocks_per_level: GLOW steps per level.
        condition_shape: shape of one raw condition, ``(C', H', W')`` or ``(F,)``; ``None`` and no
            ``condition_net``: an unconditional flow. Taken from ``condition_net.condition_shape``
            when the network has that attribute.
        subnet: subnet constructor of the conv couplings (default ``conv_constructor((64, 64))``).
        dense_blocks: fully connected couplings after the last level (0: none).
        dense_subnet: their subnet constructor (default ``mlp_constructor((256,))``).
        downsampling: ``f(shape) -> block`` mapping ``(C, H, W)`` to ``(4C, H/2, W/2)``:
            :class:`~innverse.blocks.HaarDownsample` (default) or :class:`~innverse.blocks.Squeeze`.
        clamp: soft bound of the couplings' log-scales.
        reversible: memory-saving backprop per level (:class:`~innverse.reversible.Reversible`).
        seed: seed of the 1x1 convolutions' initial rotations.

    Returns:
        A :class:`~innverse.core.Flow` following the conditional-density contract:
        ``log_prob(x, c)``, ``sample(n, c) -> (n, *shape)`` or ``(n, k, *shape)`` for ``k``
        conditions. Its transform is a :class:`~innverse.core.Graph` with one condition input per
        level (and one for the global features).

    Raises:
        ValueError: a level cannot halve its input (the message names the level and the size), or
            the conditioning network's features do not match the levels' resolutions.
    """
    arguments = dict(locals())      # the call, for innverse.save (a custom condition_net or subnet makes it unsavable)
    shape = as_shape(shape, "shape")
    resolutions = level_resolutions(shape, levels)
    for name, value, least in (("blocks_per_level", blocks_per_level, 1), ("dense_blocks", dense_blocks, 0)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"image_flow: {name} must be an int >= {least}, got {value!r}")
    condition_net, cshape, features = _conditioning(condition_net, condition_shape, shape, levels, dense_blocks)
    b = GraphBuilder(shape)
    ports = [b.condition(s) for s in features]
    subnet = subnet or conv_constructor((64, 64))
    x, latents, k = b.input, [], seed
    for level in range(levels):
        cond = ports[level] if ports else None
        blocks = [_downsample(downsampling, x.shape, level), *_glow_steps(
            (4 * x.shape[0], *resolutions[level]), blocks_per_level, subnet, cond and cond.shape, clamp, k)]
        x = _add(b, blocks, x, cond, reversible)
        k += blocks_per_level
        if level < levels - 1:
            z, x = b.split(x, [x.shape[0] // 2, x.shape[0] - x.shape[0] // 2])
            latents.append(z)
    if dense_blocks:
        x = b.add(Flatten(x.shape), x)
        glob = ports[levels] if len(ports) > levels else None
        steps = _glow_steps(x.shape, dense_blocks, dense_subnet or mlp_constructor((256,)), glob and glob.shape,
                            clamp, k)
        x = _add(b, steps, x, glob, reversible)
    graph: Graph = b.build([*latents, x])
    graph.block_name = "image_flow"
    context_net = None if condition_net is None else LevelFeatures(condition_net, features, levels)
    return attach_recipe(Flow(graph, context_net=context_net, context_shape=cshape), "image_flow", arguments)


def multiscale_flow(shape: SequenceABC[int], scales: int = 2, blocks_per_scale: int = 4, hidden_channels: int = 64,
                    dense_blocks: int = 2, dense_hidden: SequenceABC[int] = (128, 128), context_features: int = 0,
                    clamp: float = 1.5, seed: int = 0) -> Flow:
    """The original multi-scale flow: one raw condition vector shared by every coupling (no conditioning network).

    At scale ``s`` the image is Haar-downsampled (channels x4, resolution /2), passed through
    ``blocks_per_scale`` x ``[ActNorm, affine coupling (conv subnet), invertible 1x1 conv (LU)]``,
    and half of its channels leave the graph as latents. What remains is flattened and passed
    through ``dense_blocks`` vector couplings. A vector condition (``context_features``) enters
    every coupling at every scale (broadcast over pixels); the transform takes it as a single
    ``(B, context_features)`` tensor. Kept unchanged for its callers and saved models;
    :func:`image_flow` is the general constructor (per-level conditioning, squeeze, reversible).

    Args:
        shape: ``(C, H, W)``; H and W divisible by ``2 ** scales``.
    """
    c, h, w = (int(s) for s in shape)
    if h % 2**scales or w % 2**scales:
        raise ValueError(f"multiscale_flow: H, W = {h}, {w} must be divisible by 2**scales = {2**scales}")
    b = GraphBuilder((c, h, w))
    cond = b.condition((context_features,)) if context_features else None
    ctx = (context_features,) if context_features else None
    conv = conv_constructor((hidden_channels, hidden_channels))
    x: Port = b.input
    latents: list[Port] = []
    k = 0
    for s in range(scales):
        x = b.add(HaarDownsample(x.shape), x)
        for _ in range(blocks_per_scale):
            x = b.add(ActNorm(x.shape), x)
            x = b.add(AffineCoupling(x.shape, conv, ctx, clamp=clamp), x, cond)
            x = b.add(LULinear(x.shape, seed=seed + k), x)
            k += 1
        if s < scales - 1:
            z, x = b.split(x, [x.shape[0] // 2, x.shape[0] - x.shape[0] // 2])
            latents.append(b.add(Flatten(z.shape), z))
    x = b.add(Flatten(x.shape), x)
    dense = mlp_constructor(tuple(dense_hidden))
    for _ in range(dense_blocks):
        x = b.add(ActNorm(x.shape), x)
        x = b.add(AffineCoupling(x.shape, dense, ctx, clamp=clamp), x, cond)
        x = b.add(LULinear(x.shape, seed=seed + k), x)
        k += 1
    latents.append(x)
    return Flow(b.build(latents))
