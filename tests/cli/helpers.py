"""Run the ``innverse`` command in a subprocess, as a user would."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def innverse(*args: str, cwd: Path | None = None, timeout: float = 240,
             check: int | None = None) -> subprocess.CompletedProcess:
    """``python -m innverse.cli ARGS`` with this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-m", "innverse.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (f"exit {proc.returncode} != {check}\nstdout:\n{proc.stdout}\n"
                                          f"stderr:\n{proc.stderr[-4000:]}")
    return proc


def run_main(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``innverse ARGS`` in this process (no interpreter start-up): ``(exit code, stdout, stderr)``.

    Restores the working directory, torch's thread count and ``sys.path`` afterwards.
    """
    import torch

    from innverse.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, threads, path = Path.cwd(), torch.get_num_threads(), list(sys.path)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exit_:  # argparse
                code = int(exit_.code or 0)
    finally:
        os.chdir(old_cwd)
        torch.set_num_threads(threads)
        sys.path[:] = path
    return code, out.getvalue(), err.getvalue()
