"""MADE: each output group depends on the preceding inputs and the context only."""

from __future__ import annotations

import pytest
import torch

from innverse.nets import MADE


def _randomised(net: MADE) -> MADE:
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.5)
    return net.double()


@pytest.mark.parametrize("linear_skip", [True, False])
@pytest.mark.parametrize("features,params,context", [(4, 3, 2), (5, 1, 0), (2, 2, 3)])
def test_connectivity_is_autoregressive(features: int, params: int, context: int, linear_skip: bool) -> None:
    torch.manual_seed(0)
    net = _randomised(MADE(features, params, (3 * features, 2 * features), context, torch.nn.Tanh, linear_skip))
    x = torch.randn(features, dtype=torch.float64)
    c = torch.randn(context, dtype=torch.float64)

    def f(xc: torch.Tensor) -> torch.Tensor:
        return net(xc[None, :features], xc[None, features:] if context else None)[0]

    jac = torch.autograd.functional.jacobian(f, torch.cat([x, c])).reshape(params, features, features + context)
    tri = torch.ones(features, features, dtype=torch.bool).tril(-1)   # output i may see inputs j < i
    for p in range(params):
        assert not jac[p, :, :features][~tri].any()                   # never x_j with j >= i
        assert jac[p, :, :features][tri].abs().min() > 0               # and each earlier input does count
        if context:
            assert jac[p, :, features:].abs().min() > 0                # the first feature included


def test_zero_init_and_bad_arguments() -> None:
    net = MADE(3, 2, (8,), 4)
    assert not net(torch.randn(5, 3), torch.randn(5, 4)).any()
    with pytest.raises(ValueError, match="MADE: expected a context of 4 features"):
        net(torch.randn(5, 3))
    with pytest.raises(ValueError, match="MADE: need features >= 1"):
        MADE(0, 2)
    with pytest.raises(ValueError, match="hidden"):
        MADE(3, 2, ())
