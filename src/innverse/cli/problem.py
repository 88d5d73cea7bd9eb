"""The inference problem behind a run: a built-in task, or a user's simulator with its prior.

A run records how to rebuild its problem (``{"task": name}`` or the ``module:function``
references), so ``innverse check RUN`` can simulate again without the original command line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .userfunc import resolve_callable, resolve_reference

__all__ = ["Problem", "problem_from_record", "problem_from_refs", "problem_from_task", "runs_user_code",
           "task_names"]


@dataclass
class Problem:
    """Prior, simulator and what is known about them."""

    name: str
    prior: Any
    simulator: Callable[..., Any]
    parameter_names: list[str]
    record: dict[str, Any]
    task: Any = None
    x_shape: tuple[int, ...] | None = None
    theta_format: str = "torch"


def task_names() -> list[str]:
    from ..tasks import TASKS

    return list(TASKS)


def get_task(name: str) -> Any:
    """The built-in task ``name``; an unknown name is a usage error listing the known ones."""
    from ..tasks import get_task as _get

    names = task_names()
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(f"unknown task {name!r}{did}; built-in tasks: {', '.join(names)}")
    return _get(name)


def problem_from_task(name: str) -> Problem:
    task = get_task(name)
    return Problem(name=task.name, prior=task.prior, simulator=task.simulate,
                   parameter_names=list(task.parameter_names), record={"task": task.name}, task=task,
                   x_shape=tuple(task.x_shape))


def _prior_from(ref: str | None, table: dict[str, Any] | None, path: str) -> tuple[Any, dict[str, Any]]:
    from torch.distributions import Distribution

    if table is not None:
        from ..amortized import prior_from_config

        try:
            return prior_from_config(table), {"prior_config": table}
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"[prior] table does not describe a prior: {err}") from err
    obj = resolve_reference(ref, "prior", path)
    if not isinstance(obj, Distribution) and callable(obj):
        try:
            obj = obj()
        except Exception as err:
            raise UsageError(f"prior {ref!r}: calling it raised {type(err).__name__}: {err}") from err
    if not isinstance(obj, Distribution):
        raise UsageError(f"prior {ref!r} must be a torch.distributions.Distribution (or a function "
                         f"returning one), got {type(obj).__name__}")
    return obj, {"prior": ref}


def problem_from_refs(function: str, prior: str | None, path: str,
                      prior_table: dict[str, Any] | None = None,
                      parameter_names: list[str] | None = None, theta_format: str = "torch") -> Problem:
    """A user's simulator ``module:function`` and prior (reference or ``[prior]`` table)."""
    simulator = resolve_callable(function, "simulator", path)
    dist, prior_record = _prior_from(prior, prior_table, path)
    dim = int(dist.event_shape[0]) if len(dist.event_shape) == 1 else None
    if dim is None:
        raise UsageError(f"prior must be a distribution over vectors (event shape (d,)), got event shape "
                         f"{tuple(dist.event_shape)}; wrap it in torch.distributions.Independent")
    names = parameter_names or [f"theta_{i + 1}" for i in range(dim)]
    if len(names) != dim:
        raise UsageError(f"simulator.parameter_names has {len(names)} names but the prior has {dim} "
                         "parameters")
    if theta_format not in ("torch", "numpy"):
        raise UsageError(f"simulator input must be 'torch' or 'numpy', got {theta_format!r}")
    record = {"function": function, "path": path, "parameter_names": names, "input": theta_format,
              **prior_record}
    return Problem(name=function.split(":")[-1], prior=dist, simulator=simulator, parameter_names=names,
                   record=record, theta_format=theta_format)


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
    value = record.get(key)
    if (value is None and required) or (value is not None and not isinstance(value, kind)):
        raise UsageError(f"run.json is damaged: 'problem.{key}' is {value!r}")
    return value


def problem_from_record(record: Any, base: Path | None = None) -> Problem:
    """Rebuild the problem a run recorded in ``run.json``.

    A user's simulator is imported (its Python code runs): the commands call this for a run
    directory only when the user trusts it (``innverse check --trust-run-code``). A relative
    module folder is relative to ``base``, the run directory (runs record it so, so that a
    project moved or copied elsewhere still finds its simulator).
    """
    if isinstance(record, dict) and "task" in record:
        return problem_from_task(_field(record, "task", str, True))
    if isinstance(record, dict) and "function" in record:
        names = _field(record, "parameter_names", list)
        if names is not None and not all(isinstance(n, str) for n in names):
            raise UsageError(f"run.json is damaged: 'problem.parameter_names' is {names!r}")
        path = _field(record, "path", str, True)
        if base is not None and not Path(path).is_absolute():
            path = str((base / path).resolve())
        return problem_from_refs(_field(record, "function", str, True), _field(record, "prior", str), path,
                                 _field(record, "prior_config", dict), names, _field(record, "input", str) or "torch")
    raise UsageError("run.json does not say which simulator the run used (no 'problem' entry); "
                     "was it made by innverse fit or innverse demo?")


def runs_user_code(record: Any) -> bool:
    """Whether rebuilding ``record``'s problem imports Python code named by the run (not a built-in task)."""
    return not (isinstance(record, dict) and "task" in record) and isinstance(record, dict) and "function" in record
