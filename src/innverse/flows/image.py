"""A multi-scale convolutional INN (GLOW / cINN style) built with :class:`Graph`."""

from __future__ import annotations

from collections.abc import Sequence

from ..blocks import ActNorm, AffineCoupling, Flatten, HaarDownsample, LULinear
from ..core import Flow, GraphBuilder, Port
from ..nets.subnets import conv_constructor, mlp_constructor

__all__ = ["multiscale_flow"]


def multiscale_flow(
    shape: Sequence[int],
    scales: int = 2,
    blocks_per_scale: int = 4,
    hidden_channels: int = 64,
    dense_blocks: int = 2,
    dense_hidden: Sequence[int] = (128, 128),
    context_features: int = 0,
    clamp: float = 1.5,
    seed: int = 0,
) -> Flow:
    """Multi-scale image flow: Haar downsampling and conv couplings per scale, half the
    channels split off as latents after each scale, dense couplings on the rest.

    At scale ``s`` the image is Haar-downsampled (channels x4, resolution /2), passed through
    ``blocks_per_scale`` x ``[ActNorm, affine coupling (conv subnet), invertible 1x1 conv]``,
    and half of its channels leave the graph as latents. What remains is flattened and passed
    through ``dense_blocks`` vector couplings. A vector condition (``context_features``) enters
    every coupling at every scale (broadcast over pixels). The output is the concatenation of
    all flattened latents.

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
