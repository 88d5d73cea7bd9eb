"""OOD scores and metrics against their definitions, on densities known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from innverse.classify import (
    LikelihoodTest,
    TypicalityTest,
    aupr,
    auroc,
    fpr_at_tpr,
    likelihood_ratio_score,
    negative_log_likelihood,
    ood_metrics,
    random_batches,
    threshold_at_fpr,
    waic,
    waic_score,
)

D = 50


class Gaussian:
    """An exact density: N(loc, scale^2 I_D), with log_prob like a flow's."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        self.dist = torch.distributions.Normal(torch.tensor(loc, dtype=torch.float64),
                                               torch.tensor(scale, dtype=torch.float64))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(x.double()).sum(-1)


def _draws(n: int, scale: float, seed: int) -> torch.Tensor:
    return scale * torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_auroc_and_aupr_match_scikit_learn_with_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 8, (300,), generator=gen).double()          # many ties
    b = torch.randint(3, 12, (200,), generator=gen).double()
    y = np.r_[np.zeros(300), np.ones(200)]
    s = np.r_[a.numpy(), b.numpy()]
    assert auroc(a, b) == pytest.approx(roc_auc_score(y, s))
    assert aupr(a, b) == pytest.approx(average_precision_score(y, s))
    assert aupr(a, b, positive="in") == pytest.approx(average_precision_score(1 - y, -s))
    assert auroc(a, a) == pytest.approx(0.5)


def test_fpr_at_95_tpr_by_hand():
    inside = torch.arange(100).double()             # 0..99
    outside = torch.arange(50, 70).double()          # 20 scores, 95% = 19 of them: threshold 51
    assert fpr_at_tpr(inside, outside) == pytest.approx(49 / 100)   # in-distribution scores >= 51
    m = ood_metrics(inside, outside, threshold=59.5)
    assert m.detected == pytest.approx(10 / 20) and m.false_positives == pytest.approx(40 / 100)


def test_threshold_at_fpr_controls_false_positives_and_needs_validation_data():
    val, fresh = torch.randn(2000, generator=torch.Generator().manual_seed(1)), torch.randn(
        20000, generator=torch.Generator().manual_seed(2))
    t = threshold_at_fpr(val, fpr=0.05)
    assert float((fresh > t).double().mean()) == pytest.approx(0.05, abs=0.012)
    with pytest.raises(ValueError, match="threshold_at_fpr: needs the scores of in-distribution validation data"):
        threshold_at_fpr(None, fpr=0.05)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        threshold_at_fpr(torch.zeros(0), fpr=0.05)
    with pytest.raises(ValueError, match=r"cannot reach fpr=0.01"):
        threshold_at_fpr(torch.zeros(50), fpr=0.01)
    with pytest.raises(ValueError, match=r"LikelihoodTest.threshold: needs in-distribution validation data"):
        LikelihoodTest(Gaussian()).threshold(0.05)
    with pytest.raises(ValueError, match=r"TypicalityTest.fit: needs in-distribution validation inputs"):
        TypicalityTest(Gaussian(), batch_size=4).fit(None)


def test_typicality_statistic_and_p_value_follow_the_definition():
    model = Gaussian()
    val = _draws(400, 1.0, 3)
    test = TypicalityTest(model, batch_size=5, bootstraps=500, seed=0).fit(val)
    nll_val = -model.log_prob(val)
    assert test.entropy == pytest.approx(float(nll_val.mean()))
    batches = random_batches(_draws(60, 1.0, 4), 5, torch.Generator().manual_seed(0))
    assert batches.shape == (12, 5, D)
    eps = (-model.log_prob(batches).mean(1) - float(nll_val.mean())).abs()   # |mean NLL of the batch - H|
    torch.testing.assert_close(test.statistic(batches), eps)
    # the bootstrap null, redrawn by hand with the same seed
    idx = torch.randint(400, (500, 5), generator=torch.Generator().manual_seed(0))
    null = (nll_val[idx].mean(1) - float(nll_val.mean())).abs()
    p = (1 + (null[None, :] >= eps[:, None]).sum(1)) / 501
    torch.testing.assert_close(test.p_value(batches), p.double())


def test_waic_and_likelihood_ratio_follow_their_definitions():
    members = [Gaussian(0.0, 1.0), Gaussian(0.1, 1.2), Gaussian(-0.2, 0.9)]
    x = _draws(30, 1.0, 5)
    ll = np.stack([m.log_prob(x).numpy() for m in members])
    np.testing.assert_allclose(waic(members, x).numpy(), ll.mean(0) - ll.var(0), rtol=1e-12)
    np.testing.assert_allclose(waic_score(members, x).numpy(), ll.var(0) - ll.mean(0), rtol=1e-12)
    lr = likelihood_ratio_score(members[0], members[1], x)
    np.testing.assert_allclose(lr.numpy(), -(ll[0] - ll[1]), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 ensemble members"):
        waic(members[:1], x)


def test_plain_likelihood_fails_on_too_typical_inputs_and_the_tests_fix_it():
    """In 50-D the mode of N(0, I) is far more likely than any sample, yet no sample lies near it."""
    model = Gaussian()
    val, inside = _draws(1000, 1.0, 6), _draws(1000, 1.0, 7)
    near_mode = _draws(1000, 0.3, 8)
    nll_auc = auroc(negative_log_likelihood(model, inside), negative_log_likelihood(model, near_mode))
    assert nll_auc < 0.01                                   # the known failure: ranks OOD as more likely
    one = LikelihoodTest(model, tails=1).fit(val)
    two = LikelihoodTest(model, tails=2).fit(val)
    assert auroc(one.score(inside), one.score(near_mode)) < 0.01
    assert auroc(two.score(inside), two.score(near_mode)) > 0.99
    typ = TypicalityTest(model, batch_size=5).fit(val)
    gen = torch.Generator().manual_seed(0)
    a, b = typ.statistic(random_batches(inside, 5, gen)), typ.statistic(random_batches(near_mode, 5, gen))
    assert auroc(a, b) > 0.99
    far = _draws(1000, 2.0, 9)                              # the ordinary case: unlikely inputs
    assert auroc(one.score(inside), one.score(far)) > 0.99
    # p-values of fresh in-distribution inputs are (close to) uniform; those of OOD inputs are small
    p_in = two.p_value(inside)
    assert float((p_in <= 0.1).double().mean()) == pytest.approx(0.1, abs=0.03)
    assert float((two.p_value(near_mode) <= 0.01).double().mean()) > 0.95
    assert math.isclose(float(two.p_value(near_mode).min()), 1 / 1001)


class UniformPixels:
    """The exact density of images whose pixels are independent and uniform on 0..levels-1."""

    def __init__(self, levels: int) -> None:
        self.levels = levels

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        inside = ((x >= 0) & (x < self.levels)).flatten(1).all(1)
        return torch.where(inside, -x[0].numel() * math.log(self.levels), -math.inf).double()


def test_input_complexity_order0_by_hand_and_codecs_rank_simple_inputs_lower():
    from innverse.classify import input_complexity

    rows = torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    # [0,0,1,1]: 4 bits of entropy + 2 distinct values x 2 bits; [3,3,3,3]: 0 + 1 x 2 bits
    assert input_complexity(rows, "order0", levels=4).tolist() == [8.0, 2.0]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (5, 1, 16, 16), generator=gen).double()
    flat = torch.full((5, 1, 16, 16), 7.0)
    for codec in ("png", "zlib", "order0"):
        assert (input_complexity(flat, codec) < input_complexity(noise, codec)).all(), codec
    # a grey image and its (N, H, W) form and its three identical colour channels are the same image to PNG
    torch.testing.assert_close(input_complexity(noise, "png"), input_complexity(noise[:, 0], "png"))
    assert (input_complexity(noise.expand(-1, 3, -1, -1), "png") >= input_complexity(noise, "png")).all()


def test_input_complexity_score_fixes_the_likelihood_on_low_complexity_inputs():
    from innverse.classify import input_complexity, input_complexity_score

    gen = torch.Generator().manual_seed(1)
    model = UniformPixels(16)
    inside = torch.randint(0, 16, (300, 1, 8, 8), generator=gen).double()
    darker = torch.randint(0, 16, (300, 1, 8, 8), generator=gen).div(2, rounding_mode="floor").double()
    nll_in, nll_out = negative_log_likelihood(model, inside), negative_log_likelihood(model, darker)
    assert auroc(nll_in, nll_out) == pytest.approx(0.5)                    # the exact density cannot tell them apart
    for codec in ("order0", "png"):
        s_in = input_complexity_score(model, inside, codec, levels=16)
        s_out = input_complexity_score(model, darker, codec, levels=16)
        torch.testing.assert_close(s_in, nll_in / math.log(2) - input_complexity(inside, codec, 16))
        assert auroc(s_in, s_out) > 0.99, codec


def test_input_complexity_rejects_what_it_cannot_measure():
    from innverse.classify import input_complexity, input_complexity_score

    with pytest.raises(ValueError, match=r"input_complexity: expects quantised inputs.*not whole numbers"):
        input_complexity(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"whole numbers in 0\.\.15, got values in \[0, 16\]"):
        input_complexity(torch.tensor([[0.0, 16.0]]), "order0", levels=16)
    with pytest.raises(ValueError, match="codec must be one of"):
        input_complexity(torch.zeros(2, 4), "gzip")
    with pytest.raises(ValueError, match=r"png codec needs images .* got shape \(2, 4\)"):
        input_complexity(torch.zeros(2, 4), "png")
    with pytest.raises(ValueError, match=r"levels must be an int in 2\.\.256"):
        input_complexity(torch.zeros(2, 4), "zlib", levels=1000)
    with pytest.raises(ValueError, match="returned"):
        input_complexity_score(Gaussian(), torch.zeros(3, 4, 4), "png", dequantized=torch.zeros(2, 4, 4))
