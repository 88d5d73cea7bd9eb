"""``innverse demo``: the whole pipeline on a built-in task, ending in an HTML report."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ...report.run import RunLayout, atomic_write_text, read_json
from ..config import parse_config
from ..console import Console
from ..errors import UsageError
from ..limits import MAX_EPOCHS, MAX_SEED, MAX_SIMULATIONS, MAX_WORKERS, check_range
from ..problem import problem_from_task, task_names
from ..runinfo import new_run, record_step
from ..tomlwrite import to_toml

HELP = "simulate, train, sample, check and report on a built-in task (start here)"
DESCRIPTION = """\
Run the whole innverse pipeline on a built-in benchmark task and write a run directory with a
self-contained HTML report: simulate from the task's prior and simulator, train an amortized
posterior (spline coupling INN), sample the posterior for the task's reference observations
(compared with the exact reference posterior), run the diagnostics battery (SBC, coverage,
recovery), and build report.html. About 3 minutes on 2 CPU cores; --fast does the same with a
smaller budget in under a minute.

  innverse demo                        # two moons: a bimodal, crescent-shaped posterior
  innverse demo --task gaussian_linear --out runs/gl
  innverse demo --fast
"""

#: (simulations, max epochs, diagnostics data sets, diagnostics samples, observations, reference draws)
BUDGETS = {"full": (10_000, 300, 200, 500, 3, 4000), "fast": (3_000, 30, 100, 200, 2, 2000)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="two_moons", help="built-in task (default two_moons)")
    p.add_argument("--fast", action="store_true", help="reduced budget, under a minute")
    p.add_argument("--out", type=Path, help="run directory (default runs/demo-<task>)")
    p.add_argument("--simulations", type=int, help="override the simulation budget")
    p.add_argument("--epochs", type=int, help="override the maximum number of epochs")
    p.add_argument("--workers", type=int, default=1, help="simulation processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of simulations and training")
    p.add_argument("--list-tasks", action="store_true", help="list the built-in tasks and exit")


def demo_config(task: str, fast: bool, simulations: int | None, epochs: int | None, workers: int,
                seed: int) -> dict:
    sims, max_epochs, n_diag, m_diag, _, _ = BUDGETS["fast" if fast else "full"]
    return {
        "simulator": {"task": task},
        "simulations": {"count": simulations or sims, "workers": workers, "seed": seed},
        "summary": {"network": "auto"},
        "flow": {"coupling": "spline"},
        "training": {"epochs": epochs or max_epochs, "seed": seed},
        "diagnostics": {"simulations": n_diag, "samples": m_diag, "seed": seed + 1},
    }


def _prepare(layout: RunLayout) -> None:
    """A demo starts afresh; it only ever clears a previous demo run, never other folders."""
    if not layout.root.exists():
        return
    if not layout.root.is_dir():
        raise UsageError(f"{layout.root} exists and is not a folder; choose --out DIR")
    try:
        previous = read_json(layout.run_json)
    except (OSError, ValueError):
        previous = {}
    if isinstance(previous, dict) and previous.get("command") == "demo":
        try:
            shutil.rmtree(layout.root)
        except OSError as err:
            raise UsageError(f"cannot clear the previous demo run in {layout.root}: {err}") from err
    elif any(layout.root.iterdir()):
        raise UsageError(f"{layout.root} exists and is not a previous demo run; choose --out DIR")


INTERRUPTED = "rerun innverse demo to start it again (a demo always starts afresh)"


def _check_arguments(args: argparse.Namespace) -> None:
    if args.simulations is not None:
        check_range("--simulations", args.simulations, 10, MAX_SIMULATIONS)
    if args.epochs is not None:
        check_range("--epochs", args.epochs, 1, MAX_EPOCHS)
    check_range("--workers", args.workers, 1, MAX_WORKERS)
    check_range("--seed", args.seed, 0, MAX_SEED - 1)


def run(args: argparse.Namespace, console: Console) -> dict:
    from ... import save
    from .. import engine

    _check_arguments(args)
    if args.list_tasks:
        console.result({"tasks": task_names()}, "\n".join(task_names()))
        return {}
    problem = problem_from_task(args.task)
    layout = RunLayout(args.out or Path("runs") / f"demo-{problem.name}")
    budget = BUDGETS["fast" if args.fast else "full"]
    raw = demo_config(problem.name, args.fast, args.simulations, args.epochs, args.workers, args.seed)
    cfg = parse_config(raw, "demo config", Path.cwd())
    _prepare(layout)
    t0 = time.perf_counter()
    new_run(layout, problem, cfg, command="demo")
    atomic_write_text(layout.config, to_toml(raw, f"innverse demo --task {problem.name}"
                                             + (" --fast" if args.fast else "")
                                             + "\nRerun the training with: innverse fit config.toml"))
    sims = cfg["simulations"]
    t = time.perf_counter()
    with console.step(f"[1/5] simulating {sims['count']} x {problem.name}"):
        stats = engine.simulate(problem, layout.store, sims["count"], sims["batch_size"], sims["workers"],
                                sims["seed"], console)
    record_step(layout, "simulate", time.perf_counter() - t, store=str(layout.store), **stats)
    t = time.perf_counter()
    with console.step("[2/5] training the posterior estimator"):
        posterior, fit_stats = engine.train(problem, layout.store, cfg, layout, False, console)
    save(posterior, layout.model)
    record_step(layout, "fit", time.perf_counter() - t, **fit_stats)
    t = time.perf_counter()
    n_obs, n_ref = budget[4], budget[5]
    with console.step(f"[3/5] sampling the posterior of {n_obs} reference observations"):
        obs, refs = engine.sample_task_observations(posterior, problem.task, n_obs, n_ref,
                                                    layout.samples / "task_observations.npz", args.seed)
        flags = engine.misspecification(posterior, obs)
    record_step(layout, "sample", time.perf_counter() - t, observations=len(obs), samples=n_ref,
                misspecification=flags)
    t = time.perf_counter()
    diag = cfg["diagnostics"]
    with console.step(f"[4/5] diagnostics on {diag['simulations']} simulated data sets"):
        result = engine.diagnose(posterior, problem, diag["simulations"], diag["samples"], diag["seed"],
                                 layout.diagnostics, console, observations=obs, reference_samples=refs)
        atomic_write_text(layout.diagnostics_json, json.dumps(result, indent=2) + "\n")
    verdicts = {k: v["passed"] for k, v in result.items() if isinstance(v, dict) and "passed" in v}
    record_step(layout, "check", time.perf_counter() - t, verdicts=verdicts)
    with console.step("[5/5] writing the report"):
        from ...report import build_report

        path = build_report(layout.root)
    seconds = time.perf_counter() - t0
    result = {"run": str(layout.root), "report": str(path.resolve()), "seconds": round(seconds, 1),
              "verdicts": verdicts}
    console.result(result, f"innverse demo finished in {seconds:.0f}s; open the report:\n  {path.resolve()}")
    return result
