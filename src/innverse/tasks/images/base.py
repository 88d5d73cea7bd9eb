r"""Image tasks: offline image data with fixed splits, a degradation operator and batch sources for training.

An image task pairs what a model generates (``image_shape``) with what it is conditioned on
(``condition_shape``). :class:`AbstractImageTask` gives the data: ``pairs(split)`` with
``split`` in ``("train", "val", "test")`` (fixed, documented splits; models are chosen on
``"val"``, reported on ``"test"``) and ``batches(split, batch_size)`` for
:func:`innverse.train.train`. :class:`AbstractRestorationTask` adds a degradation operator

.. math::
    c = A(x) + \sigma\varepsilon,\qquad \varepsilon \sim \mathcal N(0, I)\ \text{on the observed entries},

(``degrade``), its residual :math:`A(\hat x) - c` on the observed entries (``residual``: a sample
"re-degrades to the condition within the noise level" when its RMS is about :math:`\sigma`) and
the pixels whose information :math:`A` removed (``removed``). Training batches draw a fresh
degradation (noise, masks) every epoch from the trainer's generator.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ...core.module import Shape
from ...imaging.checks import check_images

__all__ = ["SPLITS", "AbstractImageTask", "AbstractRestorationTask", "DegradedBatches"]

#: Names of the data splits of an image task.
SPLITS = ("train", "val", "test")


def check_split(owner: str, split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{owner}: split must be one of {SPLITS}, got {split!r}")


class AbstractImageTask(abc.ABC):
    """Offline image data for a (conditional) image model: fixed splits of ``(images, conditions)`` pairs.

    Class attributes: ``name``; instance attributes ``image_shape``, ``condition_shape`` and
    ``levels`` (number of discrete pixel values of the stored images, or ``None`` when they are
    continuous).
    """

    name: str
    image_shape: Shape
    condition_shape: Shape
    levels: int | None = None

    @abc.abstractmethod
    def pairs(self, split: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(images (N, *image_shape), conditions (N, *condition_shape))`` of a split."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The settings that distinguish instances of the task (JSON-ready)."""

    def batches(self, split: str, batch_size: int = 64, generator: torch.Generator | None = None):
        """A batch source of :meth:`pairs` for :func:`innverse.train.train` (shuffled for ``"train"``)."""
        from ...train import TensorBatches

        return TensorBatches(*self.pairs(split, generator), batch_size=batch_size, shuffle=split == "train")


class AbstractRestorationTask(AbstractImageTask):
    """An image task whose condition is a degraded, noisy copy of the image (see the module docstring).

    Subclasses implement :meth:`clean_images`, :meth:`degrade`, :meth:`residual` and set
    ``noise_std``; :meth:`removed` defaults to "every pixel lost some information".
    """

    noise_std: float

    @abc.abstractmethod
    def clean_images(self, split: str) -> Tensor:
        """The clean images of a split, ``(N, *image_shape)``."""

    @abc.abstractmethod
    def degrade(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Conditions :math:`c = A(x) + \\sigma\\varepsilon` of images ``(N, *image_shape)``."""

    @abc.abstractmethod
    def residual(self, images: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        """``(A(images) - observed, observed_mask)``, both ``(N, *condition_shape)``-like, zero where unobserved."""

    def removed(self, condition: Tensor) -> Tensor:
        """Boolean ``(N, H, W)``: the pixels whose information the degradation removed (default: all)."""
        n = condition.shape[0]
        return torch.ones(n, *self.image_shape[1:], dtype=torch.bool, device=condition.device)

    def redegradation_rms(self, images: Tensor, condition: Tensor) -> Tensor:
        r"""Per image, :math:`\sqrt{\mathrm{mean}_{\text{observed}}(A(\hat x) - c)^2}`: about :math:`\sigma` for consistent samples."""
        self._check(images)
        r, mask = self.residual(images, condition)
        dims = tuple(range(1, r.dim()))
        return (r.square().sum(dims) / mask.sum(dims).clamp_min(1)).sqrt()

    def pairs(self, split: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        x = self.clean_images(split)
        return x, self.degrade(x, generator)

    def batches(self, split: str, batch_size: int = 64, generator: torch.Generator | None = None):
        """Training (``"train"``): a fresh degradation of every batch; other splits: one fixed degradation."""
        if split == "train":
            return DegradedBatches(self, self.clean_images("train"), batch_size)
        return super().batches(split, batch_size, generator if generator is not None else torch.Generator().manual_seed(1))

    def _check(self, images: Tensor) -> None:
        check_images(f"{type(self).__name__}", images, self.image_shape)


class DegradedBatches:
    """Shuffled batches ``(x, degrade(x))`` of clean images, degraded afresh every epoch (a training batch source)."""

    def __init__(self, task: AbstractRestorationTask, images: Tensor, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"DegradedBatches: batch_size must be >= 1, got {batch_size}")
        self.task, self.images, self.batch_size = task, images, int(batch_size)

    @property
    def rows(self) -> int:
        return self.images.shape[0]

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(self.rows, generator=generator)
        for i in range(0, self.rows, self.batch_size):
            x = self.images[order[i:i + self.batch_size]]
            yield x, self.task.degrade(x, generator)
