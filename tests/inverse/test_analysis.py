"""Posterior analysis helpers: identifiability, correlations, mode counting — against known answers."""

import math

import pytest
import torch

from innverse.diagnostics import (
    count_modes,
    identifiability,
    multimodality,
    posterior_contraction,
    posterior_correlation,
)
from innverse.tasks import AbstractInverseTask, abc_reference


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class IgnoresThirdParameter(AbstractInverseTask):
    """x ~ N(0, I_3), y = (x_1, x_1 + x_2): x_3 has no influence on y at all."""

    name, x_dim, y_dim = "ignores_third", 3, 2
    parameter_names = ("a", "b", "nuisance")

    def sample_prior(self, n, generator=None):
        return torch.randn(n, 3, generator=generator, dtype=torch.float64)

    def simulate(self, x):
        x = self.check_x(x)
        return torch.stack([x[:, 0], x[:, 0] + x[:, 1]], 1)

    def config(self):
        return {}


def test_unrecoverable_parameter_is_reported(tmp_path):
    task = IgnoresThirdParameter()
    targets = task.sample_joint(8, _gen(0))[1]
    ref = abc_reference(task, targets, n_keep=1000, n_simulations=200_000, chunk_size=50_000,
                        cache_path=tmp_path)
    prior = task.sample_prior(20_000, _gen(1))
    report = identifiability(ref.samples, prior, names=task.parameter_names)
    assert report.unrecoverable == ["nuisance"]
    assert report.recoverable.tolist() == [True, True, False]
    assert report.contraction[:2].min() > 0.9                 # a and b are pinned down by y
    assert abs(float(report.contraction[2])) < 0.05           # posterior ~ prior for the nuisance
    assert abs(float(report.std_ratio[2]) - 1.0) < 0.05
    assert "NO (posterior ~ prior" in str(report)


def test_contraction_of_a_conjugate_gaussian():
    # x ~ N(0, 1), y = x + N(0, 1): Var[x | y] = 1/2, contraction exactly 1/2.
    g = _gen(2)
    post = math.sqrt(0.5) * torch.randn(50_000, 1, generator=g, dtype=torch.float64)
    prior = torch.randn(50_000, 1, generator=g, dtype=torch.float64)
    assert abs(float(posterior_contraction(post, prior)[0]) - 0.5) < 0.02
    many = posterior_contraction(post.reshape(5000, 10, 1), prior)
    assert many.shape == (10, 1)


def test_posterior_correlation_matches_construction():
    g = _gen(3)
    rho = -0.8
    cov = torch.tensor([[1.0, rho * 2], [rho * 2, 4.0]], dtype=torch.float64)
    s = torch.randn(40_000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    corr = posterior_correlation(s)
    torch.testing.assert_close(corr, torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64),
                               atol=0.01, rtol=0)
    batched = posterior_correlation(torch.stack([s[:20_000], -s[20_000:]], 1))
    assert batched.shape == (2, 2, 2)
    constant = torch.stack([torch.zeros(100, dtype=torch.float64), torch.randn(100, generator=g,
                                                                                 dtype=torch.float64)], 1)
    assert torch.isnan(posterior_correlation(constant)[0, 1])


@pytest.mark.parametrize("modes", [1, 2, 3, 4])
def test_count_modes_of_well_separated_mixtures(modes):
    g = _gen(10 + modes)
    centres = torch.arange(modes, dtype=torch.float64) * 1.5
    pick = torch.randint(0, modes, (3000,), generator=g)
    s = centres[pick] + 0.2 * torch.randn(3000, generator=g, dtype=torch.float64)
    assert count_modes(s) == modes


def test_count_modes_ignores_noise_and_heavy_tails():
    g = _gen(20)
    assert count_modes(torch.randn(500, generator=g, dtype=torch.float64)) == 1
    student = torch.distributions.StudentT(3.0).sample((2000,)).double()
    assert count_modes(student) == 1
    # A 3% side mode is below the default prominence; a 30% one is not.
    small = torch.cat([torch.randn(970, generator=g), 6 + 0.3 * torch.randn(30, generator=g)]).double()
    big = torch.cat([torch.randn(700, generator=g), 6 + 0.3 * torch.randn(300, generator=g)]).double()
    assert count_modes(small) == 1 and count_modes(big) == 2


def test_multimodality_per_parameter():
    g = _gen(30)
    bimodal = torch.where(torch.rand(4000, generator=g) < 0.5, -2.0, 2.0) + 0.3 * torch.randn(4000, generator=g)
    s = torch.stack([bimodal, torch.randn(4000, generator=g)], 1).double()
    assert multimodality(s).tolist() == [2, 1]
    assert multimodality(s.reshape(2000, 2, 2)).shape == (2, 2)


def test_analysis_bad_input():
    with pytest.raises(ValueError, match="at least 20 samples"):
        count_modes(torch.randn(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        count_modes(torch.randn(50, 2))
    with pytest.raises(ValueError, match="NaN"):
        identifiability(torch.full((50, 2), float("nan")), torch.randn(50, 2))
    with pytest.raises(ValueError, match="prior samples must be"):
        posterior_contraction(torch.randn(50, 2), torch.randn(50, 3))
    with pytest.raises(ValueError, match="threshold"):
        identifiability(torch.randn(50, 2), torch.randn(50, 2), threshold=1.5)
