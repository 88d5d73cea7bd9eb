"""Resolve a user's ``module:function`` reference (a simulator, a prior) to the object it names."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["resolve_callable", "resolve_reference"]


def resolve_reference(ref: str, what: str, search_path: str | os.PathLike[str] | None = None) -> Any:
    """Import ``module:attribute`` (``attribute`` may be dotted) and return the object.

    Args:
        ref: e.g. ``"mysim:simulate"`` or ``"pkg.models:Model.simulate"``; a module file path
            such as ``"models/mysim.py:simulate"`` also works.
        what: what the object is for (used in error messages), e.g. ``"simulator"``.
        search_path: folder put first on ``sys.path`` while importing (e.g. the config's folder).

    Raises:
        UsageError: the reference is malformed, the module does not import, or the attribute is
            missing; the message names the reference and the underlying error.
    """
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise UsageError(f"{what} {ref!r} must look like 'module:function' (e.g. 'mysim:simulate', "
                         "where mysim.py is importable from the current folder)")
    module_name, attr = ref.split(":")
    folder = Path(search_path) if search_path is not None else Path.cwd()
    if module_name.endswith(".py"):
        file = Path(module_name) if Path(module_name).is_absolute() else folder / module_name
        folder, module_name = file.parent, file.stem
    inserted = str(folder.resolve())
    # Stays on the path: worker processes of a pool unpickle the function by importing its module.
    if inserted not in sys.path:
        sys.path.insert(0, inserted)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UsageError(f"{what} {ref!r}: no module named {module_name!r} in {inserted} or on "
                             "the Python path; check the spelling or run from the folder that holds "
                             f"{module_name.replace('.', '/')}.py") from err
        raise UsageError(f"{what} {ref!r}: module {module_name!r} failed to import: {err}") from err
    except Exception as err:  # the user's module raised while importing
        raise UsageError(f"{what} {ref!r}: module {module_name!r} failed to import: "
                         f"{type(err).__name__}: {err}") from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{what} {ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def resolve_callable(ref: str, what: str, search_path: str | os.PathLike[str] | None = None) -> Callable:
    """Like :func:`resolve_reference`, and check that the object is callable."""
    obj = resolve_reference(ref, what, search_path)
    if not callable(obj):
        raise UsageError(f"{what} {ref!r} is a {type(obj).__name__}, not a function")
    return obj
