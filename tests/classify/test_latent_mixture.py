"""The latent-mixture INN: Bayes' rule, densities against independent computations, sampling, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.classify import LatentMixtureINN, spread_means, vector_inn


def _model(features: int = 3, classes: int = 4, seed: int = 0) -> LatentMixtureINN:
    torch.manual_seed(seed)
    model = LatentMixtureINN(vector_inn(features, blocks=3, hidden=(16,), seed=seed), classes, mean_distance=2.0,
                             learn_weights=True, learn_scales=True).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move away from the symmetric initialisation: non-zero subnets, unequal classes
        for p in model.flow.transform.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        model.mixture.logits.copy_(torch.randn(classes, generator=gen, dtype=torch.float64))
        model.mixture.log_scales.copy_(0.3 * torch.randn(classes, features, generator=gen, dtype=torch.float64))
    return model.eval()


def _scipy_components(model: LatentMixtureINN, z: torch.Tensor) -> np.ndarray:
    """log N(z; mu_k, diag sigma_k^2) for every class, computed by scipy."""
    mix = model.mixture
    means, scales = mix.means.detach().numpy(), mix.log_scales.detach().exp().numpy()
    return np.stack([stats.multivariate_normal(means[k], np.diag(scales[k] ** 2)).logpdf(z.detach().numpy())
                     for k in range(model.classes)], axis=1)


def _autograd_log_det(model: LatentMixtureINN, x: torch.Tensor) -> torch.Tensor:
    out = []
    for row in x:
        jac = torch.autograd.functional.jacobian(lambda r: model.latent(r[None])[0][0], row)
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


def test_class_posterior_is_bayes_rule_on_the_latent_mixture():
    model = _model()
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z, _ = model.latent(x)
    log_prior = torch.log_softmax(model.mixture.logits.detach(), 0).numpy()
    joint = _scipy_components(model, z) + log_prior
    expected = joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)
    got = model.class_log_posterior(x).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    # p(k | x) = p(x | k) p(k) / p(x) with the model's own densities, the Jacobian included
    bayes = model.class_log_likelihood(x) + model.mixture.log_weights() - model.log_prob(x)[:, None]
    torch.testing.assert_close(bayes, model.class_log_posterior(x), rtol=0, atol=1e-10)


def test_densities_match_scipy_and_the_autograd_jacobian():
    model = _model(seed=1)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z, log_det = model.latent(x)
    torch.testing.assert_close(log_det, _autograd_log_det(model, x), rtol=0, atol=1e-9)
    per_class = _scipy_components(model, z) + _autograd_log_det(model, x).detach().numpy()[:, None]
    np.testing.assert_allclose(model.class_log_likelihood(x).detach().numpy(), per_class, atol=1e-9)
    log_prior = torch.log_softmax(model.mixture.logits.detach(), 0).numpy()
    marginal = np.logaddexp.reduce(per_class + log_prior, axis=1)
    np.testing.assert_allclose(model.log_prob(x).detach().numpy(), marginal, atol=1e-9)
    np.testing.assert_allclose(model.flow.log_prob(x).detach().numpy(), marginal, atol=1e-9)


def test_log_prob_with_labels_follows_the_conditional_contract():
    model = _model()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(7, 4, 3, generator=gen, dtype=torch.float64)
    ll = model.class_log_likelihood(x)                                       # (7, 4, K)
    torch.testing.assert_close(model.log_prob(x[:, 0], 2), ll[:, 0, 2])      # one label: (s, D) -> (s,)
    labels = torch.tensor([3, 0, 1, 1])
    got = model.log_prob(x, labels)                                          # (s, k, D) -> (s, k)
    torch.testing.assert_close(got, ll.gather(2, labels.expand(7, 4)[..., None])[..., 0])
    torch.testing.assert_close(model.log_prob(x[0], labels), got[0])         # (k, D): row i under label i
    assert model.log_prob(x).shape == (7, 4)


def test_samples_of_a_class_map_to_its_latent_gaussian():
    model = _model(seed=2)
    gen = torch.Generator().manual_seed(6)
    x = model.sample(2000, 1, generator=gen)
    assert x.shape == (2000, 3)
    assert model.sample(5, torch.tensor([0, 2, 3]), generator=gen).shape == (5, 3, 3)
    z, _ = model.latent(x)
    u = (z - model.mixture.means[1]) / model.mixture.log_scales[1].exp()
    for d in range(3):  # independent standard normal coordinates after the exact inverse
        assert stats.kstest(u[:, d].detach().numpy(), "norm").pvalue > 1e-3
    wrong = (z - model.mixture.means[0]) / model.mixture.log_scales[0].exp()
    assert min(stats.kstest(wrong[:, d].detach().numpy(), "norm").pvalue for d in range(3)) < 1e-6


def test_spread_means_are_equidistant():
    means = spread_means(10, 64, 5.0)
    dist = torch.cdist(means, means)
    off = dist[~torch.eye(10, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, 5.0))
    few = spread_means(5, 3, 2.0, torch.Generator().manual_seed(0))  # fewer dimensions than classes
    torch.testing.assert_close(few.norm(dim=1), torch.full((5,), 2.0 / math.sqrt(2)))


def test_bad_input_is_named():
    model = _model()
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"LatentMixtureINN.log_prob: class labels y must lie in 0..3"):
        model.log_prob(x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"must lie in 0..3"):
        model.sample(3, -1)
    with pytest.raises(ValueError, match=r"expected x of shape \(\*, 3\)"):
        model.class_log_posterior(torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="integer class labels"):
        model.log_prob(x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="needs classes >= 2"):
        LatentMixtureINN(vector_inn(3, blocks=1), 1)
