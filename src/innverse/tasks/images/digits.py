"""Class-conditional generation of scikit-learn's 8x8 handwritten digits.

Data: ``sklearn.datasets.load_digits()``, 1797 images ``(1, 8, 8)`` with 17 grey levels (0..16)
and their class. The degradation is the labelling itself: the condition keeps the class and
nothing else, as a one-hot vector ``(10,)``. Splits: a permutation with seed 0, the first 1297
images ``"train"``, the next 200 ``"val"``, the last 300 ``"test"``. Images are returned as
floats holding the integer levels, ready for :class:`~innverse.imaging.UniformDequantization`
with ``levels = 17``.

References:
    Alpaydin, Kaynak. "Optical Recognition of Handwritten Digits" (UCI), via scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import AbstractImageTask, check_split

__all__ = ["DigitClasses"]

_SPLIT = {"train": slice(0, 1297), "val": slice(1297, 1497), "test": slice(1497, 1797)}


class DigitClasses(AbstractImageTask):
    """Class-conditional digits: images ``(1, 8, 8)`` with values 0..16, conditions one-hot ``(10,)``."""

    name = "digit_classes"
    image_shape = (1, 8, 8)
    condition_shape = (10,)
    levels = 17

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def pairs(self, split: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        check_split("DigitClasses.pairs", split)
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("DigitClasses needs scikit-learn (pip install scikit-learn)") from err
        data = load_digits()
        order = np.random.default_rng(0).permutation(len(data.images))[_SPLIT[split]]
        images = torch.from_numpy(data.images[order].astype(np.float32))[:, None]
        return images, self.one_hot(torch.from_numpy(data.target[order]))

    @staticmethod
    def one_hot(labels: Tensor) -> Tensor:
        """Class labels ``(N,)`` in 0..9 as one-hot conditions ``(N, 10)``."""
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.is_floating_point() or bool(((labels < 0) | (labels > 9)).any()):
            raise ValueError(f"DigitClasses.one_hot: expected integer labels (N,) in 0..9, got {labels!r}")
        return torch.nn.functional.one_hot(labels.long(), 10).float()
