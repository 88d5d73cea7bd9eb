"""Recipes: how a bare :class:`~innverse.core.Flow` is rebuilt from a file (the constructor call that made it).

A flow's tensors alone do not say which blocks hold them. A flow made by one of innverse's
one-line constructors is described by that call — the constructor's name and its (JSON)
arguments — so ``innverse.save`` writes the call next to the weights and ``innverse.load``
repeats it, then loads the weights. Only the constructors in :data:`FLOW_CONSTRUCTORS` can be
named by a file. A flow composed by hand has no recipe: save its ``state_dict`` (e.g.
``safetensors.torch.save_file(flow.state_dict(), path)``) and rebuild it in code.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["FLOW_CONSTRUCTORS", "attach_recipe", "build_flow", "flow_config", "flow_from_config"]

#: constructor name -> (innverse module, attribute): the only calls a model file may ask ``load`` to repeat
FLOW_CONSTRUCTORS: Mapping[str, tuple[str, str]] = {
    "coupling_flow": ("innverse.flows", "coupling_flow"),
    "residual_flow": ("innverse.flows", "residual_flow"),
    "multiscale_flow": ("innverse.flows", "multiscale_flow"),
    "image_flow": ("innverse.flows", "image_flow"),
    "super_resolution_flow": ("innverse.flows", "super_resolution_flow"),
}
_DTYPES = {str(d): d for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16)}


def _constructor(name: Any, owner: str) -> Callable[..., Any]:
    if name not in FLOW_CONSTRUCTORS:
        raise ValueError(f"{owner}: unknown flow constructor {name!r}; known: {sorted(FLOW_CONSTRUCTORS)}")
    module, attr = FLOW_CONSTRUCTORS[name]
    return getattr(importlib.import_module(module), attr)


def _json(value: Any) -> Any:
    """``value`` with tuples as lists, or ``TypeError`` when JSON cannot hold it."""
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    json.dumps(value, allow_nan=False)  # raises TypeError / ValueError for anything else
    return value


def attach_recipe(flow: Any, constructor: str, arguments: Mapping[str, Any]) -> Any:
    """Record on ``flow`` (as ``flow.recipe``) that ``constructor(**arguments)`` built it; returns ``flow``.

    Arguments that are not parameters of the constructor, or equal its defaults, are left out.
    When an argument cannot be written as JSON (a module, a callable such as a custom
    activation), the recipe records which one, and ``innverse.save`` refuses the flow naming it.

    Raises:
        ValueError: an unknown constructor.
    """
    fn = _constructor(constructor, "attach_recipe")
    params = inspect.signature(fn).parameters
    kept: dict[str, Any] = {}
    for name, value in arguments.items():
        if name not in params or params[name].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = params[name].default
        if default is not inspect.Parameter.empty and (value is default or _equal(value, default)):
            continue
        try:
            kept[name] = _json(value)
        except (TypeError, ValueError):
            flow.recipe = {"constructor": constructor, "unsavable": f"argument {name!r} (a {type(value).__name__})"}
            return flow
    flow.recipe = {"constructor": constructor, "arguments": kept}
    return flow


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError, RuntimeError):
        return False


def build_flow(constructor: str, /, *args: Any, **kwargs: Any) -> Any:
    """``constructor(*args, **kwargs)`` (one of :data:`FLOW_CONSTRUCTORS`), with its recipe recorded for saving.

    Example::

        flow = innverse.io.build_flow("coupling_flow", 2, context_features=3, blocks=4)
        innverse.save(flow, "flow.safetensors"); innverse.load("flow.safetensors")
    """
    fn = _constructor(constructor, "build_flow")
    bound = inspect.signature(fn).bind(*args, **kwargs)
    return attach_recipe(fn(*args, **kwargs), constructor, bound.arguments)


def flow_config(flow: Any) -> dict[str, Any]:
    """The file description of a flow: its recipe and dtype.

    Raises:
        TypeError: a flow without a recipe (built by hand) or with an argument JSON cannot hold.
    """
    recipe = getattr(flow, "recipe", None)
    if not isinstance(recipe, dict):
        raise TypeError("innverse.save: this Flow has no recipe (a flow composed by hand has none), so a file cannot "
                        "describe its blocks; save its "
                        "weights with safetensors.torch.save_file(flow.state_dict(), path) and rebuild the flow in code "
                        "before flow.load_state_dict(safetensors.torch.load_file(path)), or build it with "
                        f"innverse.io.build_flow(name, ...) for a name in {sorted(FLOW_CONSTRUCTORS)}")
    if "unsavable" in recipe:
        raise TypeError(f"innverse.save: this Flow from {recipe['constructor']} was given {recipe['unsavable']}, "
                        "which a file cannot describe; save its state_dict and rebuild the flow in code")
    return {"recipe": {"constructor": recipe["constructor"], "arguments": recipe["arguments"]},
            "dtype": str(flow.base.dtype)}


def flow_from_config(config: dict[str, Any]) -> Any:
    """Rebuild an (untrained) flow from :func:`flow_config`'s description; then ``load_state_dict``.

    Raises:
        ValueError: an unknown constructor, invalid arguments or dtype.
    """
    recipe = config.get("recipe")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("arguments"), dict):
        raise ValueError("innverse.load: the Flow's recipe is missing or invalid")
    fn = _constructor(recipe.get("constructor"), "innverse.load")
    dtype = _DTYPES.get(config.get("dtype", "torch.float32"))
    if dtype is None:
        raise ValueError(f"innverse.load: unknown flow dtype {config.get('dtype')!r}")
    try:
        flow = fn(**recipe["arguments"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"innverse.load: cannot rebuild the flow with {recipe['constructor']}: {err}") from err
    return attach_recipe(flow.to(dtype), recipe["constructor"], recipe["arguments"])
