"""Reversible (memory-saving) backprop: same values and gradients as ordinary backprop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from innverse import Flow
from innverse import blocks as B
from innverse.core import Inverse, Sequence
from innverse.flows import multiscale_flow
from innverse.nets import MLP, mlp_constructor
from innverse.reversible import Reversible

D64 = torch.float64
SUBNET = mlp_constructor((16, 16), zero_init=False)


def _sequence(depth: int = 2, features: int = 5, context: int | None = 3) -> Sequence:
    ctx = None if context is None else (context,)
    layers = []
    for i in range(depth):
        layers += [B.ActNorm(features), B.AffineCoupling(features, SUBNET, ctx),
                   B.RandomPermutation(features, seed=i), B.SplineCoupling(features, SUBNET, ctx, bins=4),
                   B.LULinear(features, seed=i)]
    if ctx is not None:
        layers.append(B.ConditionalAffine(features, ctx, SUBNET))
    return Sequence(layers)


def _grads(module, x, c, inverse=False):
    """Output, log-det and gradients of a loss using both, w.r.t. x, c and every parameter."""
    x = x.clone().requires_grad_(True)
    c = None if c is None else c.clone().requires_grad_(True)
    y, ld = module.inverse(x, c) if inverse else module(x, c)
    weights = torch.linspace(0.5, 1.5, x.shape[0], dtype=x.dtype)
    loss = (y.sin() * 1.3).sum() + (ld * weights).sum()
    inputs = [x] + ([c] if c is not None else []) + list(module.parameters())
    return y.detach(), ld.detach(), torch.autograd.grad(loss, inputs)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("inverse", [False, True])
def test_same_outputs_and_gradients_as_ordinary_backprop(inverse):
    torch.manual_seed(0)
    seq = _sequence().double()
    ref = copy.deepcopy(seq)  # ActNorm not yet initialised in either: the init happens in the run
    x, c = torch.randn(16, 5, dtype=D64), torch.randn(16, 3, dtype=D64)
    y1, ld1, g1 = _grads(ref, x, c, inverse)
    y2, ld2, g2 = _grads(Reversible(seq), x, c, inverse)
    torch.testing.assert_close(y2, y1, rtol=0, atol=0)
    torch.testing.assert_close(ld2, ld1, rtol=0, atol=0)
    assert len(g1) == len(g2) > 10
    for a, b in zip(g2, g1):
        assert _rel(a, b) < 1e-10  # the requirement is 1e-5; in float64 it is round-off


def test_deep_float32_gradients():
    torch.manual_seed(1)
    layers = []
    for i in range(32):
        layers += [B.AffineCoupling(8, SUBNET), B.RandomPermutation(8, seed=i)]
    seq = Sequence(layers)
    ref = copy.deepcopy(seq)
    x = torch.randn(64, 8)
    _, _, g1 = _grads(ref, x, None)
    _, _, g2 = _grads(Reversible(seq), x, None)
    assert max(_rel(a, b) for a, b in zip(g2, g1)) < 1e-4


def test_inexact_blocks_are_refused_by_name():
    with pytest.raises(ValueError, match=r"Reversible: block 1 \(ResidualBlock\) has no exact inverse"):
        Reversible(Sequence(B.ActNorm(3), B.ResidualBlock(3, hidden=(4,))))
    with pytest.raises(ValueError, match=r"Reversible: block 0.1 \(ResidualBlock\)"):
        Reversible(Sequence(Sequence(B.ActNorm(3), B.ResidualBlock(3, hidden=(4,))), B.ActNorm(3)))
    with pytest.raises(ValueError, match=r"Reversible: block 0 \(Inverse\) has no exact inverse"):
        Reversible(Inverse(B.ResidualBlock(3, hidden=(4,))), B.ActNorm(3))
    with pytest.raises(ValueError, match="is itself Reversible"):
        Reversible(Reversible(B.ActNorm(3)), B.ActNorm(3))
    with pytest.raises(TypeError, match="not an invertible module"):
        Reversible(B.ActNorm(3), nn.Linear(3, 3))


def test_saved_activations_do_not_grow_with_depth():
    def saved_bytes(module, x):
        total = 0

        def pack(t):
            nonlocal total
            if not isinstance(t, nn.Parameter):
                total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        return total

    x = torch.randn(32, 6)
    sizes = {}
    for depth in (2, 8):
        torch.manual_seed(0)
        seq = Sequence([b for i in range(depth) for b in (B.AffineCoupling(6, SUBNET), B.RandomPermutation(6, seed=i))])
        sizes[depth] = (saved_bytes(seq, x), saved_bytes(Reversible(seq), x))
    assert sizes[8][0] > 3.5 * sizes[2][0]  # ordinary backprop: linear in depth
    assert sizes[8][1] == sizes[2][1] <= 32 * 6 * 4  # reversible: only the output is kept


class DropoutMLP(nn.Sequential):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(nn.Linear(n_in, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, n_out))


@pytest.mark.parametrize("preserve", [None, False])
def test_dropout_draws_are_replayed(preserve):
    torch.manual_seed(2)
    seq = Sequence([b for i in range(3) for b in (B.AffineCoupling(4, DropoutMLP), B.RandomPermutation(4, seed=i))])
    seq.double().train()
    ref = copy.deepcopy(seq)
    x = torch.randn(32, 4, dtype=D64)
    torch.manual_seed(7)
    _, _, g1 = _grads(ref, x, None)
    torch.manual_seed(7)
    _, _, g2 = _grads(Reversible(seq, preserve_rng_state=preserve), x, None)
    worst = max(_rel(a, b) for a, b in zip(g2, g1))
    if preserve is None:  # auto: blocks with dropout replay their random draws
        assert worst < 1e-10
    else:  # without replay the reconstruction uses other masks: the gradients are wrong
        assert worst > 1e-2


def test_no_grad_path_log_det_flag_and_retain_graph():
    torch.manual_seed(3)
    rev = Reversible(_sequence().double())
    x, c = torch.randn(8, 5, dtype=D64), torch.randn(8, 3, dtype=D64)
    y, ld = rev(x, c)
    with torch.no_grad():
        y0, ld0 = rev(x, c)
    torch.testing.assert_close(y0, y.detach(), rtol=0, atol=0)
    torch.testing.assert_close(ld0, ld.detach(), rtol=0, atol=0)
    y1, none = rev(x, c, log_det=False)
    assert none is None
    torch.testing.assert_close(y1.detach(), y.detach(), rtol=0, atol=0)
    loss = y1.square().sum()
    first = torch.autograd.grad(loss, list(rev.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(rev.parameters()))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_flow_with_context_net_and_sampling_gradients():
    torch.manual_seed(4)
    seq = _sequence(context=4).double()
    net = MLP(2, 4, (8,), zero_init=False).double()
    flows = [Flow(copy.deepcopy(seq), context_net=copy.deepcopy(net), context_shape=(2,)),
             Flow(Reversible(seq), context_net=net, context_shape=(2,))]
    x, c = torch.randn(12, 5, dtype=D64), torch.randn(12, 2, dtype=D64)
    grads = []
    for flow in flows:
        flow.train()
        nll = -flow.log_prob(x, c).mean()
        samples, lp = flow.rsample_and_log_prob(3, c[:4], generator=torch.Generator().manual_seed(0))
        loss = nll + samples.square().mean() + lp.mean()
        grads.append(torch.autograd.grad(loss, list(flow.parameters())))
    for a, b in zip(*grads):
        assert _rel(a, b) < 1e-10


def test_graph_blocks_are_accepted():
    torch.manual_seed(5)
    graph = multiscale_flow((1, 4, 4), scales=2, blocks_per_scale=1, hidden_channels=4, dense_blocks=1,
                            dense_hidden=(8,), context_features=2).transform.double()
    ref = copy.deepcopy(graph)
    x, c = torch.randn(4, 1, 4, 4, dtype=D64), torch.randn(4, 2, dtype=D64)
    _, _, g1 = _grads(ref, x, c)
    _, _, g2 = _grads(Reversible(graph, B.RandomPermutation(16, seed=0)), x, c)
    for a, b in zip(g2, g1):
        assert _rel(a, b) < 1e-10


def test_checkpoints_bound_the_reconstruction():
    torch.manual_seed(6)
    seq = Sequence([b for i in range(12) for b in (B.ActNorm(8), B.AffineCoupling(8, SUBNET),
                                                   B.RandomPermutation(8, seed=i))])
    x = torch.randn(256, 8)
    with torch.no_grad():
        seq(x)  # ActNorm initialisation

    def flat_grads(module):
        y, ld = module(x)
        loss = (0.5 * y.square().sum(1) - ld).mean()
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(module.parameters()))])

    ref = flat_grads(seq)
    # every block input kept: nothing is reconstructed, the gradients are those of ordinary backprop
    torch.testing.assert_close(flat_grads(Reversible(copy.deepcopy(seq), checkpoint_every=1)), ref,
                               rtol=0, atol=0)
    for k in (None, 6):
        assert _rel(flat_grads(Reversible(copy.deepcopy(seq), checkpoint_every=k)), ref) < 1e-5
    with pytest.raises(ValueError, match="Reversible: checkpoint_every must be >= 1"):
        Reversible(seq, checkpoint_every=0)
