"""``innverse fit CONFIG.toml``: simulate (if needed) and train a posterior estimator."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ...report.run import RunLayout, atomic_write_text
from ..config import EXAMPLE, load_config, schema_help
from ..console import Console
from ..errors import JobError, UsageError
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
  innverse fit config.toml --device cuda                # train on the GPU
  innverse fit config.toml --nproc 2                    # 2 data-parallel training processes

--nproc N runs the command under torchrun: the first process simulates (if needed) and writes the run
directory; all N train, each on its slice of every global batch (gloo on CPU, NCCL on CUDA, one GPU
per process), which gives the weights of one process with the same batch size. The same by hand, on
one machine or several (see torchrun --help for --nnodes and --rdzv-endpoint):

  torchrun --standalone --nproc-per-node 2 -m innverse.cli -- fit config.toml --run runs/mine

(the "--" keeps torchrun from reading --run as an abbreviation of its own --run-path)

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
    p.add_argument("--device", help="where the networks train: cpu (default), cuda, cuda:N "
                                    "(overrides training.device)")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N data-parallel processes on this machine (torchrun)")
    p.add_argument("--example-config", action=_Print, text=EXAMPLE, help="print an example config")
    p.add_argument("--config-keys", action=_Print, text=lambda: schema_help() + "\n",
                   help="list every config key with its type and default")


INTERRUPTED = "rerun with --resume to continue from the last checkpoint (the store keeps finished simulations)"


def _device(args: argparse.Namespace, cfg: dict[str, Any], world: int) -> str:
    """The training device (``--device`` over ``training.device``), checked here; one GPU per process."""
    from ...amortized.posterior import check_device

    name = args.device if args.device is not None else cfg["training"]["device"]
    where = "--device" if args.device is not None else "training.device"
    try:
        device = check_device(name, "innverse fit", where)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    if world > 1 and device.type == "cuda":
        if device.index is not None:
            raise UsageError(f"{where}={name!r} with several processes: each takes its own GPU (cuda:LOCAL_RANK); "
                             "give 'cuda'")
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return str(device)


def _launch(args: argparse.Namespace, console: Console) -> dict:
    """Run this command again under torchrun with ``args.nproc`` processes (on this machine)."""
    from ..limits import MAX_WORKERS, check_range

    check_range("--nproc", args.nproc, 1, MAX_WORKERS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "innverse.cli", "--", "fit", str(args.config)]  # after "--": torchrun would take --run as its own
    for flag, value in (("--run", args.run), ("--device", args.device), ("--threads", args.threads)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += [flag for flag, on in (("--resume", args.resume), ("--quiet", args.quiet), ("--json", args.json)) if on]
    console.note(f"training with {args.nproc} processes: {' '.join(cmd[1:])}")
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise JobError(f"the {args.nproc} training processes failed (torchrun exit code {code}); see the messages "
                       "above. Rerun with --resume to continue from the last checkpoint")
    return {}


def _join_group(device: str) -> tuple[int, int]:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1): ``(rank, world size)``; ``(0, 1)`` alone."""
    import datetime

    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        # the other processes wait while the first one simulates: hours, not the default half hour
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(days=2))
    return dist.get_rank(), dist.get_world_size()


def run(args: argparse.Namespace, console: Console) -> dict:
    if args.nproc != 1 and "WORLD_SIZE" not in os.environ:
        if args.nproc < 1:
            raise UsageError(f"--nproc must be a positive integer, got {args.nproc}")
        return _launch(args, console)
    cfg, text = load_config(args.config)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _device(args, cfg, world)
    rank, world = _join_group(device)
    if rank != 0:  # the first process speaks and writes; the others train
        console.quiet = True
    try:
        result = _fit(args, console, cfg, text, device, (rank, world))
    except BaseException:
        if world > 1:  # fail now: waiting for the others could hang, and torchrun stops them on this exit
            import torch.distributed as dist

            dist.destroy_process_group()
        raise
    if world > 1:
        from ...train import leave_group

        leave_group()   # every process finished: wait for all, then close
    return result


def _fit(args: argparse.Namespace, console: Console, cfg: dict[str, Any], text: str, device: str,
         group: tuple[int, int]) -> dict:
    from ... import save
    from .. import engine
    from ..problem import problem_from_refs, problem_from_task

    rank, world = group
    layout = RunLayout(args.run or Path("runs") / args.config.stem)
    sim = cfg["simulator"]
    problem = (problem_from_task(sim["task"]) if sim["task"] else
               problem_from_refs(sim["function"], sim["prior"], sim["path"], cfg.get("prior"),
                                 sim["parameter_names"], sim["input"]))
    store = Path(cfg["simulations"]["store"]) if cfg["simulations"]["store"] else layout.store
    stats = _prepare(args, console, cfg, text, layout, problem, store) if rank == 0 else {}
    _barrier()  # the store is complete before anyone reads it
    t = time.perf_counter()
    with console.step(f"training the posterior estimator on {device}" + (f" x {world} processes" if world > 1 else "")):
        posterior, fit_stats = engine.train(problem, store, cfg, layout, args.resume, console, device=device)
    if rank != 0:
        return {}
    save(posterior, layout.model)
    record_step(layout, "fit", time.perf_counter() - t, console=console, device=device, processes=world, **fit_stats)
    result = {"run": str(layout.root), "model": str(layout.model), "simulations": stats["simulations"],
              "device": device, "processes": world, **fit_stats}
    console.result(result, f"model: {layout.model}  (run directory {layout.root})")
    return result


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _prepare(args: argparse.Namespace, console: Console, cfg: dict[str, Any], text: str, layout: RunLayout,
             problem: Any, store: Path) -> dict:
    """Check the run directory, record the run, and simulate (or continue filling) the store."""
    from .. import engine

    started = layout.model.exists() or (layout.checkpoints.is_dir() and any(layout.checkpoints.iterdir()))
    if started and not args.resume:
        raise UsageError(f"run directory {layout.root} already holds a run; pass --resume to continue it "
                         "or --run DIR to start a new one")
    if args.resume and layout.config.is_file() and layout.config.read_bytes() != text.encode("utf-8"):
        raise UsageError(f"{args.config} differs from the config the run in {layout.root} started with "
                         f"({layout.config}); resume with that config or start a new run with --run DIR")
    if args.resume and layout.run_json.is_file():
        read_run(layout)  # a damaged run.json is reported, not overwritten
    ensure_writable(layout.root, "the run directory")
    if not args.resume or not layout.run_json.is_file():
        new_run(layout, problem, cfg, command="fit")
    atomic_write_text(layout.config, text)
    sims = cfg["simulations"]
    t = time.perf_counter()
    with console.step(f"simulating up to {sims['count']} x {problem.name}"):
        stats = engine.simulate(problem, store, sims["count"], sims["batch_size"], sims["workers"],
                                sims["seed"], console)
    record_step(layout, "simulate", time.perf_counter() - t, console=console, store=str(store), **stats)
    return stats
