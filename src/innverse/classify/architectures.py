"""Default INNs of the classifiers: all-in-one coupling stacks for vectors, multi-scale conv INNs for images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..blocks import AllInOne, Standardization
from ..core import AbstractInvertible
from ..core import Sequence as InvSequence
from ..flows import multiscale_flow
from ..nets.subnets import mlp_constructor

__all__ = ["InnBuilder", "default_inn", "image_inn", "standardized", "vector_inn"]

#: ``builder(event_shape) -> invertible module`` (data -> latent).
InnBuilder = Callable[[tuple[int, ...]], AbstractInvertible]


def vector_inn(features: int, blocks: int = 8, hidden: Sequence[int] = (256, 256), clamp: float = 2.0,
               seed: int = 0) -> AbstractInvertible:
    r"""``blocks`` x :class:`~innverse.blocks.AllInOne` (affine coupling with an MLP subnet, global affine map,
    fixed random rotation) on vectors ``(D,)``: the IB-INN's fully connected architecture."""
    if features < 2 or blocks < 1:
        raise ValueError(f"vector_inn: needs features >= 2 and blocks >= 1, got {features} and {blocks}")
    subnet = mlp_constructor(tuple(hidden))
    return InvSequence(*[AllInOne(features, subnet, clamp=clamp, seed=seed + i) for i in range(blocks)])


def image_inn(shape: Sequence[int], scales: int | None = None, blocks_per_scale: int = 4, hidden_channels: int = 32,
              dense_blocks: int = 2, dense_hidden: Sequence[int] = (128, 128), clamp: float = 1.5,
              seed: int = 0) -> AbstractInvertible:
    r"""A multi-scale convolutional INN on images ``(C, H, W)``, :func:`innverse.flows.multiscale_flow`'s transform.

    Haar downsampling and conv affine couplings per scale (half the channels split off as
    latents after each), then dense couplings; the output is the flat latent ``(C H W,)``.
    ``scales`` defaults to the largest number (at most 3) that ``H`` and ``W`` allow.
    """
    c, h, w = (int(s) for s in shape)
    if scales is None:
        scales = next((s for s in (3, 2, 1) if h % 2**s == 0 and w % 2**s == 0 and min(h, w) >= 2 * 2**s), 0)
        if scales == 0:
            raise ValueError(f"image_inn: height and width must be even, got {(c, h, w)}")
    return multiscale_flow((c, h, w), scales=scales, blocks_per_scale=blocks_per_scale, hidden_channels=hidden_channels,
                           dense_blocks=dense_blocks, dense_hidden=tuple(dense_hidden), clamp=clamp,
                           seed=seed).transform


def default_inn(event_shape: tuple[int, ...], seed: int = 0) -> AbstractInvertible:
    """:func:`vector_inn` for vectors ``(D,)``, :func:`image_inn` for images ``(C, H, W)``."""
    if len(event_shape) == 1:
        return vector_inn(event_shape[0], seed=seed)
    if len(event_shape) == 3:
        return image_inn(event_shape, seed=seed)
    raise ValueError(f"default_inn: expected vectors (D,) or images (C, H, W), got inputs of shape {event_shape}; "
                     "pass your own inn builder")


def standardized(inn: AbstractInvertible, data: object) -> AbstractInvertible:
    """``[Standardization] ∘ inn`` with the standardisation fitted on ``data`` (per feature for vectors,
    one shift and scale for images), so the model works in the user's raw units."""
    shape = inn.event_shape
    norm = Standardization(shape, None if len(shape) == 1 else (1,), name="Standardization(X)")
    norm.fit(data)  # type: ignore[arg-type]
    return InvSequence(norm, inn)
