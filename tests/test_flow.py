"""Flows: shapes, densities against analytic ground truth, sampling statistics, adapters."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch.distributions import Independent, Normal, TransformedDistribution

import innverse
from innverse import Flow, Sequence
from innverse.blocks import ActNorm, AffineCoupling, LULinear, RandomPermutation
from innverse.core import DiagonalGaussian, GaussianMixture, StandardNormal, TorchTransform
from innverse.nets import mlp_constructor


def _linear_gaussian_flow() -> tuple[Flow, torch.Tensor, torch.Tensor]:
    """A flow whose transform is affine, so its density is an exact Gaussian we can write down."""
    torch.manual_seed(0)
    lu = LULinear(3, seed=1)
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(0.3 * torch.randn_like(p))
    flow = Flow(Sequence(lu)).double()
    w = lu.weight().detach().double()
    b = lu.bias.detach().double()
    # z = W x + b ~ N(0, I)  =>  x ~ N(-W^{-1} b, (W^T W)^{-1})
    mean = -torch.linalg.solve(w, b)
    cov = torch.linalg.inv(w.T @ w)
    return flow, mean, cov


def test_log_prob_matches_analytic_gaussian():
    flow, mean, cov = _linear_gaussian_flow()
    x = torch.randn(50, 3, dtype=torch.float64)
    expected = torch.distributions.MultivariateNormal(mean, cov).log_prob(x)
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-10, atol=1e-10)


def test_samples_follow_analytic_gaussian():
    flow, mean, cov = _linear_gaussian_flow()
    x = flow.sample(20_000, generator=torch.Generator().manual_seed(3))
    # Whiten with the true covariance: every coordinate must be N(0, 1) (KS test, fixed seed).
    chol = torch.linalg.cholesky(cov)
    u = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False).T
    for j in range(3):
        assert stats.kstest(u[:, j].numpy(), "norm").pvalue > 1e-3
    # A wrong mean by half a standard deviation would be rejected by the same test.
    assert stats.kstest(u[:, 0].numpy() + 0.05, "norm").pvalue < 1e-3


def test_sample_shapes_and_context_ordering():
    flow = innverse.flows.coupling_flow(2, 3, blocks=2, hidden=(16,))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ctx = torch.randn(4, 3)
    s = flow.sample(5, ctx, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 4, 2)
    # Column j really belongs to context j: log_prob under context j beats the others on average.
    big = flow.sample(2000, ctx, generator=torch.Generator().manual_seed(1))
    for j in range(4):
        own = flow.log_prob(big[:, j], ctx[j].expand(2000, 3)).mean()
        for k in range(4):
            if k != j:
                assert own > flow.log_prob(big[:, j], ctx[k].expand(2000, 3)).mean()
    x, lp = flow.sample_and_log_prob(6, ctx)
    assert x.shape == (6, 4, 2) and lp.shape == (6, 4)
    torch.testing.assert_close(lp[:, 2], flow.log_prob(x[:, 2], ctx[2].expand(6, 3)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("coupling", ["spline", "affine"])
def test_results_do_not_depend_on_the_chunk_size(coupling):
    flow = innverse.flows.coupling_flow(3, 2, blocks=3, hidden=(16,), coupling=coupling).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ctx = torch.randn(7, 2, dtype=torch.float64)
    x = torch.randn(700, 3, dtype=torch.float64)
    c = ctx.repeat(100, 1)
    out = {}
    for size in (None, 64, 333, Flow(flow.transform).chunk_size):
        flow.chunk_size = size
        out[size] = (flow.log_prob(x, c), *flow.sample_and_log_prob(100, ctx, torch.Generator().manual_seed(3)))
    ref = out[None]
    for size, got in out.items():
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"chunk_size {size}")


def test_unconditional_sample_shape_and_rsample_gradient():
    flow = innverse.flows.coupling_flow(3, blocks=2, hidden=(8,))
    assert flow.sample(11).shape == (11, 3)
    x = flow.rsample(5)
    x.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_image_flow_sample_shape():
    flow = innverse.flows.multiscale_flow((1, 8, 8), scales=2, blocks_per_scale=1, hidden_channels=4,
                                          dense_blocks=1, dense_hidden=(8,))
    assert flow.sample(3).shape == (3, 1, 8, 8)
    assert flow.log_prob(torch.randn(4, 1, 8, 8)).shape == (4,)


def test_context_net_runs_once_per_batch():
    calls = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 4)

        def forward(self, c):
            calls.append(c.shape[0])
            return self.lin(c)

    flow = innverse.flows.coupling_flow(3, 4, blocks=4, hidden=(8,), context_net=Net(), context_shape=(5,))
    flow.log_prob(torch.randn(10, 3), torch.randn(10, 5))
    assert calls == [10]  # once for the whole batch, not once per block
    calls.clear()
    flow.sample(100, torch.randn(3, 5))
    assert calls == [3]  # embedded once per distinct context, then repeated


def test_torch_transform_adapter_matches_flow():
    torch.manual_seed(0)
    inn = Sequence(AffineCoupling(2, mlp_constructor((8,))), RandomPermutation(2, seed=0), ActNorm(2))
    inn.eval()
    with torch.no_grad():
        for p in inn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    flow = Flow(inn)
    base = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    dist = TransformedDistribution(base, [TorchTransform(inn).inv])
    x = torch.randn(20, 2)
    torch.testing.assert_close(dist.log_prob(x), flow.log_prob(x), rtol=1e-5, atol=1e-5)
    y = dist.sample((7,))
    assert y.shape == (7, 2)
    t = TorchTransform(inn)
    z = t(x)
    torch.testing.assert_close(t.inv(z), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, z), inn(x)[1])


def test_gaussian_mixture_density_and_samples():
    torch.manual_seed(0)
    means = torch.tensor([[-3.0, 0.0], [3.0, 1.0]])
    gm = GaussianMixture(2, 2, means=means, scale=0.5).double()
    with torch.no_grad():
        gm.logits.copy_(torch.tensor([0.0, math.log(3.0)]))  # weights 1/4, 3/4
    z = torch.randn(30, 2, dtype=torch.float64)
    comps = [torch.distributions.MultivariateNormal(means[k].double(), 0.25 * torch.eye(2, dtype=torch.float64))
             for k in range(2)]
    expected = torch.logsumexp(torch.stack([math.log(0.25) + comps[0].log_prob(z),
                                            math.log(0.75) + comps[1].log_prob(z)]), 0)
    torch.testing.assert_close(gm.log_prob(z), expected)
    s = gm.sample(20_000, torch.Generator().manual_seed(0))
    frac = (s[:, 0] > 0).double().mean().item()
    assert abs(frac - 0.75) < 0.02  # binomial sd ~0.003
    upper = s[s[:, 0] > 0]
    assert stats.kstest(((upper[:, 1] - 1.0) / 0.5).numpy(), "norm").pvalue > 1e-3


def test_diagonal_gaussian_and_standard_normal():
    d = DiagonalGaussian(3, loc=torch.tensor([1.0, 2.0, 3.0]), scale=2.0).double()
    z = torch.randn(10, 3, dtype=torch.float64)
    expected = Independent(Normal(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                                  2 * torch.ones(3, dtype=torch.float64)), 1).log_prob(z)
    torch.testing.assert_close(d.log_prob(z), expected)
    sn = StandardNormal((2, 3)).double()
    z = torch.randn(4, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(sn.log_prob(z), Normal(0.0, 1.0).log_prob(z).sum((1, 2)))
    assert sn.sample(5).dtype == torch.float64


def test_flow_float64_everywhere():
    flow = innverse.flows.coupling_flow(4, 2, blocks=2, hidden=(8,), coupling="spline").double()
    x, c = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    assert flow.log_prob(x, c).dtype == torch.float64
    assert flow.sample(2, c).dtype == torch.float64


@pytest.mark.parametrize("coupling", innverse.flows.COUPLINGS)
@pytest.mark.parametrize("permutation", innverse.flows.PERMUTATIONS)
def test_coupling_flow_options(coupling, permutation):
    flow = innverse.flows.coupling_flow(3, 2, blocks=2, hidden=(8,), coupling=coupling,
                                        permutation=permutation, actnorm=True)
    x, c = torch.randn(6, 3), torch.randn(6, 2)
    flow.log_prob(x, c).mean().backward()
    z, _ = flow.transform(x, c)
    torch.testing.assert_close(flow.transform.inverse(z, c)[0], x, rtol=1e-4, atol=1e-4)


def test_an_empty_batch_has_an_empty_log_prob():
    from innverse.flows import coupling_flow

    flow = coupling_flow(2, 3, blocks=2, hidden=(8,))
    assert flow.log_prob(torch.zeros(0, 2), torch.zeros(0, 3)).shape == (0,)
    assert flow.log_prob(torch.zeros(4, 0, 2), torch.zeros(0, 3)).shape == (4, 0)
    with pytest.raises(ValueError, match=r"Flow\.log_prob: x has batch size 0 but the context has 3"):
        flow.log_prob(torch.zeros(0, 2), torch.zeros(3, 3))


@torch.no_grad()
def test_actnorm_data_init_keeps_scale_one_on_a_constant_channel():
    """A channel that is constant over the initialising batch (an always-blank pixel, zero padding) must not get
    scale 1/eps: a later input that differs there would be blown up by 1e6, and the inverse would squash it."""
    norm = ActNorm((3, 4, 4))
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[:, 1] = 0.25
    norm.double().train()
    y, _ = norm(x)
    assert float(norm.log_scale[1].abs()) < 1e-5
    torch.testing.assert_close(y[:, 1], torch.zeros_like(y[:, 1]))   # centred, not scaled
    for c in (0, 2):   # the others are standardised as before
        torch.testing.assert_close(y[:, c].std(), torch.tensor(1.0, dtype=torch.float64), atol=1e-5, rtol=0)
    norm.eval()
    probe = x.clone()
    probe[:, 1] += 1.0
    torch.testing.assert_close(norm(probe)[0][:, 1], torch.ones_like(y[:, 1]), atol=1e-5, rtol=0)
