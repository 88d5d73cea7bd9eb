"""Batch sources for the training loop: shuffled minibatches of in-memory tensors.

A batch source has ``__len__`` (batches per epoch) and ``epoch(index, generator)`` returning an
iterator over batches (tuples of tensors). All randomness comes from the ``generator`` the
trainer passes in, whose state is checkpointed, so a resumed run sees the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["BatchSource", "TensorBatches"]


class BatchSource(Protocol):
    """What :func:`~innverse.train.train` reads batches from."""

    def __len__(self) -> int: ...

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]: ...


class TensorBatches:
    """Shuffled minibatches of equally long tensors held in memory.

    Args:
        tensors: tensors with the same first dimension.
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        shuffle: draw a fresh permutation from the generator every epoch.
    """

    def __init__(self, *tensors: Tensor, batch_size: int = 128, shuffle: bool = True) -> None:
        if not tensors:
            raise ValueError("TensorBatches: needs at least one tensor")
        n = tensors[0].shape[0]
        for i, t in enumerate(tensors):
            if t.shape[0] != n:
                raise ValueError(f"TensorBatches: tensor {i} has {t.shape[0]} rows, tensor 0 has {n}")
        if n == 0:
            raise ValueError("TensorBatches: the tensors are empty")
        if batch_size < 1:
            raise ValueError(f"TensorBatches: batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    @property
    def rows(self) -> int:
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        n = self.rows
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
