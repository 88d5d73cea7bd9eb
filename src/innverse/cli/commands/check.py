"""``innverse check RUN``: the diagnostics battery on a trained run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ...report.run import RunLayout, atomic_write_text
from ..console import Console
from ..errors import UsageError
from ..limits import MAX_DRAWS, MAX_SAMPLES, MAX_SEED, check_range
from ..problem import Problem, problem_from_record, problem_from_refs, runs_user_code
from ..runinfo import ensure_writable, read_run, record_step
from .sample import load_model

HELP = "run the diagnostics battery (SBC, coverage, recovery, learning) on a trained run"
DESCRIPTION = """\
Simulate fresh data sets from the run's prior and simulator, sample the posterior for each, and
test calibration (SBC: simulation-based calibration ranks), coverage of credible regions, recovery
of the true parameters, and whether the posterior learned what the data say (a posterior equal to
the prior is calibrated, and fails this check). Results with pass/fail verdicts go to RUN/diagnostics/diagnostics.json,
plots next to it. Exit code 0 even when a check fails (the job ran); read the verdicts, or use
--strict to exit 1 on a failed check.

Simulating needs the run's simulator. For a built-in task that is innverse's own code; for your
simulator, RUN/run.json names a Python module (module:function and its folder), and importing it
runs its code. check does that only when told to: pass --trust-run-code for a run you made or
trust, or give the simulator yourself with --simulator (and --prior); a run directory received
from someone else can carry any code.

  innverse check runs/mine --simulations 300
  innverse check runs/mine --trust-run-code
  innverse check received_run --simulator mysim:simulate --prior mysim:prior
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--simulations", type=int, help="simulated data sets (default: the config's, or 200)")
    p.add_argument("--samples", type=int, help="posterior samples per data set (default 500)")
    p.add_argument("--seed", type=int, help="seed of the fresh simulations")
    p.add_argument("--obs", type=Path, help="observations (.npy/.csv) to test for misspecification too")
    p.add_argument("--strict", action="store_true", help="exit 1 if any check fails")
    trust = p.add_argument_group("the simulator (a run's own Python code runs only with --trust-run-code)")
    trust.add_argument("--trust-run-code", action="store_true",
                       help="import the simulator and prior named in RUN/run.json (runs that code)")
    trust.add_argument("--simulator", metavar="MODULE:FUNCTION", help="simulate with this simulator instead")
    trust.add_argument("--prior", metavar="MODULE:ATTRIBUTE",
                       help="with --simulator: the prior (default: the run's, if it is a [prior] table)")
    trust.add_argument("--path", default=".", help="folder to import --simulator's module from (default: .)")
    trust.add_argument("--input", choices=("torch", "numpy"), default=None,
                       help="what --simulator receives (default: what the run recorded, else torch)")


def _problem(args: argparse.Namespace, info: dict[str, Any], layout: RunLayout) -> Problem:
    """The problem to simulate: from the command line, a built-in task, or (trusted) the run's code."""
    record = info.get("problem")
    if args.simulator:
        table = record.get("prior_config") if isinstance(record, dict) else None
        if args.prior is None and not isinstance(table, dict):
            raise UsageError("--simulator needs --prior MODULE:ATTRIBUTE: the run's prior is not a [prior] table "
                             "that can be read without running code")
        names = info.get("parameter_names")
        names = names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None
        fmt = args.input or (record.get("input") if isinstance(record, dict) else None) or "torch"
        return problem_from_refs(args.simulator, args.prior, str(Path(args.path).resolve()),
                                 None if args.prior else table, names, fmt if fmt in ("torch", "numpy") else "torch")
    if args.prior is not None:
        raise UsageError("--prior is only for --simulator")
    if runs_user_code(record) and not args.trust_run_code:
        raise UsageError(
            f"{layout.run_json} names the simulator {record.get('function')!r} in {record.get('path')!r}; "
            "checking the run imports and runs that Python code. Pass --trust-run-code if you trust where "
            "the run came from, or give the simulator yourself: --simulator MODULE:FUNCTION --prior "
            "MODULE:ATTRIBUTE")
    return problem_from_record(record, layout.root)


def _budget(args: argparse.Namespace, settings: Any) -> tuple[int, int, int]:
    """Data sets, samples per data set and seed: the command line's, else the run's config, else defaults."""
    settings = settings if isinstance(settings, dict) else {}
    n = args.simulations if args.simulations is not None else settings.get("diagnostics.simulations", 200)
    m = args.samples if args.samples is not None else settings.get("diagnostics.samples", 500)
    seed = args.seed if args.seed is not None else settings.get("diagnostics.seed", 1)
    if isinstance(n, int) and isinstance(m, int) and not isinstance(n, bool) and (n < 10 or m < 10):
        raise UsageError(f"--simulations and --samples must be at least 10, got {n} and {m}")
    check_range("--simulations", n, 10, MAX_SAMPLES)
    check_range("--samples", m, 10, MAX_SAMPLES)
    check_range("--seed", seed, 0, MAX_SEED)
    if n * m > MAX_DRAWS:
        raise UsageError(f"--simulations x --samples = {n} x {m} posterior draws exceed the limit {MAX_DRAWS:,}")
    return n, m, seed


def run(args: argparse.Namespace, console: Console) -> dict:
    from .. import engine
    from ..errors import JobError

    layout = RunLayout(args.run)
    info = read_run(layout)
    n, m, seed = _budget(args, info.get("settings"))
    problem = _problem(args, info, layout)
    model = load_model(layout)
    obs = None
    if args.obs is not None:
        from ..observations import read_observations

        obs = read_observations(args.obs, engine.x_shape_of(model))
    ensure_writable(layout.diagnostics, "the diagnostics")
    t = time.perf_counter()
    with console.step(f"diagnostics on {n} simulated data sets x {m} samples"):
        result = engine.diagnose(model, problem, n, m, seed, layout.diagnostics, console, observations=obs)
    atomic_write_text(layout.diagnostics_json, json.dumps(result, indent=2, default=str) + "\n")
    verdicts = {k: v["passed"] for k, v in result.items() if isinstance(v, dict) and "passed" in v}
    record_step(layout, "check", time.perf_counter() - t, console=console, simulations=n, samples=m,
                verdicts=verdicts)
    failed = [k for k, ok in verdicts.items() if ok is False]
    if failed and args.strict:
        raise JobError(f"checks failed: {', '.join(failed)} (details in {layout.diagnostics_json})")
    console.result({"diagnostics": str(layout.diagnostics_json), "verdicts": verdicts},
                   "\n".join(f"  {k:<24} {'PASS' if ok else 'FAIL'}" for k, ok in verdicts.items())
                   + f"\ndiagnostics: {layout.diagnostics_json}")
    return result
