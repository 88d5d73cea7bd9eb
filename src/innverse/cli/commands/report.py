"""``innverse report RUN``: (re)build RUN/report.html."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np

from ...report.run import RunLayout
from ..console import Console
from ..errors import JobError, UsageError
from ..runinfo import ensure_writable, read_json_file

HELP = "(re)build the self-contained HTML report of a run"
DESCRIPTION = """\
Build RUN/report.html from the files in the run directory: pass/fail summary, posterior pair plots
per observation, training curves, SBC / coverage / recovery plots, misspecification flags and the
run's settings. The page embeds its figures, so it opens offline and can be mailed as one file.
The report reads the run's files only (JSON, .npz without pickles, images); no code of the run
is imported.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")


def _check_samples(file: Path) -> None:
    """A samples file the report can draw: an .npz (no pickles) with ``samples`` of shape ``(n, k, d)``."""
    try:
        with open(file, "rb") as handle, np.load(handle, allow_pickle=False) as z:  # closed on any error
            samples = z["samples"]
            ok = samples.ndim == 3 and samples.dtype.kind in "fiu" and min(samples.shape) > 0
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{file} is not a readable samples file ({type(err).__name__}: {err}); remove it or "
                         "write it again with innverse sample") from err
    if not ok:
        raise UsageError(f"{file} is not a samples file: 'samples' must be a non-empty numeric array of shape "
                         f"(n, k, d), got {samples.dtype} {samples.shape}; remove it or write it again")


def run(args: argparse.Namespace, console: Console) -> dict:
    from ...report import build_report

    layout = RunLayout(args.run)
    if not layout.root.is_dir():
        raise UsageError(f"run directory {args.run} does not exist")
    read_json_file(layout.run_json, "run.json")
    read_json_file(layout.diagnostics_json, "diagnostics.json")
    if layout.samples.is_dir():
        for file in sorted(layout.samples.glob("*.npz")):
            _check_samples(file)
    ensure_writable(layout.root, "report.html")
    with console.step("building the report"):
        try:
            path = build_report(args.run)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise JobError(f"the report could not be built from the files in {layout.root} ({type(err).__name__}: "
                           f"{err}); a file of the run may be damaged") from err
    console.result({"report": str(path)}, f"report: {path}")
    return {"report": str(path)}
