"""Image tasks: data, splits, degradation operators and their residuals against hand-computed values."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from innverse.tasks.images import (
    DigitClasses,
    FaceInpainting,
    FaceSuperResolution,
    PatchColorization,
    load_faces,
)


def test_face_splits_are_disjoint_and_sized():
    sizes = {split: load_faces(split).shape for split in ("train", "val", "test")}
    assert sizes == {"train": (70, 1, 24, 24), "val": (10, 1, 24, 24), "test": (20, 1, 24, 24)}
    train, test = load_faces("train"), load_faces("test")
    assert torch.cdist(train.flatten(1), test.flatten(1)).min() > 0.1
    flipped = load_faces("train", flip=True)
    assert flipped.shape == (140, 1, 24, 24) and torch.equal(flipped[70:], train.flip(-1))
    padded = load_faces("test", size=32)
    assert padded.shape == (20, 1, 32, 32)
    torch.testing.assert_close(padded[:, :, 3:27, 3:27], test)  # the 24x24 crop sits inside the padded image
    assert 0.0 <= float(train.min()) and float(train.max()) <= 1.0
    with pytest.raises(ValueError, match="split must be one of"):
        load_faces("training")


@pytest.mark.parametrize("factor", [2, 4])
def test_super_resolution_operator_by_hand(factor):
    task = FaceSuperResolution(factor, size=32, noise_std=0.0)
    x = task.clean_images("val")
    y = task.degrade(x)
    assert y.shape == (10, 1, 32 // factor, 32 // factor) and task.condition_shape == y.shape[1:]
    by_hand = x.reshape(10, 1, 32 // factor, factor, 32 // factor, factor).mean((3, 5))
    torch.testing.assert_close(y, by_hand)
    assert float(task.redegradation_rms(x, y).max()) < 1e-6


def test_degradation_noise_has_the_stated_level():
    task = FaceSuperResolution(2, noise_std=0.05)
    x = task.clean_images("train")
    y = task.degrade(x, torch.Generator().manual_seed(0))
    r, mask = task.residual(x, y)
    assert bool(mask.all())
    # 140 * 144 residuals: the sample std is within 3% of sigma with overwhelming probability
    assert abs(float(r.std()) / 0.05 - 1) < 0.03
    assert abs(float(task.redegradation_rms(x, y).mean()) / 0.05 - 1) < 0.05


def test_inpainting_masks_and_conditions():
    task = FaceInpainting(noise_std=0.0)
    x = task.clean_images("test")
    gen = torch.Generator().manual_seed(0)
    y = task.degrade(x, gen)
    m = y[:, 1:]
    assert y.shape == (20, 2, 24, 24) and set(m.unique().tolist()) <= {0.0, 1.0}
    hole = task.removed(y)
    torch.testing.assert_close(hole, m[:, 0] == 0)
    for i in range(20):
        rows, cols = hole[i].any(1).nonzero().flatten(), hole[i].any(0).nonzero().flatten()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 6 <= h <= 12 and 6 <= w <= 12 and int(hole[i].sum()) == h * w  # one rectangle, sides S/4 .. S/2
    torch.testing.assert_close(y[:, :1], m * x)
    assert float(task.redegradation_rms(x, y).max()) == 0.0
    # a wrong filling of the hole does not change the residual, a wrong observed pixel does
    filled = torch.where(hole[:, None], torch.rand_like(x), x)
    assert float(task.redegradation_rms(filled, y).max()) == 0.0
    assert float(task.redegradation_rms(x + 0.1, y).min()) == pytest.approx(0.1, abs=1e-5)


def test_training_batches_draw_fresh_degradations():
    task = FaceInpainting()
    source = task.batches("train", batch_size=32)
    assert len(source) == 5 and source.rows == 140
    gen = torch.Generator().manual_seed(0)
    first = [b[1][:, 1:] for b in source.epoch(0, gen)]
    second = [b[1][:, 1:] for b in source.epoch(1, gen)]
    assert not all(torch.equal(a, b) for a, b in zip(first, second))
    again = [b[1][:, 1:] for b in source.epoch(0, torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_colorization_round_trip_and_splits():
    task = PatchColorization(photos=("astronaut", "coffee"))
    rgb = task.rgb_patches("test")
    ab, lightness = task.pairs("test")
    assert ab.shape == (len(rgb), 2, 32, 32) and lightness.shape == (len(rgb), 1, 32, 32)
    torch.testing.assert_close(task.to_rgb(ab, lightness), rgb, rtol=0, atol=1e-4)
    torch.testing.assert_close(task.degrade(rgb), lightness)
    assert 0.0 <= float(lightness.min()) and float(lightness.max()) <= 1.0
    assert float(ab.abs().max()) < 1.3
    train = task.rgb_patches("train")
    assert torch.cdist(train.flatten(1)[::7], rgb.flatten(1)).min() > 0  # no test patch among the training patches


def test_grayscale_photos_are_refused_by_the_colour_task():
    task = PatchColorization(photos=("astronaut",))
    with pytest.raises(ValueError, match=r"3-channel \(colour\) images.*got 1-channel \(grayscale\)"):
        task.degrade(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expected ab \(N, 2, H, W\) and L \(N, 1, H, W\)"):
        task.to_rgb(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32))


def test_digit_classes():
    task = DigitClasses()
    x, c = task.pairs("train")
    assert x.shape == (1297, 1, 8, 8) and c.shape == (1297, 10)
    assert torch.equal(x, x.round()) and float(x.min()) == 0 and float(x.max()) == 16
    torch.testing.assert_close(c.sum(1), torch.ones(1297))
    assert task.pairs("test")[0].shape[0] == 300 and task.pairs("val")[0].shape[0] == 200
    torch.testing.assert_close(DigitClasses.one_hot(torch.tensor([3])), torch.eye(10)[3:4])
    with pytest.raises(ValueError, match="integer labels"):
        DigitClasses.one_hot(torch.tensor([10]))


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="factor must be 2 or 4"):
        FaceSuperResolution(3)
    with pytest.raises(ValueError, match="size must be 24"):
        load_faces("train", size=25)
    with pytest.raises(ValueError, match=r"1-channel \(grayscale\).*got 3-channel \(colour\)"):
        FaceSuperResolution().degrade(torch.rand(2, 3, 24, 24))
