"""Where ``fit_posterior``'s simulations come from: in memory, a simulation store, or a simulator (online).

Each source gives the same three things: a sample of training pairs to fit the standardisation
on, the number of training rows per epoch (the budget the defaults are computed from), and, per
candidate estimator, batch sources of *prepared* pairs — parameters and observations in the
units the networks see (:meth:`PosteriorEstimator.prepare`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .._tensors import invalid_rows, to_tensor
from ..blocks import SupportTransform
from ..train import BatchSource, TensorBatches
from ..train.data import device_batches
from .estimator import PosteriorEstimator
from .executor import simulate
from .online import OnlineBatches
from .simulation import batch_seed
from .store import SimulationStore, StoreBatches

__all__ = ["AbstractSource", "Batches", "InMemory", "Online", "Stored", "checked_pairs"]

logger = logging.getLogger("innverse")

#: rows of a store read into memory to fit the standardisation on
STORE_FIT_ROWS = 50_000
#: rows per validation batch
VALIDATION_BATCH = 4096
#: fewer valid training pairs than this cannot train a posterior (nor split off validation pairs)
MIN_PAIRS = 10


def checked_pairs(theta: Tensor, x: Tensor, support: SupportTransform, variable_size: bool,
                  drop_invalid: bool, minimum: int = MIN_PAIRS) -> tuple[Tensor, Tensor, int]:
    """Training pairs without NaN/Inf (dropped and logged with ``drop_invalid``, else an error).

    Raises:
        ValueError: mismatched rows, parameters outside the prior's support, invalid pairs
            without ``drop_invalid``, or fewer than :data:`MIN_PAIRS` valid pairs.
    """
    if theta.dim() != 2:
        raise ValueError(f"fit_posterior: theta must be (n, D), got shape {tuple(theta.shape)}")
    if x.shape[0] != theta.shape[0]:
        raise ValueError(f"fit_posterior: theta has {theta.shape[0]} rows but x has {x.shape[0]}")
    bad_t = ~torch.isfinite(theta).all(1)
    outside = ~support.inside(theta) & ~bad_t
    if outside.any():
        rows = outside.nonzero().flatten()[:10].tolist()
        raise ValueError(f"fit_posterior: theta rows {rows} lie outside the prior's support "
                         f"(lower {support.lower.tolist()}, upper {support.upper.tolist()})")
    bad = invalid_rows(x, variable_size) | bad_t
    dropped = int(bad.sum())
    if dropped:
        rows = bad.nonzero().flatten()[:10].tolist()
        if not drop_invalid:
            raise ValueError(f"fit_posterior: {dropped} training pairs contain NaN/Inf (rows {rows}"
                             f"{'...' if dropped > 10 else ''}); remove them or pass drop_invalid=True")
        logger.warning("fit_posterior: dropped %d of %d training pairs with NaN/Inf", dropped, len(bad))
    kept = len(bad) - dropped
    if kept < minimum:
        raise ValueError(f"fit_posterior: {kept} valid training pairs ({len(bad)} given, {dropped} dropped for NaN/Inf);"
                         f" at least {minimum} are needed to train a posterior")
    return theta[~bad], x[~bad], dropped


class _Prepared:
    """A batch source of raw ``(theta, x)`` pairs, prepared for the networks batch by batch."""

    def __init__(self, source: BatchSource, est: PosteriorEstimator) -> None:
        self.source, self.est = source, est

    def __len__(self) -> int:
        return len(self.source)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        # the estimator may have moved to a GPU for training: prepare the batch where it is (sent there
        # through pinned memory, one batch ahead)
        device = self.est.standardization.shift.device
        for theta, x in device_batches(self.source.epoch(index, generator), device):
            yield self.est.prepare(theta, x)


@dataclass(frozen=True)
class Batches:
    """Prepared training and validation batches, and the prepared training pairs of the least-squares start."""

    train: BatchSource
    val: BatchSource | None
    init: tuple[Tensor, Tensor] | None


class AbstractSource:
    """Training data for :func:`~innverse.amortized.fit_posterior` (one subclass per kind of source).

    Attributes:
        mode: ``"memory"``, ``"store"`` or ``"online"``.
        theta, x: training pairs the standardisation is fitted on (all or a sample).
        rows: training rows per epoch (for a store: all rows until :meth:`setup` splits off the validation rows).
        dropped: pairs dropped as invalid.
    """

    mode = "abstract"

    def __init__(self) -> None:
        self.theta: Tensor = torch.empty(0)
        self.x: Tensor = torch.empty(0)
        self.rows = 0
        self.dropped = 0

    @property
    def shapes(self) -> tuple[int, tuple[int, ...]]:
        """``(theta_dim, x_shape)`` of the data."""
        return self.theta.shape[1], tuple(self.x.shape[1:])

    def setup(self, est: PosteriorEstimator, validation_fraction: float, drop_invalid: bool,
              generator: torch.Generator) -> None:
        """Check the pairs against the estimator's support and split off the validation pairs."""
        raise NotImplementedError

    def batches(self, est: PosteriorEstimator, batch_size: int) -> Batches:
        """Batch sources of prepared pairs for ``est`` (whose standardisation is fitted)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds open."""


def _as_pairs(theta: Any, x: Any) -> tuple[Tensor, Tensor]:
    t = to_tensor(theta, "theta", "fit_posterior", torch.float32)
    xt = to_tensor(x, "x", "fit_posterior", torch.float32)
    t, xt = (t.unsqueeze(-1) if t.dim() == 1 else t), (xt.unsqueeze(-1) if xt.dim() == 1 else xt)
    if t.dim() != 2 or t.shape[1] < 1:
        raise ValueError(f"fit_posterior: theta must be (n, D) with D >= 1, got shape {tuple(t.shape)}")
    if xt.dim() >= 1 and xt.shape[0] != t.shape[0]:
        raise ValueError(f"fit_posterior: theta has {t.shape[0]} rows but x has {xt.shape[0]}")
    if xt.dim() < 2 or 0 in xt.shape[1:]:
        raise ValueError(f"fit_posterior: x must be (n, *x_shape) with the {t.shape[0]} rows of theta and no empty "
                         f"dimension, got shape {tuple(xt.shape)}")
    return t, xt


class InMemory(AbstractSource):
    """Pairs ``theta (n, D)``, ``x (n, *x_shape)`` held in memory (torch or numpy), prepared once."""

    mode = "memory"

    def __init__(self, theta: Any, x: Any) -> None:
        super().__init__()
        if theta is None or x is None:
            raise ValueError("fit_posterior: give both theta and x")
        self.theta, self.x = _as_pairs(theta, x)
        self.rows = self.theta.shape[0]

    def setup(self, est: PosteriorEstimator, validation_fraction: float, drop_invalid: bool,
              generator: torch.Generator) -> None:
        self.theta, self.x, self.dropped = checked_pairs(self.theta, self.x, est.support, est.variable_size,
                                                         drop_invalid)
        n = self.theta.shape[0]
        perm = torch.randperm(n, generator=generator)
        n_val = round(validation_fraction * n)
        if validation_fraction > 0 and n >= 10:
            n_val = max(n_val, 1)
        self.val_idx, self.train_idx = perm[:n_val], perm[n_val:]

    def batches(self, est: PosteriorEstimator, batch_size: int) -> Batches:
        v, z = est.prepare(self.theta, self.x)
        tr, va = self.train_idx, self.val_idx
        val = TensorBatches(v[va], z[va], batch_size=VALIDATION_BATCH, shuffle=False) if len(va) else None
        return Batches(TensorBatches(v[tr], z[tr], batch_size=batch_size), val, (v[tr], z[tr]))


class Stored(AbstractSource):
    """A :class:`SimulationStore` (or its path), read in shuffled minibatches; never loaded whole."""

    mode = "store"

    def __init__(self, store: SimulationStore | str | os.PathLike) -> None:
        super().__init__()
        self.owned = not isinstance(store, SimulationStore)
        self.store = SimulationStore(store, "r") if self.owned else store  # type: ignore[arg-type]
        if self.store.rows < 2:
            self.close()
            raise ValueError(f"fit_posterior: the store {self.store.path} has {self.store.rows} committed rows")
        self.theta, self.x = self.store.read_rows(np.arange(min(self.store.rows, 2)))
        self.rows = self.store.rows  # until setup() splits off the validation rows

    def _valid_rows(self, est: PosteriorEstimator, drop_invalid: bool) -> np.ndarray:
        """Indices of the store's valid rows, checked chunk by chunk over the whole store (invalid ones dropped
        with ``drop_invalid``, else an error naming them, as :func:`checked_pairs`)."""
        step = max(self.store.chunk_rows, 4096)
        keep, self.dropped = [], 0
        for start in range(0, self.store.rows, step):
            rows = np.arange(start, min(start + step, self.store.rows))
            theta, x = self.store.read_rows(rows)
            bad = (invalid_rows(x, est.variable_size) | ~torch.isfinite(theta).all(1)).numpy()
            if bad.any() and not drop_invalid:
                raise ValueError(f"fit_posterior: the store {self.store.path} holds training pairs with NaN/Inf "
                                 f"(rows {rows[bad][:10].tolist()}...); pass drop_invalid=True")
            checked_pairs(theta[~bad], x[~bad], est.support, est.variable_size, False, minimum=0)
            keep.append(rows[~bad])
            self.dropped += int(bad.sum())
        if self.dropped:
            logger.warning("fit_posterior: dropped %d of %d stored pairs with NaN/Inf", self.dropped, self.store.rows)
        valid = np.concatenate(keep)
        if len(valid) < MIN_PAIRS:
            raise ValueError(f"fit_posterior: {len(valid)} valid training pairs in the store ({self.store.rows} stored, "
                             f"{self.dropped} dropped for NaN/Inf); at least {MIN_PAIRS} are needed")
        return valid

    def setup(self, est: PosteriorEstimator, validation_fraction: float, drop_invalid: bool,
              generator: torch.Generator) -> None:
        valid = self._valid_rows(est, drop_invalid)
        perm = valid[torch.randperm(len(valid), generator=generator).numpy()]
        n_val = round(validation_fraction * len(valid))
        self.val_rows, self.train_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self.rows = len(self.train_rows)
        self.theta, self.x = self.store.read_rows(self.train_rows[:STORE_FIT_ROWS])

    def batches(self, est: PosteriorEstimator, batch_size: int) -> Batches:
        val = (_Prepared(StoreBatches(self.store, self.val_rows, VALIDATION_BATCH, shuffle=False), est)
               if len(self.val_rows) else None)
        return Batches(_Prepared(StoreBatches(self.store, self.train_rows, batch_size), est), val,
                       est.prepare(self.theta, self.x))

    def close(self) -> None:
        if self.owned:
            self.store.close()


class Online(AbstractSource):
    """Fresh simulations from ``prior`` and ``simulator`` every epoch, validated on a fixed simulated set."""

    mode = "online"

    def __init__(self, simulator: Callable[..., Any], prior: Distribution | None, per_epoch: int | None,
                 validation_simulations: int | None, workers: int, seed: int) -> None:
        super().__init__()
        if prior is None:
            raise ValueError("fit_posterior: online training needs the prior")
        self.simulator, self.prior, self.workers, self.seed = simulator, prior, workers, seed
        self.rows = int(per_epoch or 10_000)
        n_val = int(validation_simulations or max(500, self.rows // 10))
        sims = simulate(simulator, prior=prior, n=n_val, workers=workers, seed=batch_seed(seed, 0, 3), progress=False)
        self.theta, self.x = sims.theta, sims.x

    def setup(self, est: PosteriorEstimator, validation_fraction: float, drop_invalid: bool,
              generator: torch.Generator) -> None:
        self.theta, self.x, self.dropped = checked_pairs(self.theta, self.x, est.support, est.variable_size,
                                                         drop_invalid)

    def batches(self, est: PosteriorEstimator, batch_size: int) -> Batches:
        train = OnlineBatches(self.prior, self.simulator, self.rows, batch_size, self.seed, self.workers)
        v, z = est.prepare(self.theta, self.x)
        return Batches(_Prepared(train, est), TensorBatches(v, z, batch_size=VALIDATION_BATCH, shuffle=False), None)
