"""Pyro with innverse flows: AutoNormalizingFlow trains every flow parameter; conditional guides under plates and
vectorised particles learn the exact posterior of a conjugate model; contexts broadcast or fail clearly."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution

from innverse.core import TorchTransform
from innverse.flows import coupling_flow

from .model import NOISE, POSTERIOR_SD, SHRINK

pyro = pytest.importorskip("pyro", reason="Pyro is an optional test dependency (pip install pyro-ppl)")
import pyro.distributions as dist  # noqa: E402
from pyro.infer import SVI, Trace_ELBO  # noqa: E402
from pyro.infer.autoguide import AutoNormalizingFlow  # noqa: E402
from pyro.optim import Adam  # noqa: E402

from innverse.interop import pyro_conditional_transform, pyro_flow  # noqa: E402


def _perturbed(flow, scale: float = 0.2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return flow


def test_torch_transform_is_a_module_whose_inverse_shares_the_parameters():
    flow = _perturbed(coupling_flow(2, 3, blocks=2, hidden=(8,)))
    t = TorchTransform(flow.transform)
    assert isinstance(t, torch.nn.Module)
    ids = {id(p) for p in flow.parameters()}
    assert {id(p) for p in t.parameters()} == ids and {id(p) for p in t.inv.parameters()} == ids
    # contexts (4, 3) broadcast over particles in front: (5, 4, 2) values, column i under context i
    c, x = torch.randn(4, 3), torch.randn(5, 4, 2)
    y = t.condition(c)(x)
    assert y.shape == (5, 4, 2)
    torch.testing.assert_close(y[2, 1], flow.transform(x[2, 1:2], c[1:2])[0][0])
    torch.testing.assert_close(t.condition(c).inv(y), x, rtol=1e-5, atol=1e-5)
    ld = t.condition(c).log_abs_det_jacobian(x, y)
    assert ld.shape == (5, 4)
    torch.testing.assert_close(ld[3, 2], flow.transform(x[3, 2:3], c[2:3])[1][0])


def test_transformed_distribution_with_contexts_matches_the_flow():
    flow = _perturbed(coupling_flow(2, 3, blocks=3, hidden=(8,))).double()
    c = torch.randn(6, 3, dtype=torch.float64)
    base = Independent(Normal(torch.zeros(6, 2, dtype=torch.float64), torch.ones(6, 2, dtype=torch.float64)), 1)
    td = TransformedDistribution(base, [TorchTransform(flow.transform, c).inv])
    x = td.sample((10,))
    assert x.shape == (10, 6, 2)
    torch.testing.assert_close(td.log_prob(x), flow.log_prob(x, c))


def test_a_context_whose_batch_shape_cannot_broadcast_is_a_clear_error():
    flow = coupling_flow(2, 3, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match=r"context's batch shape \(4,\) does not broadcast with the value's batch shape "
                                         r"\(3,\)"):
        TorchTransform(flow.transform, torch.randn(4, 3))(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"expected the context of shape \(\*batch, 3\), got \(4, 2\)"):
        TorchTransform(flow.transform, torch.randn(4, 2))(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"does not broadcast with batch_shape \(4,\)"):
        flow(torch.randn(4, 3)).log_prob(torch.randn(3, 2))
    with pytest.raises(ValueError, match="takes no context"):
        pyro_conditional_transform(coupling_flow(2, blocks=1, hidden=(8,)))


def test_auto_normalizing_flow_trains_every_flow_parameter():
    """AutoNormalizingFlow over TorchTransform(flow.transform).inv: loss falls, every parameter moves, posterior right."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    x_obs = torch.tensor([1.0, -0.5])

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1))
        pyro.sample("x", dist.Normal(z, NOISE).to_event(1), obs=x_obs)

    flow = coupling_flow(2, blocks=2, hidden=(16,))
    guide = AutoNormalizingFlow(model, lambda dim: TorchTransform(flow.transform).inv)
    before = [p.detach().clone() for p in flow.parameters()]
    svi = SVI(model, guide, Adam({"lr": 1e-2}), Trace_ELBO(num_particles=8, vectorize_particles=True))
    losses = [svi.step() for _ in range(250)]
    assert sum(losses[-50:]) / 50 < sum(losses[:10]) / 10 - 1.0
    assert {id(p) for p in flow.parameters()} <= {id(p) for p in guide.parameters()}
    assert all(not torch.equal(a, b) for a, b in zip(before, flow.parameters()))
    with torch.no_grad():
        s = guide.get_posterior().sample((20_000,))
    assert (s.mean(0) - SHRINK * x_obs).abs().max() < 0.12 and (s.std(0) - POSTERIOR_SD).abs().max() < 0.08


def _conjugate_model(x: torch.Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, NOISE).to_event(1), obs=x)


@pytest.mark.parametrize("route", ["conditional_transform", "pyro_flow"])
def test_amortized_guide_under_vectorized_particles_learns_the_posterior(route):
    """q(z_i | x_i) for 32 data points, 8 vectorised particles: the contexts (32, 2) meet draws (8, 32, 2)."""
    pyro.set_rng_seed(1)
    pyro.clear_param_store()
    x = 1.5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    flow = coupling_flow(2, 2, blocks=2, hidden=(32,))
    transform = pyro_conditional_transform(flow)

    def guide(x):
        pyro.module("flow", flow)
        with pyro.plate("data", x.shape[0]):
            if route == "pyro_flow":
                pyro.sample("z", pyro_flow(flow, x))
            else:
                base = dist.Normal(torch.zeros(2), 1.0).to_event(1)
                pyro.sample("z", dist.ConditionalTransformedDistribution(base, [transform.inv]).condition(x))

    def error() -> float:
        with torch.no_grad():
            return float((flow.sample(4000, x).mean(0) - SHRINK * x).abs().max())

    before = error()
    elbo = Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(_conjugate_model, guide, Adam({"lr": 1e-2}), elbo)
    losses = [svi.step(x) for _ in range(250)]
    assert sum(losses[-50:]) / 50 < 0.5 * sum(losses[:10]) / 10
    assert before > 1.5 and error() < 0.4          # from N(0, I) to near N(0.8 x, 0.2 I) for every x_i


def test_pyro_flow_broadcasts_under_plates_and_scores_like_the_flow():
    flow = _perturbed(coupling_flow(2, 3, blocks=2, hidden=(8,)))
    c = torch.randn(5, 3)
    d = pyro_flow(flow, c)
    assert isinstance(d, dist.TorchDistribution) and d.batch_shape == (5,) and d.event_shape == (2,)
    e = d.expand((7, 5))
    z = e.sample()
    assert z.shape == (7, 5, 2)
    torch.testing.assert_close(e.log_prob(z), flow.log_prob(z, c))
    with pytest.raises(TypeError, match="expected a Flow or a FlowDistribution"):
        pyro_flow(object())
