"""The conjugate model of the interop tests: theta ~ N(0, I_2), x | theta ~ N(theta, 0.5^2 I_2).

Its exact posterior is N(0.8 x, 0.2 I_2).
"""

from __future__ import annotations

import torch

NOISE = 0.5
SHRINK = 1.0 / (1.0 + NOISE**2)        # posterior mean = SHRINK * x, variance = SHRINK * NOISE^2
POSTERIOR_SD = (SHRINK * NOISE**2) ** 0.5


def simulator(theta: torch.Tensor) -> torch.Tensor:
    """x | theta ~ N(theta, NOISE^2 I), from the global RNG (seeded by the callers)."""
    return theta + NOISE * torch.randn_like(theta)


def simulations(prior: torch.distributions.Distribution, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs ``(theta, x)``, reproducible from ``seed`` (the caller's RNG stream is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        theta = prior.sample((n,))
        return theta, simulator(theta)
