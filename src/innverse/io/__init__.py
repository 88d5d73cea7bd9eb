"""Safe, versioned model files: safetensors weights + a JSON description, never pickle."""

from .format import FORMAT_VERSION, ModelFileError, read_envelope
from .recipes import FLOW_CONSTRUCTORS, attach_recipe, build_flow
from .saving import BUILTIN_KINDS, info, load, save

__all__ = ["FLOW_CONSTRUCTORS", "FORMAT_VERSION", "BUILTIN_KINDS", "ModelFileError", "attach_recipe", "build_flow",
           "info", "load", "read_envelope", "save"]
