r"""Image classification data on disk-free sources: scikit-learn's 8x8 digits and generated OOD images.

All images are ``(N, 1, 8, 8)`` float tensors with the digits' 17 integer grey levels ``0..16``
(so a model that dequantises the digits sees every OOD set on the same discrete grid):

* :func:`load_digits_images`: the 1,797 handwritten digits of scikit-learn (UCI optdigits),
  with labels;
* generated out-of-distribution images: :func:`noise_images` (i.i.d. uniform grey levels),
  :func:`constant_images` (one grey level per image), :func:`checkerboards` (two grey levels in
  a checkerboard of random cell size and phase), :func:`rotated` / :func:`flipped` digits and
  :func:`low_contrast` digits (intensities divided, a low-complexity shift of the digits);
* :func:`lfw_faces`: the 200 face photos bundled with scikit-image (``lfw_subset``, 25x25),
  area-averaged to 8x8 and quantised to the same 17 levels (a far-OOD set of natural images).

The same code runs on MNIST or CIFAR arrays a user has on disk: any ``(N, C, H, W)`` tensor works
with the generators (pass its ``shape`` and ``levels``) and with the classifiers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "LEVELS",
    "checkerboards",
    "constant_images",
    "flipped",
    "lfw_faces",
    "load_digits_images",
    "low_contrast",
    "noise_images",
    "ood_image_sets",
    "rotated",
]

#: Grey levels of the 8x8 digits (0..16).
LEVELS = 17  # grey levels 0..16 of the 8x8 digits


def load_digits_images(classes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """The 8x8 digits ``(N, 1, 8, 8)`` (grey levels 0..16, float32) and labels ``(N,)``, optionally only ``classes``.

    Needs scikit-learn (bundled data, no download).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("load_digits_images: needs scikit-learn (pip install 'innverse[classify]')") from err
    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32)[:, None]
    y = torch.as_tensor(data.target, dtype=torch.long)
    if classes is not None:
        keep = torch.isin(y, torch.as_tensor(list(classes), dtype=torch.long))
        x, y = x[keep], y[keep]
    return x, y


def _check(owner: str, n: int, shape: Sequence[int]) -> tuple[int, ...]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{owner}: n must be a positive int, got {n!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{owner}: shape must be (C, H, W), got {shape}")
    return shape


def noise_images(n: int, generator: torch.Generator | None = None, shape: Sequence[int] = (1, 8, 8),
                 levels: int = LEVELS) -> Tensor:
    """Images of i.i.d. uniform grey levels ``0..levels-1``: ``(n, *shape)``."""
    shape = _check("noise_images", n, shape)
    return torch.randint(levels, (n, *shape), generator=generator).float()


def constant_images(n: int, generator: torch.Generator | None = None, shape: Sequence[int] = (1, 8, 8),
                    levels: int = LEVELS) -> Tensor:
    """Images of one uniform random grey level each (the classic case where likelihoods fail): ``(n, *shape)``."""
    shape = _check("constant_images", n, shape)
    value = torch.randint(levels, (n, 1, 1, 1), generator=generator).float()
    return value.expand(n, *shape).clone()


def checkerboards(n: int, generator: torch.Generator | None = None, shape: Sequence[int] = (1, 8, 8),
                  levels: int = LEVELS) -> Tensor:
    """Checkerboards of two random grey levels, cell size 1, 2 or 4 pixels and a random phase: ``(n, *shape)``."""
    c, h, w = _check("checkerboards", n, shape)
    cell = torch.tensor([1, 2, 4])[torch.randint(3, (n,), generator=generator)]
    phase = torch.randint(2, (n,), generator=generator)
    rows, cols = torch.arange(h), torch.arange(w)
    parity = ((rows[None, :, None] // cell[:, None, None]) + (cols[None, None, :] // cell[:, None, None])
              + phase[:, None, None]) % 2
    a, b = (torch.randint(levels, (n, 1, 1), generator=generator).float() for _ in range(2))
    return torch.where(parity.bool(), a, b)[:, None].expand(n, c, h, w).clone()


def rotated(images: Tensor, quarter_turns: int = 1) -> Tensor:
    """Images rotated by ``quarter_turns`` x 90 degrees (exact on the pixel grid)."""
    if quarter_turns % 4 == 0:
        raise ValueError(f"rotated: quarter_turns must not be a multiple of 4, got {quarter_turns}")
    return torch.rot90(images, quarter_turns, dims=(-2, -1))


def flipped(images: Tensor, axis: str = "vertical") -> Tensor:
    """Images mirrored upside down (``"vertical"``) or left to right (``"horizontal"``)."""
    if axis not in ("vertical", "horizontal"):
        raise ValueError(f"flipped: axis must be 'vertical' or 'horizontal', got {axis!r}")
    return torch.flip(images, dims=(-2,) if axis == "vertical" else (-1,))


def low_contrast(images: Tensor, factor: int = 2) -> Tensor:
    """Digits with their grey levels divided by ``factor`` and rounded down (an under-exposed, simpler image)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"low_contrast: factor must be an int >= 2, got {factor!r}")
    return torch.div(images, factor, rounding_mode="floor")


def lfw_faces(size: int = 8, levels: int = LEVELS) -> Tensor:
    """scikit-image's 200 bundled face photos (``lfw_subset``) as ``(200, 1, size, size)`` grey levels ``0..levels-1``.

    The 25x25 photos are area-averaged (``torch.nn.functional.adaptive_avg_pool2d``) and quantised.
    Needs scikit-image (bundled data, no download).
    """
    try:
        from skimage.data import lfw_subset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lfw_faces: needs scikit-image (pip install 'innverse[classify]')") from err
    faces = torch.as_tensor(lfw_subset(), dtype=torch.float32)[:, None]  # values in [0, 1]
    small = torch.nn.functional.adaptive_avg_pool2d(faces, size)
    return torch.round(small * (levels - 1)).clamp(0, levels - 1)


def ood_image_sets(digits: Tensor, n: int, generator: torch.Generator | None = None,
                   faces: bool = True) -> dict[str, Tensor]:
    """The generated OOD sets for 8x8 inputs: noise, constants, checkerboards, rotated, flipped and
    low-contrast ``digits``, faces.

    Rotations turn each digit by 90, 180 or 270 degrees (cycled); ``n`` images per generated set.
    """
    turns = torch.arange(digits.shape[0]) % 3 + 1
    rot = torch.stack([rotated(d, int(k)) for d, k in zip(digits, turns)])
    sets = {
        "noise": noise_images(n, generator),
        "constant": constant_images(n, generator),
        "checkerboard": checkerboards(n, generator),
        "rotated": rot,
        "flipped": flipped(digits),
        "low-contrast": low_contrast(digits),
    }
    if faces:
        sets["lfw_faces"] = lfw_faces()
    return sets
