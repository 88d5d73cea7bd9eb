"""Subnetworks of couplings and heads: the linear shortcut and its soft input bound."""

from __future__ import annotations

import pytest
import torch

from innverse.nets import MLP, LinearSkipMLP, mlp_constructor


def test_linear_skip_mlp_is_linear_plus_mlp_and_starts_at_zero():
    torch.manual_seed(0)
    net = LinearSkipMLP(3, 2, hidden=(8,))
    x = torch.randn(5, 3)
    assert not net(x).any()                                   # zero-initialised: the identity in a coupling
    with torch.no_grad():
        net.linear.weight.normal_()
        net.linear.bias.normal_()
    assert torch.allclose(net(x), x @ net.linear.weight.T + net.linear.bias)   # MLP part still zero
    with torch.no_grad():
        net.mlp[-1].weight.normal_()
    assert torch.allclose(net(x), net.linear(x) + net.mlp(x))
    assert isinstance(mlp_constructor((8,), linear_skip=True)(3, 2), LinearSkipMLP)
    assert isinstance(mlp_constructor((8,))(3, 2), MLP)


def test_input_bound_keeps_the_linear_part_linear_near_zero_and_bounded_for_outliers():
    torch.manual_seed(0)
    net = LinearSkipMLP(1, 1, hidden=(4,), input_bound=10.0)
    with torch.no_grad():
        net.linear.weight.fill_(1.0)
    small = torch.tensor([[-1.0], [0.5], [1.0]])
    assert torch.allclose(net(small), small, rtol=5e-3)      # 10 tanh(x / 10) = x (1 - x^2 / 300 + ...)
    huge = torch.tensor([[1e3], [-1e6]])
    assert torch.allclose(net(huge), torch.tensor([[10.0], [-10.0]]))
    with pytest.raises(ValueError, match="input_bound"):
        LinearSkipMLP(1, 1, input_bound=0.0)
