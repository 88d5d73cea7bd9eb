"""``innverse report RUN``: (re)build RUN/report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..console import Console
from ..errors import UsageError

HELP = "(re)build the self-contained HTML report of a run"
DESCRIPTION = """\
Build RUN/report.html from the files in the run directory: pass/fail summary, posterior pair plots
per observation, training curves, SBC / coverage / recovery plots, misspecification flags and the
run's settings. The page embeds its figures, so it opens offline and can be mailed as one file.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")


def run(args: argparse.Namespace, console: Console) -> dict:
    from ...report import build_report

    if not args.run.is_dir():
        raise UsageError(f"run directory {args.run} does not exist")
    with console.step("building the report"):
        path = build_report(args.run)
    console.result({"report": str(path)}, f"report: {path}")
    return {"report": str(path)}
