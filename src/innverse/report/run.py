"""The run directory: one folder holding everything a run produced, and the reader the report uses.

.. code-block:: text

    RUN/
      run.json              what ran: task, settings, versions, seeds, step timings and outcomes
      config.toml           the configuration the run was made from
      simulations.h5        the simulation store (unless the config points to another)
      checkpoints/          training checkpoints (``innverse fit --resume`` continues from them)
      training_log.jsonl    one JSON object per epoch
      model.safetensors     the trained posterior (``innverse.load``)
      observations.npy      the observations the posterior was sampled for
      samples/              posterior samples (.npz, .csv, .nc) and pair plots per observation
      diagnostics/          diagnostics.json and its plots
      report.html           the self-contained report
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import atomic_write

__all__ = ["RunLayout", "atomic_write_text", "read_json", "read_jsonl", "update_run_json"]


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def store(self) -> Path:
        return self.root / "simulations.h5"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def training_log(self) -> Path:
        return self.root / "training_log.jsonl"

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def observations(self) -> Path:
        return self.root / "observations.npy"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def diagnostics(self) -> Path:
        return self.root / "diagnostics"

    @property
    def diagnostics_json(self) -> Path:
        return self.diagnostics / "diagnostics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    return atomic_write(path, lambda f: f.write(text), mode="w")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` if the file is absent."""
    path = Path(path)
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (a torn last line from a killed writer is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def update_run_json(layout: RunLayout, **updates: Any) -> dict[str, Any]:
    """Merge ``updates`` into ``run.json`` (nested one level for ``steps``) and write it atomically."""
    data = read_json(layout.run_json)
    for key, value in updates.items():
        if key == "steps":
            data.setdefault("steps", {}).update(value)
        else:
            data[key] = value
    atomic_write_text(layout.run_json, json.dumps(data, indent=2, default=str) + "\n")
    return data
