"""Online training data: fresh simulations from prior and simulator every epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .executor import simulate
from .simulation import batch_seed

__all__ = ["OnlineBatches"]


class OnlineBatches:
    """A batch source that simulates ``per_epoch`` new pairs at the start of every epoch.

    Epoch ``i`` uses the master seed ``batch_seed(seed, i, 7)``, so a resumed run simulates the same
    data as an uninterrupted one. Implements :class:`~innverse.train.BatchSource`.

    Args:
        prior, simulator: what to simulate from.
        per_epoch: simulations per epoch.
        batch_size: training rows per minibatch.
        seed: master seed.
        workers, sim_batch_size: passed to :func:`~innverse.amortized.simulate`.
    """

    def __init__(self, prior: Distribution, simulator: Callable[..., Any], per_epoch: int, batch_size: int,
                 seed: int = 0, workers: int = 0, sim_batch_size: int = 256) -> None:
        if per_epoch < 1:
            raise ValueError(f"OnlineBatches: per_epoch must be >= 1, got {per_epoch}")
        self.prior = prior
        self.simulator = simulator
        self.per_epoch = int(per_epoch)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.workers = workers
        self.sim_batch_size = sim_batch_size
        self.failed = 0

    def __len__(self) -> int:
        return -(-self.per_epoch // self.batch_size)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        sims = simulate(self.simulator, prior=self.prior, n=self.per_epoch, batch_size=self.sim_batch_size,
                        workers=self.workers, seed=batch_seed(self.seed, index, 7), progress=False)
        self.failed += sims.report.failed
        theta, x = sims.theta, sims.x
        perm = torch.randperm(theta.shape[0], generator=generator)
        for i in range(0, theta.shape[0], self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield theta[idx], x[idx]
