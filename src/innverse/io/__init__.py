"""Safe, versioned model files: safetensors weights + a JSON description, never pickle."""

from .format import FORMAT_VERSION, ModelFileError, read_envelope
from .saving import BUILTIN_KINDS, info, load, save

__all__ = ["FORMAT_VERSION", "BUILTIN_KINDS", "ModelFileError", "info", "load", "read_envelope", "save"]
