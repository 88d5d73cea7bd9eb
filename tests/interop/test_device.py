"""Devices: fit_posterior(device=...), Posterior.to and innverse.load(device=...) check the device they are given;
on a machine with CUDA, a posterior trains and samples there."""

from __future__ import annotations

import pytest
import torch

import innverse
from innverse.amortized import fit_posterior

from .model import POSTERIOR_SD, SHRINK, simulations

SMALL = {"flow": {"blocks": 1, "hidden": [8]}, "training": {"epochs": 2}, "progress": False}


@pytest.mark.parametrize("device", ["nonsense", "cuda:99", "meta", 3])
def test_a_device_that_does_not_exist_is_a_clear_error(device, prior):
    theta, x = simulations(prior, 100, seed=0)
    error = TypeError if device == 3 else ValueError
    if device == "cuda:99" and not torch.cuda.is_available():
        match = r"fit_posterior: device='cuda:99', but CUDA is not available here"
    elif device == "cuda:99":
        match = r"fit_posterior: device='cuda:99', but this machine has \d+ CUDA device"
    else:
        match = "fit_posterior: device"
    with pytest.raises(error, match=match):
        fit_posterior(theta, x, prior=prior, device=device, **SMALL)


def test_cuda_without_a_gpu_is_refused_everywhere(posterior, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"Posterior.to: device='cuda', but CUDA is not available"):
        posterior.to("cuda")
    assert posterior.device == torch.device("cpu")          # left where it was
    path = innverse.save(posterior, tmp_path / "p.safetensors")
    with pytest.raises(ValueError, match=r"innverse.load: device='cuda'"):
        innverse.load(path, device="cuda")


def test_an_explicit_cpu_device_trains_as_the_default(prior):
    theta, x = simulations(prior, 200, seed=0)
    a = fit_posterior(theta, x, prior=prior, **SMALL)
    b = fit_posterior(theta, x, prior=prior, device=torch.device("cpu"), **SMALL)
    assert b.device == torch.device("cpu")
    assert torch.equal(a.sample(20, x[0], seed=1), b.sample(20, x[0], seed=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_everything_trains_and_samples_there(prior, tmp_path):
    theta, x = simulations(prior, 2000, seed=0)
    post = fit_posterior(theta, x, prior=prior, flow={"blocks": 2, "hidden": [16]}, training={"epochs": 20},
                         progress=False, device="cuda")
    assert post.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in post.estimator.parameters())
    x_obs = torch.tensor([1.0, -0.5])
    s = post.sample(4000, x_obs, seed=0)
    assert s.device.type == "cuda"
    assert (s.mean(0).cpu() - SHRINK * x_obs).abs().max() < 0.1 and (s.std(0).cpu() - POSTERIOR_SD).abs().max() < 0.07
    lp = post.log_prob(s[:10], x_obs)
    assert lp.device.type == "cuda" and torch.isfinite(lp).all()
    assert post.sample_batched(5, x[:3]).shape == (5, 3, 2) and post.map(x_obs, n_init=50, steps=5).shape == (2,)
    path = innverse.save(post, tmp_path / "cuda.safetensors")
    cpu = innverse.load(path)
    torch.testing.assert_close(cpu.log_prob(s[:10].cpu(), x_obs), lp.cpu(), rtol=1e-4, atol=1e-4)
    assert innverse.load(path, device="cuda").device.type == "cuda"
    moved = cpu.to("cuda").set_default_x(x_obs)
    assert moved.sample(3).device.type == "cuda"
