"""Sampling helpers: temperature, best-of-k, variance maps, interpolation and style transfer against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from innverse.flows.image import image_flow
from innverse.imaging import (
    best_of_k,
    decode,
    encode,
    interpolate,
    sample_images,
    transfer_style,
    variance_map,
)
from innverse.nets import conv_constructor, mlp_constructor


def _trained_like(flow):
    """Perturb every parameter (zero-initialised couplings would make the flow linear) after ActNorm's initialisation."""
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for p in flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return flow.eval()


@pytest.fixture(scope="module")
def conditional():
    torch.manual_seed(0)
    flow = image_flow((1, 8, 8), levels=2, blocks_per_level=1, condition_shape=(4,), subnet=conv_constructor((8,)),
                      dense_blocks=1, dense_subnet=mlp_constructor((16,))).double()
    flow.log_prob(torch.rand(16, 1, 8, 8, dtype=torch.float64), torch.randn(16, 4, dtype=torch.float64))
    return _trained_like(flow)


def test_temperature_scales_the_latent(conditional):
    c = torch.randn(3, 4, dtype=torch.float64)
    x = sample_images(conditional, 5, c, temperature=0.5, generator=torch.Generator().manual_seed(1))
    assert x.shape == (5, 3, 1, 8, 8)
    z = encode(conditional, x.reshape(15, 1, 8, 8), c.repeat(5, 1))
    expected = 0.5 * conditional.base.sample(15, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, expected, rtol=1e-9, atol=1e-9)
    cold = sample_images(conditional, 4, c[0], temperature=0.0)
    assert cold.shape == (4, 1, 8, 8)
    torch.testing.assert_close(cold, decode(conditional, torch.zeros(4, 64, dtype=torch.float64), c[0]))
    assert cold.std(0).max() < 1e-12  # temperature 0: every draw is the decoded zero latent


def test_temperature_one_matches_flow_sample(conditional):
    c = torch.randn(2, 4, dtype=torch.float64)
    a = sample_images(conditional, 3, c, generator=torch.Generator().manual_seed(4))
    b = conditional.sample(3, c, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)


def test_best_of_k_by_hand():
    reference = torch.zeros(2, 1, 2, 2)
    samples = torch.stack([torch.full((2, 1, 2, 2), 3.0), torch.full((2, 1, 2, 2), -1.0),
                           torch.full((2, 1, 2, 2), 2.0)])
    samples[2, 1] = 0.5
    out = best_of_k(samples, reference)
    assert out.index.tolist() == [1, 2]
    torch.testing.assert_close(out.rms, torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(out.all_rms, torch.tensor([[3.0, 3.0], [1.0, 1.0], [2.0, 0.5]]))
    torch.testing.assert_close(out.best, torch.stack([torch.full((1, 2, 2), -1.0), torch.full((1, 2, 2), 0.5)]))
    with pytest.raises(ValueError, match="expected samples"):
        best_of_k(samples[:, 0], reference)


def test_variance_map_by_hand():
    samples = torch.zeros(2, 3, 2, 2)  # two samples, three channels
    samples[1, 0] = 2.0                # channel 0 differs by 2: unbiased variance 2
    samples[1, 1, 0, 0] = 4.0          # one pixel of channel 1 differs by 4: variance 8
    expected = torch.full((2, 2), 2.0 / 3)
    expected[0, 0] = (2.0 + 8.0) / 3
    torch.testing.assert_close(variance_map(samples), expected)
    assert variance_map(torch.randn(4, 5, 3, 2, 2)).shape == (5, 2, 2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        variance_map(torch.randn(1, 3, 2, 2))


def test_interpolation_ends_reproduce_the_images(conditional):
    c = torch.randn(4, dtype=torch.float64)
    a, b = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    for spherical in (False, True):
        path = interpolate(conditional, a, b, steps=5, condition=c, spherical=spherical)
        assert path.shape == (5, 1, 8, 8)
        torch.testing.assert_close(path[0], a, rtol=0, atol=1e-9)
        torch.testing.assert_close(path[-1], b, rtol=0, atol=1e-9)
    z = encode(conditional, torch.stack([a, b]), c)
    mid = interpolate(conditional, a, b, steps=3, condition=c, spherical=False)[1]
    torch.testing.assert_close(mid, decode(conditional, z.mean(0, keepdim=True), c)[0])


def test_spherical_path_keeps_the_norm_of_equal_norm_latents():
    from innverse.imaging.sampling import _path

    z0 = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    z1 = torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64)
    path = _path(z0, z1, torch.linspace(0, 1, 7, dtype=torch.float64), spherical=True)
    torch.testing.assert_close(path.norm(dim=1), torch.full((7,), 3.0, dtype=torch.float64))
    linear = _path(z0, z1, torch.linspace(0, 1, 7, dtype=torch.float64), spherical=False)
    assert linear.norm(dim=1)[3] < 2.2


def test_style_transfer_keeps_the_latent(conditional):
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    source = torch.randn(3, 4, dtype=torch.float64)
    target = torch.randn(4, dtype=torch.float64)
    same = transfer_style(conditional, x, source, source)
    torch.testing.assert_close(same, x, rtol=0, atol=1e-9)
    moved = transfer_style(conditional, x, source, target)
    assert (moved - x).abs().max() > 1e-3
    torch.testing.assert_close(encode(conditional, moved, target), encode(conditional, x, source))


def test_bad_conditions_are_refused(conditional):
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"expected the condition as a torch\.Tensor"):
        encode(conditional, x)
    with pytest.raises(ValueError, match="3 rows but 2 conditions"):
        encode(conditional, x, torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_images(conditional, 2, torch.randn(4, dtype=torch.float64), temperature=-1.0)
    flow = image_flow((1, 4, 4), levels=1, blocks_per_level=1, subnet=conv_constructor((4,)), dense_blocks=0)
    with pytest.raises(ValueError, match="unconditional, but a condition was given"):
        sample_images(flow, 2, torch.randn(4))
