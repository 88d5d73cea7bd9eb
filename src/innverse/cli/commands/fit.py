"""``innverse fit CONFIG.toml``: simulate (if needed) and train a posterior estimator."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ...report.run import RunLayout, atomic_write_text
from ..config import EXAMPLE, load_config, schema_help
from ..console import Console
from ..errors import UsageError
from ..runinfo import ensure_writable, new_run, read_run, record_step

HELP = "train a posterior estimator from a TOML config (resumable with --resume)"
DESCRIPTION = """\
Train an amortized posterior estimator (summary network + conditional INN) from a config file that
names the simulator (a built-in task or module:function + prior), the simulation budget or store,
the networks and the training options. The run directory (default runs/<config name>) receives a
copy of the config, the simulations, checkpoints, the training log and model.safetensors.

  innverse fit --example-config > config.toml
  innverse fit config.toml --run runs/mine
  innverse fit config.toml --run runs/mine --resume     # after an interruption

Every key and its type: innverse fit --config-keys
"""


class _Print(argparse.Action):
    def __init__(self, option_strings, dest, text, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)
        self.text = text

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(self.text() if callable(self.text) else self.text, end="")
        parser.exit(0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="TOML config file")
    p.add_argument("--run", type=Path, help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--example-config", action=_Print, text=EXAMPLE, help="print an example config")
    p.add_argument("--config-keys", action=_Print, text=lambda: schema_help() + "\n",
                   help="list every config key with its type and default")


INTERRUPTED = "rerun with --resume to continue from the last checkpoint (the store keeps finished simulations)"


def run(args: argparse.Namespace, console: Console) -> dict:
    from ... import save
    from .. import engine
    from ..problem import problem_from_refs, problem_from_task

    cfg, text = load_config(args.config)
    layout = RunLayout(args.run or Path("runs") / args.config.stem)
    started = layout.model.exists() or (layout.checkpoints.is_dir() and any(layout.checkpoints.iterdir()))
    if started and not args.resume:
        raise UsageError(f"run directory {layout.root} already holds a run; pass --resume to continue it "
                         "or --run DIR to start a new one")
    if args.resume and layout.config.is_file() and layout.config.read_bytes() != text.encode("utf-8"):
        raise UsageError(f"{args.config} differs from the config the run in {layout.root} started with "
                         f"({layout.config}); resume with that config or start a new run with --run DIR")
    if args.resume and layout.run_json.is_file():
        read_run(layout)  # a damaged run.json is reported, not overwritten
    sim = cfg["simulator"]
    problem = (problem_from_task(sim["task"]) if sim["task"] else
               problem_from_refs(sim["function"], sim["prior"], sim["path"], cfg.get("prior"),
                                 sim["parameter_names"], sim["input"]))
    ensure_writable(layout.root, "the run directory")
    if not args.resume or not layout.run_json.is_file():
        new_run(layout, problem, cfg, command="fit")
    atomic_write_text(layout.config, text)
    store = Path(cfg["simulations"]["store"]) if cfg["simulations"]["store"] else layout.store
    sims = cfg["simulations"]
    t = time.perf_counter()
    with console.step(f"simulating up to {sims['count']} x {problem.name}"):
        stats = engine.simulate(problem, store, sims["count"], sims["batch_size"], sims["workers"],
                                sims["seed"], console)
    record_step(layout, "simulate", time.perf_counter() - t, console=console, store=str(store), **stats)
    t = time.perf_counter()
    with console.step("training the posterior estimator"):
        posterior, fit_stats = engine.train(problem, store, cfg, layout, args.resume, console)
    save(posterior, layout.model)
    record_step(layout, "fit", time.perf_counter() - t, console=console, **fit_stats)
    result = {"run": str(layout.root), "model": str(layout.model), "simulations": stats["simulations"],
              **fit_stats}
    console.result(result, f"model: {layout.model}  (run directory {layout.root})")
    return result
