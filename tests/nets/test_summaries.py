"""Summary networks: invariances, masking of NaN padding, variable sizes, config round trips."""

from __future__ import annotations

import json

import pytest
import torch

from innverse.nets import (
    DeepSet,
    MLPSummary,
    SetTransformer,
    TimeSeriesNet,
    padding_mask,
    summary_from_config,
)

NAN = float("nan")


def _sets(gen: torch.Generator, b: int = 4, n: int = 9, f: int = 3) -> torch.Tensor:
    x = torch.randn(b, n, f, generator=gen, dtype=torch.float64)
    counts = [n, 5, 2, 7]
    for i, c in enumerate(counts[:b]):
        x[i, c:] = NAN
    return x


def _nets():
    torch.manual_seed(0)
    return {"deepset": DeepSet(3, 8).double(), "set_transformer": SetTransformer(3, 8, dim=16, heads=2).double()}


@pytest.mark.parametrize("name", ["deepset", "set_transformer"])
def test_set_nets_are_permutation_invariant_and_ignore_padding(name):
    net = _nets()[name].eval()
    gen = torch.Generator().manual_seed(1)
    x = _sets(gen)
    out = net(x)
    assert out.shape == (4, 8) and torch.isfinite(out).all()
    # permuting the valid elements of item 1 (5 valid rows) changes nothing
    perm = torch.randperm(5, generator=gen)
    x_perm = x.clone()
    x_perm[1, :5] = x[1, perm]
    assert torch.allclose(net(x_perm), out, atol=1e-10)
    # moving padding rows around or adding more padding changes nothing
    x_mixed = x.clone()
    x_mixed[2] = torch.cat([x[2, 2:], x[2, :2]])
    more = torch.cat([x, torch.full((4, 6, 3), NAN, dtype=x.dtype)], 1)
    assert torch.allclose(net(x_mixed), out, atol=1e-10)
    assert torch.allclose(net(more), out, atol=1e-10)
    # a single unpadded set of any size is accepted
    assert torch.allclose(net(x[2, :2]), out[2:3], atol=1e-10)
    # the set size is seen: duplicating every element changes the summary (log n feature)
    dup = torch.cat([x[0], x[0]])
    assert not torch.allclose(net(dup), out[0:1], atol=1e-6)


def test_time_series_net_uses_valid_steps_only_and_order():
    torch.manual_seed(0)
    net = TimeSeriesNet(2, 6, channels=8, hidden=12).double().eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 10, 2, generator=gen, dtype=torch.float64)
    x[1, 6:] = NAN
    out = net(x)
    assert out.shape == (3, 6) and torch.isfinite(out).all()
    # the padded item equals the same series given alone without padding
    assert torch.allclose(net(x[1, :6]), out[1:2], atol=1e-10)
    # order matters for a series
    rev = x[0].flip(0)
    assert not torch.allclose(net(rev), out[0:1], atol=1e-4)
    # univariate series as (B, T)
    uni = TimeSeriesNet(1, 4).double()
    assert uni(torch.randn(2, 7, dtype=torch.float64)).shape == (2, 4)
    # LSTM variant
    assert TimeSeriesNet(2, 6, cell="lstm").double()(x).shape == (3, 6)
    bad = x.clone()
    bad[2, 3] = NAN
    with pytest.raises(ValueError, match="padding must come after"):
        net(bad)


def test_padding_mask_rejects_partial_nan_and_empty_sets():
    x = torch.randn(2, 4, 3)
    x[0, 1, 0] = NAN
    with pytest.raises(ValueError, match="partly NaN"):
        padding_mask(x)
    y = torch.randn(2, 4, 3)
    y[1] = NAN
    with pytest.raises(ValueError, match="empty"):
        padding_mask(y)
    z = torch.randn(2, 4, 3)
    z[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="inf"):
        padding_mask(z)


@pytest.mark.parametrize("net", [DeepSet(3, 5, hidden=7), SetTransformer(3, 5, dim=8, heads=2),
                                 TimeSeriesNet(3, 5, channels=4, hidden=6), MLPSummary((4, 3), 5, hidden=(9,))],
                         ids=["deepset", "set_transformer", "time_series", "mlp"])
def test_config_round_trip_rebuilds_the_same_network(net):
    cfg = json.loads(json.dumps(net.config()))
    again = summary_from_config(cfg)
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 4, 3)
    net.eval()
    again.eval()
    assert torch.equal(net(x), again(x))


def test_summary_from_config_errors():
    with pytest.raises(ValueError, match="unknown summary type"):
        summary_from_config({"type": "resnet"})
    with pytest.raises(ValueError, match="invalid arguments"):
        summary_from_config({"type": "deepset", "in_features": 3, "bogus": 1})
    with pytest.raises(ValueError, match="heads"):
        SetTransformer(3, 4, dim=10, heads=3)


def test_gradients_reach_every_parameter():
    for net in (DeepSet(3, 4), SetTransformer(3, 4, dim=8, heads=2), TimeSeriesNet(3, 4)):
        x = torch.randn(3, 6, 3)
        x[0, 4:] = NAN
        net(x).square().sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (type(net).__name__, name)
