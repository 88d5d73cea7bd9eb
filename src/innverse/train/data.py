"""Batch sources for the training loop: shuffled minibatches of in-memory tensors, and their way to the device.

A batch source has ``__len__`` (batches per epoch) and ``epoch(index, generator)`` returning an
iterator over batches (tuples of tensors). All randomness comes from the ``generator`` the
trainer passes in, whose state is checkpointed, so a resumed run sees the same batches.

Getting batches onto a GPU (``resident`` and ``device_batches``): in-memory data that fit
in a quarter of the free device memory are copied there once, so a batch is an index on the
device and no host-to-device copy happens per step. Other batches (a simulation store, online
simulation, data too large) are staged through page-locked (pinned) host memory and copied on a
separate CUDA stream one batch ahead, so the copy of the next batch overlaps the current step.
On the CPU both are no-ops. The batches, their order and the generator's draws are the same
whichever way they travel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["BatchSource", "TensorBatches", "device_batches", "resident"]

#: in-memory data are copied to a GPU once when they take at most this share of its free memory
RESIDENT_FRACTION = 0.25


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

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def to(self, device: torch.device | str) -> TensorBatches:
        """The same batches (same order for the same generator) with the tensors on ``device``."""
        return TensorBatches(*(t.to(device) for t in self.tensors), batch_size=self.batch_size, shuffle=self.shuffle)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        n = self.rows
        # the permutation is drawn on the CPU generator wherever the tensors are: the same batches on any device
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def resident(source: BatchSource, device: torch.device, fraction: float = RESIDENT_FRACTION) -> BatchSource:
    """``source`` with its tensors copied to the CUDA ``device`` once, if it is in-memory data
    (:class:`TensorBatches`) taking at most ``fraction`` of the device's free memory; else ``source``."""
    if device.type != "cuda" or not isinstance(source, TensorBatches) or source.device == device:
        return source
    free, _total = torch.cuda.mem_get_info(device)
    return source.to(device) if source.nbytes <= fraction * free else source


def device_batches(batches: Iterable[tuple[Tensor, ...]], device: torch.device) -> Iterator[tuple[Tensor, ...]]:
    """``batches`` with their tensors on ``device``.

    For a CUDA device, host tensors are copied into pinned memory and sent with ``non_blocking``
    on a side stream, one batch ahead: batch ``i + 1`` is on its way while the caller runs step
    ``i``. The compute stream waits for a batch's copy before using it, and the tensors are
    recorded on it so the allocator does not reuse their memory early. Elsewhere a plain ``.to``.
    """
    if device.type != "cuda":
        return (tuple(t.to(device) for t in batch) for batch in batches)
    copier = torch.cuda.Stream(device)

    def send(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        with torch.cuda.stream(copier):
            return tuple(t.pin_memory().to(device, non_blocking=True) if t.device.type == "cpu" else t.to(device)
                         for t in batch)

    def ready(batch: tuple[Tensor, ...]) -> None:
        compute = torch.cuda.current_stream(device)
        compute.wait_stream(copier)
        for t in batch:
            t.record_stream(compute)

    return _one_ahead(batches, send, ready)


def _one_ahead(items: Iterable[Any], send: Callable[[Any], Any], ready: Callable[[Any], None]) -> Iterator[Any]:
    """``send(item)`` for each item, issued one item ahead: ``send(items[i + 1])`` runs before
    ``send(items[i])`` is yielded (after ``ready`` on it), so its work overlaps the caller's on item ``i``."""
    it = iter(items)
    first = next(it, _END)
    ahead = _END if first is _END else send(first)
    while ahead is not _END:
        ready(ahead)
        current = ahead
        raw = next(it, _END)
        ahead = _END if raw is _END else send(raw)
        yield current


_END = object()
