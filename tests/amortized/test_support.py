"""The bijection from a box-shaped support to unbounded space."""

from __future__ import annotations

import math

import torch

from innverse.amortized import SupportTransform

INF = math.inf


def _transform():
    lower = torch.tensor([-INF, 0.0, -INF, -1.0], dtype=torch.float64)
    upper = torch.tensor([INF, INF, 3.0, 2.0], dtype=torch.float64)
    return SupportTransform(lower, upper)


def test_round_trip_and_log_det_against_autograd_jacobian():
    t = _transform()
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 2
    theta, ld_inv = t.inverse(u)
    assert t.inside(theta).all()
    u2, ld_fwd = t(theta)
    assert torch.allclose(u2, u, atol=1e-10)
    assert torch.allclose(ld_fwd, -ld_inv, atol=1e-10)
    for i in range(u.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: t.inverse(v[None])[0][0], u[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ld_inv[i], atol=1e-10)


def test_extreme_latents_stay_strictly_inside_in_float32():
    t = SupportTransform(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([1.0, 1.0, INF]))
    u = torch.tensor([[40.0, -40.0, -200.0], [1e6, 1e6, -1e6]], dtype=torch.float32)
    theta, ld = t.inverse(u)
    assert theta.dtype == torch.float32
    assert (theta[:, :2] < torch.tensor([1.0, 1.0])).all() and (theta > torch.tensor([0.0, -1.0, 0.0])).all()
    assert torch.isfinite(ld).all()
    prior = torch.distributions.Uniform(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 1.0]))
    assert torch.isfinite(prior.log_prob(theta[:, :2])).all()


def test_values_on_the_bound_map_to_finite_latents():
    t = SupportTransform(torch.tensor([0.0]), torch.tensor([1.0]))
    u, ld = t(torch.tensor([[0.0], [1.0]]))
    assert torch.isfinite(u).all() and torch.isfinite(ld).all()
    assert u[0, 0] < -10 and u[1, 0] > 10


def test_unbounded_is_identity():
    t = SupportTransform(torch.full((2,), -INF), torch.full((2,), INF))
    x = torch.randn(3, 2)
    y, ld = t(x)
    assert y is x and torch.equal(ld, torch.zeros(3))
