"""Priors: helpers, products, support bounds, the JSON round trip and generator-driven sampling."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats
from torch.distributions import (
    Beta,
    Exponential,
    Gamma,
    HalfNormal,
    Independent,
    MultivariateNormal,
    Normal,
    Uniform,
)

from innverse.amortized import (
    ProductPrior,
    as_prior,
    box_uniform,
    gaussian,
    log_normal,
    prior_bounds,
    prior_from_config,
    prior_to_config,
    product,
)
from innverse.amortized.prior_sampling import sample_gamma, sample_truncated_normal, sample_with_generator


def _priors():
    return {
        "box": box_uniform([-1.0, 0.0], [1.0, 5.0]),
        "box_scalar": box_uniform(0.0, 1.0, dim=3),
        "gauss_diag": gaussian([0.0, 1.0], [1.0, 2.0]),
        "gauss_full": gaussian([0.0, 1.0], covariance=torch.tensor([[2.0, 0.5], [0.5, 1.0]])),
        "lognormal": log_normal(0.0, 0.5, dim=2),
        "product": product(Uniform(0.0, 2.0), Normal(torch.zeros(2), torch.ones(2)), HalfNormal(1.0),
                           MultivariateNormal(torch.zeros(2), torch.eye(2)), Gamma(2.0, 1.0), Beta(2.0, 3.0),
                           Exponential(torch.tensor([1.0, 2.0]))),
    }


@pytest.mark.parametrize("name", list(_priors()))
def test_config_round_trip_is_exact_and_json(name):
    prior = _priors()[name]
    cfg = json.loads(json.dumps(prior_to_config(prior)))
    again = prior_from_config(cfg)
    torch.manual_seed(0)
    theta = prior.sample((50,))
    assert theta.shape == (50, prior.event_shape[0])
    assert torch.equal(prior.log_prob(theta), again.log_prob(theta))
    lo, hi = prior_bounds(prior)
    lo2, hi2 = prior_bounds(again)
    assert torch.equal(lo, lo2) and torch.equal(hi, hi2)


def test_float64_prior_round_trip_keeps_dtype():
    prior = box_uniform(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor([0.3, 0.7], dtype=torch.float64))
    again = prior_from_config(json.loads(json.dumps(prior_to_config(prior))))
    assert again.base_dist.low.dtype == torch.float64
    assert torch.equal(again.base_dist.low, prior.base_dist.low)


def test_bounds_per_component():
    lo, hi = prior_bounds(_priors()["product"])
    inf = math.inf
    assert lo.tolist() == [0.0, -inf, -inf, 0.0, -inf, -inf, 0.0, 0.0, 0.0, 0.0]
    assert hi.tolist() == [2.0, inf, inf, inf, inf, inf, inf, 1.0, inf, inf]


def test_product_log_prob_is_sum_of_marginals():
    a, b = Uniform(0.0, 2.0), Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0]))
    prior = product(a, b)
    theta = torch.tensor([[0.5, 0.1, -2.0], [1.5, 3.0, 0.0]])
    expected = a.log_prob(theta[:, 0]) + b.log_prob(theta[:, 1:]).sum(-1)
    assert torch.allclose(prior.log_prob(theta), expected)
    assert prior.support.check(theta).all()
    assert not prior.support.check(torch.tensor([[2.5, 0.0, 0.0]])).any()
    assert prior.sample((7,)).shape == (7, 3)


def test_scalar_prior_is_wrapped_as_one_component():
    prior = as_prior(Uniform(0.0, 1.0))
    assert isinstance(prior, ProductPrior) and prior.event_shape == (1,)
    assert prior.sample((4,)).shape == (4, 1)


def test_bad_priors_are_rejected_clearly():
    with pytest.raises(TypeError, match=r"torch\.distributions"):
        as_prior("uniform")
    with pytest.raises(ValueError, match="event_shape"):
        as_prior(Uniform(torch.zeros(2, 2), torch.ones(2, 2)))
    with pytest.raises(ValueError, match="unsupported support"):
        as_prior(torch.distributions.Dirichlet(torch.ones(3)))
    with pytest.raises(ValueError, match="high > low"):
        box_uniform([0.0, 1.0], [1.0, 0.5])
    class Custom(torch.distributions.Normal):  # defined outside torch / innverse: not describable
        pass

    with pytest.raises(TypeError, match="cannot describe"):
        prior_to_config(Custom(0.0, 1.0))
    with pytest.raises(ValueError, match="outside the trusted modules"):
        prior_from_config({"type": "Class", "class": "os.system", "params": {}})
    with pytest.raises(ValueError, match="missing the key 'low'"):
        prior_from_config({"type": "Uniform", "high": [1.0]})
    with pytest.raises(ValueError, match="unknown prior type"):
        prior_from_config({"type": "Pickle"})
    with pytest.raises(ValueError, match="invalid parameters"):
        prior_from_config({"type": "Normal", "loc": [0.0], "scale": [-1.0]})


def test_sbi_style_box_uniform_subclass_is_described_as_independent():
    class BoxUniform(Independent):
        def __init__(self, low, high):
            super().__init__(Uniform(low, high), 1)

    cfg = prior_to_config(BoxUniform(torch.zeros(2), torch.ones(2)))
    assert cfg["type"] == "Independent" and cfg["base"]["type"] == "Uniform"


def test_other_torch_and_innverse_distributions_round_trip_generically():
    from innverse.tasks import get_task

    for prior in (Independent(torch.distributions.StudentT(torch.tensor([3.0, 5.0])), 1),
                  get_task("gaussian_iid").prior):
        cfg = json.loads(json.dumps(prior_to_config(prior)))
        again = prior_from_config(cfg)
        torch.manual_seed(1)
        theta = prior.sample((20,))
        assert torch.equal(prior.log_prob(theta), again.log_prob(theta))
    lo, hi = prior_bounds(get_task("gaussian_iid").prior)
    assert lo.tolist() == [-math.inf, 0.0] and hi.tolist() == [math.inf, math.inf]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_dtype_and_validate_args_of_the_helpers():
    box = box_uniform(-1.0, 1.0, 3, dtype=torch.float64, validate_args=False)
    assert box.base_dist.low.dtype == torch.float64 and box.event_shape == (3,)
    assert box.log_prob(torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)).item() == -math.inf
    with pytest.raises(ValueError):                                    # validated by default
        box_uniform(-1.0, 1.0, 3).log_prob(torch.tensor([[2.0, 0.0, 0.0]]))
    assert log_normal([0.0, 1.0], 0.5, dtype=torch.float64).mean.dtype == torch.float64
    assert box_uniform([0, 1], [2, 3]).base_dist.low.dtype == torch.get_default_dtype()   # ints converted
    with pytest.raises(ValueError, match="NaN or Inf"):
        box_uniform([0.0, math.nan], [1.0, 1.0])
    with pytest.raises(TypeError, match="real numbers"):
        gaussian([True, False], 1.0)


@pytest.mark.parametrize("name", list(_priors()))
def test_sample_with_generator_is_reproducible_and_right(name):
    prior = _priors()[name]
    draws = sample_with_generator(prior, 4000, _gen(0))
    assert draws.shape == (4000, prior.event_shape[0]) and draws.dtype == torch.float32
    assert torch.equal(draws, sample_with_generator(prior, 4000, _gen(0)))
    assert bool(prior.support.check(draws).all())
    # every coordinate has the prior's marginal distribution (checked against torch's own sampler)
    torch.manual_seed(1)
    reference = prior.sample((4000,))
    for j in range(draws.shape[1]):
        assert stats.ks_2samp(draws[:, j].numpy(), reference[:, j].numpy()).pvalue > 1e-3


def test_sample_with_generator_leaves_the_global_generator_alone_and_rejects_the_unknown():
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    sample_with_generator(box_uniform(0.0, 1.0, 2), 10, _gen(0))
    assert torch.equal(torch.rand(3), before)
    with pytest.raises(TypeError, match="cannot draw from Dirichlet"):
        sample_with_generator(torch.distributions.Dirichlet(torch.ones(3)), 2, _gen(0))


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 53.5])
def test_gamma_matches_scipy(alpha):
    draws = sample_gamma(torch.full((20_000,), alpha, dtype=torch.float64), _gen(int(alpha * 10)))
    assert bool((draws > 0).all())
    assert stats.kstest(draws.numpy(), stats.gamma(alpha).cdf).pvalue > 1e-3


@pytest.mark.parametrize(("mean", "low", "high"), [(0.0, -1.0, 1.0), (3.0, -1.0, 1.0), (-9.0, -1.0, 1.0),
                                                  (0.0, 4.0, 9.0), (0.4, -10.0, 10.0)])
def test_truncated_normal_matches_scipy(mean, low, high):
    std = 0.5
    draws = sample_truncated_normal(torch.full((20_000,), mean, dtype=torch.float64), std, low, high, _gen(1))
    assert bool(((draws >= low) & (draws <= high)).all())
    dist = stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
    assert stats.kstest(draws.numpy(), dist.cdf).pvalue > 1e-3


def test_configs_naming_a_moved_class_still_load():
    from innverse.tasks import get_task

    prior = get_task("gaussian_iid").prior
    cfg = prior_to_config(prior)
    cfg["class"] = "innverse.tasks.normal_inverse_gamma.NormalInverseGamma"   # written before the move
    theta = prior.sample((5,))
    assert torch.equal(prior_from_config(cfg).log_prob(theta), prior.log_prob(theta))
