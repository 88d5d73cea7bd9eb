r"""Face restoration tasks on scikit-image's bundled LFW subset: super-resolution (x2, x4) and inpainting.

Data: the 100 face images of ``skimage.data.lfw_subset()`` (25x25 grayscale, values in
``[0, 1]``), centre-cropped to 24x24 (the first 24 rows and columns) or reflect-padded to 32x32
(3 pixels before, 4 after). Splits: a permutation of the 100 faces with seed 0, the first 70 for
``"train"`` (plus their mirror images with ``flip=True``), the next 10 ``"val"``, the last 20
``"test"``. No download: the images ship with scikit-image (``pip install scikit-image``).

* :class:`FaceSuperResolution`: :math:`c = \mathrm{avgpool}_f(x) + \sigma\varepsilon`,
  ``(1, S, S) -> (1, S/f, S/f)``;
* :class:`FaceInpainting`: a random rectangular hole (side :math:`S/4` to :math:`S/2`, uniform
  position) with mask :math:`m` (1 = observed), condition
  :math:`c = [m \odot (x + \sigma\varepsilon),\ m]`, ``(2, S, S)``.

References:
    Huang, Mattar, Lee, Learned-Miller. "Learning to align from scratch". NeurIPS 2012 (LFW).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import AbstractRestorationTask, check_split

__all__ = ["FaceInpainting", "FaceSuperResolution", "load_faces"]

_SPLIT = {"train": slice(0, 70), "val": slice(70, 80), "test": slice(80, 100)}


def load_faces(split: str, size: int = 24, flip: bool = False) -> Tensor:
    """The LFW-subset faces of a split as ``(N, 1, size, size)`` float32 in ``[0, 1]`` (``size`` 24 or 32)."""
    check_split("load_faces", split)
    if size not in (24, 32):
        raise ValueError(f"load_faces: size must be 24 (crop) or 32 (pad), got {size}")
    try:
        from skimage.data import lfw_subset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the face tasks need scikit-image (pip install scikit-image)") from err
    faces = np.asarray(lfw_subset()[:100], dtype=np.float32)
    faces = faces[np.random.default_rng(0).permutation(100)][_SPLIT[split]]
    if size == 24:
        faces = faces[:, :24, :24]
    else:
        faces = np.pad(faces, ((0, 0), (3, 4), (3, 4)), mode="reflect")
    x = torch.from_numpy(np.ascontiguousarray(faces))[:, None]
    return torch.cat([x, x.flip(-1)]) if flip else x


class _Faces(AbstractRestorationTask):
    def __init__(self, size: int, noise_std: float, flip: bool) -> None:
        if not noise_std >= 0:
            raise ValueError(f"{type(self).__name__}: noise_std must be >= 0, got {noise_std}")
        self.size, self.noise_std, self.flip = int(size), float(noise_std), bool(flip)
        self.image_shape = (1, self.size, self.size)

    def clean_images(self, split: str) -> Tensor:
        return load_faces(split, self.size, self.flip and split == "train")

    def _noise(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.noise_std == 0:
            return torch.zeros_like(like)
        return self.noise_std * torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class FaceSuperResolution(_Faces):
    r"""Super-resolution of faces: :math:`c = \mathrm{avgpool}_f(x) + \sigma\varepsilon` (see the module docstring).

    Args:
        factor: downsampling factor, 2 or 4.
        size: image size, 24 (crop) or 32 (pad).
        noise_std: :math:`\sigma` of the observation noise (pixel values in ``[0, 1]``).
        flip: add mirror images to the training split.
    """

    name = "face_super_resolution"

    def __init__(self, factor: int = 2, size: int = 24, noise_std: float = 0.02, flip: bool = True) -> None:
        if factor not in (2, 4):
            raise ValueError(f"FaceSuperResolution: factor must be 2 or 4, got {factor}")
        super().__init__(size, noise_std, flip)
        self.factor = factor
        self.condition_shape = (1, self.size // factor, self.size // factor)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor, "size": self.size, "noise_std": self.noise_std,
                "flip": self.flip}

    def downsample(self, images: Tensor) -> Tensor:
        """The noise-free operator :math:`A(x) = \\mathrm{avgpool}_f(x)`."""
        self._check(images)
        return F.avg_pool2d(images, self.factor)

    def degrade(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        low = self.downsample(images)
        return low + self._noise(low, generator)

    def residual(self, images: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        r = self.downsample(images) - condition
        return r, torch.ones_like(r)


class FaceInpainting(_Faces):
    r"""Inpainting of faces with random rectangular holes (see the module docstring).

    Args:
        size: image size, 24 (crop) or 32 (pad).
        noise_std: :math:`\sigma` of the noise on the observed pixels.
        flip: add mirror images to the training split.
    """

    name = "face_inpainting"

    def __init__(self, size: int = 24, noise_std: float = 0.02, flip: bool = True) -> None:
        super().__init__(size, noise_std, flip)
        self.condition_shape = (2, self.size, self.size)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "noise_std": self.noise_std, "flip": self.flip}

    def masks(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` masks ``(n, 1, S, S)``: 1 observed, 0 in a rectangle of sides ``S/4 .. S/2`` at a uniform position."""
        s = self.size
        sides = torch.randint(s // 4, s // 2 + 1, (n, 2), generator=generator)
        corner = (torch.rand(n, 2, generator=generator) * (s - sides + 1)).long()
        rows, cols = torch.arange(s), torch.arange(s)
        in_rows = (rows[None] >= corner[:, :1]) & (rows[None] < corner[:, :1] + sides[:, :1])
        in_cols = (cols[None] >= corner[:, 1:]) & (cols[None] < corner[:, 1:] + sides[:, 1:])
        hole = in_rows[:, :, None] & in_cols[:, None, :]
        return (~hole).float()[:, None]

    def degrade(self, images: Tensor, generator: torch.Generator | None = None, masks: Tensor | None = None) -> Tensor:
        """``[m (x + noise), m]`` with random masks (or the given ``masks (N, 1, S, S)``)."""
        self._check(images)
        m = self.masks(images.shape[0], generator).to(images) if masks is None else masks.to(images)
        return torch.cat([m * (images + self._noise(images, generator)), m], 1)

    def residual(self, images: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        m = condition[:, 1:]
        return m * images - condition[:, :1], m

    def removed(self, condition: Tensor) -> Tensor:
        return condition[:, 1] < 0.5
