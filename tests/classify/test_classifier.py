"""IBINNClassifier: the scikit-learn-style interface on vectors and images, and clear errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch

from innverse.classify import (
    IBINNClassifier,
    class_likelihood_score,
    image_inn,
    negative_log_likelihood,
    vector_inn,
)
from innverse.tasks.classify import load_digits_images

TINY = {"epochs": 3, "batch_size": 32, "lr": 1e-3, "ema": None}


def _blobs(n: int = 300, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    return torch.randn(n, 4, generator=gen) + 3 * torch.nn.functional.one_hot(y, 4)[:, :4].float(), y


def test_fits_vectors_and_answers_every_query():
    x, y = _blobs()
    clf = IBINNClassifier(10.0, inn=lambda s: vector_inn(4, blocks=2, hidden=(16,)),
                          training={"epochs": 20, "batch_size": 32, "lr": 3e-3, "ema": None}).fit(x, y)
    assert clf.score(x, y) > 0.9
    proba = clf.predict_proba(x[:5])
    assert proba.shape == (5, 3)
    torch.testing.assert_close(proba.sum(1), torch.ones(5))
    torch.testing.assert_close(clf.predict(x[:5]), proba.argmax(1))
    ll = clf.class_log_likelihood(x[:5])
    torch.testing.assert_close(clf.log_prob(x[:5]), torch.logsumexp(ll + math.log(1 / 3), 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clf.log_prob(x[:5], 1), ll[:, 1])
    torch.testing.assert_close(clf.log_prob(x[:3], torch.tensor([2, 0, 1])), ll[torch.arange(3), torch.tensor([2, 0, 1])])
    assert clf.sample(4, 2).shape == (4, 4) and clf.sample(4, [0, 1]).shape == (4, 2, 4)
    torch.testing.assert_close(negative_log_likelihood(clf, x[:5]).float(), -clf.log_prob(x[:5]))
    torch.testing.assert_close(class_likelihood_score(clf, x[:5]), -ll.max(1).values)
    records = clf.history_.records
    assert {"L_X", "L_Y", "accuracy", "val_loss"} <= set(records[0])


def test_fits_images_with_a_conv_inn():
    x, y = load_digits_images([0, 1])                           # real 8x8 images, grey levels 0..16
    clf = IBINNClassifier(10.0, inn=lambda s: image_inn(s, scales=2, blocks_per_scale=1, hidden_channels=8,
                                                        dense_blocks=1, dense_hidden=(16,)),
                          dequantize=1.0, training={"epochs": 8, "batch_size": 32, "lr": 3e-3, "ema": None})
    clf.fit(x[:160], y[:160])
    assert clf.score(x[200:], y[200:]) > 0.9
    assert clf.sample(3, 0).shape == (3, 1, 8, 8)
    assert 0 < clf.bits_per_dim(x[:20]) < 10
    with pytest.raises(ValueError, match=r"IBINNClassifier.predict_proba: expected X of shape \(N, 1, 8, 8\) as in "
                                         r"training, got shape \(2, 1, 7, 8\)"):
        clf.predict_proba(torch.zeros(2, 1, 7, 8))


def test_bad_input_is_named():
    x, y = _blobs(30)
    clf = IBINNClassifier(inn=lambda s: vector_inn(4, blocks=1, hidden=(8,)), training=TINY)
    with pytest.raises(ValueError, match=r"IBINNClassifier.fit: class labels y must be >= 0, got -1"):
        clf.fit(x, torch.where(y == 2, -1, y))
    with pytest.raises(ValueError, match=r"class labels y must lie in 0..1"):
        IBINNClassifier(classes=2, training=TINY).fit(x, y)
    with pytest.raises(ValueError, match="needs examples of at least 2 classes, got only class 0"):
        clf.fit(x, torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match="X and y need the same number of rows, got 30 and 29"):
        clf.fit(x, y[:29])
    with pytest.raises(ValueError, match=r"classes \[1\] of 0..2 have no example"):
        clf.fit(x, y * (y != 1) + 0 * y)
    with pytest.raises(TypeError, match="integer class labels"):
        clf.fit(x, y.float() + 0.5)
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        clf.fit(torch.full((30, 4), math.nan), y)
    with pytest.raises(RuntimeError, match=r"IBINNClassifier.predict_proba: call fit\(X, y\) first"):
        clf.predict_proba(x)
    clf.fit(x, y)
    with pytest.raises(ValueError, match=r"expected X of shape \(N, 4\) as in training, got shape \(3, 5\)"):
        clf.predict(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"must lie in 0..2"):
        clf.sample(2, 3)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        IBINNClassifier(validation_fraction=1.0)
