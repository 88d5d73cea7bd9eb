"""Writing a run's ``run.json``: what ran, with which versions and settings, and each step's outcome."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Any

from ..report.run import RunLayout, read_json, update_run_json

__all__ = ["ensure_writable", "new_run", "read_json_file", "read_run", "record_step", "versions"]


def versions() -> dict[str, str]:
    import numpy
    import torch

    from .. import __version__

    return {"innverse": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


def ensure_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and check that a file can be written in it, before any work is done.

    Raises:
        UsageError: naming ``what`` would be written there and why it cannot.
    """
    import tempfile

    from .errors import UsageError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UsageError(f"cannot write {what} to {folder}: {err.strerror or err}; choose another location "
                         "(or make it writable)") from err


def new_run(layout: RunLayout, problem: Any, cfg: dict[str, Any], command: str) -> dict[str, Any]:
    """Start ``run.json`` for a fresh run (an existing one is replaced)."""
    ensure_writable(layout.root, "the run directory")
    if layout.run_json.exists():
        layout.run_json.unlink()
    task = cfg.get("simulator", {}).get("task")
    settings = {f"{section}.{k}": v for section, keys in cfg.items() if isinstance(keys, dict)
                for k, v in keys.items() if v is not None and section != "prior"
                and not (task and section == "simulator" and k in ("path", "input"))}
    record = dict(problem.record)
    if record.get("path"):  # relative to the run directory: the project can move or be copied whole
        record["path"] = os.path.relpath(Path(record["path"]).resolve(), layout.root.resolve())
    return update_run_json(
        layout, name=layout.root.name, command=command, task=problem.name,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        parameter_names=problem.parameter_names, problem=record, versions=versions(),
        settings=settings, steps={})


def record_step(layout: RunLayout, step: str, seconds: float, *, console: Any = None,
                **info: Any) -> dict[str, Any]:
    """Record a step's outcome in ``run.json``; with a ``console``, a failure to write it (a read-only
    run directory) is a warning, since the step's own files are written already."""
    try:
        return update_run_json(layout, steps={step: {"seconds": round(seconds, 2), **info}})
    except (OSError, ValueError) as err:
        if console is None:
            raise
        console.warn(f"the {step} step could not be recorded in {layout.run_json}: {err}")
        return {}


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path`` (``{}`` if absent); a damaged file is a :class:`UsageError`."""
    from .errors import UsageError

    try:
        data = read_json(path)
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"{path} is damaged ({what} is not valid UTF-8 JSON: {err}); restore it or make the "
                         "run again") from err
    if not isinstance(data, dict):
        raise UsageError(f"{path} is damaged ({what} must be a JSON object, got {type(data).__name__})")
    return data


def read_run(layout: RunLayout) -> dict[str, Any]:
    from .errors import UsageError

    if not layout.root.is_dir():
        raise UsageError(f"run directory {layout.root} does not exist")
    data = read_json_file(layout.run_json, "run.json")
    if not data:
        raise UsageError(f"{layout.root} is not a run directory (no run.json); make one with "
                         "innverse fit CONFIG.toml or innverse demo")
    return data
