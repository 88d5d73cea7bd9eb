"""Helpers shared by the benchmarks: result files named by date and machine, written atomically."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """A short, file-name-safe description of this machine."""
    import torch

    name = platform.node() or "unknown"
    device = "cuda-" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu{os.cpu_count()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}-{device}")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(name: str, payload: dict, table: str) -> tuple[Path, Path]:
    """Write ``<name>_<date>_<machine>.json`` and ``.md`` under ``benchmarks/results/``."""
    stem = f"{name}_{datetime.date.today().isoformat()}_{machine()}"
    json_path, md_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    _atomic_write(json_path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    _atomic_write(md_path, table + "\n")
    return json_path, md_path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
