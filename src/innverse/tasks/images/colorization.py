r"""Colourisation of 32x32 patches cut from scikit-image's bundled colour photographs: L channel -> ab channels.

The GCPR 2020 cINN setting in miniature. In CIE Lab space the lightness :math:`L` is the
condition and the chroma :math:`(a, b)` is generated; the degradation is
:math:`A(\mathrm{rgb}) = L` (no noise), normalised as :math:`L / 100 \in [0, 1]`, the target
as :math:`(a, b) / 100` (``AB_SCALE``).

Data: the photographs ``PHOTOS`` of ``skimage.data`` (bundled, no download), each reduced by
block averaging with the integer factor that brings its shorter side nearest 224 pixels, cut
into 64x64 tiles. The tiles of all photographs are permuted with seed 0: the first 70% are
``"train"`` (32x32 patches with stride 8, plus mirror images with ``flip=True``), the next 10%
``"val"`` and the last 20% ``"test"`` (stride 16). Patches of different splits never overlap.

References:
    Ardizzone, Kruse, Lüth, Bracher, Rother, Köthe. "Conditional Invertible Neural Networks for
    Diverse Image-to-Image Translation". GCPR 2020.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...imaging.checks import check_images
from .base import AbstractImageTask, check_split

__all__ = ["AB_SCALE", "PHOTOS", "PatchColorization"]

#: scikit-image photos the colourisation patches are cut from.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle")
#: The Lab colour channels (a, b) are divided by this to lie in about [-1, 1].
AB_SCALE = 100.0
_TILE, _PATCH = 64, 32
_FRACTIONS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}


def _skimage():
    try:
        import skimage.color
        import skimage.data
        import skimage.transform
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("PatchColorization needs scikit-image (pip install scikit-image)") from err
    return skimage


def _photo(name: str) -> np.ndarray:
    """A bundled photograph as float32 RGB in [0, 1], block-averaged to a shorter side near 224 pixels."""
    sk = _skimage()
    image = getattr(sk.data, name)()
    if isinstance(image, tuple):  # stereo pairs: the left view
        image = image[0]
    image = np.asarray(image, dtype=np.float32)[..., :3] / 255.0
    factor = max(1, round(min(image.shape[:2]) / 224))
    return sk.transform.downscale_local_mean(image, (factor, factor, 1)).astype(np.float32)


class PatchColorization(AbstractImageTask):
    """Colourisation of photo patches: images are ab ``(2, 32, 32)``, conditions L ``(1, 32, 32)`` (module docstring).

    Args:
        photos: names of ``skimage.data`` colour photographs.
        flip: add mirror images to the training split.
    """

    name = "patch_colorization"
    image_shape = (2, _PATCH, _PATCH)
    condition_shape = (1, _PATCH, _PATCH)

    def __init__(self, photos: Sequence[str] = PHOTOS, flip: bool = True) -> None:
        self.photos, self.flip = tuple(photos), bool(flip)
        self._cache: dict[str, Tensor] = {}
        self._photos: dict[str, np.ndarray] = {}

    def _photo(self, name: str) -> np.ndarray:
        if name not in self._photos:
            self._photos[name] = _photo(name)
        return self._photos[name]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "photos": list(self.photos), "flip": self.flip}

    def _tiles(self) -> list[tuple[int, int, int]]:
        """``(photo index, row, column)`` of every tile, in the fixed split order."""
        tiles = []
        for i, name in enumerate(self.photos):
            h, w = self._photo(name).shape[:2]
            tiles += [(i, r, c) for r in range(0, h - _TILE + 1, _TILE) for c in range(0, w - _TILE + 1, _TILE)]
        order = np.random.default_rng(0).permutation(len(tiles))
        return [tiles[j] for j in order]

    def rgb_patches(self, split: str) -> Tensor:
        """The RGB patches of a split, ``(N, 3, 32, 32)`` float32 in ``[0, 1]``."""
        check_split("PatchColorization.rgb_patches", split)
        if split not in self._cache:
            tiles = self._tiles()
            lo, hi = (round(f * len(tiles)) for f in _FRACTIONS[split])
            stride = 8 if split == "train" else 16
            photos = {i: self._photo(name) for i, name in enumerate(self.photos)}
            patches = [photos[i][r + dr:r + dr + _PATCH, c + dc:c + dc + _PATCH]
                       for i, r, c in tiles[lo:hi]
                       for dr in range(0, _TILE - _PATCH + 1, stride) for dc in range(0, _TILE - _PATCH + 1, stride)]
            x = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()
            self._cache[split] = torch.cat([x, x.flip(-1)]) if self.flip and split == "train" else x
        return self._cache[split]

    def _lab(self, rgb: Tensor) -> Tensor:
        check_images("PatchColorization", rgb, (3, *rgb.shape[2:]) if rgb.dim() == 4 else (3, _PATCH, _PATCH),
                     "images")
        lab = _skimage().color.rgb2lab(rgb.detach().cpu().permute(0, 2, 3, 1).numpy())
        return torch.from_numpy(lab.astype(np.float32)).permute(0, 3, 1, 2).to(rgb.device)

    def degrade(self, rgb: Tensor) -> Tensor:
        """The condition: lightness :math:`L / 100`, ``(N, 3, H, W) -> (N, 1, H, W)``."""
        return self._lab(rgb)[:, :1] / 100.0

    def target(self, rgb: Tensor) -> Tensor:
        """What the model generates: chroma :math:`(a, b) / 100`, ``(N, 3, H, W) -> (N, 2, H, W)``."""
        return self._lab(rgb)[:, 1:] / AB_SCALE

    def pairs(self, split: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        rgb = self.rgb_patches(split)
        lab = self._lab(rgb)
        return lab[:, 1:] / AB_SCALE, lab[:, :1] / 100.0

    @staticmethod
    def to_rgb(ab: Tensor, lightness: Tensor) -> Tensor:
        """RGB ``(N, 3, H, W)`` in ``[0, 1]`` from normalised chroma ``(N, 2, H, W)`` and lightness ``(N, 1, H, W)``.

        Colours outside the sRGB gamut are clipped.
        """
        if ab.dim() != 4 or ab.shape[1] != 2 or lightness.shape != (ab.shape[0], 1, *ab.shape[2:]):
            raise ValueError(f"PatchColorization.to_rgb: expected ab (N, 2, H, W) and L (N, 1, H, W), got "
                             f"{tuple(ab.shape)} and {tuple(lightness.shape)}")
        lab = torch.cat([lightness * 100.0, ab * AB_SCALE], 1).detach().cpu().permute(0, 2, 3, 1).double().numpy()
        with warnings.catch_warnings():  # out-of-gamut colours are clipped, which lab2rgb reports
            warnings.simplefilter("ignore", UserWarning)
            rgb = _skimage().color.lab2rgb(lab)
        return torch.from_numpy(rgb.astype(np.float32)).permute(0, 3, 1, 2).clamp(0, 1)
