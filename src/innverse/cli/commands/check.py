"""``innverse check RUN``: the diagnostics battery on a trained run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ...report.run import RunLayout, atomic_write_text
from ..console import Console
from ..errors import UsageError
from ..problem import problem_from_record
from ..runinfo import read_run, record_step
from .sample import load_model

HELP = "run the diagnostics battery (SBC, coverage, recovery) on a trained run"
DESCRIPTION = """\
Simulate fresh data sets from the run's prior and simulator, sample the posterior for each, and
test calibration (SBC: simulation-based calibration ranks), coverage of credible regions and recovery
of the true parameters. Results with pass/fail verdicts go to RUN/diagnostics/diagnostics.json,
plots next to it. Exit code 0 even when a check fails (the job ran); read the verdicts, or use
--strict to exit 1 on a failed check.

  innverse check runs/mine --simulations 300
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--simulations", type=int, help="simulated data sets (default: the config's, or 200)")
    p.add_argument("--samples", type=int, help="posterior samples per data set (default 500)")
    p.add_argument("--seed", type=int, help="seed of the fresh simulations")
    p.add_argument("--obs", type=Path, help="observations (.npy/.csv) to test for misspecification too")
    p.add_argument("--strict", action="store_true", help="exit 1 if any check fails")


def run(args: argparse.Namespace, console: Console) -> dict:
    from .. import engine
    from ..errors import JobError

    layout = RunLayout(args.run)
    info = read_run(layout)
    problem = problem_from_record(info.get("problem", {}))
    model = load_model(layout)
    settings = info.get("settings", {})
    n = args.simulations or settings.get("diagnostics.simulations", 200)
    m = args.samples or settings.get("diagnostics.samples", 500)
    seed = args.seed if args.seed is not None else settings.get("diagnostics.seed", 1)
    if n < 10 or m < 10:
        raise UsageError(f"--simulations and --samples must be at least 10, got {n} and {m}")
    obs = None
    if args.obs is not None:
        from ..observations import read_observations

        obs = read_observations(args.obs, info.get("x_shape") or engine.x_shape_of(model))
    t = time.perf_counter()
    with console.step(f"diagnostics on {n} simulated data sets x {m} samples"):
        result = engine.diagnose(model, problem, n, m, seed, layout.diagnostics, console, observations=obs)
    atomic_write_text(layout.diagnostics_json, json.dumps(result, indent=2, default=str) + "\n")
    verdicts = {k: v["passed"] for k, v in result.items() if isinstance(v, dict) and "passed" in v}
    record_step(layout, "check", time.perf_counter() - t, simulations=n, samples=m, verdicts=verdicts)
    failed = [k for k, ok in verdicts.items() if ok is False]
    if failed and args.strict:
        raise JobError(f"checks failed: {', '.join(failed)} (details in {layout.diagnostics_json})")
    console.result({"diagnostics": str(layout.diagnostics_json), "verdicts": verdicts},
                   "\n".join(f"  {k:<24} {'PASS' if ok else 'FAIL'}" for k, ok in verdicts.items())
                   + f"\ndiagnostics: {layout.diagnostics_json}")
    return result
