"""Data-parallel training across processes (``torch.distributed``, e.g. launched by ``torchrun``).

Every process runs the same loop over the same sequence of global batches (the data order comes
from the same seeded generator everywhere) and computes the loss on its own contiguous slice of
each batch; the gradients are then summed across processes, each weighted by its share of the
batch's rows, so every process takes the step of the global batch and the weights stay identical
everywhere. This is the mathematics of ``DistributedDataParallel`` written for any loss function
(a loss may call any method of the model, not only its ``forward``), and it gives the same result
as one process with the same global batch up to floating-point summation order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DataParallel", "leave_group"]

_leaves = 0  # how many times this process has left a group (the key of each rendezvous)


class DataParallel:
    """The process group the training loop runs in (a group of one when ``torch.distributed`` is not initialised)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        import torch.distributed as dist

        self.device = torch.device(device)
        self.enabled = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints and logs (rank 0)."""
        return self.rank == 0

    def shard(self, batch: Sequence[Tensor]) -> tuple[tuple[Tensor, ...], int, int]:
        """This process's contiguous slice of a global batch: ``(local batch, local rows, global rows)``."""
        rows = batch[0].shape[0]
        if self.world == 1:
            return tuple(batch), rows, rows
        size = math.ceil(rows / self.world)
        lo, hi = min(rows, self.rank * size), min(rows, (self.rank + 1) * size)
        return tuple(t[lo:hi] for t in batch), hi - lo, rows

    def reduce_gradients(self, params: Sequence[nn.Parameter], weight: float) -> None:
        """Replace every gradient by the weighted sum over processes (missing gradients count as zero)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]) * weight
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def sum(self, *values: float) -> list[float]:
        """Sums over processes of a few numbers (losses times rows, row counts)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.cpu().tolist()


def leave_group() -> None:
    """Wait until every process is past its last collective, then destroy the default process group.

    ``torch.distributed.destroy_process_group`` alone is not collective: a process that finishes
    first closes its connections while another may still be reading the last message of the last
    all-reduce, and gloo aborts that process (SIGABRT) on the reset connection. The processes
    therefore meet first on the rendezvous store (which ``torchrun`` keeps in its agent, outside
    the processes), where no message between them is in flight once all have arrived. A no-op when
    no group is initialised.
    """
    import torch.distributed as dist

    global _leaves
    if not (dist.is_available() and dist.is_initialized()):
        return
    _leaves += 1
    key = f"innverse/leave/{_leaves}"
    try:
        store = dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):  # no store to meet on: a barrier is the next best
        dist.barrier()
    else:
        if store.add(key, 1) == dist.get_world_size():
            store.set(key + "/all", "1")
        store.wait([key + "/all"])
    dist.destroy_process_group()
