"""Design tests: one torch thread (small models run as fast, immune to oversubscription), shared trained models."""

from __future__ import annotations

import pytest
import torch

from innverse.amortized import box_uniform, fit_posterior

from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)

PRIOR_LOW, PRIOR_HIGH = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
MIXING = torch.randn(2, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def squashed_linear(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A small simulator: ``tanh(theta A) + 0.2 noise``, ``(n, 2) -> (n, 8)`` in ``theta``'s dtype."""
    x = torch.tanh(theta.to(torch.float64) @ MIXING)
    return (x + 0.2 * torch.randn(x.shape, generator=generator, dtype=torch.float64)).to(theta.dtype)


@pytest.fixture(scope="session")
def prior():
    return box_uniform(PRIOR_LOW, PRIOR_HIGH)


@pytest.fixture(scope="session")
def npe(prior):
    """An NPE with an MLP summary network, trained on 3000 simulations of :func:`squashed_linear`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        theta = PRIOR_LOW + (PRIOR_HIGH - PRIOR_LOW) * torch.rand(3000, 2, generator=torch.Generator().manual_seed(0))
        x = squashed_linear(theta, torch.Generator().manual_seed(1))
        return fit_posterior(theta, x, prior=prior, summary="mlp",
                             summary_options={"out_features": 8, "hidden": [32, 32]},
                             flow={"blocks": 3, "hidden": [32, 32]}, training={"epochs": 30}, progress=False)
    finally:
        torch.set_num_threads(threads)
