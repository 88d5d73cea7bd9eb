"""Helpers shared by test packages: running a Python snippet in a fresh subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import innverse

SRC = str(Path(innverse.__file__).resolve().parents[1])
ROOT = str(Path(__file__).resolve().parents[1])


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``code`` with this interpreter, innverse and the tests importable, one torch thread."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([SRC, ROOT, full_env.get("PYTHONPATH", "")])
    full_env["OMP_NUM_THREADS"] = "1"
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)
