"""The iterative inverse: accuracy with reports, acceleration, failure handling, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from innverse.blocks import (
    ExactLogDet,
    FixedPointError,
    FixedPointSolver,
    FixedPointWarning,
    ResidualBlock,
)

from .helpers import D64, linear_block, saturated_block


@pytest.mark.parametrize("method", ["fixed_point", "anderson", "newton"])
@pytest.mark.parametrize("shape,context", [((4,), None), ((4,), (3,)), ((2, 4, 4), (3,)), ((2, 4, 4), (1, 4, 4))])
def test_round_trip_below_1e_6_with_c_0_9_and_report(method, shape, context):
    torch.manual_seed(0)
    block = ResidualBlock(shape, context, hidden=(16,) if len(shape) == 1 else (8,), coeff=0.9,
                          solver=FixedPointSolver(method=method)).double().eval()
    with torch.no_grad():  # saturate the normalisation: every layer at norm 0.9
        for p in block.net.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    x = 2 * torch.randn(5, *shape, dtype=D64)
    c = None if context is None else torch.randn(5, *context, dtype=D64)
    y, ld = block(x, c)
    x2, ld_inv = block.inverse(y, c)
    report = block.last_inverse
    err = (x2 - x).abs().max().item()
    assert err < 1e-6 * x.abs().max().item()
    assert report.converged and report.method == method and report.iterations >= 1
    assert report.residual <= report.tolerance * y.abs().max().item() and report.tolerance == 1e-11
    assert (x2 - x).flatten(1).norm(dim=1).max().item() <= report.error_bound
    torch.testing.assert_close(ld_inv, -ld, rtol=0, atol=1e-9)


def test_acceleration_reduces_iterations():
    block = linear_block((-0.93, 0.9, 0.5, -0.2))
    x = torch.randn(3, 4, dtype=D64)
    y, _ = block(x, log_det=False)
    iterations = {}
    for method in ("fixed_point", "anderson", "newton"):
        block.solver = FixedPointSolver(method=method)
        x2, _ = block.inverse(y, log_det=False)
        assert (x2 - x).abs().max() < 1e-9
        iterations[method] = block.last_inverse.iterations
    assert iterations["fixed_point"] > 250  # the error shrinks by 0.93 per step
    assert iterations["anderson"] < iterations["fixed_point"] / 10
    assert iterations["newton"] <= 3  # g is linear: Newton is exact in one step


def test_non_convergence_raises_with_the_achieved_error():
    block = saturated_block(4, solver=FixedPointSolver(max_iterations=3))
    y = torch.randn(3, 4, dtype=D64)
    with pytest.raises(FixedPointError, match=r"ResidualBlock: the fixed-point inverse did not converge "
                                              r"in 3 iterations \(fixed_point\): residual") as info:
        block.inverse(y)
    assert not info.value.result.converged and info.value.result.residual > 1e-11


def test_non_convergence_warns_when_asked():
    block = saturated_block(4, solver=FixedPointSolver(max_iterations=3, on_failure="warn"))
    y = torch.randn(3, 4, dtype=D64)
    with pytest.warns(FixedPointWarning, match="did not converge"):
        x, _ = block.inverse(y)
    assert not block.last_inverse.converged and math.isfinite(block.last_inverse.residual)
    assert x.shape == y.shape


def test_solver_arguments_are_checked():
    with pytest.raises(ValueError, match="FixedPointSolver: method"):
        FixedPointSolver(method="broyden")
    with pytest.raises(ValueError, match="FixedPointSolver: on_failure"):
        FixedPointSolver(on_failure="ignore")
    with pytest.raises(ValueError, match="FixedPointSolver: tolerance"):
        FixedPointSolver(tolerance=0.0)
    block = ResidualBlock((2, 4, 4), hidden=(4,), solver=FixedPointSolver(method="newton", newton_max_features=8))
    with pytest.raises(ValueError, match="ResidualBlock: method='newton' needs brute-force Jacobians"):
        block.inverse(torch.randn(1, 2, 4, 4))


def test_implicit_gradient_matches_unrolled_iteration():
    """Gradients of the inverse (and its log-det) w.r.t. y, the condition and all parameters."""
    torch.manual_seed(1)
    block = ResidualBlock(3, (2,), hidden=(16,), coeff=0.9, spectral="exact").double().eval()
    y = torch.randn(4, 3, dtype=D64, requires_grad=True)
    c = torch.randn(4, 2, dtype=D64, requires_grad=True)
    weights = torch.randn(4, 3, dtype=D64)
    params = list(block.parameters())

    x, ld = block.inverse(y, c)
    loss = (x * weights).sum() + (ld * torch.arange(4.0, dtype=D64)).sum()
    got = torch.autograd.grad(loss, [y, c, *params])

    xu = y
    for _ in range(300):  # unrolled contraction, differentiated by plain autograd
        xu = y - block.g(xu, c)
    ldu = -ExactLogDet()(block.g(xu, c), xu, create_graph=True, training=False)
    lossu = (xu * weights).sum() + (ldu * torch.arange(4.0, dtype=D64)).sum()
    want = torch.autograd.grad(lossu, [y, c, *params])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_float32_uses_its_own_tolerance():
    torch.manual_seed(2)
    block = ResidualBlock(4, hidden=(32,), coeff=0.9).eval()
    x = torch.randn(64, 4)
    x2, _ = block.inverse(block(x)[0])
    assert block.last_inverse.tolerance == 1e-5 and block.last_inverse.converged
    assert (x2 - x).abs().max() < 1e-4


def test_higher_order_gradients_of_the_inverse_are_refused():
    block = saturated_block(3)
    y = torch.randn(2, 3, dtype=D64, requires_grad=True)
    x, _ = block.inverse(y, log_det=False)
    with pytest.raises(RuntimeError, match="first-order gradients only"):
        torch.autograd.grad(x.sum(), y, create_graph=True)
