"""The rational-quadratic spline's hand-written backward pass against independent ground truth.

Finite differences (``gradcheck``, float64) check the gradients with respect to the input and every
raw parameter, in both directions, with elements inside and outside the spline's interval; autograd
through the plain forward operations checks them again at extreme parameters; ``gradgradcheck``
checks the second derivatives (the differentiable-backward path).
"""

import math

import pytest
import torch

from innverse.blocks import RationalQuadraticSpline
from innverse.blocks._rqs import SplineConfig, _spline, rq_spline


def _config(bins=5, bound=2.0, min_width=1e-3, min_height=1e-3, min_derivative=1e-3):
    return SplineConfig(bins, bound, min_width, min_height, min_derivative,
                        math.log(math.expm1(1.0 - min_derivative)))


def _inputs(cfg, shape=(12, 3), extra=0, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    # about a quarter of the elements outside [-B, B], where the map is the identity
    v = torch.randn(*shape, generator=g, dtype=torch.float64) * cfg.bound * 0.9
    theta = torch.randn(*shape, 3 * cfg.bins - 1 + extra, generator=g, dtype=torch.float64) * scale
    return v.requires_grad_(True), theta.requires_grad_(True)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("cfg", [_config(), _config(bins=3, bound=1.5, min_width=0.05, min_height=0.02,
                                                    min_derivative=0.01)])
def test_gradients_match_finite_differences(inverse, cfg):
    v, theta = _inputs(cfg)
    assert ((v.abs() > cfg.bound).sum() > 0) and ((v.abs() < cfg.bound).sum() > 0)
    assert torch.autograd.gradcheck(lambda a, b: rq_spline(a, b, cfg, inverse), (v, theta))


@pytest.mark.parametrize("inverse", [False, True])
def test_second_derivatives_match_finite_differences(inverse):
    cfg = _config(bins=4)
    v, theta = _inputs(cfg, shape=(6, 2))
    assert torch.autograd.gradgradcheck(lambda a, b: rq_spline(a, b, cfg, inverse), (v, theta))


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("scale", [0.1, 3.0, 40.0])  # 40: many raw sizes beyond the +-30 clamp
def test_gradients_equal_autograd_through_the_plain_operations(inverse, scale):
    cfg = _config(bins=8, bound=3.0)
    v, theta = _inputs(cfg, shape=(64, 2, 3), extra=2, scale=scale, seed=1)
    g_out, g_ld = torch.randn_like(v), torch.randn_like(v)
    out, ld = rq_spline(v, theta, cfg, inverse)
    fast = torch.autograd.grad((out, ld), (v, theta), (g_out, g_ld))
    out_ref, ld_ref, _ = _spline(v, theta, cfg, inverse)
    ref = torch.autograd.grad((out_ref, ld_ref), (v, theta), (g_out, g_ld))
    assert torch.equal(out, out_ref) and torch.equal(ld, ld_ref)
    for a, b in zip(fast, ref):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # parameters after the spline's own (the affine variant's) get no gradient from the spline
    assert torch.equal(fast[1][..., 3 * cfg.bins - 1:], torch.zeros_like(fast[1][..., 3 * cfg.bins - 1:]))


def test_float32_gradients_follow_float64():
    cfg = _config(bins=8, bound=3.0)
    v, theta = _inputs(cfg, shape=(256, 2), seed=2)
    grads = {}
    for dtype in (torch.float64, torch.float32):
        a, b = v.detach().to(dtype).requires_grad_(True), theta.detach().to(dtype).requires_grad_(True)
        out, ld = rq_spline(a, b, cfg, False)
        (out.sum() + ld.sum()).backward()
        assert a.grad.dtype == dtype and b.grad.dtype == dtype
        grads[dtype] = (a.grad.double(), b.grad.double())
    for a, b in zip(grads[torch.float32], grads[torch.float64]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_constants_cached_under_inference_mode_can_join_a_graph():
    # the spline caches its constants; made under inference mode they could not join a graph later
    spline = RationalQuadraticSpline(bins=6, bound=2.5, min_derivative=2e-3)
    x = torch.randn(16, 3, dtype=torch.float64)
    p = torch.randn(16, 3, spline.params, dtype=torch.float64)
    with torch.inference_mode():
        y_inf, _ = spline.forward(x, [p], True)
    p.requires_grad_(True)
    y, ld = spline.forward(x, [p], True)
    # a second derivative records the plain operations, constants included, in a graph
    (g,) = torch.autograd.grad(y.sum() + ld.sum(), p, create_graph=True)
    g.square().sum().backward()
    assert torch.equal(y.detach(), y_inf) and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
