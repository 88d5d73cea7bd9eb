"""Masked autoregressive blocks: triangular Jacobian, sequential inverse, one block = any Gaussian."""

from __future__ import annotations

import math

import pytest
import torch

from innverse import blocks as B
from innverse.flows import coupling_flow


def _perturbed(m: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.double()


@pytest.mark.parametrize("block", ["affine", "spline"])
def test_jacobian_is_lower_triangular_and_the_inverse_is_exact(block: str) -> None:
    torch.manual_seed(0)
    m = (B.MaskedAffineAutoregressive(4, (16,), 2) if block == "affine"
         else B.MaskedSplineAutoregressive(4, (16,), 2, bins=4, bound=2.0))
    m = _perturbed(m)
    x, c = torch.randn(1, 4, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: m(v[None], c)[0][0], x[0])
    assert not jac.triu(1).any()
    assert torch.allclose(m(x, c)[1], jac.diagonal().abs().log().sum(), atol=1e-10)
    y = m(torch.randn(64, 4, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64).expand(64, 2))[0]
    cc = torch.randn(64, 2, dtype=torch.float64)
    back, ld = m.inverse(y, cc)
    fwd, ld_f = m(back, cc)
    assert torch.allclose(fwd, y, atol=1e-10) and torch.allclose(ld, -ld_f, atol=1e-10)


@pytest.mark.parametrize("block, context, hidden, activation", [
    ("affine", 0, (16,), torch.nn.ReLU), ("affine", 3, (16, 12), torch.nn.ReLU),
    ("spline", 3, (16, 16), torch.nn.ReLU), ("spline", 0, (8, 8, 8), torch.nn.ReLU),
    ("affine", 2, (3, 7), torch.nn.ReLU),  # fewer hidden units than features: some degrees have none
    ("spline", 2, (12, 9), torch.nn.ELU)])
def test_one_feature_per_pass_inverse_equals_full_passes(block: str, context: int, hidden: tuple[int, ...],
                                                          activation: type[torch.nn.Module]) -> None:
    """The inverse's feature-at-a-time MADE evaluation against D full passes of the MADE.

    Values with and without autograd (the two ways the hidden units are stored), and gradients.
    """
    torch.manual_seed(1)
    m = (B.MaskedAffineAutoregressive(5, hidden, context, activation=activation) if block == "affine"
         else B.MaskedSplineAutoregressive(5, hidden, context, bins=4, bound=2.0, activation=activation))
    m = _perturbed(m)
    y = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(40, context, dtype=torch.float64) if context else None

    def full_passes(y):
        x, ld = torch.zeros_like(y), None
        for _ in range(5):
            x, ld = m.transformer.inverse(y, m.transformer.split(m.made(x, c)), True)
        return x, ld

    x_ref, ld_ref = full_passes(y)
    x, ld = m._inverse(y, c, True)
    torch.testing.assert_close(x, x_ref, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ld, ld_ref, rtol=1e-11, atol=1e-11)
    with torch.no_grad():
        x_ng, ld_ng = m._inverse(y, c, True)
    torch.testing.assert_close(x_ng, x_ref.detach(), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ld_ng, ld_ref.detach(), rtol=1e-11, atol=1e-11)
    weights = torch.randn(40, 5, dtype=torch.float64)
    g = torch.autograd.grad((x * weights).sum() + ld.sum(), [y, *m.parameters()])
    g_ref = torch.autograd.grad((x_ref * weights).sum() + ld_ref.sum(), [y, *m.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_one_affine_block_learns_a_correlated_gaussian() -> None:
    """With its linear path one MAF block is a full-covariance Gaussian: ML reaches the true entropy."""
    gen = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.5, 0.0], [-0.7, 0.6, 0.3]])
    cov = a @ a.T
    data = torch.randn(4000, 3, generator=gen) @ a.T + torch.tensor([1.0, -2.0, 0.5])
    torch.manual_seed(0)
    flow = coupling_flow(3, blocks=1, hidden=(8,), coupling="autoregressive", permutation="none")
    opt = torch.optim.Adam(flow.parameters(), lr=2e-2)
    for _ in range(400):
        opt.zero_grad()
        loss = -flow.log_prob(data).mean()
        loss.backward()
        opt.step()
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * cov)
    assert float(-flow.log_prob(data).mean().detach()) < float(entropy) + 0.02
    s = flow.sample(20_000).detach()
    assert torch.allclose(torch.cov(s.T), cov, atol=0.06)


def test_autoregressive_flows_sample_conditionally_with_consistent_densities() -> None:
    """Sampling runs the sequential inverse; its log-density matches the one-pass forward evaluation."""
    torch.manual_seed(0)
    for kind in ("autoregressive", "autoregressive_spline"):
        flow = _perturbed(coupling_flow(5, 3, blocks=2, hidden=(16,), coupling=kind))
        c = torch.randn(7, 3, dtype=torch.float64)
        s, lp = flow.sample_and_log_prob(4, c)
        assert s.shape == (4, 7, 5) and lp.shape == (4, 7)
        again = flow.log_prob(s.reshape(28, 5), c.repeat(4, 1)).reshape(4, 7)
        assert torch.allclose(lp, again, atol=1e-9)
