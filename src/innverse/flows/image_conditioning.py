r"""Conditioning networks of multi-scale image flows: one feature map per level, computed once per batch.

A conditioning network :math:`h` maps a batch of conditions to a list of features, one per level
of the image flow, from the finest level to the coarsest, optionally followed by one global
feature vector for the fully connected couplings at the end:

.. math::
    h(c) = [f_0, \dots, f_{L-1}(, g)],\qquad f_\ell \in \mathbb R^{C_\ell \times H/2^{\ell+1}
    \times W/2^{\ell+1}}\ \text{or}\ \mathbb R^{C_\ell},\qquad g \in \mathbb R^{G}.

Level :math:`\ell` of an image ``(C, H, W)`` works at resolution ``(H / 2^(l+1), W / 2^(l+1))``; a
feature *map* for it must have that resolution, a feature *vector* is broadcast over its pixels.
Any ``nn.Module`` returning such a list (or a single tensor for a one-level flow) can be passed
to :func:`~innverse.flows.image_flow`; three are provided:

* :class:`ConditionCNN`: the default for image conditions (a strided CNN, one stage per level);
* :class:`ConditionMLP`: the default for vector conditions (class labels, parameters);
* :class:`ConditionPyramid`: no parameters, the condition "fed raw" to every level (an image is
  squeezed losslessly to each level's resolution, a vector is passed unchanged).

References:
    Ardizzone, Lüth, Kruse, Rother, Köthe. "Guided Image Generation with Conditional Invertible
    Neural Networks". 2019; Ardizzone, Kruse, Lüth, Bracher, Rother, Köthe. "Conditional
    Invertible Neural Networks for Diverse Image-to-Image Translation". GCPR 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.module import Shape, as_shape

__all__ = ["ConditionCNN", "ConditionMLP", "ConditionPyramid", "level_resolutions"]


def level_resolutions(image_shape: Sequence[int], levels: int) -> list[tuple[int, int]]:
    """Resolution ``(H / 2^(l+1), W / 2^(l+1))`` of each level ``l`` of an image flow over ``image_shape``.

    Raises:
        ValueError: a level cannot halve its input (the message names the level and the size).
    """
    shape = as_shape(image_shape, "image_shape")
    if len(shape) != 3:
        raise ValueError(f"image_flow: expected an image shape (C, H, W), got {shape}")
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"image_flow: levels must be an int >= 1, got {levels!r}")
    _, h, w = shape
    out = []
    for level in range(levels):
        if h % 2 or w % 2:
            raise ValueError(
                f"image_flow: level {level} cannot halve the spatial size {h}x{w} (an image {shape} with "
                f"levels={levels} needs H and W divisible by 2**{levels} = {2**levels})")
        h, w = h // 2, w // 2
        out.append((h, w))
    return out


def _resize(c: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(c.shape[-2:]) == size:
        return c
    return F.interpolate(c, size=size, mode="bilinear", align_corners=False)


class ConditionCNN(nn.Module):
    r"""Default conditioning network for image conditions: a strided CNN with one stage per level.

    The condition ``(C', H', W')`` is resized (bilinear) to the image's resolution ``(H, W)`` if
    it differs (super-resolution: the low-resolution image), passed through a 3x3 stem and then
    one stage per level, each halving the resolution (3x3 conv with stride 2, 3x3 conv, leaky
    ReLU), so stage :math:`\ell` emits the feature map of level :math:`\ell` with
    ``min(width 2^l, max_width)`` channels. With ``global_features > 0`` a linear map of the last
    stage's spatial mean adds the global feature vector. With ``skip`` every level's features
    also get the (resized) condition squeezed losslessly to the level's resolution, as in
    :class:`ConditionPyramid` (exact pixel values next to the learned context).

    Args:
        condition_shape: ``(C', H', W')``.
        image_shape: ``(C, H, W)`` of the generated image.
        levels: number of levels of the image flow.
        width: channels of the first stage (doubled per level up to ``max_width``).
        global_features: size of the global feature vector (0: none).
        max_width: channel cap of the stages.
        skip: concatenate the squeezed condition to each level's features.
    """

    def __init__(self, condition_shape: Sequence[int], image_shape: Sequence[int], levels: int, width: int = 32,
                 global_features: int = 0, max_width: int = 128, skip: bool = False) -> None:
        super().__init__()
        self.condition_shape: Shape = as_shape(condition_shape, "condition_shape")
        if len(self.condition_shape) != 3:
            raise ValueError(f"ConditionCNN: expected an image condition shape (C, H, W), got {self.condition_shape}")
        self.size = tuple(as_shape(image_shape, "image_shape")[1:])
        level_resolutions(image_shape, levels)
        self.stem = nn.Sequential(nn.Conv2d(self.condition_shape[0], width, 3, padding=1), nn.LeakyReLU(0.1))
        stages, w_in = [], width
        for level in range(levels):
            w_out = min(width * 2**level, max_width)
            stages.append(nn.Sequential(nn.Conv2d(w_in, w_out, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                                        nn.Conv2d(w_out, w_out, 3, padding=1), nn.LeakyReLU(0.1)))
            w_in = w_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(w_in, global_features) if global_features else None
        self.skip = skip

    def forward(self, c: Tensor) -> list[Tensor]:
        full = _resize(c, self.size)
        h = self.stem(full)
        features = []
        for level, stage in enumerate(self.stages):
            h = stage(h)
            features.append(torch.cat([h, F.pixel_unshuffle(full, 2 ** (level + 1))], 1) if self.skip else h)
        if self.head is not None:
            features.append(self.head(h.mean((2, 3))))
        return features


class ConditionMLP(nn.Module):
    r"""Default conditioning network for vector conditions: a shared MLP trunk, one linear head per level.

    .. math::
        t = \mathrm{MLP}(c),\qquad f_\ell = A_\ell t + a_\ell\ (\text{broadcast over level } \ell\text{'s pixels}),
        \qquad g = B t + b.

    Args:
        features: size of the condition vector.
        levels: number of levels of the image flow.
        width: hidden width of the trunk and size of each level's feature vector.
        global_features: size of the global feature vector (0: none).
    """

    def __init__(self, features: int, levels: int, width: int = 64, global_features: int = 0) -> None:
        super().__init__()
        self.condition_shape: Shape = (int(features),)
        self.trunk = nn.Sequential(nn.Linear(features, width), nn.LeakyReLU(0.1), nn.Linear(width, width),
                                   nn.LeakyReLU(0.1))
        self.heads = nn.ModuleList([nn.Linear(width, width) for _ in range(levels)])
        self.head = nn.Linear(width, global_features) if global_features else None

    def forward(self, c: Tensor) -> list[Tensor]:
        t = self.trunk(c)
        out = [head(t) for head in self.heads]
        if self.head is not None:
            out.append(self.head(t))
        return out


class ConditionPyramid(nn.Module):
    r"""The condition fed raw to every level (no parameters): the "without conditioning network" ablation.

    An image condition ``(C', H', W')`` is resized (bilinear) to the image's resolution if it
    differs and squeezed losslessly (space to depth) to each level's resolution,
    :math:`f_\ell = \mathrm{squeeze}_{2^{\ell+1}}(c)` with :math:`C' 4^{\ell+1}` channels; with
    ``global_vector`` the flattened condition is the global feature vector. A vector condition is
    passed unchanged to every level (broadcast over its pixels) and, with ``global_vector``, to
    the dense couplings.

    Args:
        condition_shape: ``(C', H', W')`` or ``(F,)``.
        image_shape: ``(C, H, W)`` of the generated image.
        levels: number of levels of the image flow.
        global_vector: also emit the global feature vector.
    """

    def __init__(self, condition_shape: Sequence[int], image_shape: Sequence[int], levels: int,
                 global_vector: bool = False) -> None:
        super().__init__()
        self.condition_shape: Shape = as_shape(condition_shape, "condition_shape")
        if len(self.condition_shape) not in (1, 3):
            raise ValueError(f"ConditionPyramid: expected a condition shape (F,) or (C, H, W), "
                             f"got {self.condition_shape}")
        self.size = tuple(as_shape(image_shape, "image_shape")[1:])
        level_resolutions(image_shape, levels)
        self.levels = levels
        self.global_vector = global_vector

    def forward(self, c: Tensor) -> list[Tensor]:
        if c.dim() == 2:
            return [c] * (self.levels + int(self.global_vector))
        full = _resize(c, self.size)
        out = [F.pixel_unshuffle(full, 2 ** (level + 1)) for level in range(self.levels)]
        if self.global_vector:
            out.append(torch.flatten(c, 1))
        return out

    def extra_repr(self) -> str:
        return f"condition_shape={self.condition_shape}, levels={self.levels}, global_vector={self.global_vector}"
