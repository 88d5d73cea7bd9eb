"""Bad input: clear errors naming the block and the expected vs received value."""

from __future__ import annotations

import pytest
import torch

import innverse
from innverse import Flow, GraphBuilder, Sequence
from innverse import blocks as B
from innverse.nets import mlp_constructor

MLP = mlp_constructor((8,))


def test_wrong_feature_count_names_block_and_shapes():
    block = B.AffineCoupling(5, MLP)
    with pytest.raises(ValueError, match=r"AffineCoupling: expected input of shape \(batch, 5\), got \(4, 6\)"):
        block(torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"AffineCoupling: expected input to the inverse of shape \(batch, 5\)"):
        block.inverse(torch.randn(4, 3))


def test_wrong_image_shape():
    block = B.HaarDownsample((1, 8, 8))
    with pytest.raises(ValueError, match=r"HaarDownsample: expected input of shape \(batch, 1, 8, 8\), got \(2, 1, 8, 6\)"):
        block(torch.randn(2, 1, 8, 6))
    with pytest.raises(ValueError, match="divisible by 2"):
        B.HaarDownsample((1, 7, 8))
    with pytest.raises(ValueError, match=r"expected an image event shape \(C, H, W\)"):
        B.Squeeze((4,))


def test_wrong_context_shape_and_missing_context():
    block = B.AffineCoupling(4, MLP, context_shape=(3,))
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"AffineCoupling: expected a context of shape \(batch, 3\), got \(2, 5\)"):
        block(x, torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 3\), got None"):
        block(x)
    with pytest.raises(ValueError, match="takes no condition"):
        B.AffineCoupling(4, MLP)(x, torch.randn(2, 3))


def test_non_floating_dtype():
    block = B.RandomPermutation(3, seed=0)
    with pytest.raises(ValueError, match=r"RandomPermutation: expected a floating-point input, got dtype torch\.int64"):
        block(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="floating-point context"):
        B.AffineCoupling(4, MLP, (2,))(torch.randn(2, 4), torch.ones(2, 2, dtype=torch.long))


def test_bad_subnet_output_is_explained():
    block = B.AffineCoupling(4, lambda i, o: torch.nn.Linear(i, o + 1))
    with pytest.raises(ValueError, match=r"AffineCoupling: the subnetwork must output shape \(3, 4\)"):
        block(torch.randn(3, 4))


def test_construction_errors():
    with pytest.raises(ValueError, match="at least 2 features"):
        B.AffineCoupling(1)
    with pytest.raises(ValueError, match="split must be in"):
        B.AffineCoupling(4, split=4)
    with pytest.raises(ValueError, match="not a permutation"):
        B.RandomPermutation(3, permutation=[0, 0, 1])
    with pytest.raises(ValueError, match="outputs shape"):
        Sequence(B.Flatten((2, 2)), B.ActNorm(3))
    with pytest.raises(ValueError, match="coupling must be one of"):
        innverse.flows.coupling_flow(2, coupling="maf")
    with pytest.raises(ValueError, match="clamp must be positive"):
        B.AffineTransformer(clamp=-1.0)


def test_flow_rejects_nan_and_inf():
    flow = innverse.flows.coupling_flow(2, 3, blocks=1, hidden=(8,))
    x, c = torch.randn(4, 2), torch.randn(4, 3)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(rows \[2\]"):
        flow.log_prob(bad, c)
    badc = c.clone()
    badc[0, 0] = float("inf")
    with pytest.raises(ValueError, match="context contains NaN or Inf"):
        flow.log_prob(x, badc)
    with pytest.raises(ValueError, match="context contains NaN or Inf"):
        flow.sample(3, badc)
    # value checks can be switched off for speed; shape checks always run
    flow.validate_args = False
    assert torch.isnan(flow.log_prob(bad, c)[2])
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, \*\(3,\)\)"):
        flow.log_prob(x, torch.randn(4, 2))


def test_flow_context_errors():
    flow = innverse.flows.coupling_flow(2, 3, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match="this flow is conditional"):
        flow.sample(3)
    with pytest.raises(ValueError, match="batch size 4 but the context has 5"):
        flow.log_prob(torch.randn(4, 2), torch.randn(5, 3))
    uncond = innverse.flows.coupling_flow(2, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match="unconditional, but a context was given"):
        uncond.log_prob(torch.randn(4, 2), torch.randn(4, 3))
    with pytest.raises(ValueError, match="base distribution has event shape"):
        Flow(B.ActNorm(3), base=innverse.core.StandardNormal(4))


def test_graph_builder_errors():
    b = GraphBuilder((4,))
    with pytest.raises(ValueError, match="expects event shape"):
        b.add(B.ActNorm(5), b.input)
    h = b.add(B.ActNorm(4), b.input)
    with pytest.raises(ValueError, match="was already used"):
        b.add(B.ActNorm(4), b.input)
    p, q = b.split(h, [1, 3])
    with pytest.raises(ValueError, match="neither used nor outputs"):
        b.build([p])
    with pytest.raises(ValueError, match="sizes"):
        GraphBuilder((4,)).split(GraphBuilder((4,)).input, [2, 3])
    c = b.condition((2,))
    with pytest.raises(ValueError, match="has context_shape None but condition"):
        b.add(B.ActNorm(3), q, c)


def test_graph_multiple_conditions_need_a_list():
    b = GraphBuilder((4,))
    c1, c2 = b.condition((2,)), b.condition((3,))
    h = b.add(B.AffineCoupling(4, MLP, (2,)), b.input, c1)
    h = b.add(B.AffineCoupling(4, MLP, (3,)), h, c2)
    g = b.build(h)
    x = torch.randn(5, 4)
    y, _ = g(x, [torch.randn(5, 2), torch.randn(5, 3)])
    assert y.shape == (5, 4)
    with pytest.raises(ValueError, match="expected a list of 2 condition tensors"):
        g(x, torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"Graph \(condition 1\): expected a context of shape \(batch, 3\)"):
        g(x, [torch.randn(5, 2), torch.randn(5, 4)])
