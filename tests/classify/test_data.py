"""The generated data of innverse.tasks.classify: digits, OOD images and the multispectral tissue task."""

from __future__ import annotations

import pytest
import torch

from innverse.classify import AnomalyDetector, auroc
from innverse.flows import coupling_flow
from innverse.tasks.classify import (
    OOD_KINDS,
    SpectralTissueTask,
    checkerboards,
    constant_images,
    flipped,
    lfw_faces,
    load_digits_images,
    noise_images,
    ood_image_sets,
    rotated,
)


def test_images_share_the_digits_grid():
    x, y = load_digits_images([0, 4])
    assert x.shape[1:] == (1, 8, 8) and set(y.tolist()) == {0, 4}
    gen = torch.Generator().manual_seed(0)
    for images in (noise_images(20, gen), constant_images(20, gen), checkerboards(20, gen)):
        assert images.shape[1:] == (1, 8, 8)
        assert torch.equal(images, images.round()) and images.min() >= 0 and images.max() <= 16
    const = constant_images(5, gen)
    assert torch.equal(const.amin((1, 2, 3)), const.amax((1, 2, 3)))
    board = checkerboards(50, gen)[:, 0]
    assert len(board.reshape(50, -1).unique(dim=1)) <= 64 and all(len(b.unique()) <= 2 for b in board)
    torch.testing.assert_close(rotated(rotated(x[:3], 1), 3), x[:3])
    assert all(torch.equal(flipped(x[:3])[:, :, i], x[:3, :, 7 - i]) for i in range(8))
    assert all(torch.equal(flipped(x[:3], "horizontal")[..., j], x[:3, ..., 7 - j]) for j in range(8))
    sets = ood_image_sets(x[:10], 7, gen, faces=False)
    assert {k: v.shape[0] for k, v in sets.items()} == {"noise": 7, "constant": 7, "checkerboard": 7,
                                                        "rotated": 10, "flipped": 10, "low-contrast": 10}
    torch.testing.assert_close(sets["low-contrast"], torch.floor(x[:10] / 2))
    with pytest.raises(ValueError, match="rotated: quarter_turns must not be a multiple of 4"):
        rotated(x, 4)


def test_lfw_faces_are_quantised_to_the_digits_grid():
    pytest.importorskip("skimage")
    faces = lfw_faces()
    assert faces.shape == (200, 1, 8, 8)
    assert torch.equal(faces, faces.round()) and faces.min() >= 0 and faces.max() <= 16
    assert len(faces.unique()) > 10                                  # natural images use most grey levels


def test_spectral_task_is_reproducible_and_physical():
    task = SpectralTissueTask()
    theta, x = task.sample_joint(200, torch.Generator().manual_seed(1))
    _, x2 = task.sample_joint(200, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and x.shape == (200, 16) and theta.shape == (200, 6)
    r = task.reflectance(theta)
    assert bool(((r > 0) & (r < 1)).all())
    # more blood absorbs more: reflectance falls with the blood volume fraction at every wavelength
    low, high = theta[:1].clone(), theta[:1].clone()
    low[0, 0], high[0, 0] = 0.01, 0.08
    assert bool((task.reflectance(high) < task.reflectance(low)).all())
    # oxygenation changes the 560-580 nm band shape (the HbO2 double peak vs the single Hb band)
    oxy, deoxy = theta[:1].clone(), theta[:1].clone()
    oxy[0, 1], deoxy[0, 1] = 1.0, 0.3
    assert not torch.allclose(task.reflectance(oxy), task.reflectance(deoxy), rtol=0.02)
    for kind in OOD_KINDS:
        assert task.sample_ood(kind, 5, torch.Generator().manual_seed(2)).shape == (5, 16)
    with pytest.raises(ValueError, match="kind must be one of"):
        task.sample_ood("skin", 5)
    with pytest.raises(ValueError, match=r"spectral_tissue.simulate: parameters must have shape \(n, 6\)"):
        task.simulate(torch.zeros(3, 5))


def test_unseen_tissue_is_detectable_in_principle():
    """A small flow already separates the unseen tissue; the benchmark reports the full figures."""
    task = SpectralTissueTask()
    gen = torch.Generator().manual_seed(3)
    _, x = task.sample_joint(1500, gen)
    torch.manual_seed(0)
    detector = AnomalyDetector(coupling_flow(16, blocks=2, hidden=(32,))).fit(
        x.float(), training={"epochs": 15, "batch_size": 128, "lr": 3e-3, "ema": None})
    _, fresh = task.sample_joint(300, gen)
    fat = task.sample_ood("fat", 300, gen)
    assert auroc(detector.score(fresh.float()), detector.score(fat.float())) > 0.9
