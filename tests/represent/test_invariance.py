"""Metameric sampling, the independence cross-entropy and the nuisance probe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from innverse.blocks import RandomPermutation
from innverse.represent import (
    IndependenceCrossEntropy,
    InvertibleClassifier,
    IRevNetClassifier,
    metamers,
    probe_nuisance,
    train_classifier,
)
from innverse.train import TrainConfig

from .test_classifiers import perturbed


def _pairs(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return (torch.rand(n, 1, 8, 8, generator=gen, dtype=torch.float64),
            torch.rand(n, 1, 8, 8, generator=gen, dtype=torch.float64))


def test_metamers_keep_the_logits_of_the_first_and_the_nuisance_of_the_second():
    model = perturbed(IRevNetClassifier((1, 8, 8), 10, stages=(1, 1, 1), hidden=8)).double().eval()
    a, b = _pairs()
    result = metamers(model, a, b)
    assert result.metamers.shape == a.shape
    assert result.logit_gap < 1e-10
    torch.testing.assert_close(result.logits_metamer, model(a), rtol=0, atol=1e-10)
    with torch.no_grad():
        z_met, z_a, z_b = model.features(result.metamers), model.features(a), model.features(b)
    torch.testing.assert_close(z_met[:, :10], z_a[:, :10], rtol=0, atol=1e-10)
    torch.testing.assert_close(z_met[:, 10:], z_b[:, 10:], rtol=0, atol=1e-10)
    # a metamer is a new input: neither of its sources
    assert bool((result.distance_to_a > 1e-3).all()) and bool((result.distance_to_b > 1e-3).all())
    # swapping nothing returns the input itself
    same = metamers(model, a, a)
    torch.testing.assert_close(same.metamers, a, rtol=0, atol=1e-10)


def test_metamers_reject_other_models_and_mismatched_pairs():
    a, b = _pairs()
    with pytest.raises(TypeError, match="metamers: expected an InvertibleClassifier"):
        metamers(torch.nn.Linear(2, 2), a, b)  # type: ignore[arg-type]
    model = IRevNetClassifier((1, 8, 8), 10, hidden=4).double()
    with pytest.raises(ValueError, match="metamers: logit_source and nuisance_source must have the same shape"):
        metamers(model, a, b[:3])


def _model_and_batch(seed: int = 0):
    model = perturbed(IRevNetClassifier((6,), 3, logit_features=3, stages=(2,), hidden=4, seed=seed)).double()
    gen = torch.Generator().manual_seed(seed)
    return model, torch.randn(32, 6, generator=gen, dtype=torch.float64), torch.randint(3, (32,), generator=gen)


def test_independence_cross_entropy_terms_and_gradient_routing():
    model, x, y = _model_and_batch()
    ice = IndependenceCrossEntropy(3, 3, hidden=(8,), weight=0.7, likelihood_weight=0.2, cap=False).double()
    total, terms = ice(model, x, y)
    z = model.features(x)
    z_n = z[:, 3:]
    semantic = F.cross_entropy(model.head(z), y)
    nuisance = F.cross_entropy(ice.nuisance_classifier(z_n), y)
    likelihood = 0.5 * z_n.square().mean()
    torch.testing.assert_close(terms["semantic"], semantic)
    torch.testing.assert_close(terms["nuisance"], nuisance)
    torch.testing.assert_close(total, semantic + nuisance - 0.7 * nuisance + 0.2 * likelihood)
    # the nuisance classifier minimises its cross-entropy only; the network sees -weight * (its cross-entropy)
    total.backward()
    grads_d = [p.grad.clone() for p in ice.nuisance_classifier.parameters()]
    grads_m = [p.grad.clone() for p in model.parameters()]
    ice.zero_grad()
    model.zero_grad()
    F.cross_entropy(ice.nuisance_classifier(model.features(x).detach()[:, 3:]), y).backward()
    for g, p in zip(grads_d, ice.nuisance_classifier.parameters()):
        torch.testing.assert_close(g, p.grad)
    model.zero_grad()
    z = model.features(x)
    frozen = {k: v.detach() for k, v in ice.nuisance_classifier.named_parameters()}
    adversarial = F.cross_entropy(torch.func.functional_call(ice.nuisance_classifier, frozen, (z[:, 3:],)), y)
    (F.cross_entropy(model.head(z), y) - 0.7 * adversarial + 0.2 * 0.5 * z[:, 3:].square().mean()).backward()
    for g, p in zip(grads_m, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_the_cap_stops_the_network_beyond_chance_level():
    model, x, y = _model_and_batch(1)
    ice = IndependenceCrossEntropy(3, 3, hidden=(8,), weight=1.0, likelihood_weight=0.0, cap=True).double()
    with torch.no_grad():  # a confidently wrong nuisance classifier: cross-entropy far above log 3
        last = ice.nuisance_classifier[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([50.0, -50.0, -50.0], dtype=torch.float64))
    y = torch.full_like(y, 2)
    total, terms = ice(model, x, y)
    assert float(terms["nuisance"].detach()) > math.log(3)
    torch.testing.assert_close(total, terms["semantic"] + terms["nuisance"] - math.log(3))
    model.zero_grad()
    total.backward()
    only_semantic = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for g, p in zip(only_semantic, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_independence_cross_entropy_checks_sizes():
    model, x, y = _model_and_batch()
    with pytest.raises(ValueError, match="built for a nuisance of 4 features, the model has 3"):
        IndependenceCrossEntropy(3, 4).double()(model, x, y)
    with pytest.raises(ValueError, match="weight and likelihood_weight must be >= 0"):
        IndependenceCrossEntropy(3, 3, weight=-1.0)


def _known_representation_data(n: int, seed: int):
    """Class information in feature 0 only; a permutation body moves feature 0 to the nuisance or to the logits."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=gen)
    x = torch.randn(n, 4, generator=gen)
    x[:, 0] = 3.0 * (2 * y - 1) + 0.5 * torch.randn(n, generator=gen)
    return x, y


@pytest.mark.parametrize("permutation,expect_information", [([1, 2, 3, 0], True), ([0, 1, 2, 3], False)])
def test_probe_reads_class_information_exactly_where_it_is(permutation, expect_information):
    # z = x[permutation]; logit subspace = z[:, :1]. With [1, 2, 3, 0] feature 0 lands in the nuisance.
    model = InvertibleClassifier(RandomPermutation(4, permutation=permutation), 2, logit_features=1)
    train, test = _known_representation_data(400, 0), _known_representation_data(300, 1)
    result = probe_nuisance(model, train, test, hidden=(16,), training={"epochs": 15, "batch_size": 100, "lr": 5e-3})
    assert result.part == "nuisance" and result.features == 3
    assert abs(result.chance - float((test[1] == int(torch.bincount(train[1]).argmax())).double().mean())) < 1e-12
    if expect_information:
        assert result.accuracy > 0.95
    else:
        assert result.accuracy < 0.65  # chance is about 0.5
    logit = probe_nuisance(model, train, test, part="logit", hidden=(16,),
                           training={"epochs": 15, "batch_size": 100, "lr": 5e-3})
    assert (logit.accuracy > 0.95) != expect_information


def test_training_with_the_independence_objective_logs_its_terms():
    model, _, _ = _model_and_batch()
    model = model.float()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 6, generator=gen), torch.randint(3, (120,), generator=gen)
    ice = IndependenceCrossEntropy(3, 3, hidden=(8,))
    history = train_classifier(model, x, y, validation=(x[:30], y[:30]), independence=ice,
                               training=TrainConfig(epochs=2, batch_size=40))
    assert {"semantic", "nuisance", "likelihood"} <= set(history.records[-1])
    assert all(p.grad is not None for p in ice.parameters())
