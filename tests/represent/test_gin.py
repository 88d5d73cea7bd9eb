"""GIN: volume preservation, the class-conditional latent density, empirical variances, spectra, MCC, traversals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.blocks import AffineCoupling
from innverse.represent import (
    GIN,
    count_informative,
    latent_spectrum,
    latent_traversals,
    mean_correlation_coefficient,
    train_gin,
)
from innverse.represent.gin import empirical_nll
from innverse.train import TrainConfig

from .test_classifiers import perturbed


def _gin(d: int = 5, classes: int = 3, seed: int = 0, permutation: str = "random") -> GIN:
    gin = perturbed(GIN(d, classes, blocks=3, hidden=(16,), seed=seed, permutation=permutation), seed=seed,
                    scale=0.2).double()
    return gin.eval()


def _data(n: int, d: int = 5, classes: int = 3, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64), torch.randint(classes, (n,), generator=gen)


@pytest.mark.parametrize("permutation", ["random", "orthogonal"])
def test_the_flow_preserves_volume(permutation):
    gin = _gin(permutation=permutation)
    x, _ = _data(3)
    z, log_det = gin.transform(x)
    assert float(log_det.abs().max()) < 1e-12
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: gin.transform(v[None])[0][0], x[i])
        assert abs(abs(float(torch.linalg.det(jac))) - 1.0) < 1e-10  # permutations may flip the sign
    assert (z - x).abs().max() > 1e-2  # not the identity


def test_log_prob_is_the_class_conditional_gaussian_of_the_latent():
    gin = _gin()
    with torch.no_grad():
        gin.mixture.log_scales.copy_(0.3 * torch.randn(3, 5, generator=torch.Generator().manual_seed(4)))
    x, u = _data(7)
    with torch.no_grad():
        z = gin.latent(x).numpy()
        lp = gin.log_prob(x, u).numpy()
        lp_one = gin.log_prob(x, 2).numpy()
    mu, sigma = gin.mixture.means.detach().numpy(), gin.mixture.log_scales.detach().exp().numpy()
    expected = stats.norm.logpdf(z, mu[u.numpy()], sigma[u.numpy()]).sum(1)
    np.testing.assert_allclose(lp, expected, rtol=1e-10)
    np.testing.assert_allclose(lp_one, stats.norm.logpdf(z, mu[2], sigma[2]).sum(1), rtol=1e-10)


def test_empirical_nll_is_the_gaussian_nll_at_the_batch_statistics():
    z, u = _data(60, d=4, classes=3, seed=2)
    u[:2] = 0  # every class present
    value = float(empirical_nll(z, u, 3))
    total = 0.0
    for k in range(3):
        zk = z[u == k].numpy()
        total += stats.norm.logpdf(zk, zk.mean(0), zk.std(0)).sum()  # ML (biased) std
    assert abs(value - (-total / z.numel())) < 1e-10
    # a class with a single row is left out rather than giving log 0
    u2 = u.clone()
    u2[u2 == 2] = 1
    u2[0] = 2
    rows = u2 != 2
    torch.testing.assert_close(empirical_nll(z, u2, 3), empirical_nll(z[rows], u2[rows], 3))


def test_fit_latent_statistics_and_sampling_follow_the_class_gaussians():
    gin = _gin(d=4, classes=2)
    x, u = _data(400, d=4, classes=2, seed=3)
    gin.fit_latent_statistics(x, u)
    with torch.no_grad():
        z = gin.latent(x)
    torch.testing.assert_close(gin.mixture.means[1], z[u == 1].mean(0))
    torch.testing.assert_close(gin.mixture.log_scales[0].exp(), z[u == 0].std(0))
    samples = gin.sample(2000, 1, generator=torch.Generator().manual_seed(5))
    assert samples.shape == (2000, 4)
    with torch.no_grad():
        standardized = (gin.latent(samples) - gin.mixture.means[1]) / gin.mixture.log_scales[1].exp()
    for i in range(4):
        assert stats.kstest(standardized[:, i].numpy(), "norm").pvalue > 1e-3
    assert gin.sample(3, torch.tensor([0, 1]), generator=torch.Generator().manual_seed(5)).shape == (3, 2, 4)


def test_gin_rejects_a_flow_that_changes_volume_and_bad_labels():
    coupling = perturbed(AffineCoupling(4))
    with pytest.raises(ValueError, match="GIN: the transform must be volume-preserving"):
        GIN(4, 2, transform=coupling)
    gin = GIN(4, 2, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match=r"train_gin: labels must lie in 0..1"):
        train_gin(gin, torch.zeros(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match=r"GIN.latent: expected x of shape \(N, 4\)"):
        gin.latent(torch.zeros(5, 3))


def test_training_lowers_the_empirical_nll():
    gen = torch.Generator().manual_seed(0)
    u = torch.randint(2, (256,), generator=gen)
    s = torch.randn(256, 3, generator=gen) * torch.tensor([1.0, 0.1, 0.1]) + 2.0 * u[:, None] * torch.tensor([1.0, 0, 0])
    x = s @ torch.linalg.qr(torch.randn(3, 3, generator=gen))[0]
    gin = GIN(3, 2, blocks=2, hidden=(16,), seed=0)
    history = train_gin(gin, x, u, training=TrainConfig(epochs=8, batch_size=64, lr=3e-3))
    assert history.records[-1]["nll"] < history.records[0]["nll"] - 0.2


def test_count_informative_splits_the_log_spectrum_or_cuts_at_the_largest_gap():
    assert count_informative(torch.tensor([0.011, 3.0, 0.012, 2.2, 0.009])) == 2
    assert count_informative(torch.tensor([0.011, 3.0, 0.012, 2.2, 0.009]), method="gap") == 2
    assert count_informative(torch.tensor([5.0, 1.0, 0.9, 0.8])) == 1
    assert count_informative(torch.tensor([5.0, 1.0, 0.9, 0.8]), method="gap") == 1
    assert count_informative(torch.tensor([5.0, 1.0, 0.9, 0.8]), threshold=0.85) == 3
    # two informative dimensions a decade apart, above a noise floor: the largest gap is between them
    spectrum = torch.tensor([0.78, 0.10, 0.021, 0.018, 0.016, 0.014, 0.014, 0.010, 0.0098, 0.0076])
    assert count_informative(spectrum, method="gap") == 1
    assert count_informative(spectrum) == 2
    # the split against a brute-force search over all cut points
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        stds = torch.rand(9, generator=gen, dtype=torch.float64) ** 4 + 1e-3
        log_s = stds.sort(descending=True).values.log()
        costs = [float((log_s[:k] - log_s[:k].mean()).square().sum() + (log_s[k:] - log_s[k:].mean()).square().sum())
                 for k in range(1, 9)]
        assert count_informative(stds) == 1 + min(range(8), key=costs.__getitem__)
    with pytest.raises(ValueError, match="count_informative: method must be 'split' or 'gap', got 'elbow'"):
        count_informative(spectrum, method="elbow")
    with pytest.raises(ValueError, match="count_informative: needs at least 2 positive"):
        count_informative(torch.tensor([1.0, 0.0]))


def test_latent_spectrum_ranks_class_conditional_spread():
    gin = _gin(d=4, classes=2)
    x, u = _data(500, d=4, classes=2, seed=6)
    with torch.no_grad():
        z = gin.latent(x)
    spectrum = latent_spectrum(gin, x, u)
    expected = torch.stack([z[u == k].std(0) for k in range(2)]).square().mean(0).sqrt()
    torch.testing.assert_close(spectrum.stds, expected.sort(descending=True).values)
    torch.testing.assert_close(spectrum.by_index(), expected)
    assert spectrum.top(1).tolist() == [int(expected.argmax())]
    overall = latent_spectrum(gin, x)
    torch.testing.assert_close(overall.stds, z.std(0).sort(descending=True).values)


def test_mean_correlation_coefficient_matches_and_scores():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2000, 3, generator=gen)
    recovered = torch.stack([torch.randn(2000, generator=gen), s[:, 2] ** 3, -2 * s[:, 0], torch.tanh(s[:, 1])], 1)
    result = mean_correlation_coefficient(s, recovered)
    assert result.assignment.tolist() == [2, 3, 1]
    expected = [abs(np.corrcoef(s[:, i], recovered[:, j])[0, 1]) for i, j in zip(range(3), [2, 3, 1])]
    np.testing.assert_allclose(result.correlations.numpy(), expected, rtol=1e-10)
    assert abs(result.mcc - float(np.mean(expected))) < 1e-12
    ranks = mean_correlation_coefficient(s, recovered, method="spearman")
    assert ranks.mcc > 0.999  # monotone maps are perfectly rank-correlated
    noise = mean_correlation_coefficient(s, torch.randn(2000, 3, generator=gen))
    assert noise.mcc < 0.1
    with pytest.raises(ValueError, match="at least as many recovered as true"):
        mean_correlation_coefficient(s, recovered[:, :2])


@torch.no_grad()
def test_latent_traversals_move_one_latent_at_a_time():
    gin = _gin()
    x, _ = _data(1)
    stds = torch.tensor([1.0, 0.5, 2.0, 1.0, 1.0], dtype=torch.float64)
    images = latent_traversals(gin, x[0], dims=[2, 0], steps=5, span=1.5, stds=stds)
    assert images.shape == (2, 5, 5)
    z0 = gin.latent(x)[0]
    z = gin.latent(images.reshape(-1, 5)).reshape(2, 5, 5)
    t = torch.linspace(-1.5, 1.5, 5, dtype=torch.float64)
    torch.testing.assert_close(z[0, :, 2], z0[2] + 2.0 * t)
    torch.testing.assert_close(z[1, :, 0], z0[0] + t)
    others = [i for i in range(5) if i != 2]
    torch.testing.assert_close(z[0][:, others], z0[others].expand(5, -1))
    with pytest.raises(ValueError, match="latent_traversals: dims must be latent indices"):
        latent_traversals(gin, x, dims=[5])
    assert math.isclose(float(images[0, 2].sub(x[0]).abs().max()), 0.0, abs_tol=1e-10)  # t = 0 is the input
