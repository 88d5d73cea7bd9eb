"""Batched Dormand-Prince solver against analytic solutions, scipy, invariants and failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from innverse.tasks.sbi.lotka_volterra import lotka_volterra_log_populations
from innverse.tasks.sbi.ode import solve_ode
from innverse.tasks.sbi.sir import sir_trajectories


def test_linear_systems_with_different_rates_per_trajectory():
    rates = torch.tensor([[0.1], [1.0], [5.0], [20.0]], dtype=torch.float64)
    times = torch.tensor([0.0, 0.3, 1.0, 2.5], dtype=torch.float64)

    def rhs(t, y, p):  # decay y' = -k y and an oscillator driven at frequency k
        return torch.stack([-p[:, 0] * y[:, 0], p[:, 0] * y[:, 2], -p[:, 0] * y[:, 1]], -1)

    y0 = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64).expand(4, 3)
    out = solve_ode(rhs, y0, rates, times, rtol=1e-9, atol=1e-12)
    k, t = rates, times[None]
    assert torch.allclose(out[..., 0], torch.exp(-k * t), rtol=1e-7, atol=1e-11)
    assert torch.allclose(out[..., 1], torch.sin(k * t), atol=2e-7)
    assert torch.allclose(out[..., 2], torch.cos(k * t), atol=2e-7)


def test_blow_up_is_a_failure_not_a_truncation():
    def rhs(t, y, p):  # y' = p y^2: y = 1 / (1 - p t) blows up at t = 1 / p
        return p * y**2

    p = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    out = solve_ode(rhs, torch.ones(2, 1, dtype=torch.float64), p, torch.tensor([0.25, 0.75, 1.5]),
                    max_steps=400)
    assert torch.allclose(out[0, :, 0], 1 / (1 - 0.5 * torch.tensor([0.25, 0.75, 1.5], dtype=torch.float64)),
                          rtol=1e-6)
    assert bool(torch.isnan(out[1]).all())


def test_bad_times():
    f = lambda t, y, p: -y  # noqa: E731
    with pytest.raises(ValueError, match="strictly increasing"):
        solve_ode(f, torch.ones(1, 1), torch.ones(1, 1), torch.tensor([1.0, 0.5]))


def _sir_rhs(t, y, beta, gamma):
    return [-beta * y[0] * y[1], beta * y[0] * y[1] - gamma * y[1], gamma * y[1]]


def _lv_rhs(t, y, a, b, c, d):
    return [a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]]


def _theta(values):
    return torch.tensor(values, dtype=torch.float64)


def test_sir_matches_scipy_and_conserves_population():
    theta = _theta([[0.4, 0.125], [1.3, 0.09], [0.25, 0.12], [0.6, 0.2]])
    days = torch.arange(0.0, 161.0, 4.0, dtype=torch.float64)
    out = sir_trajectories(theta, days)
    assert torch.allclose(out.sum(-1), torch.ones(()).double(), atol=1e-12)  # S + I + R = N
    assert bool((out >= -1e-12).all())
    for k, (beta, gamma) in enumerate(theta.tolist()):
        sol = solve_ivp(_sir_rhs, (0, 160), [1 - 1e-6, 1e-6, 0.0], t_eval=days.numpy(), method="DOP853",
                        rtol=1e-12, atol=1e-16, args=(beta, gamma))
        ref = sol.y.T
        rel = np.abs(out[k].numpy() - ref) / np.maximum(np.abs(ref), 1e-9)
        assert rel.max() < 1e-3  # worst in the decaying tail, where I is tiny


def test_lotka_volterra_matches_scipy_and_conserves_its_invariant():
    theta = _theta([[0.88, 0.05, 0.88, 0.05], [1.4, 0.14, 1.2, 0.05], [0.5, 0.05, 0.65, 0.04]])
    times = torch.linspace(0, 20, 41, dtype=torch.float64)
    log_pop = lotka_volterra_log_populations(theta, times)
    pop = log_pop.exp()
    for k, (a, b, c, d) in enumerate(theta.tolist()):
        # V = d X - c log X + b Y - a log Y is constant along every orbit
        v = d * pop[k, :, 0] - c * log_pop[k, :, 0] + b * pop[k, :, 1] - a * log_pop[k, :, 1]
        assert float((v - v[0]).abs().max()) < 1e-4 * max(1.0, abs(float(v[0])))
        sol = solve_ivp(_lv_rhs, (0, 20), [30.0, 1.0], t_eval=times.numpy(), method="DOP853", rtol=1e-12,
                        atol=1e-14, args=(a, b, c, d))
        assert np.abs(log_pop[k].numpy() - np.log(sol.y.T)).max() < 1e-3
    assert math.isclose(float(pop[0, 0, 0]), 30.0) and math.isclose(float(pop[0, 0, 1]), 1.0)


@pytest.mark.parametrize("name", ["sir", "lotka_volterra"])
def test_likelihood_error_from_the_solver_is_negligible(name):
    # the log-likelihood at every observation's true parameters, with the task's solver
    # tolerances, against the same formula on a scipy solution at rtol 1e-12
    from innverse.tasks import get_task

    task = get_task(name, torch.float64)
    theta = torch.stack([task.true_parameters(i) for i in range(10)])
    x = torch.stack([task.observation(i) for i in range(10)])
    ours = task.log_likelihood(theta, x)
    exact = []
    for th, xi in zip(theta.tolist(), x):
        if name == "sir":
            sol = solve_ivp(_sir_rhs, (0, 154), [1 - 1e-6, 1e-6, 0.0], t_eval=[17.0 * j for j in range(10)],
                            method="DOP853", rtol=1e-12, atol=1e-16, args=tuple(th))
            p = np.clip(sol.y[1], 0, 1)
            k = xi.numpy()
            ll = (math.lgamma(1001) - np.array([math.lgamma(v + 1) + math.lgamma(1001 - v) for v in k])
                  + k * np.log(p) + (1000 - k) * np.log1p(-p)).sum()
        else:
            sol = solve_ivp(_lv_rhs, (0, 19.0), [30.0, 1.0], t_eval=[2.1 * j for j in range(10)],
                            method="DOP853", rtol=1e-12, atol=1e-14, args=tuple(th))
            mean = np.log(np.clip(sol.y, 1e-10, 1e4)).reshape(-1)
            lx = np.log(xi.numpy())
            ll = (-0.5 * ((lx - mean) / 0.1) ** 2 - lx - math.log(0.1 * math.sqrt(2 * math.pi))).sum()
        exact.append(ll)
    assert np.abs(ours.numpy() - np.array(exact)).max() < 0.01
