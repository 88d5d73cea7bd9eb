r"""Bits per dimension of discrete images under a flow, with the dequantisation stated, and the matching training loss.

For an image of :math:`D` pixels with :math:`K` levels,

.. math::
    \mathrm{bpd}(v) = -\frac{\mathbb E_{u \sim q}\big[\log p_s(s) + \log w(u, v)\big]}{D \ln 2}
    \ \ge\ -\frac{\log P(v)}{D \ln 2},

an upper bound on the discrete model's code length (see :mod:`innverse.imaging.dequantization`
for :math:`s` and :math:`w`), estimated with ``draws`` noise draws per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .dequantization import UniformDequantization, VariationalDequantization

__all__ = ["BitsPerDim", "BitsPerDimLoss", "bits_per_dim"]

Dequantizer = UniformDequantization | VariationalDequantization


@dataclass(frozen=True)
class BitsPerDim:
    """A bits-per-dimension estimate: the mean over images and what it was computed with.

    Attributes:
        value: mean over images of the per-image bound (bits per pixel and channel).
        stderr: standard error of that mean over images.
        per_image: the per-image estimates ``(N,)`` (each averaged over ``draws``).
        dequantization: ``"uniform"`` or ``"variational"``.
        levels: number of pixel values :math:`K`.
        dims: pixels times channels :math:`D`.
        draws: noise draws per image.
    """

    value: float
    stderr: float
    per_image: Tensor
    dequantization: str
    levels: int
    dims: int
    draws: int

    def __str__(self) -> str:
        return (f"{self.value:.4f} ± {self.stderr:.4f} bits/dim ({self.dequantization} dequantisation, "
                f"{self.levels} levels, {self.draws} draws)")


def _log_prob(model: nn.Module, s: Tensor, condition: Tensor | None) -> Tensor:
    return model.log_prob(s) if condition is None else model.log_prob(s, condition)


@torch.no_grad()
def bits_per_dim(model: nn.Module, images: Tensor, dequantization: Dequantizer, condition: Tensor | None = None, *,
                 draws: int = 4, generator: torch.Generator | None = None, batch_size: int = 256) -> BitsPerDim:
    r"""Bits per dimension of discrete ``images`` under ``model`` (see the module docstring).

    Args:
        model: anything with ``log_prob(s)`` (or ``log_prob(s, condition)``) over the dequantiser's
            model space, e.g. a :class:`~innverse.core.Flow` (put it in eval mode first).
        images: integer-valued pixels ``(N, C, H, W)`` in ``[0, levels - 1]`` (any dtype).
        dequantization: :class:`UniformDequantization` or :class:`VariationalDequantization`.
        condition: one condition per image ``(N, *condition_shape)``, or None.
        draws: noise draws per image.
        generator: source of the noise.
        batch_size: images per model call.
    """
    if draws < 1:
        raise ValueError(f"bits_per_dim: draws must be >= 1, got {draws}")
    if condition is not None and condition.shape[0] != images.shape[0]:
        raise ValueError(f"bits_per_dim: {images.shape[0]} images but {condition.shape[0]} conditions")
    totals = []
    for i in range(0, images.shape[0], batch_size):
        v = images[i:i + batch_size]
        c = None if condition is None else condition[i:i + batch_size]
        acc = 0.0
        for _ in range(draws):
            s, weight = dequantization(v, generator)
            acc = acc + _log_prob(model, s, c) + weight
        totals.append(acc / draws)
    per_image = -torch.cat(totals) / (dequantization.dims * math.log(2))
    n = per_image.shape[0]
    stderr = float(per_image.std() / math.sqrt(n)) if n > 1 else math.nan
    return BitsPerDim(float(per_image.mean()), stderr, per_image.cpu(), dequantization.name, dequantization.levels,
                      dequantization.dims, draws)


class BitsPerDimLoss(nn.Module):
    r"""Training loss: the batch mean of the dequantised bits-per-dimension bound, one noise draw per image.

    :math:`\mathcal L = -\frac{1}{B D \ln 2} \sum_i [\log p_s(s_i \mid c_i) + \log w_i]`. The module
    holds the model and the dequantiser, so ``train(loss, loss, data)`` trains both (the
    variational dequantiser's flow with the model). Batches are ``(images,)`` or
    ``(images, conditions)``; the noise comes from ``step.generator``.

    Args:
        model: the flow (``log_prob(s)`` or ``log_prob(s, c)``).
        dequantization: the dequantiser (its ``dims`` and ``levels`` define the units).
    """

    def __init__(self, model: nn.Module, dequantization: Dequantizer) -> None:
        super().__init__()
        self.model = model
        self.dequantization = dequantization

    def forward(self, batch: Sequence[Tensor], step: object) -> Tensor:
        s, weight = self.dequantization(batch[0], getattr(step, "generator", None))
        lp = _log_prob(self.model, s, batch[1] if len(batch) > 1 else None)
        return -(lp + weight).mean() / (self.dequantization.dims * math.log(2))
