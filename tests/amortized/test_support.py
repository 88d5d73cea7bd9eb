"""The bijection from a box-shaped support to unbounded space."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats
from scipy.integrate import quad

from innverse.amortized import SupportTransform
from innverse.blocks.support import LINEAR_HALF_WIDTH, WIDE_HALF_WIDTH, _linear_quantile, half_width_for

INF = math.inf


def _transform(interval: str = "probit", half: float = LINEAR_HALF_WIDTH):
    lower = torch.tensor([-INF, 0.0, -INF, -1.0], dtype=torch.float64)
    upper = torch.tensor([INF, INF, 3.0, 2.0], dtype=torch.float64)
    return SupportTransform(lower, upper, interval, half)


@pytest.mark.parametrize(("interval", "half"), [("probit", 2.0), ("logit", 2.0), ("linear", 2.0), ("linear", 4.0),
                                               ("linear", 0.5)])
def test_round_trip_and_log_det_against_autograd_jacobian(interval, half):
    t = _transform(interval, half)
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


@pytest.mark.parametrize("interval", ["probit", "logit", "linear"])
def test_extreme_latents_stay_strictly_inside_in_float32(interval):
    t = SupportTransform(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([1.0, 1.0, INF]), interval)
    u = torch.tensor([[40.0, -40.0, -200.0], [1e6, 1e6, -1e6]], dtype=torch.float32)
    theta, ld = t.inverse(u)
    assert theta.dtype == torch.float32
    assert (theta[:, :2] < torch.tensor([1.0, 1.0])).all() and (theta > torch.tensor([0.0, -1.0, 0.0])).all()
    assert torch.isfinite(ld).all()
    prior = torch.distributions.Uniform(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 1.0]))
    assert torch.isfinite(prior.log_prob(theta[:, :2])).all()


@pytest.mark.parametrize(("interval", "far"), [("probit", 5.0), ("logit", 10.0), ("linear", LINEAR_HALF_WIDTH + 4.0)])
def test_values_on_the_bound_map_to_finite_latents(interval, far):
    t = SupportTransform(torch.tensor([0.0]), torch.tensor([1.0]), interval)
    u, ld = t(torch.tensor([[0.0], [1.0]]))
    assert torch.isfinite(u).all() and torch.isfinite(ld).all()
    assert u[0, 0] < -far and u[1, 0] > far


def test_probit_maps_a_uniform_to_a_standard_normal_and_logit_to_a_logistic():
    """The pushforward of U(a, b): exactly N(0, 1) under probit (KS test), the standard logistic under logit."""
    a, b = -1.0, 3.0
    theta = a + (b - a) * torch.rand(20000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u_probit = SupportTransform(torch.tensor([a]), torch.tensor([b]), "probit")(theta)[0][:, 0].numpy()
    u_logit = SupportTransform(torch.tensor([a]), torch.tensor([b]), "logit")(theta)[0][:, 0].numpy()
    assert stats.kstest(u_probit, "norm").pvalue > 1e-3
    assert stats.kstest(u_logit, "logistic").pvalue > 1e-3
    assert stats.kstest(u_logit, "norm").pvalue < 1e-6       # the logit's tails are not Gaussian


@pytest.mark.parametrize("half", [LINEAR_HALF_WIDTH, 4.0])
def test_linear_maps_a_uniform_to_a_uniform_plus_a_standard_normal(half):
    """The pushforward of U(a, b) under ``"linear"`` is U(-L, L) + N(0, 1), drawn directly here (two-sample KS;
    a monotone map is fixed by its pushforward), with the log-density the map's log-determinant implies."""
    a, b = -1.0, 3.0
    gen = torch.Generator().manual_seed(0)
    theta = a + (b - a) * torch.rand(20000, 1, generator=gen, dtype=torch.float64)
    t = SupportTransform(torch.tensor([a]), torch.tensor([b]), "linear", half)
    u, log_det = t(theta)
    direct = half * (2 * torch.rand(20000, generator=gen, dtype=torch.float64) - 1) + torch.randn(
        20000, generator=gen, dtype=torch.float64)
    assert stats.ks_2samp(u[:, 0].numpy(), direct.numpy()).pvalue > 1e-3
    assert stats.kstest(u[:, 0].numpy() / u.std().item(), "norm").pvalue < 1e-4    # not the probit's normal
    # density of u: p(theta) |dtheta/du| = (Phi(u + L) - Phi(u - L)) / 2L, by quadrature of the convolution here
    grid = u[:5, 0].numpy()
    density = [quad(lambda s, g=g: stats.norm.pdf(g - s) / (2 * half), -half, half)[0] for g in grid]
    torch.testing.assert_close(-math.log(b - a) - log_det[:5], torch.log(torch.tensor(density, dtype=torch.float64)))


@pytest.mark.parametrize(("q", "half_width"), [
    *[(q, LINEAR_HALF_WIDTH) for q in (1e-30, 1e-20, 1e-12, 1e-6, 1e-3, 0.02, 0.1, 0.124, 0.126, 0.2, 0.3, 0.45, 0.5)],
    *[(q, 4.0) for q in (1e-30, 1e-6, 0.03, 0.062, 0.063, 0.3, 0.5)], *[(q, 0.5) for q in (1e-30, 1e-3, 0.3, 0.5)]])
def test_linear_quantile_solves_the_cdf_against_high_precision_arithmetic(q, half_width):
    """The inverse of the ``"linear"`` map's CDF, F(w) = (psi(w + L) - psi(w - L)) / 2L, against a 50-digit root
    found by mpmath (its own erfc; none of the float64 code), over the whole range the map uses, on both
    sides of the switch between the tail and the middle starts (q = 1/4L), and its gradient 1 / f(w)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    half = mpmath.mpf(half_width)

    def psi(t):
        return t * mpmath.ncdf(t) + mpmath.npdf(t)

    exact = mpmath.findroot(lambda w: mpmath.log((psi(w + half) - psi(w - half)) / (2 * half)) - mpmath.log(q),
                            (-half - 20, mpmath.mpf(0)), solver="anderson")
    qt = torch.tensor([q], dtype=torch.float64, requires_grad=True)
    w = _linear_quantile(qt, half_width)
    assert abs(w.item() - float(exact)) <= 1e-10 * max(1.0, abs(float(exact)))
    (grad,) = torch.autograd.grad(w.sum(), qt)
    density = (mpmath.ncdf(exact + half) - mpmath.ncdf(exact - half)) / (2 * half)
    assert grad.item() == pytest.approx(float(1 / density), rel=1e-8)


def test_an_unknown_interval_map_is_refused():
    with pytest.raises(ValueError, match=r"SupportTransform: interval must be one of \('probit', 'logit', 'linear'\), "
                       r"got 'tanh'"):
        SupportTransform(torch.tensor([0.0]), torch.tensor([1.0]), "tanh")


@pytest.mark.parametrize("half", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_half_width_is_refused(half):
    with pytest.raises(ValueError, match=r"SupportTransform: half_width must be a positive finite number, got "):
        SupportTransform(torch.tensor([0.0]), torch.tensor([1.0]), "linear", half)


def test_unbounded_is_identity():
    t = SupportTransform(torch.full((2,), -INF), torch.full((2,), INF))
    x = torch.randn(3, 2)
    y, ld = t(x)
    assert y is x and torch.equal(ld, torch.zeros(3))


@pytest.mark.parametrize(("simulations", "half"), [(None, 2.0), (0, 2.0), (1, 2.0), (1_000, 2.0), (10_000, 2.0),
                                                   (31_623, 3.0), (100_000, 4.0), (10**7, 4.0)])
def test_the_half_width_grows_from_two_to_four_between_ten_and_a_hundred_thousand_simulations(simulations, half):
    assert half_width_for(simulations) == pytest.approx(half, abs=1e-4)


def test_the_half_width_never_shrinks_with_more_simulations():
    widths = [half_width_for(n) for n in range(0, 200_000, 997)]
    assert all(a <= b for a, b in itertools.pairwise(widths))
    assert widths[0] == LINEAR_HALF_WIDTH and widths[-1] == WIDE_HALF_WIDTH


@pytest.mark.parametrize("bad", [-1, 2.5e4, True, "10000"])
def test_the_half_width_rule_refuses_a_bad_number_of_simulations(bad):
    with pytest.raises(ValueError, match=r"half_width_for: simulations must be a non-negative int or None, got "):
        half_width_for(bad)
