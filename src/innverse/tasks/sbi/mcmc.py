"""Reference posteriors of the tasks with a tractable likelihood, by :func:`innverse.amortized.mcmc.sample_mcmc`.

The sampler (adaptive Metropolis–Hastings with independence moves and checked convergence) is
documented there; this module feeds it a task's exact likelihood, float64 prior and observations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...amortized.mcmc import MCMCConfig, sample_mcmc

__all__ = ["MCMCConfig", "sample_reference_mcmc"]


def sample_reference_mcmc(task, indices: Sequence[int], n: int, generator: torch.Generator,
                          config: MCMCConfig | None = None) -> tuple[list[Tensor], list[dict]]:
    """``n`` posterior draws (float64, ``(n, theta_dim)``) and diagnostics for each observation index.

    Args:
        task: an :class:`~innverse.tasks.AbstractSBITask` (it has a tractable likelihood).
        indices: observation indices; all are sampled together, vectorised.
        n: draws per observation.
        generator: the only source of randomness.
        config: sampler settings, :class:`MCMCConfig` defaults if ``None``.

    Raises:
        RuntimeError: if convergence criteria still fail after ``config.max_rounds`` rounds.
    """
    xs = torch.stack([task._observed_pair(i)[1] for i in indices])
    return sample_mcmc(task._log_likelihood, task._prior64, xs, n, generator, config, name=f"{task.name} reference")
