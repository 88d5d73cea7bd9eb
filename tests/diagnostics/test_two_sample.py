"""C2ST and MMD against ground truth: chance level, Bayes-optimal accuracy, analytic MMD, null p-values."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.diagnostics import ClassifierOptions, c2st, gaussian_kernel, median_bandwidth, mmd, mmd_test


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- C2ST ---------------------------------------------------------------------------------------
def test_c2st_identical_distributions_is_chance():
    g = _gen(0)
    a, b = torch.randn(600, 2, generator=g), torch.randn(600, 2, generator=g)
    assert abs(c2st(a, b) - 0.5) < 0.05


def test_c2st_disjoint_distributions_is_one():
    g = _gen(1)
    a = torch.randn(300, 3, generator=g)
    assert c2st(a, a + 12.0) > 0.99


def test_c2st_matches_bayes_optimal_accuracy():
    # N(0, I) vs N(mu, I): the best classifier's accuracy is Phi(|mu| / 2).
    g = _gen(2)
    mu = torch.tensor([1.0, 1.0])
    a, b = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g) + mu
    bayes = stats.norm.cdf(float(mu.norm()) / 2)
    assert abs(c2st(a, b) - bayes) < 0.035


def test_c2st_accepts_numpy_and_unequal_sizes():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(700, 2))
    # balanced accuracy: the majority class gives no advantage with unequal sizes.
    assert abs(c2st(a, b) - 0.5) < 0.06


def test_c2st_is_deterministic_given_seed():
    g = _gen(4)
    a, b = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 0.5
    assert c2st(a, b, seed=7) == c2st(a, b, seed=7)


def test_c2st_agrees_with_scikit_learn_reference():
    pytest.importorskip("sklearn")
    g = _gen(5)
    a = torch.randn(500, 2, generator=g)
    b = torch.randn(500, 2, generator=g) * torch.tensor([1.0, 2.0]) + torch.tensor([0.5, 0.0])
    ours, ref = c2st(a, b), c2st(a, b, backend="sklearn")
    assert 0.6 < ref < 0.9
    assert abs(ours - ref) < 0.04


def test_c2st_sbibm_backend_is_sbibms_metric():
    """backend="sbibm" is sbibm's published definition: z-scored by the reference, scikit-learn's MLP with its
    defaults (two layers of 10 d, no early stopping), shuffled 5-fold accuracy, all seeded by ``seed``."""
    pytest.importorskip("sklearn")
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    g = _gen(8)
    a = torch.randn(300, 2, generator=g) * 3.0 + 1.0
    b = torch.randn(300, 2, generator=g) * 3.0 + torch.tensor([2.5, 1.0])
    za, zb = (a - a.mean(0)) / a.std(0), (b - a.mean(0)) / a.std(0)
    data = torch.cat([za, zb]).numpy()
    target = [0] * 300 + [1] * 300
    clf = MLPClassifier(hidden_layer_sizes=(20, 20), max_iter=10_000, random_state=1)
    expected = cross_val_score(clf, data, target, cv=KFold(5, shuffle=True, random_state=1), scoring="accuracy").mean()
    got = c2st(a, b, seed=1, backend="sbibm")
    assert got == pytest.approx(float(expected), abs=1e-12)
    bayes = float(torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(1.5 / 3.0 / 2)))   # shift 1.5 sd / 2
    assert 0.5 < got < bayes + 0.06
    with pytest.raises(ValueError, match="no classifier options"):
        c2st(a, b, backend="sbibm", classifier=ClassifierOptions(hidden=(4,)))


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (torch.zeros(50, 2), torch.zeros(50, 3), "same number of features"),
        (torch.zeros(50, 2, 2), torch.zeros(50, 2, 2), r"shape \(n, d\)"),
        (torch.full((50, 2), float("nan")), torch.zeros(50, 2), "NaN"),
        (torch.zeros(6, 2), torch.zeros(50, 2), "at least 10 samples"),
    ],
)
def test_c2st_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        c2st(a, b)


def test_c2st_bad_options():
    a = torch.randn(50, 2)
    with pytest.raises(ValueError, match="folds"):
        c2st(a, a, folds=1)
    with pytest.raises(ValueError, match="backend"):
        c2st(a, a, backend="xgboost")
    with pytest.raises(TypeError, match="c2st: a must hold real numbers"):
        c2st("abc", a)
    with pytest.raises(TypeError, match="c2st: classifier must be a ClassifierOptions"):
        c2st(a, a, classifier="mlp")  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "match"), [
    ({"hidden": ()}, "hidden must be a non-empty"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\)"),
    ({"batch_size": 0}, "batch_size and max_epochs must be >= 1"),
    ({"patience": -1}, "batch_size and max_epochs must be >= 1 and patience >= 0"),
    ({"lr": 0.0}, "lr must be > 0"),
])
def test_classifier_options_are_checked(options, match):
    with pytest.raises(ValueError, match=f"ClassifierOptions: {match}"):
        ClassifierOptions(**options)


def test_classifier_options_reach_the_classifier():
    g = _gen(12)
    a, b = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1.0
    default = c2st(a, b)
    assert c2st(a, b, classifier=ClassifierOptions()) == default
    # one epoch of a tiny network with a tiny step barely learns: a different (lower) accuracy
    weak = c2st(a, b, classifier=ClassifierOptions(hidden=(2,), max_epochs=1, lr=1e-5))
    assert weak != default and weak < default
    assert ClassifierOptions(hidden=[4.0, 3]).hidden == (4, 3)  # type: ignore[list-item]


# -- MMD ----------------------------------------------------------------------------------------
def _analytic_mmd2(mu: float, s: float, h: float) -> float:
    # x, x' ~ N(0, s^2), y ~ N(mu, s^2), k = exp(-(x - y)^2 / (2 h^2)).
    c = math.sqrt(h * h / (h * h + 2 * s * s))
    return 2 * c * (1 - math.exp(-mu * mu / (2 * (h * h + 2 * s * s))))


def test_mmd_is_unbiased_against_closed_form():
    # With only 4 points per sample the biased V-statistic is far off; the unbiased one is not.
    g = _gen(6)
    mu, s, h = 1.0, 1.0, 1.5
    vals = [mmd(torch.randn(4, 1, generator=g) * s, torch.randn(4, 1, generator=g) * s + mu, bandwidth=h)
            for _ in range(4000)]
    mean, se = np.mean(vals), np.std(vals) / math.sqrt(len(vals))
    assert abs(mean - _analytic_mmd2(mu, s, h)) < 4 * se


def test_mmd_blocked_sum_equals_dense_formula():
    g = _gen(7)
    a, b = torch.randn(2500, 2, generator=g, dtype=torch.float64), torch.randn(300, 2, generator=g,
                                                                                 dtype=torch.float64)
    bw = torch.tensor([0.7, 2.0], dtype=torch.float64)
    kxx, kyy, kxy = gaussian_kernel(a, a, bw), gaussian_kernel(b, b, bw), gaussian_kernel(a, b, bw)
    n, m = len(a), len(b)
    dense = ((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
             - 2 * kxy.mean())
    assert mmd(a, b, bandwidth=[0.7, 2.0]) == pytest.approx(float(dense), rel=1e-9, abs=1e-12)


def test_median_bandwidth_matches_numpy():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 3))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(200, 1)]
    assert median_bandwidth(x) == pytest.approx(float(np.median(d)), rel=1e-6)


def test_mmd_permutation_p_values_are_uniform_under_the_null():
    g = _gen(9)
    p = [mmd_test(torch.randn(20, 2, generator=g), torch.randn(25, 2, generator=g),
                  permutations=199, seed=i)[1] for i in range(300)]
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.02 < np.mean(np.asarray(p) <= 0.05) < 0.09


def test_mmd_test_detects_a_shift_and_agrees_with_mmd():
    g = _gen(10)
    a, b = torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 0.8
    statistic, p = mmd_test(a, b, permutations=500)
    assert p < 0.01
    assert statistic == pytest.approx(mmd(a, b), rel=1e-9)


def test_mmd_bad_input():
    with pytest.raises(ValueError, match="same number of features"):
        mmd(torch.zeros(5, 2), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN"):
        mmd_test(torch.randn(5, 2), torch.tensor([[0.0, float("inf")]] * 5))
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(torch.randn(5, 2), torch.randn(5, 2), bandwidth=-1.0)
    with pytest.raises(ValueError, match="permutations"):
        mmd_test(torch.randn(5, 2), torch.randn(5, 2), permutations=0)


def test_c2st_hand_written_backward_matches_autograd():
    from innverse.diagnostics.classifier_test import _FoldMLPs

    g = torch.Generator().manual_seed(11)
    net = _FoldMLPs(3, 4, (7, 5), g, torch.device("cpu"), lr=1e-3, alpha=0.1)
    net.weights = [w.double() for w in net.weights]
    net.biases = [b.double() for b in net.biases]
    x = torch.randn(3, 16, 4, generator=g, dtype=torch.float64)
    y = (torch.rand(3, 16, generator=g) > 0.5).double()
    w = torch.rand(3, 16, generator=g, dtype=torch.float64) + 0.5
    manual = net.gradients(x, y, w)
    params = [p.clone().requires_grad_(True) for p in net.params]
    net.weights, net.biases = params[:3], params[3:]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(net.logits(x.clone()), y, w, reduction="sum") / 16
    loss = loss + 0.5 * 0.1 * sum(p.square().sum() for p in params[:3]) / 16
    auto = torch.autograd.grad(loss, params)
    for m, a in zip(manual, auto):
        assert torch.allclose(m, a, atol=1e-12)


def test_c2st_sklearn_backend_names_the_missing_extra(monkeypatch):
    import sys

    for mod in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    a = torch.randn(20, 2)
    with pytest.raises(ImportError, match=r"pip install 'innverse\[sklearn\]'"):
        c2st(a, a + 1, backend="sklearn")


def test_mmd_agg_test_is_exact_under_the_null_and_reduces_to_mmd_test_with_one_scale():
    from innverse.diagnostics import mmd_agg_test

    g = _gen(12)
    p = [mmd_agg_test(torch.randn(20, 2, generator=g), torch.randn(25, 2, generator=g),
                      permutations=199, seed=i)[1] for i in range(300)]
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.02 < np.mean(np.asarray(p) <= 0.05) < 0.09
    a, b = torch.randn(30, 3, generator=g), torch.randn(40, 3, generator=g) + 0.3
    # one bandwidth: the standardised statistic orders the splits as the MMD does, the same relabellings
    assert mmd_agg_test(a, b, scales=(1.0,), permutations=199, seed=3)[1] == mmd_test(a, b, permutations=199, seed=3)[1]


def test_mmd_agg_test_sees_a_small_scale_difference_the_median_kernel_misses():
    from innverse.diagnostics import mmd_agg_test

    g = _gen(13)

    def ring(n: int, width: float) -> torch.Tensor:
        angle = torch.rand(n, generator=g) * 2 * math.pi
        radius = 1 + width * torch.randn(n, generator=g)
        return torch.stack([radius * angle.cos(), radius * angle.sin()], 1)

    a, b = ring(150, 0.01), ring(150, 0.06)            # a thin ring and a slightly thicker one
    assert mmd_test(a, b, permutations=500)[1] > 0.05
    assert mmd_agg_test(a, b, scales=(0.03, 0.1, 0.3, 1.0), permutations=500)[1] < 0.01


def test_mmd_agg_test_bad_input():
    from innverse.diagnostics import mmd_agg_test

    with pytest.raises(ValueError, match="mmd_agg_test: scales"):
        mmd_agg_test(torch.randn(5, 2), torch.randn(5, 2), scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="mmd_agg_test: scales"):
        mmd_agg_test(torch.randn(5, 2), torch.randn(5, 2), scales="wide")
    with pytest.raises(ValueError, match="mmd_agg_test: permutations"):
        mmd_agg_test(torch.randn(5, 2), torch.randn(5, 2), permutations=True)
    with pytest.raises(ValueError, match=r"mmd_agg_test.*same number of features"):
        mmd_agg_test(torch.randn(5, 2), torch.randn(5, 3))
