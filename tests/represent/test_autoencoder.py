"""INN autoencoders: the bottleneck constraint, the loss terms, the same-size baseline, bad input."""

from __future__ import annotations

import pytest
import torch

from innverse.represent import (
    ConventionalAutoencoder,
    INNAutoencoder,
    parameter_count,
    reconstruction_error,
    train_autoencoder,
)
from innverse.train import TrainConfig

from .test_classifiers import perturbed


def _x(n: int = 8, shape=(1, 4, 4), seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@torch.no_grad()
def test_decoding_is_inversion_of_the_bottleneck_with_the_rest_set_to_zero():
    model = perturbed(INNAutoencoder((1, 4, 4), 3, blocks=2, hidden=(16,))).double()
    code = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    decoded = model.decode(code)
    assert decoded.shape == (5, 1, 4, 4)
    z = model.inn(decoded)[0]
    torch.testing.assert_close(z[:, :3], code, rtol=0, atol=1e-10)      # encode(decode(c)) = c
    assert float(z[:, 3:].abs().max()) < 1e-10                         # the discarded part is zero
    x = _x()
    torch.testing.assert_close(model.reconstruct(x), model.decode(model.encode(x)))
    # an input whose discarded part is zero is reconstructed exactly; any other is not
    assert float((model.reconstruct(decoded) - decoded).abs().max()) < 1e-10
    assert float((model.reconstruct(x) - x).abs().max()) > 1e-3


def test_loss_terms():
    model = perturbed(INNAutoencoder(6, 2, blocks=2, hidden=(16,))).double()
    x = _x(10, (6,))
    total, terms = model.loss(x)
    z = model.inn(x)[0]
    x_hat = model.inn.inverse(torch.cat([z[:, :2], torch.zeros(10, 4, dtype=torch.float64)], 1))[0]
    torch.testing.assert_close(terms["reconstruction"], (x_hat - x).square().mean())
    torch.testing.assert_close(terms["latent"], z[:, 2:].square().mean())
    torch.testing.assert_close(total, terms["reconstruction"] + terms["latent"])
    assert abs(reconstruction_error(model, x) - float(terms["reconstruction"].detach())) < 1e-12


def test_variational_kl_term_is_the_gaussian_kl():
    model = perturbed(INNAutoencoder(6, 3, blocks=2, hidden=(16,), variational=True, kl_weight=0.5)).double()
    x = _x(10, (6,))
    total, terms = model.loss(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu = model.encode(x)
        q = torch.distributions.Normal(mu, model.log_sigma.exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean() / 6
    torch.testing.assert_close(terms["kl"].detach(), kl)
    torch.testing.assert_close(total, terms["reconstruction"] + terms["latent"] + 0.5 * terms["kl"])
    # the noise enters the decoded code: a different generator gives a different reconstruction term
    _, other = model.loss(x, torch.Generator().manual_seed(1))
    assert float((other["reconstruction"] - terms["reconstruction"]).abs().detach()) > 0


def test_same_size_conventional_autoencoder():
    inn = INNAutoencoder((1, 8, 8), 4, blocks=4, hidden=(64, 64))
    target = parameter_count(inn)
    conv = ConventionalAutoencoder.same_size((1, 8, 8), 4, target)
    assert abs(parameter_count(conv) - target) / target < 0.02
    x = _x(3, (1, 8, 8)).float()
    assert conv.encode(x).shape == (3, 4) and conv.reconstruct(x).shape == x.shape


def test_training_reduces_the_reconstruction_error_of_data_on_a_plane():
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6, generator=gen))[0][:, :2]
    x = torch.randn(512, 2, generator=gen) @ basis.T
    model = INNAutoencoder(6, 2, blocks=3, hidden=(32,), seed=0)
    before = reconstruction_error(model, x)
    history = train_autoencoder(model, x, training=TrainConfig(epochs=12, batch_size=64, lr=3e-3))
    assert "latent" in history.records[-1]
    assert reconstruction_error(model, x) < 0.2 * before


def test_bad_bottlenecks_and_inputs():
    with pytest.raises(ValueError, match=r"INNAutoencoder: the bottleneck must be an int in 1..16 .*got bottleneck=17"):
        INNAutoencoder((1, 4, 4), 17)
    with pytest.raises(ValueError, match=r"ConventionalAutoencoder: the bottleneck must be an int in 1..6"):
        ConventionalAutoencoder(6, 0)
    with pytest.raises(ValueError, match=r"bottleneck"):
        INNAutoencoder(6, 2.5)  # type: ignore[arg-type]
    model = INNAutoencoder(6, 2, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match=r"INNAutoencoder.decode: expected code of shape \(N, 2\)"):
        model.decode(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"train_autoencoder: expected x of shape \(N, 6\)"):
        train_autoencoder(model, torch.zeros(10, 5))
