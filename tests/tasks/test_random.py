"""Generator-driven samplers used by the tasks: gamma, truncated normal."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from innverse.tasks.priors import sample_gamma, truncated_normal


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 53.5])
def test_gamma_matches_scipy(alpha):
    gen = torch.Generator().manual_seed(int(alpha * 10))
    draws = sample_gamma(torch.full((20_000,), alpha, dtype=torch.float64), gen)
    assert bool((draws > 0).all())
    assert stats.kstest(draws.numpy(), stats.gamma(alpha).cdf).pvalue > 1e-3


@pytest.mark.parametrize(("mean", "low", "high"), [(0.0, -1.0, 1.0), (3.0, -1.0, 1.0), (-9.0, -1.0, 1.0),
                                                  (0.0, 4.0, 9.0), (0.4, -10.0, 10.0)])
def test_truncated_normal_matches_scipy(mean, low, high):
    gen = torch.Generator().manual_seed(1)
    std = 0.5
    draws = truncated_normal(torch.full((20_000,), mean, dtype=torch.float64), std, low, high, gen)
    assert bool(((draws >= low) & (draws <= high)).all())
    dist = stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
    assert stats.kstest(draws.numpy(), dist.cdf).pvalue > 1e-3
