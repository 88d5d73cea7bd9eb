"""Writing a run's ``run.json``: what ran, with which versions and settings, and each step's outcome."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any

from ..report.run import RunLayout, read_json, update_run_json

__all__ = ["new_run", "read_run", "record_step", "versions"]


def versions() -> dict[str, str]:
    import numpy
    import torch

    from .. import __version__

    return {"innverse": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


def new_run(layout: RunLayout, problem: Any, cfg: dict[str, Any], command: str) -> dict[str, Any]:
    """Start ``run.json`` for a fresh run (an existing one is replaced)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    if layout.run_json.exists():
        layout.run_json.unlink()
    task = cfg.get("simulator", {}).get("task")
    settings = {f"{section}.{k}": v for section, keys in cfg.items() if isinstance(keys, dict)
                for k, v in keys.items() if v is not None and section != "prior"
                and not (task and section == "simulator" and k in ("path", "input"))}
    return update_run_json(
        layout, name=layout.root.name, command=command, task=problem.name,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        parameter_names=problem.parameter_names, problem=problem.record, versions=versions(),
        settings=settings, steps={})


def record_step(layout: RunLayout, step: str, seconds: float, **info: Any) -> dict[str, Any]:
    return update_run_json(layout, steps={step: {"seconds": round(seconds, 2), **info}})


def read_run(layout: RunLayout) -> dict[str, Any]:
    from .errors import UsageError

    if not layout.root.is_dir():
        raise UsageError(f"run directory {layout.root} does not exist")
    data = read_json(layout.run_json)
    if not data:
        raise UsageError(f"{layout.root} is not a run directory (no run.json); make one with "
                         "innverse fit CONFIG.toml or innverse demo")
    return data
