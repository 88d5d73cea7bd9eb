"""JSON descriptions of priors: :func:`prior_to_config` and :func:`prior_from_config` (no pickle).

A config is a plain dict of strings, numbers and nested lists, e.g.
``{"type": "Independent", "reinterpreted_batch_ndims": 1, "base": {"type": "Uniform",
"low": [-1.0, -1.0], "high": [1.0, 1.0]}}``. Parameters are stored as float64 lists, so a
round trip reproduces a float32 or float64 prior exactly (``dtype`` records which). Other
distributions defined in ``torch.distributions`` or in innverse itself (e.g. a task's prior) are
described generically by class path and the tensors named in their ``arg_constraints``; loading
imports only classes from those trusted modules.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor
from torch.distributions import (
    Beta,
    Distribution,
    Exponential,
    Gamma,
    HalfNormal,
    Independent,
    LogNormal,
    MultivariateNormal,
    Normal,
    Uniform,
)

from .priors import ProductPrior

__all__ = ["prior_to_config", "prior_from_config", "PRIOR_TYPES"]

# type name -> (class, parameter names); parameters are tensors of any shape.
_SIMPLE: dict[str, tuple[type[Distribution], tuple[str, ...]]] = {
    "Uniform": (Uniform, ("low", "high")),
    "Normal": (Normal, ("loc", "scale")),
    "LogNormal": (LogNormal, ("loc", "scale")),
    "HalfNormal": (HalfNormal, ("scale",)),
    "Exponential": (Exponential, ("rate",)),
    "Gamma": (Gamma, ("concentration", "rate")),
    "Beta": (Beta, ("concentration1", "concentration0")),
    "MultivariateNormal": (MultivariateNormal, ("loc", "covariance_matrix")),
}
#: Distribution types a prior config may name: the torch distributions above, "Independent", "Product" and "Class".
PRIOR_TYPES = (*_SIMPLE, "Independent", "Product", "Class")
#: modules whose distribution classes a config may name (imported on load; nothing else is)
TRUSTED_MODULES = ("torch.distributions.", "innverse.")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: distribution classes that moved inside innverse: the path older configs name -> the current one
_MOVED = {"innverse.tasks.normal_inverse_gamma.NormalInverseGamma":
          "innverse.tasks.sbi.normal_inverse_gamma.NormalInverseGamma"}


def prior_to_config(prior: Distribution) -> dict[str, Any]:
    """Describe a prior as a JSON-serialisable dict.

    Supported: ``Uniform``, ``Normal``, ``LogNormal``, ``HalfNormal``, ``Exponential``, ``Gamma``,
    ``Beta``, ``MultivariateNormal``, ``Independent`` of any of these (subclasses such as sbi's
    ``BoxUniform`` are described as their base class) and :class:`ProductPrior`.

    Raises:
        TypeError: for any other distribution (name the type, list the supported ones).
    """
    if isinstance(prior, ProductPrior):
        return {"type": "Product", "marginals": [prior_to_config(m) for m in prior.marginals]}
    if isinstance(prior, Independent):
        return {"type": "Independent", "reinterpreted_batch_ndims": int(prior.reinterpreted_batch_ndims),
                "base": prior_to_config(prior.base_dist)}
    # Exact class match first (LogNormal and HalfNormal subclass TransformedDistribution).
    for name, (cls, params) in _SIMPLE.items():
        if type(prior) is cls:
            cfg: dict[str, Any] = {"type": name}
            dtype = None
            for p in params:
                t: Tensor = getattr(prior, p).detach()
                dtype = t.dtype
                cfg[p] = t.to(torch.float64).cpu().tolist()
            cfg["dtype"] = str(dtype).replace("torch.", "")
            return cfg
    generic = _generic_config(prior)
    if generic is not None:
        return generic
    raise TypeError(f"prior_to_config: cannot describe a {type(prior).__name__}; supported types are "
                    f"{', '.join(PRIOR_TYPES)}, and distributions defined in {' or '.join(TRUSTED_MODULES)} "
                    "whose parameters are the tensors named in their arg_constraints")


def _generic_config(prior: Distribution) -> dict[str, Any] | None:
    """``{"type": "Class", "class": "module.Name", "params": {...}}`` for a trusted distribution class."""
    cls = type(prior)
    if not cls.__module__.startswith(TRUSTED_MODULES) or not isinstance(getattr(cls, "arg_constraints", None), dict):
        return None
    params: dict[str, Any] = {}
    dtype = None
    for name in cls.arg_constraints:
        value = getattr(prior, name, None)
        if not isinstance(value, Tensor):
            return None
        dtype = value.dtype
        params[name] = value.detach().to(torch.float64).cpu().tolist()
    return {"type": "Class", "class": f"{cls.__module__}.{cls.__qualname__}", "params": params,
            "dtype": str(dtype).replace("torch.", "")}


def _generic_from_config(config: dict[str, Any], where: str) -> Distribution:
    path = _require(config, "class", where)
    path = _MOVED.get(str(path), str(path))
    module, _, name = str(path).rpartition(".")
    if not module.startswith(TRUSTED_MODULES):
        raise ValueError(f"prior_from_config: {where}['class'] = {path!r} is outside the trusted modules "
                         f"{TRUSTED_MODULES}; refusing to import it")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"prior_from_config: cannot find the distribution class {path!r} ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise ValueError(f"prior_from_config: {path!r} is not a torch Distribution")
    dtype = _DTYPES.get(config.get("dtype", "float32"))
    if dtype is None:
        raise ValueError(f"prior_from_config: {where}['dtype'] must be one of {tuple(_DTYPES)}")
    params = _require(config, "params", where)
    if not isinstance(params, dict):
        raise ValueError(f"prior_from_config: {where}['params'] must be a dict")
    try:
        return cls(**{k: torch.tensor(v, dtype=torch.float64).to(dtype) for k, v in params.items()},
                   validate_args=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"prior_from_config: invalid parameters for {path} in {where}: {err}") from err


def _require(cfg: Any, key: str, where: str) -> Any:
    if not isinstance(cfg, dict):
        raise ValueError(f"prior_from_config: {where} must be a dict, got {type(cfg).__name__}")
    if key not in cfg:
        raise ValueError(f"prior_from_config: {where} is missing the key {key!r}")
    return cfg[key]


def prior_from_config(config: dict[str, Any], _where: str = "config") -> Distribution:
    """Rebuild a prior from :func:`prior_to_config`'s description.

    Raises:
        ValueError: unknown type, missing keys or parameters the distribution rejects.
    """
    kind = _require(config, "type", _where)
    if kind == "Product":
        marginals = _require(config, "marginals", _where)
        if not isinstance(marginals, list) or not marginals:
            raise ValueError(f"prior_from_config: {_where}['marginals'] must be a non-empty list")
        return ProductPrior([prior_from_config(m, f"{_where}['marginals'][{i}]") for i, m in enumerate(marginals)])
    if kind == "Independent":
        base = prior_from_config(_require(config, "base", _where), f"{_where}['base']")
        n = _require(config, "reinterpreted_batch_ndims", _where)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"prior_from_config: {_where}['reinterpreted_batch_ndims'] must be an int >= 0, got {n!r}")
        return Independent(base, n)
    if kind == "Class":
        return _generic_from_config(config, _where)
    if kind not in _SIMPLE:
        raise ValueError(f"prior_from_config: unknown prior type {kind!r} in {_where}; expected one of {PRIOR_TYPES}")
    cls, params = _SIMPLE[kind]
    dtype_name = config.get("dtype", "float32")
    if dtype_name not in _DTYPES:
        raise ValueError(f"prior_from_config: {_where}['dtype'] must be one of {tuple(_DTYPES)}, got {dtype_name!r}")
    kwargs = {}
    for p in params:
        value = _require(config, p, _where)
        try:
            kwargs[p] = torch.tensor(value, dtype=torch.float64).to(_DTYPES[dtype_name])
        except (TypeError, ValueError) as err:
            raise ValueError(f"prior_from_config: {_where}[{p!r}] must be a number or nested list of numbers") from err
    try:
        return cls(**kwargs, validate_args=True)   # checked whatever torch's global default (sbi switches it off)
    except ValueError as err:
        raise ValueError(f"prior_from_config: invalid parameters for {kind} in {_where}: {err}") from err
