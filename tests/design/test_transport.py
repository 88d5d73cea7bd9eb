"""The entropic transport plan: marginals, the unregularised limit (an assignment) and the closed forms at the extremes."""

from __future__ import annotations

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from innverse.design import transport_plan


def clouds(k: int, m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, 3, generator=g, dtype=torch.float64)
    b = torch.randn(m, 3, generator=g, dtype=torch.float64) + 0.5
    return torch.cdist(a, b).square()


def test_balanced_plan_meets_both_marginals():
    cost = clouds(30, 80)
    rows = torch.rand(30, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5
    plan = transport_plan(cost, 0.05 * float(cost.median()), row_masses=rows)
    assert (plan.plan >= 0).all()
    assert torch.allclose(plan.plan.sum(1), rows / rows.sum(), rtol=1e-6)
    assert torch.allclose(plan.plan.sum(0), torch.full((80,), 1 / 80, dtype=torch.float64), rtol=1e-4)
    assert torch.allclose(plan.weights.sum(1), torch.ones(30, dtype=torch.float64))


def test_semi_unbalanced_plan_meets_the_row_marginal_only():
    cost = clouds(30, 80)
    plan = transport_plan(cost, 0.05 * float(cost.median()), unbalanced=0.1 * float(cost.median()))
    assert torch.allclose(plan.plan.sum(1), torch.full((30,), 1 / 30, dtype=torch.float64), rtol=1e-5)
    assert plan.column_error > 0.1          # the simulations' masses are free to move


def test_small_epsilon_recovers_the_optimal_assignment():
    cost = clouds(12, 12, seed=3)
    plan = transport_plan(cost, 1e-3 * float(cost.median()), max_iter=20_000)
    rows, cols = linear_sum_assignment(cost.numpy())
    assert torch.equal(plan.plan.argmax(1), torch.as_tensor(cols))
    assert float((plan.plan * 12)[rows, cols].min()) > 0.9          # nearly all of each row on its partner


def test_large_epsilon_gives_the_independent_coupling():
    cost = clouds(10, 20)
    plan = transport_plan(cost, 1e6 * float(cost.median()))
    assert torch.allclose(plan.plan, torch.full((10, 20), 1 / 200, dtype=torch.float64), rtol=1e-4)


def test_vanishing_marginal_penalty_gives_independent_softmax_rows():
    # tau -> 0: min <P, C> + eps KL(P | a b^T) with P 1 = a only, solved row by row:
    # P_ij = a_i b_j exp(-C_ij / eps) / sum_l b_l exp(-C_il / eps)
    cost = clouds(15, 40)
    eps = 0.2 * float(cost.median())
    plan = transport_plan(cost, eps, unbalanced=1e-9 * eps)
    expected = torch.softmax(-cost / eps, 1) / 15
    assert torch.allclose(plan.plan, expected, rtol=1e-4, atol=1e-12)


def test_bad_arguments_raise_clear_errors():
    cost = clouds(4, 5)
    with pytest.raises(ValueError, match="epsilon must be a positive"):
        transport_plan(cost, 0.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        transport_plan(torch.full((2, 2), float("nan")), 1.0)
    with pytest.raises(ValueError, match=r"\(k, m\) matrix"):
        transport_plan(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="row_masses must be 4 positive"):
        transport_plan(cost, 1.0, row_masses=torch.ones(3))
