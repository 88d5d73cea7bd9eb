"""The IB loss: its terms against independent formulas, the beta limits, and what training at each limit gives."""

from __future__ import annotations

import math

import pytest
import torch

from innverse.classify import IBINNClassifier, IBLoss, LatentMixtureINN, vector_inn


def _model(classes: int = 3, learn_weights: bool = False) -> LatentMixtureINN:
    torch.manual_seed(0)
    model = LatentMixtureINN(vector_inn(4, blocks=2, hidden=(16,)), classes, mean_distance=2.0,
                             learn_weights=learn_weights).double()
    with torch.no_grad():
        for p in model.flow.transform.parameters():
            p.add_(0.2 * torch.randn(p.shape, dtype=p.dtype))
    return model


def _batch(n: int = 64, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=gen, dtype=torch.float64), torch.randint(classes, (n,), generator=gen)


def test_terms_match_their_definitions():
    model, (x, y) = _model(), _batch()
    t = IBLoss(beta=1.0, label_smoothing=0.1).terms(model, x, y)
    torch.testing.assert_close(t["L_X"], -model.log_prob(x).mean() / 4)
    # uniform class weights: L_Y = log K - cross-entropy with the same label smoothing
    logits = model.class_log_posterior(x)
    ce = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    torch.testing.assert_close(t["L_Y"], math.log(3) - ce)
    torch.testing.assert_close(t["loss"], t["L_X"] - t["L_Y"])  # beta = 1: weights 1 and 1


@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 10.0, 1e6, math.inf])
def test_weights_sum_to_two_and_reach_the_limits(beta):
    model, (x, y) = _model(), _batch()
    t = IBLoss(beta=beta).terms(model, x, y)
    w_x, w_y = IBLoss(beta=beta).weights
    assert w_x + w_y == pytest.approx(2.0)
    torch.testing.assert_close(t["loss"], w_x * t["L_X"] - w_y * t["L_Y"])
    if beta == 0.0:
        torch.testing.assert_close(t["loss"], 2 * t["L_X"])        # pure density model
    if beta >= 1e6:
        torch.testing.assert_close(t["loss"], -2 * t["L_Y"], rtol=1e-5, atol=1e-5)  # pure classifier


def test_beta_zero_ignores_labels_and_infinite_beta_ignores_the_jacobian():
    model, (x, y) = _model(), _batch()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(2))]
    zero = IBLoss(beta=0.0)
    torch.testing.assert_close(zero.terms(model, x, y)["loss"], zero.terms(model, x, shuffled)["loss"])
    # beta = inf: the loss depends on f(x) only through the latent distances, not on log|det J|
    inf = IBLoss(beta=math.inf)
    params = list(model.flow.transform.parameters())
    grads = torch.autograd.grad(inf.terms(model, x, y)["loss"], params, allow_unused=True)
    z = model.latent(x)[0]
    ce = torch.nn.functional.cross_entropy(model.mixture.component_log_prob(z), y) * 2
    expected = torch.autograd.grad(ce, params, allow_unused=True)
    for g, e in zip(grads, expected):
        if e is not None:
            torch.testing.assert_close(g, e)


def test_noise_and_dequantisation_perturb_as_stated():
    x = torch.zeros(20000, 2, dtype=torch.float64)
    u = IBLoss(dequantize=2.0).perturb(x, torch.Generator().manual_seed(0))
    assert float(u.min()) >= 0 and float(u.max()) < 2
    assert float(u.mean()) == pytest.approx(1.0, abs=0.02)
    g = IBLoss(noise=0.5).perturb(x, torch.Generator().manual_seed(0))
    assert float(g.std()) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="IBLoss: beta must be a number >= 0"):
        IBLoss(beta=-1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        IBLoss(label_smoothing=1.0)


def _overlapping_classes(n: int = 900) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(3, (n,), generator=gen)
    centres = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
    x = centres[y] + torch.randn(n, 2, generator=gen) * torch.tensor([0.6, 0.6])
    x = torch.cat([x, torch.sin(2 * x)], 1)  # 4 features on a curved 2-D manifold: a real density to learn
    return x, y


def test_small_beta_fits_the_density_and_large_beta_the_labels():
    x, y = _overlapping_classes()
    xt, yt = x[:600], y[:600]
    training = {"epochs": 25, "batch_size": 64, "lr": 2e-3, "ema": None}
    inn = lambda s: vector_inn(4, blocks=3, hidden=(32,))  # noqa: E731
    small = IBINNClassifier(0.01, inn=inn, training=training, validation_fraction=0.0).fit(xt, yt)
    large = IBINNClassifier(100.0, inn=inn, training=training, validation_fraction=0.0).fit(xt, yt)
    xv, yv = x[600:], y[600:]
    nll = {m: float(-clf.log_prob(xv).mean()) for m, clf in (("small", small), ("large", large))}
    ce = {m: float(torch.nn.functional.nll_loss(clf.predict_log_proba(xv), yv))
          for m, clf in (("small", small), ("large", large))}
    assert nll["small"] < nll["large"] - 0.5, nll   # beta -> 0: the better density model
    assert ce["large"] < ce["small"] - 0.05, ce     # beta -> inf: the better classifier
