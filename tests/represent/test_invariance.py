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
    IResNetClassifier,
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
        assert result.accuracy > 0.95 and result.knn_accuracy > 0.95
    else:
        assert result.accuracy < 0.65 and result.knn_accuracy < 0.65  # chance is about 0.5
    assert result.best == max(result.accuracy, result.knn_accuracy)
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


@pytest.mark.parametrize("make", [IRevNetClassifier, IResNetClassifier])
def test_flow_likelihood_is_the_inputs_negative_log_likelihood_per_dimension(make):
    """likelihood='flow': -(log N(z_s; mu_y, I) + log N(z_n; 0, I) + log|det dPhi/dx|) / D, against
    torch.distributions and the brute-force autograd Jacobian in float64; the class means learn."""
    kw = {"coeff": 0.8} if make is IResNetClassifier else {}
    model = perturbed(make((6,), 3, logit_features=2, stages=(2,), hidden=4, seed=0, **kw), scale=0.05).double()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 6, generator=gen, dtype=torch.float64), torch.randint(3, (8,), generator=gen)
    model.eval()   # the exact log-det of every block, no stochastic estimate
    ice = IndependenceCrossEntropy(3, 4, hidden=(8,), weight=0.0, likelihood_weight=1.0, likelihood="flow",
                                   logit_features=2).double()
    with torch.no_grad():
        ice.class_means.copy_(torch.randn(3, 2, generator=gen, dtype=torch.float64))
    total, terms = ice(model, x, y)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    expected = []
    for i in range(len(x)):
        z = model.features(x[i:i + 1])[0].detach()
        jac = torch.autograd.functional.jacobian(lambda v: model.features(v[None])[0], x[i])
        log_p = (normal.log_prob(z[:2] - ice.class_means[y[i]].detach()).sum() + normal.log_prob(z[2:]).sum()
                 + torch.linalg.slogdet(jac)[1])
        expected.append(-log_p / 6)
    torch.testing.assert_close(terms["likelihood"], torch.stack(expected).mean())
    torch.testing.assert_close(total, terms["semantic"] + terms["nuisance"] + terms["likelihood"])
    total.backward()
    assert float(ice.class_means.grad.abs().sum()) > 0


def test_flow_likelihood_bad_input():
    with pytest.raises(ValueError, match=r"likelihood must be 'nuisance' or 'flow', got 'joint'"):
        IndependenceCrossEntropy(3, 3, likelihood="joint")
    with pytest.raises(ValueError, match=r"likelihood='flow' needs logit_features"):
        IndependenceCrossEntropy(3, 3, likelihood="flow")
    model, x, y = _model_and_batch()
    with pytest.raises(ValueError, match=r"built for a logit subspace of 2 features, the model has 3"):
        IndependenceCrossEntropy(3, 3, likelihood="flow", logit_features=2).double()(model, x, y)
    padded = IResNetClassifier((1, 4, 4), 3, logit_features=3, stages=(1,), hidden=4, injective_padding=1,
                               squeeze=False).double()
    with pytest.raises(ValueError, match=r"IResNetClassifier.features_and_log_det: needs a bijective model; "
                                         r"this one pads its inputs"):
        IndependenceCrossEntropy(3, 29, likelihood="flow", logit_features=3).double()(
            padded, torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long))


def test_knn_probe_matches_scikit_learn_and_reads_what_an_untrained_mlp_misses():
    """knn_predict against scikit-learn's KNeighborsClassifier; on classes that differ only in local structure
    (interleaved stripes with equal means), an MLP probe given one epoch stays near chance, the vote does not."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    from innverse.represent.training import knn_predict

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 3, generator=gen, dtype=torch.float64), torch.randint(4, (300,), generator=gen)
    q = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    ref = neighbors.KNeighborsClassifier(7).fit(x.numpy(), y.numpy()).predict(q.numpy())
    ours = knn_predict(x, y, q, 7)
    assert float((ours == torch.from_numpy(ref)).double().mean()) > 0.97  # ties may break differently
    # stripes: the class is the parity of floor(4 * x0); class means are equal, neighbours agree
    def stripes(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        f = torch.rand(n, 2, generator=g) * 2 - 1
        return f, (torch.floor(4 * f[:, 0]).long() % 2)
    model = InvertibleClassifier(RandomPermutation(3, permutation=[2, 0, 1]), 2, logit_features=1)
    (a, ya), (b, yb) = stripes(2000, 1), stripes(500, 2)
    train = (torch.cat([a, torch.zeros(2000, 1)], 1), ya)
    test = (torch.cat([b, torch.zeros(500, 1)], 1), yb)
    result = probe_nuisance(model, train, test, hidden=(4,), training={"epochs": 1, "batch_size": 1000, "lr": 1e-4})
    assert result.accuracy < 0.7 and result.knn_accuracy > 0.9 and result.best == result.knn_accuracy
    with pytest.raises(ValueError, match=r"neighbours must be an int >= 1, got 0"):
        probe_nuisance(model, train, test, neighbours=0)
