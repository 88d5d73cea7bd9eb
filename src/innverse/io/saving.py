"""``innverse.save`` / ``innverse.load``: safe, versioned model files.

A :class:`~innverse.core.Flow` made by a one-line constructor is saved as that call plus its
weights (see :mod:`innverse.io.recipes`). Any other object can be saved when it follows the
*config protocol*:

* ``obj.config() -> dict`` — a JSON-serialisable description that rebuilds the architecture
  (including standardisation statistics and the prior description);
* ``obj.state_dict()`` / ``obj.load_state_dict(sd)`` — its tensors (weights and buffers);
* ``type(obj).from_config(config) -> obj`` — the constructor used on load.

``load`` rebuilds the object from its config with ``from_config``, loads the verified tensors
with ``strict=True`` and puts the module in eval mode. Nothing is dropped silently: a prior or
summary network that a file could not rebuild is refused at save time, naming it (a custom
summary network saves once registered with :func:`innverse.nets.register_summary`; a prior
innverse cannot describe may be left out explicitly, ``omit_prior=True``, and given back on
load, ``prior=``). Files get the permissions the umask allows (like ``open``). The class is looked up by the file's
``kind`` in a fixed table of innverse classes (plus the ``kinds`` a caller passes explicitly), never
imported from a path stored in the file, so a file cannot make ``load`` run code of its choice.

References:
    safetensors, https://github.com/huggingface/safetensors (format and the case against pickle).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .composite import COMPOSITES
from .format import ModelFileError, read_envelope, read_model_file, write_model_file
from .recipes import flow_config, flow_from_config

__all__ = ["save", "load", "info", "BUILTIN_KINDS"]

#: kind name -> (innverse module, attribute). Only these (and explicit ``kinds``) can be loaded.
BUILTIN_KINDS: Mapping[str, tuple[str, str]] = {
    "PosteriorEstimator": ("innverse.amortized", "PosteriorEstimator"),
    "Posterior": ("innverse.amortized", "Posterior"),
    "Flow": ("innverse.core", "Flow"),
    "EnsemblePosterior": ("innverse.amortized", "EnsemblePosterior"),
    "LikelihoodPosterior": ("innverse.amortized", "LikelihoodPosterior"),
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


def save(obj: Any, path: str | os.PathLike[str], *, kinds: Mapping[str, type] | None = None,
         omit_prior: bool = False) -> Path:
    """Save ``obj`` (weights as safetensors + architecture as versioned JSON) to ``path`` atomically.

    Args:
        obj: a ``Posterior``, a ``PosteriorEstimator``, an ``EnsemblePosterior``, a
            ``LikelihoodPosterior`` (NLE / SNLE; with its prior, MCMC settings and data masks), a
            ``Flow`` from a one-line constructor (:func:`innverse.io.build_flow`), or an object
            following the config protocol (see the module docstring).
        path: destination file (conventionally ``*.safetensors``); parent folders are created.
        kinds: extra ``{kind name: class}`` for your own classes.
        omit_prior: save a posterior whose prior innverse cannot describe without it (give the
            prior back with ``innverse.load(path, prior=...)``); otherwise such a prior is an error.
            A ``LikelihoodPosterior`` saved so cannot be loaded without ``prior=``.

    Returns:
        The path written.

    Raises:
        TypeError: what a file could not rebuild: an unregistered summary network, a prior
            innverse cannot describe (without ``omit_prior``), a hand-built Flow, an attached
            detector other than ``SummaryOutlierDetector``, MCMC symmetries (functions); each named
            in the message.
    """
    kind = _kind_of(obj, kinds)
    config, tensors = contents(obj, kind, kinds, omit_prior)
    return write_model_file(path, kind, config, tensors, _version())


def contents(obj: Any, kind: str, kinds: Mapping[str, type] | None, omit_prior: bool) -> tuple[dict[str, Any], dict]:
    """The config and tensors a file of ``kind`` holds for ``obj`` (the parts of composite kinds nested)."""
    custom = bool(kinds and kind in kinds)
    if kind == "Flow" and not custom:
        return flow_config(obj), dict(obj.state_dict())
    if kind in COMPOSITES and not custom:
        return COMPOSITES[kind][0](obj, omit_prior)
    inner = obj
    if kind in _WRAPPERS and not custom:
        inner = getattr(obj, _WRAPPERS[kind][0])
    for method in ("config", "state_dict"):
        if not callable(getattr(inner, method, None)):
            raise TypeError(f"innverse.save: {type(inner).__name__} has no {method}() method")
    if not custom:
        _check_summary(inner)
    config = inner.config()
    if not isinstance(config, dict):
        raise TypeError(f"innverse.save: {type(inner).__name__}.config() must return a dict, "
                        f"got {type(config).__name__}")
    if not custom:
        config = _with_summary_type(inner, config)
        _check_prior(inner, config, omit_prior)
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
    return config, tensors


def _check_summary(inner: Any) -> None:
    """A summary network a file can rebuild: built in, or registered with ``register_summary``."""
    summary = getattr(inner, "summary", None)
    if summary is None or not isinstance(summary, torch.nn.Module):
        return
    from ..nets.summaries import summary_type

    if summary_type(summary) is None or not callable(getattr(summary, "config", None)):
        cls = type(summary)
        raise TypeError(f"innverse.save: the summary network {cls.__module__}.{cls.__qualname__} is not registered, so "
                        "a file could not rebuild it; give the class config() (a JSON dict that rebuilds it) and "
                        f"register it: innverse.nets.register_summary('my_name', {cls.__qualname__}), in this "
                        "process and in the one that loads the file")


def _with_summary_type(inner: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` whose summary description names its registered type, checked to rebuild the same network."""
    summary = getattr(inner, "summary", None)
    if summary is None or not isinstance(config.get("summary"), dict):
        return config
    from ..nets.summaries import summary_from_config, summary_type

    name, cls = summary_type(summary), type(summary).__qualname__
    described = dict(config["summary"])
    if described.setdefault("type", name) != name:
        raise TypeError(f"innverse.save: {cls}.config() says type {described['type']!r}, but the class is "
                        f"registered as {name!r}")
    try:
        rebuilt = summary_from_config(described)
    except Exception as err:
        raise TypeError(f"innverse.save: the summary network {cls} cannot be rebuilt from its config() "
                        f"{described}: {type(err).__name__}: {err}") from err
    want = {k: tuple(v.shape) for k, v in summary.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != got:
        raise TypeError(f"innverse.save: the summary network {cls} rebuilt from its config() {described} has other "
                        f"tensors than the one being saved ({sorted(set(want) ^ set(got)) or 'different shapes'}); "
                        "config() must describe the whole architecture")
    return {**config, "summary": described}


def _check_prior(inner: Any, config: dict[str, Any], omit_prior: bool) -> None:
    """A prior the config could not describe is an error unless the caller leaves it out on purpose."""
    prior = getattr(inner, "prior", None)
    if prior is None or "prior" not in config or config["prior"] is not None or omit_prior:
        return
    from ..amortized.prior_config import prior_to_config

    try:
        prior_to_config(prior)
        reason = ""
    except TypeError as err:
        reason = f" ({err})"
    cls = type(prior)
    raise TypeError(f"innverse.save: cannot save the prior, a {cls.__module__}.{cls.__qualname__}{reason}. Use a prior "
                    "innverse can describe, or save without it: innverse.save(obj, path, omit_prior=True), then "
                    "innverse.load(path, prior=your_prior)")


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
         device: str | torch.device = "cpu", prior: Any = None) -> Any:
    """Load an object written by :func:`save`, verifying format version and integrity first.

    Args:
        path: the model file.
        kinds: extra ``{kind name: class}`` for your own classes.
        device: where the loaded module computes.
        prior: a posterior's prior, for files saved with ``omit_prior=True`` (or by innverse
            versions that dropped priors they could not describe); it replaces a stored one.

    Raises:
        ModelFileError: (a ``ValueError``) for a pickle / ``torch.save`` file, a file from a newer
            format version, a truncated file, or one whose SHA-256 does not match (tampered).
        FileNotFoundError: if ``path`` does not exist.
        ValueError: a device that does not exist here.
    """
    from ..amortized.posterior import check_device

    target = check_device(device, "innverse.load")
    path = Path(path)
    envelope = read_envelope(path)
    cls = _resolve(envelope["kind"], kinds, path)  # fail on unknown kinds before reading weights
    envelope, tensors = read_model_file(path)
    return rebuild(envelope["kind"], cls, envelope["config"], tensors, path,
                   Rebuild(kinds=kinds, prior=prior, device=target))


@dataclass(frozen=True)
class Rebuild:
    """What :func:`load` was asked for: extra kinds, a replacement prior, the target device."""

    kinds: Mapping[str, type] | None
    prior: Any
    device: torch.device


def rebuild(kind: str, cls: type, config: Any, tensors: dict[str, torch.Tensor], path: Path, how: Rebuild) -> Any:
    """The object of ``kind`` a file's config and tensors describe (the parts of composite kinds rebuilt in turn)."""
    custom = bool(how.kinds and kind in how.kinds)
    if not isinstance(config, dict):
        raise ModelFileError(f"innverse.load: {path} has no valid {kind} configuration")
    if kind in COMPOSITES and not custom:
        return COMPOSITES[kind][1](config, tensors, path, how)
    wrapper, detector_kind, detector_state, info = None, None, {}, {}
    if kind in _WRAPPERS and not custom:
        attr, inner_kind = _WRAPPERS[kind]
        wrapper, cls = cls, _resolve(inner_kind, None, path)
        if not isinstance(config.get(attr), dict):
            raise ModelFileError(f"innverse.load: {path} has no {attr!r} configuration")
        info, detector_kind, config = config.get("info", {}), config.get("detector"), config[attr]
        detector_state = {k[len(_DETECTOR):]: tensors.pop(k) for k in list(tensors) if k.startswith(_DETECTOR)}
    obj = _build(kind, cls, config, how.prior, path, custom=custom)
    try:
        obj.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"innverse.load: the weights in {path} do not fit the {kind} "
                             f"described by its config: {err}") from err
    if isinstance(obj, torch.nn.Module):
        obj.to(how.device).eval()
    if wrapper is not None:
        obj = wrapper(obj, report=_report(info, path))
        if detector_kind is not None:
            obj.attach_detector(_load_detector(detector_kind, detector_state, path))
    return obj


def _build(kind: str, cls: type, config: dict[str, Any], prior: Any, path: Path, custom: bool) -> Any:
    """The untrained object a file describes (its weights are loaded next)."""
    if "prior" not in config and prior is not None:
        raise ValueError(f"innverse.load: prior= was given, but {path} holds a {kind}, which has no prior")
    if kind == "Flow" and not custom:
        return flow_from_config(config)
    if "prior" not in config:
        return cls.from_config(config)
    if prior is None and config.get("prior") is None and config.get("prior_type") is not None:
        warnings.warn(f"innverse.load: {path} was saved without its prior (a {config['prior_type']}); the "
                      "loaded posterior has prior None (its support bounds are kept), so pass prior=... to "
                      "innverse.load for diagnostics that draw from the prior", RuntimeWarning, stacklevel=3)
    return cls.from_config(config, prior=prior) if prior is not None else cls.from_config(config)


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
