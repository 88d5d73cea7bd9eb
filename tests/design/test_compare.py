"""compare(): setups ranked as their construction dictates, the unmeasured parameter flagged, the Pareto front, bad input."""

from __future__ import annotations

import pytest
import torch

from innverse.amortized import box_uniform
from innverse.design import (
    Budget,
    Comparison,
    Setup,
    SetupResult,
    compare,
    design_setups,
    optimize_design,
    pareto_front,
    train_design_posterior,
)

PRIOR = box_uniform(torch.zeros(2), torch.ones(2))
BUDGET = Budget(simulations=1500, test_size=100, posterior_samples=200, training={"epochs": 25})


def noisy_copy(theta, design, generator=None):
    """Both parameters, each seen once with noise of standard deviation ``design``."""
    return theta + design * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)


def first_only(theta, generator=None):
    """Only the first parameter is measured (precisely); the second channel is pure noise."""
    noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
    return torch.stack([theta[:, 0] + 0.05 * noise[:, 0], noise[:, 1]], 1)


@pytest.fixture(scope="module")
def comparison():
    setups = design_setups(noisy_copy, {"precise": 0.05, "noisy": 0.3}, costs={"precise": 10.0, "noisy": 1.0})
    setups.append(Setup("first only", first_only, cost=12.0))
    return compare(setups, PRIOR, BUDGET, parameter_names=("a", "b"), seed=0)


def test_setups_rank_as_constructed_and_the_unmeasured_parameter_is_flagged(comparison):
    c = comparison
    assert c.ranking("contraction", "b") == ["precise", "noisy", "first only"]
    assert c.ranking("contraction", "a")[-1] == "noisy"
    assert c.ranking("information_gain")[0] == "precise"
    assert c.ranking("relative_width", "b")[0] == "precise"             # narrower is better
    assert c.unidentifiable() == {"precise": [], "noisy": [], "first only": ["b"]}
    assert c.best("contraction")["b"] == "precise"
    assert float(c["first only"].contraction[1]) < 0.1 < float(c["first only"].contraction[0])
    # theory: with noise 0.05 on a unit box the posterior sd is about 0.05, the prior's 1/sqrt(12)
    assert abs(float(c["precise"].contraction[0]) - (1 - 12 * 0.05**2)) < 0.03


def test_pareto_front_table_and_plot(comparison, tmp_path):
    c = comparison
    assert c.pareto_front() == ["noisy", "precise"]                     # "first only" costs more and tells less
    table = c.table()
    assert all(name in table for name in c.names) and "| first only | 12 | b |" in table and "NO" in table
    pytest.importorskip("matplotlib")
    fig = c.plot(tmp_path / "setups.png")
    assert (tmp_path / "setups.png").stat().st_size > 1000 and len(fig.axes) == 4
    assert c.to_dict()["results"][0]["name"] == "precise"


def test_pareto_front_of_hand_made_points():
    costs = torch.tensor([1.0, 2.0, 3.0, 2.0, 5.0])
    values = torch.tensor([0.1, 0.5, 0.4, 0.5, 0.9])
    assert pareto_front(costs, values) == [0, 1, 3, 4]                # 2 is dominated by 1 (and 3)


def test_design_conditional_posterior_is_trained_once_and_optimised():
    def simulator(theta, design, generator=None):
        return theta + torch.exp(design) * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)

    design_prior = box_uniform(torch.tensor([-3.0]), torch.tensor([0.0]))
    post = train_design_posterior(simulator, PRIOR, design_prior, 3000, training={"epochs": 30})
    setups = design_setups(simulator, {"sharp": torch.tensor([-3.0]), "blurred": torch.tensor([0.0])})
    c = compare(setups, PRIOR, BUDGET, posterior=post)
    assert c.ranking("contraction") == ["sharp", "blurred"] and c["sharp"].simulations == 0
    best = optimize_design(post, simulator, PRIOR, [-3.0], [0.0], candidates=6, test_size=300, max_iter=10)
    assert float(best.design[0]) < -2.3                                 # the least noise is the most information
    assert best.information_gain > max(v for _, v in best.tried) - 1e-9


def test_bad_setups_are_refused():
    with pytest.raises(ValueError, match=r"setup 'wide'.*fails on parameters of shape \(2, 2\)"):
        compare({"fine": first_only, "wide": lambda theta: theta[:, 2] * 2}, PRIOR, BUDGET)
    with pytest.raises(ValueError, match=r"setup 'empty' returns empty observations"):
        compare({"empty": lambda theta: theta[:, 2:]}, PRIOR, BUDGET)

    def three(theta):
        return theta

    three.parameter_dim = 3
    with pytest.raises(ValueError, match="setup 'three' simulates 3 parameters but the prior has 2"):
        compare({"three": three}, PRIOR, BUDGET)
    with pytest.raises(ValueError, match="costs must name exactly the setups"):
        compare({"a": first_only}, PRIOR, BUDGET, costs={"b": 1.0})
    with pytest.raises(ValueError, match="setup names must be unique"):
        compare([Setup("a", first_only), Setup("a", first_only)], PRIOR, BUDGET)
    with pytest.raises(TypeError, match="budget must be a Budget"):
        compare({"a": first_only}, PRIOR, 1.5)
    with pytest.raises(ValueError, match="simulations must be an integer >= 100"):
        Budget(simulations=10)
    with pytest.raises(ValueError, match="cost must be a finite number"):
        Setup("a", first_only, cost=float("nan"))


def _result(name: str, contraction: list[float], calibrated: list[bool]) -> SetupResult:
    t = torch.tensor(contraction, dtype=torch.float64)
    return SetupResult(name=name, cost=None, contraction=t, interval_width=1 - t, relative_width=1 - t,
                       information_gain=float(t.sum()), information_gain_se=0.1, marginal_information=t,
                       marginal_information_se=0.1 * torch.ones_like(t),
                       sbc_p_value=torch.tensor([0.5 if ok else 1e-4 for ok in calibrated], dtype=torch.float64),
                       calibration_error=torch.zeros_like(t), calibrated=torch.tensor(calibrated),
                       recoverable=t > 0.1, multimodal_share=torch.zeros_like(t))


def test_a_setup_whose_posterior_fails_sbc_is_not_named_best_and_the_caveat_says_why():
    """An over-confident posterior looks sharp: its contraction does not count. The ranking itself stays the raw
    ordering; best() passes the failed setup over, the table marks it and the caveats name it."""
    c = Comparison(("a", "b"), (_result("sharp but wrong", [0.99, 0.9], [False, True]),
                                _result("honest", [0.8, 0.95], [True, True]),
                                _result("vague", [0.3, 0.2], [True, False])))
    assert c.ranking("contraction", "a")[0] == "sharp but wrong"
    assert c.best("contraction") == {"a": "honest", "b": "honest"}
    assert c.miscalibrated() == {"sharp but wrong": ["a"], "honest": [], "vague": ["b"]}
    assert "| sharp but wrong |  | a | 0.990 | 0.010 | 0.99 | 0.000 (fails) |" in c.table()
    caveats = c.caveats()
    assert len(caveats) == 2 and caveats[0].startswith("sharp but wrong: the posterior of a fails SBC (p = 0.0001)")
    assert "Caveats:" in str(c)
    nobody = Comparison(("a",), (_result("x", [0.9], [False]), _result("y", [0.5], [False])))
    assert nobody.best() == {"a": "x"}
    assert any("no setup's posterior passes SBC" in line for line in nobody.caveats())
