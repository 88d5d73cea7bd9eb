"""Simulators for the safety tests (module level, so worker processes can import them)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import torch


def overflowing(theta, generator=None):
    """x = theta (float64), but 1e39 (beyond float32) in feature 0 wherever theta[0] > 0.5."""
    t = torch.as_tensor(theta, dtype=torch.float64)
    x = t + 0.1 * torch.randn(t.shape, generator=generator, dtype=torch.float64)
    x[t[:, 0] > 0.5, 0] = 1e39
    return x.numpy()


def gated(theta, generator=None):
    """In a worker process: note the worker's pid in $INNVERSE_GATE, then wait until the file
    $INNVERSE_GATE/open exists; in the main process (a probe): return at once."""
    gate = os.environ.get("INNVERSE_GATE")
    if gate and multiprocessing.parent_process() is not None:
        Path(gate, f"worker-{os.getpid()}").touch()
        while not Path(gate, "open").exists():
            time.sleep(0.02)
    t = torch.as_tensor(theta)
    return t + 0.1 * torch.randn(t.shape, generator=generator, dtype=t.dtype)


def widening(theta, generator=None):
    """Two features for the first call in a process, three afterwards (the output shape changes)."""
    widening.calls = getattr(widening, "calls", 0) + 1
    t = np.asarray(theta, dtype=np.float64)
    return np.repeat(t[:, :1], 2 if widening.calls == 1 else 3, axis=1)
