"""ResidualBlock and residual_flow: bad input, Lipschitz guard, conditioning, flows end to end."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from innverse.blocks import ResidualBlock, lipschitz_bounds
from innverse.flows import residual_flow

from .helpers import D64


def test_bad_input_names_block_and_shapes():
    block = ResidualBlock(3, (2,), hidden=(8,))
    with pytest.raises(ValueError, match=r"ResidualBlock: expected input of shape \(batch, 3\), got \(5, 4\)"):
        block(torch.randn(5, 4), torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"ResidualBlock: expected a context of shape \(batch, 2\), got \(5, 3\)"):
        block(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"ResidualBlock: expected input to the inverse of shape"):
        block.inverse(torch.randn(5, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"ResidualBlock: coeff must be in \(0, 1\).*got 1.0"):
        ResidualBlock(3, coeff=1.0)
    with pytest.raises(ValueError, match=r"ResidualBlock: the context must be a vector"):
        ResidualBlock((2, 4, 4), (1, 2, 2))
    with pytest.raises(ValueError, match=r"ResidualBlock: expected a vector \(D,\) or image"):
        ResidualBlock((2, 4))
    with pytest.raises(TypeError, match="ResidualBlock: a custom net must provide lipschitz_bound"):
        ResidualBlock(3, net=nn.Linear(3, 3))


def test_custom_net_with_wrong_output_is_reported():
    class Net(nn.Linear):
        def lipschitz_bound(self) -> float:
            return 0.5

    block = ResidualBlock(3, net=Net(3, 2))
    with pytest.raises(ValueError, match=r"ResidualBlock: the network must output the input's shape \(4, 3\), got \(4, 2\)"):
        block(torch.randn(4, 3))


@pytest.mark.parametrize("shape,context", [((3,), None), ((3,), (2,)), ((2, 4, 4), (3,))])
def test_lipschitz_bound_guards_invertibility(shape, context):
    torch.manual_seed(0)
    block = ResidualBlock(shape, context, hidden=(16,) if len(shape) == 1 else (6,), coeff=0.9,
                          spectral="power").double().eval()
    with torch.no_grad():
        for p in block.net.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    bound = block.lipschitz_bound()
    assert bound < 0.9**2 * (1 + 1e-4)
    a = torch.randn(256, *shape, dtype=D64)
    b = a + 0.05 * torch.randn(256, *shape, dtype=D64)
    c = None if context is None else torch.randn(256, *context, dtype=D64)
    ratio = (block.g(a, c) - block.g(b, c)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert ratio.max() <= bound
    if context is not None:  # the condition matters, Lipschitz in x regardless
        assert (block.g(a, c) - block.g(a, c + 1)).abs().max() > 1e-3


def test_residual_flow_sampling_and_density_agree():
    torch.manual_seed(1)
    flow = residual_flow(2, context_features=3, blocks=3, hidden=(16,), coeff=0.9).double()
    flow.train()
    flow.log_prob(torch.randn(64, 2, dtype=D64), torch.randn(64, 3, dtype=D64))  # ActNorm init
    flow.eval()
    ctx = torch.randn(4, 3, dtype=D64)
    x, lp = flow.sample_and_log_prob(5, ctx)
    assert x.shape == (5, 4, 2) and lp.shape == (5, 4)
    lp2 = flow.log_prob(x.reshape(20, 2), ctx.repeat(5, 1)).reshape(5, 4)
    torch.testing.assert_close(lp, lp2, rtol=0, atol=1e-8)
    bounds = lipschitz_bounds(flow)
    assert sorted(bounds) == ["transform.blocks.1", "transform.blocks.3", "transform.blocks.5"]
    assert max(bounds.values()) < 1


def test_residual_flow_learns_a_nonlinear_density():
    """Trained with its default estimator (roulette + Neumann gradient), a residual flow beats the
    best Gaussian, i.e. the best any affine flow can do, on x2 = 0.6 x1^2 + noise."""
    torch.manual_seed(2)
    gen = torch.Generator().manual_seed(0)

    def sample(n: int) -> torch.Tensor:
        a = torch.randn(n, generator=gen)
        return torch.stack([a, 0.6 * a**2 + 0.3 * torch.randn(n, generator=gen)], 1)

    test = sample(4000)
    best_gaussian = 0.5 * torch.logdet(2 * math.pi * math.e * torch.cov(test.T.double())).item()
    flow = residual_flow(2, blocks=4, hidden=(32,))
    flow.train()
    flow.log_prob(sample(256))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(80):
        loss = -flow.log_prob(sample(256)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow.eval()
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
    assert nll < best_gaussian - 0.5, (nll, best_gaussian)
    assert max(lipschitz_bounds(flow).values()) < 1


def test_residual_flow_on_images_and_state_dict():
    torch.manual_seed(3)
    flow = residual_flow((1, 4, 4), blocks=2, hidden=(4,), coeff=0.9, spectral="power").double()
    flow.train()
    x = torch.randn(8, 1, 4, 4, dtype=D64)
    flow.log_prob(x)
    flow.eval()
    z, _ = flow.transform(x)
    x2, _ = flow.transform.inverse(z)
    assert (x2 - x).abs().max() < 1e-6
    state = flow.state_dict()
    assert any(k.endswith(".u") for k in state) and any(k.endswith(".v") for k in state)
    other = residual_flow((1, 4, 4), blocks=2, hidden=(4,), coeff=0.9, spectral="power").double().eval()
    other.load_state_dict(state)
    torch.testing.assert_close(other.log_prob(x), flow.log_prob(x), rtol=0, atol=1e-8)


def test_inference_mode_is_refused_with_advice_and_no_grad_works():
    block = ResidualBlock(2, hidden=(8,)).eval()
    x = torch.randn(3, 2)
    with torch.no_grad():
        y, ld = block(x)
    assert not y.requires_grad and not ld.requires_grad
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"use torch.no_grad\(\)"):
        block(x)


def test_residual_flow_arguments_are_checked():
    with pytest.raises(ValueError, match="residual_flow: needs blocks >= 1"):
        residual_flow(2, blocks=0)
    with pytest.raises(ValueError, match="residual_flow: features must be"):
        residual_flow((2, 3))
