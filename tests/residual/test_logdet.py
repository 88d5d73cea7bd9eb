"""Log-det estimators against the exact log-det of brute-force Jacobians, with statistical tests.

Statistical tests compare the mean of iid estimates with the exact value and require
|mean - exact| <= Z standard errors (Z = 4.5: false-alarm rate ~1e-5 per comparison). Each test
also shows it has power: a deliberately wrong variant is rejected by the same criterion.
"""

from __future__ import annotations

import pytest
import torch

from innverse.blocks import (
    AutoLogDet,
    ExactLogDet,
    PowerSeriesLogDet,
    ResidualBlock,
    RouletteLogDet,
    log_det_estimator,
)
from innverse.blocks.logdet import neumann_estimate, series_estimate

from .helpers import D64, basis_probes, brute_jacobians, linear_block, saturated_block, truncated_series

Z = 4.5


def _exact(block, x):
    jac = brute_jacobians(block, x)
    return torch.linalg.slogdet(torch.eye(jac.shape[1], dtype=D64) + jac).logabsdet, jac


def _draws(block, x, estimator, calls: int) -> torch.Tensor:
    """Per-call estimates (calls, B); every call draws new probes and a new number of terms."""
    xr = x.clone().requires_grad_(True)
    out = []
    with torch.enable_grad():
        gx_graph = block.g(xr)
        for _ in range(calls):
            out.append(estimator(gx_graph, xr, create_graph=False, training=True).detach())
    return torch.stack(out)


def _check_unbiased(draws: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mean, se = draws.mean(0), draws.std(0) / draws.shape[0] ** 0.5
    return ((mean - target).abs() / se).max()


def test_exact_matches_slogdet_vector_and_image():
    for block, shape in [(saturated_block(4), (4,)),
                         (ResidualBlock((2, 3, 3), hidden=(6,), coeff=0.9).double().eval(), (2, 3, 3))]:
        x = torch.randn(3, *shape, dtype=D64)
        exact, _ = _exact(block, x)
        _, ld = block(x)
        torch.testing.assert_close(ld, exact, rtol=0, atol=1e-10)


def test_series_with_basis_probes_is_the_truncated_series():
    block = saturated_block(4)
    x = torch.randn(3, 4, dtype=D64)
    jac = brute_jacobians(block, x)
    weights = [1.0, 1.0, 2.0, 4.0, 8.0]
    xr = x.clone().requires_grad_(True)
    gx = block.g(xr)
    got = sum(series_estimate(gx, xr, v, weights, create_graph=False) for v in basis_probes(x))
    torch.testing.assert_close(got, truncated_series(jac, weights), rtol=0, atol=1e-12)
    # and the full series converges to the exact log-det
    exact, _ = _exact(block, x)
    long = sum(series_estimate(gx, xr, v, [1.0] * 120, create_graph=False) for v in basis_probes(x))
    torch.testing.assert_close(long, exact, rtol=0, atol=1e-6)


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_power_series_hutchinson_is_unbiased_for_the_truncated_series(noise):
    block = linear_block()
    x = torch.randn(2, 4, dtype=D64)
    jac = brute_jacobians(block, x)
    est = PowerSeriesLogDet(terms=4, noise=noise, generator=torch.Generator().manual_seed(0))
    draws = _draws(block, x, est, 2000)
    assert _check_unbiased(draws, truncated_series(jac, [1.0] * 4)) < Z
    # power: the 3-term truncation is a different number, and the test rejects it
    assert _check_unbiased(draws, truncated_series(jac, [1.0] * 3)) > Z


def test_power_series_converges_to_exact_log_det():
    block = linear_block((0.5, -0.45, 0.3, 0.2))
    x = torch.randn(2, 4, dtype=D64)
    exact, _ = _exact(block, x)
    est = PowerSeriesLogDet(terms=25, generator=torch.Generator().manual_seed(1))
    draws = _draws(block, x, est, 1000)
    assert _check_unbiased(draws, exact) < Z
    assert _check_unbiased(draws, exact + 0.15) > Z  # power: an offset of 0.15 nats is detected


@pytest.mark.parametrize("distribution", ["geometric", "poisson"])
def test_roulette_is_unbiased_for_the_exact_log_det(distribution):
    block = linear_block()
    x = torch.randn(2, 4, dtype=D64)
    exact, _ = _exact(block, x)
    gen = torch.Generator().manual_seed(2)
    est = RouletteLogDet(distribution=distribution, generator=gen)
    assert _check_unbiased(_draws(block, x, est, 3000), exact) < Z

    class Unweighted(RouletteLogDet):  # the random truncation without 1/P(N >= k): biased
        def weights(self, n):
            return [1.0] * n

    wrong = Unweighted(distribution=distribution, generator=torch.Generator().manual_seed(2))
    assert _check_unbiased(_draws(block, x, wrong, 3000), exact) > Z


def test_neumann_gradient_equals_backprop_through_series_with_fixed_noise():
    """With fixed N and exact traces (basis probes) the two gradients are the same number."""
    block = saturated_block(4)
    x = torch.randn(3, 4, dtype=D64)
    weights = RouletteLogDet().weights(7)  # non-trivial roulette weights
    params = [p for p in block.parameters()]
    results = []
    for estimate in (series_estimate, neumann_estimate):
        xr = x.clone().requires_grad_(True)
        gx = block.g(xr)
        val = sum(estimate(gx, xr, v, weights, create_graph=True) for v in basis_probes(x))
        grads = torch.autograd.grad((val * torch.arange(1.0, 4.0, dtype=D64)).sum(), [xr, *params],
                                    allow_unused=True)
        results.append((val.detach(), grads))
    (v1, g1), (v2, g2) = results
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)
    assert sum(a is not None for a in g1) >= 4  # x, two weights, the activation's beta
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_roulette_neumann_gradient_is_unbiased():
    block = saturated_block(3, hidden=(8,))
    x = torch.randn(1, 3, dtype=D64)
    weight = block.net[0].weight
    xr = x.clone().requires_grad_(True)
    exact = ExactLogDet()(block.g(xr), xr, create_graph=True, training=False).sum()
    target = torch.autograd.grad(exact, weight)[0].flatten()[:6]
    est = RouletteLogDet(generator=torch.Generator().manual_seed(3))
    draws = []
    for _ in range(1500):
        xr = x.clone().requires_grad_(True)
        ld = est(block.g(xr), xr, create_graph=True, training=True).sum()
        draws.append(torch.autograd.grad(ld, weight)[0].flatten()[:6])
    draws = torch.stack(draws)
    assert _check_unbiased(draws, target) < Z


def test_neumann_gradient_memory_does_not_grow_with_terms():
    block = saturated_block(4, hidden=(64, 64))
    x = torch.randn(8, 4, dtype=D64)

    def saved_bytes(estimate, n):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        xr = x.clone().requires_grad_(True)
        gx = block.g(xr)
        v = torch.randn_like(x)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            estimate(gx, xr, v, [1.0] * n, create_graph=True)
        return total

    assert saved_bytes(neumann_estimate, 20) == saved_bytes(neumann_estimate, 2)
    assert saved_bytes(series_estimate, 20) > 5 * saved_bytes(series_estimate, 2)


def test_auto_selection_and_context_manager():
    auto = AutoLogDet(exact_max_features=4)
    assert isinstance(auto.select(4, training=False), ExactLogDet)
    assert isinstance(auto.select(5, training=False), RouletteLogDet)
    assert isinstance(auto.select(2, training=True), RouletteLogDet)
    block = saturated_block(3)
    flow_like = torch.nn.Sequential(block)
    x = torch.randn(2, 3, dtype=D64)
    exact, _ = _exact(block, x)
    block.train()
    with log_det_estimator(flow_like, ExactLogDet()):
        torch.testing.assert_close(block(x)[1], exact, rtol=0, atol=1e-10)
    assert isinstance(block.estimator, AutoLogDet)
    with pytest.raises(ValueError, match="contains no ResidualBlock"):
        with log_det_estimator(torch.nn.Linear(2, 2), ExactLogDet()):
            pass


def test_estimator_arguments_are_checked():
    with pytest.raises(ValueError, match="ExactLogDet: the event has 5 elements"):
        block = saturated_block(5, estimator=ExactLogDet(max_features=4))
        block(torch.randn(2, 5, dtype=D64))
    with pytest.raises(ValueError, match="RouletteLogDet: p must be in"):
        RouletteLogDet(p=1.0)
    with pytest.raises(ValueError, match="PowerSeriesLogDet: terms"):
        PowerSeriesLogDet(terms=0)
    with pytest.raises(ValueError, match="noise must be"):
        RouletteLogDet(noise="uniform")
    with pytest.raises(TypeError, match="ResidualBlock: estimator must be"):
        ResidualBlock(3, estimator="exact")
