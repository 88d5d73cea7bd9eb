"""Bits/dim with uniform and variational dequantisation against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from innverse.flows.image import image_flow
from innverse.flows.image_conditioning import ConditionCNN
from innverse.imaging import (
    BitsPerDimLoss,
    Logit,
    UniformDequantization,
    VariationalDequantization,
    bits_per_dim,
)
from innverse.nets import conv_constructor
from innverse.train import Step, TensorBatches, TrainConfig, train


class StandardNormalPixels(nn.Module):
    """log p(s) = sum of standard normal log-densities over all pixels."""

    def log_prob(self, s):
        return torch.distributions.Normal(0.0, 1.0).log_prob(s).flatten(1).sum(1)


class UniformPushforward(nn.Module):
    """The exact density of s = logit(alpha + (1 - 2 alpha) y), y ~ U[0, 1)^D: p(s) = sigma(s) sigma(-s) / (1 - 2 alpha)."""

    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def log_prob(self, s):
        per = nn.functional.logsigmoid(s) + nn.functional.logsigmoid(-s) - math.log1p(-2 * self.alpha)
        return per.flatten(1).sum(1)


def _pixels(n, shape, levels, seed=0):
    return torch.randint(0, levels, (n, *shape), generator=torch.Generator().manual_seed(seed)).double()


def test_uniform_bits_per_dim_matches_closed_form():
    # E_u[log N((v + u) / K)] = -log(2 pi) / 2 - (v^2 + v + 1/3) / (2 K^2) for u ~ U[0, 1)
    levels, shape = 5, (1, 2, 2)
    v = _pixels(40, shape, levels)
    deq = UniformDequantization(shape, levels, alpha=None).double()
    got = bits_per_dim(StandardNormalPixels(), v, deq, draws=400, generator=torch.Generator().manual_seed(1))
    expected_lp = (-0.5 * math.log(2 * math.pi) - (v.square() + v + 1 / 3) / (2 * levels**2)).flatten(1).sum(1)
    d = v[0].numel()
    expected = (-(expected_lp - d * math.log(levels)) / (d * math.log(2))).mean()
    assert got.dequantization == "uniform" and got.levels == levels and got.dims == d and got.draws == 400
    assert abs(got.value - float(expected)) < 2e-3, (got.value, float(expected))
    assert got.per_image.shape == (40,) and got.stderr > 0


def test_logit_preprocessing_log_det_is_exact():
    # Under the pushforward of the uniform density the bound is exactly -D log K for every draw.
    levels, shape, alpha = 17, (1, 4, 4), 0.05
    v = _pixels(16, shape, levels)
    deq = UniformDequantization(shape, levels, alpha=alpha).double()
    got = bits_per_dim(UniformPushforward(alpha), v, deq, draws=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got.per_image, torch.full((16,), math.log2(levels), dtype=torch.float64),
                               rtol=0, atol=1e-9)


def test_dequantised_pixels_quantize_back():
    deq = UniformDequantization((3, 4, 4), 256)
    v = _pixels(5, (3, 4, 4), 256).float()
    s, _ = deq(v, torch.Generator().manual_seed(0))
    assert torch.equal(deq.quantize(s), v)
    y = deq.to_unit(s)
    assert bool(((y >= v / 256 - 1e-5) & (y <= (v + 1) / 256 + 1e-5)).all())


def _perturbed(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def test_variational_log_q_matches_density_evaluation():
    # The sampling path (inverse of the noise flow, sigmoid) against the density path (logit, forward).
    torch.manual_seed(0)
    shape, levels = (1, 4, 4), 9
    net = ConditionCNN(shape, shape, 1, width=4)
    noise = image_flow(shape, net, levels=1, blocks_per_level=2, subnet=conv_constructor((8,)), dense_blocks=0)
    deq = VariationalDequantization(shape, levels, alpha=None, noise_flow=noise).double()
    deq.noise_flow.log_prob(torch.randn(8, *shape, dtype=torch.float64), torch.rand(8, *shape, dtype=torch.float64))
    deq = _perturbed(deq).eval()
    v = _pixels(6, shape, levels)
    y, weight = deq(v, torch.Generator().manual_seed(3))
    u = y * levels - v
    assert bool(((u > 0) & (u < 1)).all())
    log_q_sampled = -weight - 16 * math.log(levels)
    eta = torch.log(u) - torch.log1p(-u)
    log_q_density = deq.noise_flow.log_prob(eta, v / (levels - 1) - 0.5) - (torch.log(u) + torch.log1p(-u)).flatten(1).sum(1)
    torch.testing.assert_close(log_q_sampled, log_q_density, rtol=1e-7, atol=1e-7)


def test_variational_bound_is_above_the_entropy_limit_and_training_tightens_it():
    # With the uniform-pushforward model, bpd = log2 K - H(q) / (D ln 2) >= log2 K, with equality
    # only for uniform q; training the dequantiser must move q towards uniform.
    torch.manual_seed(0)
    shape, levels, alpha = (1, 2, 2), 4, 0.05
    deq = VariationalDequantization(shape, levels, alpha=alpha)
    model = UniformPushforward(alpha)
    v = _pixels(256, shape, levels).float()
    before = bits_per_dim(model, v, deq, draws=4, generator=torch.Generator().manual_seed(1))
    assert before.dequantization == "variational"
    assert before.value > math.log2(levels) + 5 * before.stderr
    loss = BitsPerDimLoss(model, deq)
    train(loss, loss, TensorBatches(v, batch_size=64), None,
          TrainConfig(epochs=15, lr=3e-3, patience=None, ema=None, restore_best=False), progress=False)
    after = bits_per_dim(model, v, deq.eval(), draws=4, generator=torch.Generator().manual_seed(1))
    assert after.value > math.log2(levels) - 4 * after.stderr
    assert after.value < before.value - 0.5 * (before.value - math.log2(levels)), (before.value, after.value)


def test_loss_is_the_batch_bits_per_dim():
    torch.manual_seed(0)
    flow = image_flow((1, 4, 4), levels=1, blocks_per_level=1, subnet=conv_constructor((8,)), dense_blocks=0).eval()
    deq = UniformDequantization((1, 4, 4), 17)
    v = _pixels(10, (1, 4, 4), 17).float()
    step = Step(0, 0, 0.0, torch.Generator().manual_seed(5))
    loss = BitsPerDimLoss(flow, deq)((v,), step)
    ref = bits_per_dim(flow, v, deq, draws=1, generator=torch.Generator().manual_seed(5))
    assert abs(float(loss.detach()) - ref.value) < 1e-5


@pytest.mark.parametrize("bad, message", [
    (torch.full((2, 1, 4, 4), 2.5), "integer pixel values"),
    (torch.full((2, 1, 4, 4), 17.0), r"\[0, 16\]"),
    (torch.full((2, 1, 4, 4), -1.0), r"\[0, 16\]"),
    (torch.zeros(2, 3, 4, 4), "1-channel"),
    (torch.zeros(2, 4, 4), "add the channel dimension"),
])
def test_bad_pixels_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        UniformDequantization((1, 4, 4), 17)(bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels must be an int >= 2"):
        UniformDequantization((1, 4, 4), 1)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        bits_per_dim(StandardNormalPixels(), torch.zeros(2, 1, 4, 4), UniformDequantization((1, 4, 4), 4), draws=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        Logit((1, 2, 2), alpha=0.5)


def test_to_unit_and_quantize_take_samples_for_several_conditions():
    from innverse.imaging import UniformDequantization

    deq = UniformDequantization((1, 4, 4), 17, alpha=0.05)
    s = torch.randn(6, 3, 1, 4, 4, dtype=torch.float64)      # (samples, conditions, C, H, W)
    y = deq.to_unit(s)
    assert y.shape == s.shape
    torch.testing.assert_close(y[2], deq.to_unit(s[2]))     # the same map as on one batch
    assert deq.quantize(s).shape == s.shape
    with pytest.raises(ValueError, match=r"UniformDequantization\.to_unit: expected samples \(\*batch, 1, 4, 4\)"):
        deq.to_unit(torch.randn(6, 4, 4))
