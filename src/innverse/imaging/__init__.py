"""Image INNs in use: sampling helpers, dequantisation and bits/dim, image grids.

* sampling (:mod:`~innverse.imaging.sampling`): :func:`sample_images` at a temperature,
  :func:`best_of_k`, :func:`variance_map`, :func:`encode` / :func:`decode`, :func:`interpolate`,
  :func:`transfer_style`;
* likelihood (:mod:`~innverse.imaging.likelihood`, :mod:`~innverse.imaging.dequantization`):
  :func:`bits_per_dim` with :class:`UniformDequantization` or :class:`VariationalDequantization`
  (the result says which), :class:`BitsPerDimLoss` for training, the :class:`Logit` block;
* :func:`image_grid` / :func:`save_image_grid` (PNG) and :func:`check_images`.

The flows themselves are built by :func:`innverse.flows.image_flow`.
"""

from .checks import check_images
from .dequantization import UniformDequantization, VariationalDequantization, check_levels
from .grids import image_grid, save_image_grid
from .likelihood import BitsPerDim, BitsPerDimLoss, bits_per_dim
from .logit import Logit
from .sampling import (
    BestOfK,
    best_of_k,
    decode,
    encode,
    interpolate,
    sample_images,
    transfer_style,
    variance_map,
)

__all__ = [
    "BestOfK",
    "BitsPerDim",
    "BitsPerDimLoss",
    "Logit",
    "UniformDequantization",
    "VariationalDequantization",
    "best_of_k",
    "bits_per_dim",
    "check_images",
    "check_levels",
    "decode",
    "encode",
    "image_grid",
    "interpolate",
    "sample_images",
    "save_image_grid",
    "transfer_style",
    "variance_map",
]
