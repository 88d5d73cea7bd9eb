"""Invertible classifiers: exact reconstruction from the last hidden layer, the logit subspace, training, bad input."""

from __future__ import annotations

import pytest
import torch

from innverse.blocks import FixedPointSolver
from innverse.blocks.revnet import IRevNetBlock
from innverse.represent import (
    InvertibleClassifier,
    IResNetClassifier,
    IRevNetClassifier,
    irevnet_body,
    metamers,
    train_classifier,
)
from innverse.train import TrainConfig


def perturbed(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Random parameter offsets so that zero-initialised layers are not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _images(n: int, shape=(1, 8, 8), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 4), (6,)])
@torch.no_grad()
def test_irevnet_reconstructs_its_input_from_the_last_hidden_layer_to_round_off(shape):
    model = perturbed(IRevNetClassifier(shape, 3, stages=(1, 2) if len(shape) == 3 else (3,), hidden=8)).double()
    x = _images(5, shape)
    z = model.features(x)
    assert z.shape == (5, x[0].numel())
    assert (z - x.flatten(1)).abs().max() > 1e-3  # the perturbed body is not a permutation
    x_rec = model.invert(z)
    assert x_rec.shape == x.shape
    assert float((x_rec - x).norm() / x.norm()) < 1e-12
    assert model.exact_inverse and model.fixed_point_reports() == []


@torch.no_grad()
def test_iresnet_reconstructs_within_its_fixed_point_tolerance_and_reports_iterations():
    solver = FixedPointSolver(tolerance=1e-10)
    model = perturbed(IResNetClassifier((1, 8, 8), 4, stages=(1, 1), hidden=8, coeff=0.8, solver=solver), scale=0.05)
    model = model.double()
    model.train()
    model(_images(16))  # ActNorm data initialisation
    model.eval()
    x = _images(6, seed=2)
    x_rec = model.invert(model.features(x))
    reports = model.fixed_point_reports()
    assert len(reports) == 2 and all(r.converged and r.iterations >= 2 for r in reports)
    bound = sum(r.error_bound for r in reports)  # crude: each block's error, before later ones amplify it
    assert float((x_rec - x).norm() / x.norm()) < 1e-8
    assert float((x_rec - x).flatten(1).norm(dim=1).max()) < 10 * bound + 1e-12
    assert not model.exact_inverse
    # a looser tolerance costs fewer iterations and a larger, still bounded error
    for block in model.body.modules():
        if hasattr(block, "solver"):
            block.solver = FixedPointSolver(tolerance=1e-4)
    x_loose = model.invert(model.features(x))
    assert sum(r.iterations for r in model.fixed_point_reports()) < sum(r.iterations for r in reports)
    assert 1e-8 < float((x_loose - x).norm() / x.norm()) < 1e-2


@torch.no_grad()
def test_logits_depend_only_on_the_logit_subspace():
    model = perturbed(IRevNetClassifier((1, 4, 4), 3, logit_features=5, stages=(1, 1), hidden=4)).double()
    z = model.features(_images(4, (1, 4, 4)))
    z_s, z_n = model.split(z)
    assert z_s.shape == (4, 5) and z_n.shape == (4, 11)
    other = model.merge(z_s, torch.randn(4, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(model.head(other), model.head(z), rtol=0, atol=0)
    changed = model.merge(z_s + 0.1, z_n)
    assert (model.head(changed) - model.head(z)).abs().max() > 1e-4
    expected = z_s @ model.projection.weight.T + model.projection.bias
    torch.testing.assert_close(model.head(z), expected)
    torch.testing.assert_close(model(_images(4, (1, 4, 4))), expected)


def test_training_separates_two_blobs():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(2, (400,), generator=gen)
    x = torch.randn(400, 4, generator=gen) + 2.0 * (2 * y[:, None] - 1) * torch.tensor([1.0, -1.0, 0.0, 0.0])
    model = IRevNetClassifier((4,), 2, stages=(2,), hidden=4, seed=0)
    history = train_classifier(model, x[:300], y[:300], validation=(x[300:], y[300:]),
                               training=TrainConfig(epochs=15, batch_size=50, lr=3e-3))
    assert history.records[-1]["semantic"] < history.records[0]["semantic"]
    assert float((model.predict(x[300:]) == y[300:]).double().mean()) > 0.9


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match=r"logit_features <= 64.*got logit_features=65"):
        IRevNetClassifier((1, 8, 8), 10, logit_features=65)
    with pytest.raises(ValueError, match=r"logit_features"):
        IResNetClassifier((4,), 3, logit_features=0)
    with pytest.raises(ValueError, match=r"IRevNetClassifier.*divisible by 8.*\(1, 7, 7\)"):
        IRevNetClassifier((1, 7, 7), 10)
    with pytest.raises(ValueError, match=r"IResNetClassifier.*divisible by 8.*\(1, 12, 12\)"):
        IResNetClassifier((1, 12, 12), 10, stages=(1, 1, 1))
    with pytest.raises(ValueError, match=r"IRevNetBlock: stride 2 halves height and width.*\(2, 5, 4\)"):
        IRevNetBlock((2, 5, 4), stride=2)
    with pytest.raises(ValueError, match=r"IRevNetBlock: needs at least 2"):
        IRevNetBlock((1, 4, 4))
    with pytest.raises(ValueError, match=r"stride 2 downsamples images"):
        IRevNetBlock(4, stride=2)
    with pytest.raises(ValueError, match=r"classes must be an int >= 2"):
        InvertibleClassifier(irevnet_body((4,), (1,), 4), 1)
    with pytest.raises(ValueError, match=r"coeff must be in \(0, 1\)"):
        IResNetClassifier((4,), 2, coeff=1.0)
    model = IRevNetClassifier((1, 8, 8), 10, hidden=4)
    with pytest.raises(ValueError, match=r"IRevNetClassifier.features: expected inputs of shape \(batch, 1, 8, 8\)"):
        model.features(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r"IRevNetClassifier.invert: expected features of shape \(batch, 64\)"):
        model.invert(torch.zeros(2, 63))
    with pytest.raises(ValueError, match=r"train_classifier: labels must lie in 0..9"):
        train_classifier(model, torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 10]))


@pytest.mark.parametrize("make", [IRevNetClassifier, IResNetClassifier])
@torch.no_grad()
def test_pooled_logit_subspace_is_the_global_average_of_the_last_stage(make):
    """pool=True: the first coordinates are 2^m x each channel's spatial mean (m Haar transforms), checked against
    the mean of the last stage's output computed without the tail; the body stays invertible."""
    model = perturbed(make((1, 16, 16), 4, stages=(1, 1), hidden=4, pool=True, seed=0)).double().eval()
    blocks = list(model.body)
    haar = sum(type(b).__name__ == "HaarDownsample" for b in blocks)
    assert haar == 2   # (1, 16, 16) -> squeeze (4, 8, 8) -> stage 2 (16, 4, 4) -> two Haar transforms -> 1x1
    x = _images(5, (1, 16, 16))
    h = x
    for block in blocks[:-1 - haar]:
        h = block(h, log_det=False)[0]
    assert model.logit_features == h.shape[1] == 16
    z = model.features(x)
    torch.testing.assert_close(z[:, :16], 2**haar * h.mean((2, 3)))
    torch.testing.assert_close(model.invert(z), x, atol=1e-9, rtol=0)


def test_pooling_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"IResNetClassifier: pool=True needs images"):
        IResNetClassifier((6,), 3, pool=True)
    with pytest.raises(ValueError, match=r"IRevNetClassifier: pool=True needs a square last stage whose size is a "
                                          r"power of two.*got a last stage of 64 x 3 x 3"):
        IRevNetClassifier((1, 24, 24), 3, hidden=4, pool=True)


@pytest.mark.parametrize("shape", [(1, 8, 8), (5,)])
@torch.no_grad()
def test_injective_padding_appends_zeros_and_inverts_to_the_unpadded_input(shape):
    """injective_padding=k: features(x) = Phi([x, 0]); invert drops the padding, and the padding of Phi^{-1}(z) is 0
    for a representation of a real input but not for one off the data (so metamers are refused)."""
    solver = FixedPointSolver(tolerance=1e-11)
    stages = (1, 1) if len(shape) == 3 else (2,)
    model = perturbed(IResNetClassifier(shape, 3, stages=stages, hidden=4, coeff=0.8, injective_padding=3,
                                        squeeze=False, solver=solver), scale=0.05).double()
    model.train()
    model(_images(16, shape))
    model.eval()
    padded = (shape[0] + 3, *shape[1:])
    assert model.input_shape == shape and model.body.event_shape == padded and not model.bijective
    assert model.representation_size == torch.Size(padded).numel()
    x = _images(4, shape, seed=3)
    z = model.features(x)
    torch.testing.assert_close(z, model.body(torch.cat([x, torch.zeros(4, 3, *shape[1:], dtype=x.dtype)], 1),
                                             log_det=False)[0])
    assert float((model.invert(z) - x).norm() / x.norm()) < 1e-9
    full = model.body.inverse(z, log_det=False)[0]
    assert float(full[:, shape[0]:].abs().max()) < 1e-6   # fixed-point tolerance, amplified by later blocks
    off = z + 0.1 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0), dtype=z.dtype)
    assert float(model.body.inverse(off, log_det=False)[0][:, shape[0]:].abs().max()) > 1e-3
    with pytest.raises(ValueError, match=r"metamers: IResNetClassifier pads its inputs with 3 zero channels"):
        metamers(model, x, x.flip(0))
    if len(shape) == 3:   # without the initial squeeze the first stage works at full resolution
        first = next(iter(model.body))
        assert type(first).__name__ == "ActNorm" and first.event_shape == padded


def test_injective_padding_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"IResNetClassifier: injective_padding must be an int >= 0, got -1"):
        IResNetClassifier((1, 8, 8), 3, injective_padding=-1)
    with pytest.raises(ValueError, match=r"IResNetClassifier.*divisible by 4.*\(1, 6, 6\)"):
        IResNetClassifier((1, 6, 6), 3, stages=(1, 1, 1), squeeze=False)
    with pytest.raises(ValueError, match=r"padding must be an int in \[0, 4\).*got 4"):
        InvertibleClassifier(irevnet_body((4,), (1,), 4), 2, padding=4)
