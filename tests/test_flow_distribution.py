"""A Flow behaves like a torch.distributions.Distribution: flow(c), sample shapes, batch shapes, expand, Pyro."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Distribution, Independent, Normal

from innverse import Flow, Sequence
from innverse.blocks import ActNorm, AffineCoupling, LULinear
from innverse.flows import coupling_flow


def _conditional(seed: int = 0) -> Flow:
    torch.manual_seed(seed)
    flow = coupling_flow(2, 3, blocks=2, hidden=(16,))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return flow.eval()


def test_calling_a_flow_gives_a_distribution_with_the_contexts_batch_shape():
    flow = _conditional()
    c = torch.randn(4, 5, 3)
    d = flow(c)
    assert isinstance(d, Distribution) and d.batch_shape == (4, 5) and d.event_shape == (2,)
    x = d.sample((7,))
    assert x.shape == (7, 4, 5, 2)
    lp = d.log_prob(x)
    assert lp.shape == (7, 4, 5)
    # against the flow's own paired log_prob, row by row
    torch.testing.assert_close(lp[3, 2, 1], flow.log_prob(x[3, 2, 1][None], c[2, 1][None])[0])
    assert d.support.check(x).all() and d.has_rsample
    assert flow(c[0, 0]).batch_shape == () and flow(c[0, 0]).sample((3,)).shape == (3, 2)
    e = flow(c[0, 0]).expand((6,))
    assert e.batch_shape == (6,) and e.sample((2,)).shape == (2, 6, 2)
    with pytest.raises(NotImplementedError, match="estimate it from samples"):
        _ = d.mean


def test_unconditional_sample_shapes_batch_and_expand():
    torch.manual_seed(0)
    flow = Flow(Sequence(ActNorm(3), AffineCoupling(3), LULinear(3, seed=0)))
    assert flow.batch_shape == () and flow.sample((5,)).shape == (5, 3) and flow.sample(5).shape == (5, 3)
    assert flow.sample((2, 4)).shape == (2, 4, 3)
    assert flow.log_prob(torch.randn(2, 4, 3)).shape == (2, 4)
    d = flow()
    assert d.sample().shape == (3,) and d.log_prob(torch.zeros(3)).shape == ()
    e = flow.expand((5,))
    s = e.sample((100,))
    assert s.shape == (100, 5, 3) and not torch.equal(s[:, 0], s[:, 1])     # independent copies
    with pytest.raises(ValueError, match="this flow is conditional; give a context"):
        _conditional()()


def test_the_distribution_samples_what_its_density_says():
    """Draws of flow(c) against flow(c).log_prob: the CDF of a 1-D marginal by integration (KS test)."""
    flow = _conditional(3).double().requires_grad_(False)
    c = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    d = flow(c)
    s = d.sample((4000,), generator=torch.Generator().manual_seed(1))
    assert abs(float(d.log_prob(s).mean() - flow.log_prob(s, c).mean())) < 1e-9
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)
    pairs = torch.cartesian_prod(grid, grid)
    dens = d.log_prob(pairs).exp().reshape(801, 801)
    marginal = torch.trapezoid(dens, grid, dim=1)
    assert float(torch.trapezoid(marginal, grid)) == pytest.approx(1.0, abs=5e-3)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(marginal, grid)])
    p = stats.kstest(s[:, 0].numpy(), lambda v: np.interp(v, grid.numpy(), cdf.numpy())).pvalue
    assert p > 1e-3


def test_transformed_distribution_round_trip():
    from innverse.core import TorchTransform

    flow = coupling_flow(2, blocks=3, hidden=(8,))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    base = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    td = torch.distributions.TransformedDistribution(base, [TorchTransform(flow.transform).inv])
    x = td.sample((50,))
    torch.testing.assert_close(td.log_prob(x), flow.log_prob(x), rtol=1e-4, atol=1e-4)


def test_contexts_that_cannot_broadcast_are_clear_errors():
    flow = _conditional()
    with pytest.raises(ValueError, match=r"expected contexts of shape \(\*batch, 3\), got \(4, 2\)"):
        flow(torch.randn(4, 2))
    with pytest.raises(TypeError, match=r"the order is sample\(n, condition\)"):
        flow.sample(torch.randn(2, 3), 10)
    with pytest.raises(TypeError, match=r"expected the context as a torch\.Tensor, got ndarray"):
        flow(np.zeros((4, 3), dtype=np.float32))
    d = flow(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"log_prob: a value of shape \(3, 2\) does not broadcast with batch_shape "
                                         r"\(4,\) and event_shape \(2,\)"):
        d.log_prob(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"expand: cannot expand batch_shape \(4,\) to \(5,\)"):
        d.expand((5,))
    assert d.expand((6, 4)).log_prob(torch.randn(6, 4, 2)).shape == (6, 4)    # broadcasting that is allowed
    assert d.log_prob(torch.randn(2)).shape == (4,)                              # one value against every context


pyro = pytest.importorskip("pyro", reason="Pyro is an optional test dependency (pip install pyro-ppl)")


def test_pyro_model_and_guide_with_a_flow_distribution():
    """pyro.sample with flow(c) as the guide: SVI lowers the loss and learns the exact posterior of a conjugate model."""
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import ClippedAdam

    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    x_obs = torch.tensor([1.0, -0.5])
    flow = coupling_flow(2, blocks=2, hidden=(16,))

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1))
        pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x_obs)

    def guide():
        pyro.module("flow", flow)
        pyro.sample("z", flow())

    before = [p.detach().clone() for p in flow.parameters()]
    svi = SVI(model, guide, ClippedAdam({"lr": 1e-2, "lrd": 0.995}), Trace_ELBO(num_particles=4))
    losses = [svi.step() for _ in range(800)]
    assert sum(losses[-100:]) / 100 < sum(losses[:10]) / 10 - 1.0
    assert all(not torch.equal(a, b) for a, b in zip(before, flow.parameters()))
    with torch.no_grad():
        s = flow.sample((20_000,))
    mean, sd = 0.8 * x_obs, math.sqrt(0.2)            # posterior N(0.8 x, 0.2 I)
    assert (s.mean(0) - mean).abs().max() < 0.06 and (s.std(0) - sd).abs().max() < 0.06
