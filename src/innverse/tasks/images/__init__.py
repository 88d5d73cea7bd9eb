"""Image tasks on offline data: class-conditional digits, face super-resolution and inpainting, patch colourisation.

Every task gives fixed ``"train"`` / ``"val"`` / ``"test"`` splits of ``(images, conditions)``
(``pairs``) and batch sources for :func:`innverse.train.train` (``batches``); restoration tasks
(:class:`AbstractRestorationTask`) add their degradation operator (``degrade``), its residual and
the pixels it removed (see :mod:`innverse.tasks.images.base`). Data ship with scikit-learn
(digits) and scikit-image (faces, photographs); nothing is downloaded.
"""

from .base import SPLITS, AbstractImageTask, AbstractRestorationTask, DegradedBatches
from .colorization import AB_SCALE, PHOTOS, PatchColorization
from .digits import DigitClasses
from .faces import FaceInpainting, FaceSuperResolution, load_faces

__all__ = [
    "AB_SCALE",
    "PHOTOS",
    "SPLITS",
    "AbstractImageTask",
    "AbstractRestorationTask",
    "DegradedBatches",
    "DigitClasses",
    "FaceInpainting",
    "FaceSuperResolution",
    "PatchColorization",
    "load_faces",
]
