"""Data for generative classifiers and OOD detection: 8x8 digits, generated OOD images, a multispectral tissue task."""

from .digits import (
    LEVELS,
    checkerboards,
    constant_images,
    flipped,
    lfw_faces,
    load_digits_images,
    low_contrast,
    noise_images,
    ood_image_sets,
    rotated,
)
from .spectral import OOD_KINDS, SpectralTissueTask

__all__ = [
    "LEVELS",
    "OOD_KINDS",
    "SpectralTissueTask",
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
