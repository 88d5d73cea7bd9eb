"""Priors: helpers, products, support bounds and the JSON round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch
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
