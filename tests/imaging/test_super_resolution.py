"""``super_resolution_flow``: the observation operator is the Haar low-pass band, samples keep the observation,
the learned detail beats a Gaussian model of the bands, saving, and bad input.

The inverse and log-determinant of the flow's transform and of ``ObservationResidual`` are checked by
the property suite (``tests/registry.py``: ``super_resolution_x4``, ``super_resolution_rgb_x2``,
``observation_residual``).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

import innverse
from innverse.blocks import HaarDownsample
from innverse.flows import ObservationResidual, super_resolution_flow
from innverse.imaging import sample_images, variance_map
from innverse.nets import conv_constructor

CONV = conv_constructor((8, 8))


def _bands(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The low-pass band and the detail bands of ``levels`` orthonormal Haar transforms."""
    details, low = [], x
    for _ in range(levels):
        h, _ = HaarDownsample(low.shape[1:])(low, log_det=False)
        low, detail = h[:, :x.shape[1]], h[:, x.shape[1]:]
        details.append(detail)
    return low, details


@pytest.mark.parametrize("factor,channels", [(2, 1), (4, 3), (8, 1)])
def test_the_haar_low_pass_band_is_factor_times_the_average_pool(factor, channels):
    x = torch.rand(3, channels, 16, 16, dtype=torch.float64)
    low, _ = _bands(x, factor.bit_length() - 1)
    torch.testing.assert_close(low, factor * F.avg_pool2d(x, factor))


def test_observation_residual_is_the_noise_in_units_of_sigma():
    x, c = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    block = ObservationResidual((1, 3, 3), gain=4.0, scale=0.08, warn_rms=None)
    u, log_det = block(x, c)
    torch.testing.assert_close(u, (x - 4 * c) / 0.08)
    torch.testing.assert_close(log_det, torch.full((4,), -9 * math.log(0.08), dtype=torch.float64))


@pytest.mark.parametrize("factor", [2, 4])
def test_samples_re_degrade_to_the_observation_plus_standard_normal_noise(factor):
    """At initialisation (identity couplings, orthogonal 1x1 convolutions) the low-pass flow is the likelihood
    alone, so (avgpool(sample) - c) / sigma must be standard normal (KS test over all pixels)."""
    torch.manual_seed(0)
    sigma = 0.03
    flow = super_resolution_flow((1, 16, 16), factor, sigma, blocks_per_level=1, width=4, subnet=CONV).eval()
    c = torch.rand(6, 1, 16 // factor, 16 // factor)
    samples = flow.sample(200, c)                                    # (200, 6, 1, 16, 16)
    low = F.avg_pool2d(samples.flatten(0, 1), factor).reshape(200, *c.shape)
    noise = ((low - c) / sigma).flatten().double().numpy()
    assert stats.kstest(noise, "norm").pvalue > 1e-3
    wrong = stats.kstest(noise * 1.1, "norm").pvalue  # the test can tell a 10% wrong scale
    assert wrong < 1e-6


def test_data_that_do_not_follow_the_observation_model_are_warned_about():
    """Conditions with 10x the stated noise, or images paired with other images' conditions, are far from the
    model; real pairs are not (no warning)."""
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    gen = torch.Generator().manual_seed(1)
    c = F.avg_pool2d(x, 2) + 0.02 * torch.randn(64, 1, 4, 4, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        super_resolution_flow((1, 8, 8), 2, 0.02, blocks_per_level=1, width=4).log_prob(x, c)
    for wrong in (F.avg_pool2d(x, 2) + 0.2 * torch.randn(64, 1, 4, 4, generator=gen), c.roll(1, 0)):
        flow = super_resolution_flow((1, 8, 8), 2, 0.02, blocks_per_level=1, width=4)
        with pytest.warns(UserWarning, match=r"ObservationResidual: the data are .* noise levels .* from the "
                                             r"observation model"):
            flow.log_prob(x, wrong)


def test_save_and_load_keep_densities_and_samples(tmp_path):
    torch.manual_seed(0)
    flow = super_resolution_flow((1, 8, 8), 2, 0.05, blocks_per_level=1, width=4).eval()
    x = torch.rand(3, 1, 8, 8)
    c = F.avg_pool2d(x, 2)
    innverse.save(flow, tmp_path / "sr.innverse")
    loaded = innverse.load(tmp_path / "sr.innverse").eval()
    torch.testing.assert_close(loaded.log_prob(x, c), flow.log_prob(x, c))
    torch.testing.assert_close(loaded.sample(4, c, generator=torch.Generator().manual_seed(3)),
                               flow.sample(4, c, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("kwargs,match", [
    ({"factor": 3}, "factor must be a power of two"),
    ({"factor": 1}, "factor must be a power of two"),
    ({"noise_std": 0.0}, "noise_std must be a finite number > 0"),
    ({"noise_std": float("nan")}, "noise_std must be a finite number > 0"),
    ({"shape": (1, 12, 12), "factor": 4}, r"level 2 cannot halve the spatial size 3x3"),
    ({"blocks_per_level": 0}, "blocks_per_level must be an int >= 1"),
])
def test_bad_arguments_are_refused(kwargs, match):
    args = {"shape": (1, 16, 16), "factor": 2, "noise_std": 0.05} | kwargs
    with pytest.raises(ValueError, match=match):
        super_resolution_flow(args.pop("shape"), args.pop("factor"), args.pop("noise_std"), **args)


def test_a_colour_condition_given_to_a_grayscale_model_is_refused():
    flow = super_resolution_flow((1, 8, 8), 2, 0.05, blocks_per_level=1, width=4)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        flow.log_prob(torch.rand(2, 1, 8, 8), torch.rand(2, 3, 4, 4))


SIGMA = 0.05


@pytest.fixture(scope="module")
def faces():
    """x4 face super-resolution at 24x24 (noise 0.05), trained briefly (40 epochs, about 10 s) through the one loop."""
    pytest.importorskip("skimage")
    from innverse.tasks.images import FaceSuperResolution
    from innverse.train import TrainConfig, train

    task = FaceSuperResolution(4, 24, noise_std=SIGMA)
    torch.manual_seed(0)
    flow = super_resolution_flow(task.image_shape, 4, SIGMA, blocks_per_level=2, width=8,
                                 subnet=conv_constructor((16, 16)))
    d = math.prod(task.image_shape)
    config = TrainConfig(epochs=40, lr=1e-2, patience=None, ema=None, restore_best=False, seed=0)
    train(flow, lambda b, s: -flow.log_prob(b[0], b[1]).mean() / d, task.batches("train", 16), None, config,
          progress=False)
    flow.eval()
    x, c = task.pairs("test", torch.Generator().manual_seed(0))
    samples = sample_images(flow, 8, c, generator=torch.Generator().manual_seed(1))  # (8, 20, 1, 24, 24)
    return task, flow, x, c, samples


def test_face_samples_re_degrade_within_the_noise_level_and_differ(faces):
    task, _, x, c, samples = faces
    rms = torch.stack([task.redegradation_rms(s, c) for s in samples])
    assert float(rms.mean()) < 2 * SIGMA, float(rms.mean())
    assert float(task.redegradation_rms(x.roll(1, 0), c).mean()) > 4 * SIGMA
    assert float(variance_map(samples).mean()) > SIGMA**2


def test_learned_face_detail_beats_a_gaussian_model_of_the_bands(faces):
    """Held-out NLL against the same low-pass model with each detail band N(0, s^2), s fitted per channel on the
    training faces: a flow that learned nothing about faces' detail would not beat it."""
    task, flow, x, c, _ = faces
    _, train_details = _bands(task.clean_images("train"), 2)
    scales = [d.std(dim=(0, 2, 3), keepdim=True) for d in train_details]
    low, details = _bands(x, 2)
    u = (low - 4 * c) / (4 * SIGMA)
    baseline = torch.distributions.Normal(0.0, 1.0).log_prob(u).sum((1, 2, 3)) - u[0].numel() * math.log(4 * SIGMA)
    for d, s in zip(details, scales):
        baseline = baseline + torch.distributions.Normal(0.0, s).log_prob(d).sum((1, 2, 3))
    pixels = x[0].numel()
    with torch.no_grad():
        nll = float(-flow.log_prob(x, c).mean()) / pixels
    assert nll < float(-baseline.mean()) / pixels - 0.2, (nll, float(-baseline.mean()) / pixels)


def test_the_mean_of_face_samples_is_closer_to_the_truth_than_pixel_replication(faces):
    _, _, x, c, samples = faces
    mean_error = (samples.mean(0) - x).square().mean((1, 2, 3)).sqrt().mean()
    replication = (F.interpolate(c, scale_factor=4, mode="nearest") - x).square().mean((1, 2, 3)).sqrt().mean()
    assert float(mean_error) < float(replication), (float(mean_error), float(replication))
