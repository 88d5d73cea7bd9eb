"""Simulators for the scale-out tests (module level, so Dask worker processes and process pools import them)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import torch


class Flaky:
    """x = theta + 0.1 noise; raises for theta[0] > 0.8, NaN for theta[0] < -0.8; optionally slow and marking.

    ``delay`` seconds per batch of several rows (not for the row-by-row retries) and a marker file per
    such batch in ``markers`` (named by the process id), so a test can see how far a run got and which
    processes ran it; neither changes the output.
    """

    def __init__(self, delay: float = 0.0, markers: str | None = None) -> None:
        self.delay, self.markers = delay, markers

    def __call__(self, theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if theta.shape[0] > 1:
            if self.markers is not None:
                (Path(self.markers) / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
            time.sleep(self.delay)
        if (theta[:, 0] > 0.8).any():
            raise RuntimeError("solver diverged for theta[0] > 0.8")
        x = theta + 0.1 * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
        x[theta[:, 0] < -0.8] = float("nan")
        return x


def crashing(theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Kills its own worker process for theta[0] >= 1 (a crash inside native code, say)."""
    if (theta[:, 0] >= 1).any():
        os._exit(3)
    return theta + 0.1 * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
