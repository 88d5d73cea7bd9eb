"""The defensive Student-t mixture proposal: finds separated modes, is normalised, samples its density."""

from __future__ import annotations

import torch

from innverse.amortized.mcmc.proposal import StudentTMixture
from tests.tasks.sbi.helpers import grid_chi2_pvalue


def _bimodal(n: int, gen: torch.Generator) -> torch.Tensor:
    # 0.3 N((-3, 0), 0.3^2 I) + 0.7 N((2, 1), diag(1, 0.2^2))
    first = torch.rand(n, generator=gen, dtype=torch.float64) < 0.3
    z = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    a = torch.tensor([-3.0, 0.0], dtype=torch.float64) + 0.3 * z
    b = torch.tensor([2.0, 1.0], dtype=torch.float64) + z * torch.tensor([1.0, 0.2], dtype=torch.float64)
    return torch.where(first[:, None], a, b)


def test_fits_modes_is_normalised_and_samples_its_density():
    gen = torch.Generator().manual_seed(0)
    states = torch.stack([_bimodal(4000, gen), _bimodal(4000, gen) + 5.0])  # two targets
    q = StudentTMixture(states, components=2, generator=gen)
    for k, shift in enumerate((0.0, 5.0)):
        means = q.means[k, 1:]  # fitted components (index 0 is the defensive one)
        order = means[:, 0].argsort()
        assert torch.allclose(means[order], torch.tensor([[-3.0, 0.0], [2.0, 1.0]]).double() + shift, atol=0.1)
        weights = q.log_weights[k, 1:].exp()[order] / 0.8
        assert torch.allclose(weights, torch.tensor([0.3, 0.7]).double(), atol=0.03)
    # normalised: integrate the density of target 0 on a grid
    axis = torch.linspace(-40, 40, 801, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(1, -1, 2)
    mass = q.log_prob(torch.cat([grid, grid + 5.0])).exp().sum(-1) * (axis[1] - axis[0]) ** 2
    assert torch.allclose(mass, torch.ones(2, dtype=torch.float64), atol=0.02)  # t tails beyond the grid
    draws = q.sample(20_000)
    assert draws.shape == (2, 20_000, 2)
    p = grid_chi2_pvalue(draws[0], lambda pts: q.log_prob(torch.stack([pts, pts]))[0], (-8.0, -6.0), (8.0, 6.0),
                         bins=16, sub=8, inside_only=True)
    assert p > 1e-3
