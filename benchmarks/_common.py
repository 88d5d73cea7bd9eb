"""Shared helpers for benchmarks: machine tag and result writing (JSON + Markdown table)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_tag() -> str:
    """A short description of the machine: CPU count, processor, OS."""
    cpus = os.cpu_count() or 0
    proc = platform.processor() or platform.machine()
    return f"{cpus}cpu-{proc}-{platform.system().lower()}"


def write_results(name: str, payload: dict, table: str) -> Path:
    """Write ``<name>_<date>_<machine>.json`` and ``.md`` atomically under benchmarks/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{_dt.date.today().isoformat()}_{machine_tag()}"
    payload = {"benchmark": name, "date": _dt.datetime.now().isoformat(timespec="seconds"), **payload}
    for suffix, text in ((".json", json.dumps(payload, indent=2, default=str)),
                         (".md", f"# {name} — {payload['date']} — {machine_tag()}\n\n{table}\n")):
        path = RESULTS / (stem + suffix)
        tmp = path.with_suffix(suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print(f"wrote {RESULTS / stem}.json/.md")
    return RESULTS / (stem + ".json")
