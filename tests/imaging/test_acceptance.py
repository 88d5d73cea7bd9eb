"""Acceptance at small size: face inpainting and super-resolution cINNs trained briefly through the one loop.

Samples must re-degrade to their condition within the noise level, differ from each other where
the degradation removed information, and (inpainting) have their per-pixel variance highest inside
the hole. The trivial alternatives fail these checks: other faces re-degrade 4-6 noise levels away
from the condition, and an untrained (identity-initialised) flow has no preference for the hole.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("skimage")

from innverse.flows.image import image_flow
from innverse.flows.image_conditioning import ConditionCNN
from innverse.imaging import sample_images, variance_map
from innverse.nets import conv_constructor
from innverse.tasks.images import FaceInpainting, FaceSuperResolution
from innverse.train import TrainConfig, train

SIGMA = 0.05


def _fit(task, epochs: int):
    """A small cINN (2 levels x 2 GLOW steps, the squeezed condition next to the learned features), batch 16."""
    torch.manual_seed(0)
    net = ConditionCNN(task.condition_shape, task.image_shape, levels=2, width=16, skip=True)
    flow = image_flow(task.image_shape, net, levels=2, blocks_per_level=2, subnet=conv_constructor((16, 16)),
                      dense_blocks=0)
    d = math.prod(task.image_shape)
    config = TrainConfig(epochs=epochs, lr=1e-2, patience=None, ema=None, restore_best=False, seed=0)
    train(flow, lambda b, s: -flow.log_prob(b[0], b[1]).mean() / d, task.batches("train", 16), None, config,
          progress=False)
    flow.eval()
    x, c = task.pairs("test", torch.Generator().manual_seed(0))
    samples = sample_images(flow, 8, c, generator=torch.Generator().manual_seed(1))  # (8, 20, 1, 24, 24)
    return x, c, samples


@pytest.fixture(scope="module")
def inpainting():
    task = FaceInpainting(24, noise_std=SIGMA)
    return (task, *_fit(task, epochs=45))


@pytest.fixture(scope="module")
def super_resolution():
    task = FaceSuperResolution(2, 24, noise_std=SIGMA)
    return (task, *_fit(task, epochs=20))


@pytest.mark.parametrize("name", ["inpainting", "super_resolution"])
def test_samples_re_degrade_to_the_condition_within_the_noise_level(name, request):
    task, x, c, samples = request.getfixturevalue(name)
    rms = torch.stack([task.redegradation_rms(s, c) for s in samples])
    assert float(rms.mean()) < 2 * SIGMA, float(rms.mean())
    other_faces = task.redegradation_rms(x.roll(1, 0), c)  # the discriminating baseline
    assert float(other_faces.mean()) > 4 * SIGMA


@pytest.mark.parametrize("name", ["inpainting", "super_resolution"])
def test_samples_differ_where_information_was_removed(name, request):
    task, _, c, samples = request.getfixturevalue(name)
    var = variance_map(samples)  # (20, 24, 24)
    removed = task.removed(c)
    # more spread between samples than the observation noise could explain
    assert float(var[removed].mean()) > SIGMA**2, float(var[removed].mean())


def test_variance_map_is_highest_inside_the_hole(inpainting):
    task, _, c, samples = inpainting
    var = variance_map(samples)
    hole = task.removed(c)
    inside = (var * hole).sum((1, 2)) / hole.sum((1, 2))
    outside = (var * ~hole).sum((1, 2)) / (~hole).sum((1, 2))
    assert float(inside.mean()) > 2 * float(outside.mean()), (float(inside.mean()), float(outside.mean()))
    assert float((inside > outside).float().mean()) >= 0.9
