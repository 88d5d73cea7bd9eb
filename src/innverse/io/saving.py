"""``innverse.save`` / ``innverse.load``: safe, versioned model files.

An object can be saved when it follows the *config protocol*:

* ``obj.config() -> dict`` — a JSON-serialisable description that rebuilds the architecture
  (including standardisation statistics and the prior description);
* ``obj.state_dict()`` / ``obj.load_state_dict(sd)`` — its tensors (weights and buffers);
* ``type(obj).from_config(config) -> obj`` — the constructor used on load.

``load`` rebuilds the object from its config with ``from_config``, loads the verified tensors
with ``strict=True`` and puts the module in eval mode. The class is looked up by the file's
``kind`` in a fixed table of innverse classes (plus the ``kinds`` a caller passes explicitly), never
imported from a path stored in the file, so a file cannot make ``load`` run code of its choice.

References:
    safetensors, https://github.com/huggingface/safetensors (format and the case against pickle).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .format import ModelFileError, read_envelope, read_model_file, write_model_file

__all__ = ["save", "load", "info", "BUILTIN_KINDS"]

#: kind name -> (innverse module, attribute). Only these (and explicit ``kinds``) can be loaded.
BUILTIN_KINDS: Mapping[str, tuple[str, str]] = {
    "PosteriorEstimator": ("innverse.amortized", "PosteriorEstimator"),
    "Posterior": ("innverse.amortized", "Posterior"),
}
#: kinds that wrap a module rather than being one: kind -> (attribute holding it, kind of that module).
#: Their file holds the wrapped module's config and tensors, plus the wrapper's training report
#: (``FitReport.to_dict()`` under the key ``info``, the name innverse 0.1 used for its untyped dict).
_WRAPPERS: Mapping[str, tuple[str, str]] = {"Posterior": ("estimator", "PosteriorEstimator")}
#: tensor-name prefix of a posterior's attached outlier detector
_DETECTOR = "detector."


def _version() -> str:
    from .. import __version__

    return __version__


def _resolve(kind: str, kinds: Mapping[str, type] | None, path: Path | None) -> type:
    if kinds and kind in kinds:
        return kinds[kind]
    if kind not in BUILTIN_KINDS:
        known = sorted(set(BUILTIN_KINDS) | set(kinds or {}))
        where = f"{path} holds" if path else "got"
        raise ModelFileError(f"innverse.load: {where} an object of kind {kind!r}, which this innverse "
                             f"cannot rebuild (known kinds: {known}); pass kinds={{{kind!r}: TheClass}} "
                             "for your own classes")
    module, attr = BUILTIN_KINDS[kind]
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ModelFileError(f"innverse.load: kind {kind!r} needs {module}.{attr}, which is not "
                             f"available in this installation ({err})") from err


def _kind_of(obj: Any, kinds: Mapping[str, type] | None) -> str:
    for name, cls in (kinds or {}).items():
        if type(obj) is cls:
            return name
    name = type(obj).__name__
    if name in BUILTIN_KINDS and type(obj).__module__.startswith(BUILTIN_KINDS[name][0]):
        return name
    raise TypeError(f"innverse.save: cannot save a {type(obj).__module__}.{name}; savable innverse "
                    f"kinds are {sorted(BUILTIN_KINDS)} (or pass kinds={{'Name': {name}}} for a class "
                    "with config(), from_config() and state_dict())")


def save(obj: Any, path: str | os.PathLike[str], *, kinds: Mapping[str, type] | None = None) -> Path:
    """Save ``obj`` (weights as safetensors + architecture as versioned JSON) to ``path`` atomically.

    Args:
        obj: an object following the config protocol (see module docstring), e.g. a trained
            ``PosteriorEstimator`` or ``Posterior``.
        path: destination file (conventionally ``*.safetensors``); parent folders are created.
        kinds: extra ``{kind name: class}`` for your own classes.

    Returns:
        The path written.
    """
    kind = _kind_of(obj, kinds)
    inner = obj
    if kind in _WRAPPERS and not (kinds and kind in kinds):
        inner = getattr(obj, _WRAPPERS[kind][0])
    for method in ("config", "state_dict"):
        if not callable(getattr(inner, method, None)):
            raise TypeError(f"innverse.save: {type(inner).__name__} has no {method}() method")
    config = inner.config()
    if not isinstance(config, dict):
        raise TypeError(f"innverse.save: {type(inner).__name__}.config() must return a dict, "
                        f"got {type(config).__name__}")
    tensors = dict(inner.state_dict())
    if inner is not obj:
        report = getattr(obj, "report", None)
        config = {_WRAPPERS[kind][0]: config, "info": None if report is None else _jsonable(report.to_dict())}
        detector = getattr(obj, "detector", None)
        if detector is not None:
            if type(detector).__name__ != "SummaryOutlierDetector":
                raise TypeError(f"innverse.save: cannot save the attached detector {type(detector).__name__}; "
                                "only innverse.diagnostics.SummaryOutlierDetector is saved (detach it with "
                                "attach_detector(None) first)")
            config["detector"] = "SummaryOutlierDetector"
            tensors.update({f"{_DETECTOR}{k}": v for k, v in detector.state_dict().items()})
    return write_model_file(path, kind, config, tensors, _version())


def _jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold (tensors, objects) turned into strings."""
    import json

    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        if isinstance(value, float):
            return None
        return str(value)


def load(path: str | os.PathLike[str], *, kinds: Mapping[str, type] | None = None,
         device: str | torch.device = "cpu") -> Any:
    """Load an object written by :func:`save`, verifying format version and integrity first.

    Raises:
        ModelFileError: (a ``ValueError``) for a pickle / ``torch.save`` file, a file from a newer
            format version, a truncated file, or one whose SHA-256 does not match (tampered).
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    envelope = read_envelope(path)
    cls = _resolve(envelope["kind"], kinds, path)  # fail on unknown kinds before reading weights
    envelope, tensors = read_model_file(path)
    kind, config = envelope["kind"], envelope["config"]
    wrapper, detector_kind, detector_state, info = None, None, {}, {}
    if kind in _WRAPPERS and not (kinds and kind in kinds):
        attr, inner_kind = _WRAPPERS[kind]
        wrapper, cls = cls, _resolve(inner_kind, None, path)
        if not isinstance(config.get(attr), dict):
            raise ModelFileError(f"innverse.load: {path} has no {attr!r} configuration")
        info, detector_kind, config = config.get("info", {}), config.get("detector"), config[attr]
        detector_state = {k[len(_DETECTOR):]: tensors.pop(k) for k in list(tensors) if k.startswith(_DETECTOR)}
    obj = cls.from_config(config)
    try:
        obj.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"innverse.load: the weights in {path} do not fit the {envelope['kind']} "
                             f"described by its config: {err}") from err
    if isinstance(obj, torch.nn.Module):
        obj.to(device).eval()
    if wrapper is not None:
        obj = wrapper(obj, report=_report(info, path))
        if detector_kind is not None:
            obj.attach_detector(_load_detector(detector_kind, detector_state, path))
    return obj


def _report(info: Any, path: Path) -> Any:
    """The training report stored with a posterior (``None`` when the file has none)."""
    if not info:
        return None
    from ..amortized import FitReport

    try:
        return FitReport.from_dict(info)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"innverse.load: the training report in {path} is invalid: {err}") from err


def _load_detector(kind: Any, state: dict[str, torch.Tensor], path: Path) -> Any:
    """Rebuild a posterior's outlier detector from its buffers (all its state is in them)."""
    if kind != "SummaryOutlierDetector":
        raise ModelFileError(f"innverse.load: {path} names an unknown detector {kind!r}")
    from ..diagnostics import SummaryOutlierDetector

    detector = SummaryOutlierDetector(None)
    try:
        detector.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"innverse.load: the detector state in {path} is invalid: {err}") from err
    return detector.eval()


def info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The envelope of a model file (kind, format and innverse versions, config) without its weights."""
    return read_envelope(path)
