"""The command line's bridge to the library: simulation store, training, sampling, diagnostics.

Every call into :mod:`innverse.amortized`, :mod:`innverse.train` and :mod:`innverse.diagnostics`
made by the commands goes through this module, so the commands read as a pipeline and the
library's API is used in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..report.run import RunLayout
from .console import Console
from .errors import JobError, UsageError
from .problem import Problem

__all__ = ["diagnose", "misspecification", "sample", "sample_task_observations", "simulate", "train",
           "x_shape_of"]


def simulate(problem: Problem, store: Path, count: int, batch_size: int, workers: int, seed: int,
             console: Console) -> dict[str, Any]:
    """Fill (or continue filling) the HDF5 store at ``store`` up to ``count`` simulations."""
    raise NotImplementedError("waiting for innverse.amortized's store and executor")


def train(problem: Problem, store: Path, cfg: dict[str, dict[str, Any]], layout: RunLayout, resume: bool,
          console: Console) -> tuple[Any, dict[str, Any]]:
    """Train a posterior estimator on the store; checkpoints and log go into the run directory."""
    raise NotImplementedError("waiting for innverse.amortized.fit_posterior")


def x_shape_of(model: Any) -> tuple[int, ...]:
    raise NotImplementedError


def sample(model: Any, obs: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` posterior samples for each of the ``k`` observations: ``(n, k, d)``."""
    torch.manual_seed(seed)
    x = torch.as_tensor(obs, dtype=torch.float32)
    with torch.no_grad():
        s = model.sample(n, x)
    return s.detach().cpu().numpy().reshape(n, len(obs), -1)


def misspecification(model: Any, obs: np.ndarray) -> list[dict[str, Any]]:
    return []


def sample_task_observations(posterior: Any, task: Any, k: int, n_ref: int, path: Path,
                             seed: int) -> list[dict[str, Any]]:
    raise NotImplementedError


def diagnose(model: Any, problem: Problem, n: int, m: int, seed: int, out_dir: Path,
             console: Console) -> dict[str, Any]:
    raise NotImplementedError


_ = (JobError, UsageError)
