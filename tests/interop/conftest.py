"""Fixtures of the interop tests: one torch thread, and one small trained posterior of the conjugate model."""

from __future__ import annotations

import pytest
import torch

from innverse.amortized import fit_posterior, gaussian

from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)
from .model import simulations


@pytest.fixture(scope="session")
def prior() -> torch.distributions.Distribution:
    return gaussian(0.0, 1.0, dim=2)


@pytest.fixture(scope="session")
def posterior(prior):
    """An innverse posterior trained on 1000 simulations of the conjugate model (a few seconds on one thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        theta, x = simulations(prior, 1000, seed=0)
        return fit_posterior(theta, x, prior=prior, flow={"blocks": 2, "hidden": [16]}, training={"epochs": 30},
                             progress=False)
    finally:
        torch.set_num_threads(before)
