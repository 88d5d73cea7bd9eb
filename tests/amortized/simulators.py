"""Small simulators for the tests (module level, so process pools can import them)."""

from __future__ import annotations

import os
import signal

import numpy as np
import torch


def linear_gaussian(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x = theta + 0.5 * noise (torch, generator keyword)."""
    return theta + 0.5 * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)


def numpy_rng(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """numpy simulator taking a numpy Generator; x = (theta, theta^2) + noise."""
    theta = np.asarray(theta)
    return np.concatenate([theta, theta**2], 1) + rng.normal(size=(theta.shape[0], 2 * theta.shape[1]))


def seeded(theta, seed: int):
    """Simulator with a seed keyword."""
    g = torch.Generator().manual_seed(seed)
    return theta * 2 + torch.rand(theta.shape, generator=g)


def global_rng(theta):
    """Simulator using the global numpy and torch RNGs."""
    return np.asarray(theta) + np.random.normal(size=np.shape(theta)) + torch.randn(np.shape(theta)).numpy()  # noqa: NPY002


def flaky(theta, generator=None):
    """Raises for theta[0] > 0.8, returns NaN for theta[0] < -0.8 (rows handled one by one on retry)."""
    t = torch.as_tensor(theta)
    if (t[:, 0] > 0.8).any():
        raise RuntimeError("solver diverged for theta[0] > 0.8")
    x = t + 0.1 * torch.randn(t.shape, generator=generator)
    x[t[:, 0] < -0.8] = float("nan")
    return x


def crashing(theta, generator=None):
    """Kills its own worker process for theta[0] > 0.9 (a crash inside native code, say)."""
    t = torch.as_tensor(theta)
    if (t[:, 0] > 0.9).any():
        os._exit(3)
    return t + 0.1 * torch.randn(t.shape, generator=generator)


def gaussian_sets(theta, rng: np.random.Generator):
    """i.i.d. N(mu, sigma^2) sets of 5..100 elements, returned as a ragged list of (n_i, 1) arrays."""
    theta = np.asarray(theta)
    out = []
    for mu, sigma in theta:
        n = int(rng.integers(5, 101))
        out.append(rng.normal(mu, sigma, size=(n, 1)))
    return out


def killing(theta, generator=None):
    """Sleeps nothing, but SIGKILLs the whole process on call number INNVERSE_KILL_AT_CALL (counted in a file)."""
    counter = os.environ.get("INNVERSE_CALL_COUNTER")
    kill_at = int(os.environ.get("INNVERSE_KILL_AT_CALL", "0"))
    if counter and kill_at:
        n = int(open(counter).read() or 0) + 1 if os.path.exists(counter) else 1
        with open(counter, "w") as f:
            f.write(str(n))
        if n == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return linear_gaussian(torch.as_tensor(theta), generator)


def drift_series(theta, generator=None):
    """Random walk with drift theta[:, 0] and step scale theta[:, 1], 10..30 steps, NaN-padded to 30 rows."""
    t = torch.as_tensor(theta)
    n = t.shape[0]
    steps = t[:, :1] + t[:, 1:2] * torch.randn(n, 30, generator=generator)
    x = steps.cumsum(1)
    lengths = torch.randint(10, 31, (n,), generator=generator)
    x[torch.arange(30) >= lengths[:, None]] = float("nan")
    return x.unsqueeze(-1)
