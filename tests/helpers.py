"""Helpers shared by test packages: one torch thread per test, running a Python snippet in a fresh subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread for a test (small models run as fast, and timings do not depend on the load).

    A test package opts in with ``from ..helpers import one_thread`` in its ``conftest.py``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
