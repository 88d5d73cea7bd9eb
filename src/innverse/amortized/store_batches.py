"""Shuffled minibatches read from a :class:`~innverse.amortized.store.SimulationStore` without loading it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from .store import SimulationStore

__all__ = ["StoreBatches"]


class StoreBatches:
    """Shuffled minibatches from a store without loading it: shuffled chunk order + in-buffer shuffle.

    Each epoch permutes the store's chunks, reads ``buffer_chunks`` of them at a time (contiguous
    reads), keeps the selected rows, shuffles them together and yields minibatches; leftovers carry
    over to the next buffer. Implements the :class:`~innverse.train.BatchSource` protocol.

    Args:
        store: an open :class:`SimulationStore`.
        rows: committed row indices to draw from (e.g. the training split); default all.
        batch_size: rows per batch.
        buffer_chunks: chunks mixed together per shuffle buffer.
    """

    def __init__(self, store: SimulationStore, rows: np.ndarray | None = None, batch_size: int = 128,
                 buffer_chunks: int = 8, shuffle: bool = True) -> None:
        self.store = store
        total = store.rows
        sel = np.arange(total) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        if sel.size == 0:
            raise ValueError("StoreBatches: no rows selected")
        if sel.min() < 0 or sel.max() >= total:
            raise ValueError(f"StoreBatches: rows must lie in [0, {total})")
        self.mask = np.zeros(total, dtype=bool)
        self.mask[sel] = True
        self.count = int(sel.size)
        self.batch_size = int(batch_size)
        self.buffer_chunks = int(buffer_chunks)
        self.shuffle = shuffle
        c = store.chunk_rows
        self.chunks = np.unique(sel // c)

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        c = self.store.chunk_rows
        order = self.chunks[torch.randperm(len(self.chunks), generator=generator).numpy()] if self.shuffle else self.chunks
        carry_t: Tensor | None = None
        carry_x: Tensor | None = None
        for i in range(0, len(order), self.buffer_chunks):
            parts_t, parts_x = [] if carry_t is None else [carry_t], [] if carry_x is None else [carry_x]
            for blk in order[i:i + self.buffer_chunks]:
                lo, hi = int(blk) * c, min((int(blk) + 1) * c, self.store.rows)
                th, xs = self.store.read(lo, hi)
                keep = torch.from_numpy(self.mask[lo:hi])
                parts_t.append(th[keep])
                parts_x.append(xs[keep])
            t_all, x_all = torch.cat(parts_t), torch.cat(parts_x)
            if self.shuffle:
                perm = torch.randperm(t_all.shape[0], generator=generator)
                t_all, x_all = t_all[perm], x_all[perm]
            full = (t_all.shape[0] // self.batch_size) * self.batch_size
            for j in range(0, full, self.batch_size):
                yield t_all[j:j + self.batch_size], x_all[j:j + self.batch_size]
            carry_t, carry_x = t_all[full:], x_all[full:]
        if carry_t is not None and carry_t.shape[0]:
            yield carry_t, carry_x  # type: ignore[misc]
