"""image_flow: one conditioning-network call per batch, per-level feature maps, reversible levels, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from innverse.blocks import HaarDownsample, Squeeze
from innverse.flows.image import image_flow, multiscale_flow
from innverse.flows.image_conditioning import ConditionCNN, ConditionMLP, ConditionPyramid
from innverse.imaging import encode, sample_images
from innverse.nets import conv_constructor, mlp_constructor

CONV = conv_constructor((8, 8))
MLP = mlp_constructor((16,))


def _calls(net: nn.Module) -> list[int]:
    count = [0]
    net.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def test_condition_net_runs_once_per_batch():
    torch.manual_seed(0)
    net = ConditionCNN((1, 4, 4), (2, 8, 8), levels=2, width=4, global_features=3)
    flow = image_flow((2, 8, 8), net, levels=2, blocks_per_level=2, subnet=CONV, dense_blocks=1, dense_subnet=MLP)
    count = _calls(net)
    x, c = torch.randn(6, 2, 8, 8), torch.randn(6, 1, 4, 4)
    assert flow.log_prob(x, c).shape == (6,) and count[0] == 1
    assert flow.log_prob(torch.randn(5, 6, 2, 8, 8), c).shape == (5, 6) and count[0] == 2
    assert flow.sample(7, c[:3]).shape == (7, 3, 2, 8, 8) and count[0] == 3
    assert sample_images(flow, 4, c[:2], temperature=0.7).shape == (4, 2, 2, 8, 8) and count[0] == 4


def test_each_level_gets_a_feature_map_of_its_resolution():
    net = ConditionCNN((1, 16, 16), (3, 16, 16), levels=3, width=4, global_features=5)
    flow = image_flow((3, 16, 16), net, levels=3, blocks_per_level=1, subnet=CONV, dense_blocks=1, dense_subnet=MLP)
    assert flow.transform.condition_shapes == [(4, 8, 8), (8, 4, 4), (16, 2, 2), (5,)]
    feats = flow.embed(torch.randn(2, 1, 16, 16))
    assert [tuple(f.shape) for f in feats] == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2), (2, 5)]


def test_every_level_uses_its_features():
    torch.manual_seed(0)
    net = ConditionCNN((1, 8, 8), (1, 8, 8), levels=2, width=4, global_features=2)
    flow = image_flow((1, 8, 8), net, levels=2, blocks_per_level=1, subnet=CONV, dense_blocks=1, dense_subnet=MLP)
    with torch.no_grad():  # the zero-initialised couplings start as the identity
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, c = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    feats = flow.embed(c)
    z = flow.transform(x, feats)[0]
    for level in range(3):
        changed = [f.clone() for f in feats]
        changed[level] = changed[level] + 1.0
        assert (flow.transform(x, changed)[0] - z).abs().max() > 1e-4, f"level {level} ignores its features"


def test_reversible_levels_give_the_same_density_and_gradients():
    def build(reversible: bool):
        torch.manual_seed(0)
        net = ConditionCNN((1, 8, 8), (2, 8, 8), levels=2, width=4, global_features=3)
        return image_flow((2, 8, 8), net, levels=2, blocks_per_level=3, subnet=CONV, dense_blocks=1,
                          dense_subnet=MLP, reversible=reversible).double()

    plain, rev = build(False), build(True)
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    c = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    plain.log_prob(x, c)  # data-dependent ActNorm initialisation, identical for both
    rev.log_prob(x, c)
    with torch.no_grad():
        for p, q in zip(plain.parameters(), rev.parameters()):
            p.add_(0.05 * torch.ones_like(p))
            q.copy_(p)
    lp_plain, lp_rev = plain.log_prob(x, c), rev.log_prob(x, c)
    torch.testing.assert_close(lp_rev, lp_plain, rtol=1e-10, atol=1e-10)
    lp_plain.sum().backward()
    lp_rev.sum().backward()
    for (name, p), q in zip(plain.named_parameters(), rev.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-7, atol=1e-9, msg=name)
    assert sum(type(m).__name__ == "Reversible" for m in rev.modules()) == 3  # two levels + the dense part


def test_vector_conditions_and_the_contract():
    torch.manual_seed(0)
    flow = image_flow((1, 8, 8), levels=2, blocks_per_level=1, condition_shape=(10,), subnet=CONV, dense_blocks=1,
                      dense_subnet=MLP)
    assert isinstance(flow.context_net.net, ConditionMLP)
    labels = torch.eye(10)[:3]
    assert flow.sample(5, labels).shape == (5, 3, 1, 8, 8)
    assert flow.sample(5, labels[0]).shape == (5, 1, 8, 8)
    x = torch.randn(4, 3, 1, 8, 8)
    lp = flow.log_prob(x, labels)
    assert lp.shape == (4, 3)
    torch.testing.assert_close(lp[:, 1], flow.log_prob(x[:, 1], labels[1]))


def test_squeeze_and_haar_downsampling_both_work_and_differ():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    outs = {}
    for down in (HaarDownsample, Squeeze):
        flow = image_flow((3, 8, 8), levels=2, blocks_per_level=1, subnet=CONV, dense_blocks=0, downsampling=down)
        z = flow.transform(x)[0]
        torch.testing.assert_close(flow.transform.inverse(z)[0], x, rtol=0, atol=1e-5)
        outs[down] = z
    assert (outs[HaarDownsample] - outs[Squeeze]).abs().max() > 1e-2


def test_condition_pyramid_is_lossless_and_feeds_a_vector_raw():
    pyr = ConditionPyramid((2, 8, 8), (1, 8, 8), levels=3)
    c = torch.randn(4, 2, 8, 8)
    for level, f in enumerate(pyr(c)):
        assert f.shape == (4, 2 * 4 ** (level + 1), 8 // 2 ** (level + 1), 8 // 2 ** (level + 1))
        torch.testing.assert_close(nn.functional.pixel_shuffle(f, 2 ** (level + 1)), c)
    flow = image_flow((1, 8, 8), ConditionPyramid((3,), (1, 8, 8), 2, global_vector=True), levels=2,
                      blocks_per_level=1, subnet=CONV, dense_blocks=1, dense_subnet=MLP)
    v = torch.randn(5, 3)
    assert all(torch.equal(f, v) for f in flow.embed(v))
    assert flow.log_prob(torch.randn(5, 1, 8, 8), v).shape == (5,)


def test_multiscale_flow_keeps_its_single_raw_condition():
    flow = multiscale_flow((1, 8, 8), scales=2, blocks_per_scale=1, hidden_channels=8, dense_blocks=1,
                           dense_hidden=(16,), context_features=3)
    assert flow.transform.condition_shapes == [(3,)]
    x, v = torch.randn(5, 1, 8, 8), torch.randn(5, 3)
    z, _ = flow.transform(x, v)  # the transform takes the raw vector, as before
    torch.testing.assert_close(flow.transform.inverse(z, v)[0], x, rtol=0, atol=1e-5)
    assert flow.log_prob(x, v).shape == (5,)


def test_condition_cnn_upsamples_a_low_resolution_condition():
    net = ConditionCNN((1, 3, 3), (1, 12, 12), levels=2, width=4)
    assert [tuple(f.shape) for f in net(torch.randn(2, 1, 3, 3))] == [(2, 4, 6, 6), (2, 8, 3, 3)]


def test_condition_cnn_skip_appends_the_squeezed_condition():
    net = ConditionCNN((2, 8, 8), (1, 8, 8), levels=2, width=4, skip=True)
    c = torch.randn(3, 2, 8, 8)
    f0, f1 = net(c)
    assert f0.shape == (3, 4 + 8, 4, 4) and f1.shape == (3, 8 + 32, 2, 2)
    torch.testing.assert_close(nn.functional.pixel_shuffle(f0[:, 4:], 2), c)
    torch.testing.assert_close(nn.functional.pixel_shuffle(f1[:, 8:], 4), c)


# -- bad input ------------------------------------------------------------------------------------------


def test_sizes_the_downsampling_cannot_halve_name_the_level_and_size():
    with pytest.raises(ValueError, match=r"level 2 cannot halve the spatial size 3x3"):
        image_flow((1, 12, 12), levels=3)
    with pytest.raises(ValueError, match=r"level 0 cannot halve the spatial size 7x8"):
        image_flow((3, 7, 8), levels=1)
    with pytest.raises(ValueError, match=r"expected an image shape \(C, H, W\)"):
        image_flow((8, 8), levels=1)


class _WrongLevels(nn.Module):
    """Returns feature maps at the wrong resolution for level 1."""

    condition_shape = (1, 8, 8)

    def forward(self, c):
        return [torch.zeros(c.shape[0], 2, 4, 4), torch.zeros(c.shape[0], 2, 3, 3)]


class _Shifting(nn.Module):
    """Right shapes for the probe batch of construction, wrong ones afterwards."""

    condition_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, c):
        self.calls += 1
        size = 2 if self.calls == 1 else 3
        return [torch.zeros(c.shape[0], 2, 4, 4), torch.zeros(c.shape[0], 2, size, size)]


def test_condition_features_that_miss_a_level_resolution_are_refused():
    with pytest.raises(ValueError, match=r"feature map for level 1 has spatial size 3x3, but level 1 works at 2x2"):
        image_flow((1, 8, 8), _WrongLevels(), levels=2, dense_blocks=0)
    flow = image_flow((1, 8, 8), _Shifting(), levels=2, subnet=CONV, dense_blocks=0)
    with pytest.raises(ValueError, match=r"feature map for level 1 has shape \(2, 2, 3, 3\), expected \(batch, 2, 2, 2\)"):
        flow.log_prob(torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"returned 1 tensor\(s\); expected one feature map per level \(2\)"):
        image_flow((1, 8, 8), nn.Identity(), levels=2, condition_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="condition_shape is required"):
        image_flow((1, 8, 8), nn.Identity(), levels=1)


def test_a_raw_condition_of_the_wrong_size_is_refused():
    flow = image_flow((1, 8, 8), levels=2, blocks_per_level=1, condition_shape=(1, 4, 4), subnet=CONV, dense_blocks=0)
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, \*\(1, 4, 4\)\).*got \(2, 1, 5, 5\)"):
        flow.log_prob(torch.randn(2, 1, 8, 8), torch.randn(2, 1, 5, 5))


def test_a_grayscale_image_given_to_a_colour_model_is_refused():
    flow = image_flow((3, 8, 8), levels=2, blocks_per_level=1, subnet=CONV, dense_blocks=0)
    gray = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"expected x of shape \(\*sample, 3, 8, 8\).*got shape \(2, 1, 8, 8\)"):
        flow.log_prob(gray)
    with pytest.raises(ValueError, match=r"image_flow: expected input of shape \(batch, 3, 8, 8\), got \(2, 1, 8, 8\)"):
        flow.transform(gray)
    with pytest.raises(ValueError, match=r"takes 3-channel \(colour\) images.*got 1-channel \(grayscale\) images"):
        encode(flow, gray)


def test_a_conditional_image_flow_saves_and_loads_with_its_condition_network(tmp_path):
    import innverse

    torch.manual_seed(0)
    flow = image_flow((1, 8, 8), levels=2, blocks_per_level=2, condition_shape=(1, 4, 4), dense_blocks=1)
    x, c = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 4, 4)
    with torch.no_grad():
        flow.log_prob(x, c)                        # ActNorm's data-dependent start, then a trained state
        for p in flow.parameters():
            p.add_(0.01 * torch.randn_like(p))
    flow.eval()
    innverse.save(flow, tmp_path / "cinn")
    back = innverse.load(tmp_path / "cinn").eval()
    x2, c2 = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(back.log_prob(x2, c2), flow.log_prob(x2, c2))
    assert back.sample(3, c2, generator=torch.Generator().manual_seed(1)).shape == (3, 4, 1, 8, 8)
    torch.testing.assert_close(back.sample(3, c2, generator=torch.Generator().manual_seed(1)),
                               flow.sample(3, c2, generator=torch.Generator().manual_seed(1)))
    custom = image_flow((1, 8, 8), ConditionCNN((1, 4, 4), (1, 8, 8), levels=2), levels=2, blocks_per_level=1)
    with pytest.raises(TypeError, match=r"image_flow was given argument 'condition_net' \(a ConditionCNN\)"):
        innverse.save(custom, tmp_path / "custom")
