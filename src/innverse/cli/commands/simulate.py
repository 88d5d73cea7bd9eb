"""``innverse simulate``: fill a simulation store from a built-in task or your simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..console import Console
from ..errors import UsageError
from ..limits import MAX_BATCH, MAX_SEED, MAX_SIMULATIONS, MAX_WORKERS, check_range
from ..problem import problem_from_refs, problem_from_task

HELP = "fill a simulation store (HDF5) from a built-in task or a module:function simulator"
DESCRIPTION = """\
Run a simulator on parameters drawn from its prior and append the results to an HDF5 store, in
parallel (--workers) and resumably: rerunning the same command after an interruption continues
where the store stopped (at most the batches in flight are lost; there is no --resume flag, the
store itself remembers). Failed simulations (exceptions, NaN/Inf output, values beyond the
float32 range of the store, crashes of a worker process) are counted, reported and dropped. The
store records its simulator; continuing it with another one is refused. One process writes a
store at a time: a second one is told which process holds it.

  innverse simulate --task two_moons -n 10000 --out sims.h5 --workers 2
  innverse simulate --simulator mysim:simulate --prior mysim:prior -n 5000 --out sims.h5
  innverse simulate --task two_moons -n 100000 --out sims.h5 --dask                      # local Dask cluster
  innverse simulate --task two_moons -n 100000 --out sims.h5 --dask tcp://10.0.0.5:8786  # a running one

With --dask the batches run on Dask (pip install 'innverse[dask]'): without an address on a local
cluster of --workers processes (on 127.0.0.1), with one on the scheduler there (started by `dask
scheduler`, dask-jobqueue on SLURM/PBS, Kubernetes, ...; the workers must be able to import your
simulator). The store, its seeds and its resumption are the same as with --workers: the data do not
depend on the executor or the number of workers. The Dask dashboard's address is printed.

Your simulator takes a batch of parameters (n, d) (numpy array or torch tensor) and returns a
batch of data (n, ...); your prior is a torch.distributions.Distribution over (d,) vectors (or a
function returning one). mysim.py is imported from the current folder (or --path).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="a built-in task, e.g. two_moons")
    src.add_argument("--simulator", metavar="MODULE:FUNCTION", help="your simulator")
    p.add_argument("--prior", metavar="MODULE:ATTRIBUTE", help="your prior (with --simulator)")
    p.add_argument("--path", default=".", help="folder to import your module from (default: .)")
    p.add_argument("--input", choices=("torch", "numpy"), default="torch",
                   help="what your simulator receives: a torch tensor (default) or a numpy array")
    p.add_argument("-n", "--simulations", type=int, required=True, help="number of simulations")
    p.add_argument("--out", required=True, type=Path, help="the HDF5 store to create or continue")
    p.add_argument("--workers", type=int, default=1,
                   help="simulation processes (default 1); with --dask, the workers of the local cluster")
    p.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the batches on Dask: a local cluster (no ADDRESS) or the scheduler at ADDRESS "
                        "(tcp://host:8786)")
    p.add_argument("--dask-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="seconds to wait for the Dask scheduler to answer (default 10)")
    p.add_argument("--batch-size", type=int, default=500, help="simulations per batch (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed; batch i uses a seed derived from it")


INTERRUPTED = ("the store keeps every finished batch: rerun the same command to continue where it stopped "
               "(simulate has no --resume; the store remembers)")


def run(args: argparse.Namespace, console: Console) -> dict:
    from .. import engine

    if args.simulations < 1 or args.workers < 1 or args.batch_size < 1:
        raise UsageError("--simulations, --workers and --batch-size must be positive integers")
    check_range("--simulations", args.simulations, 1, MAX_SIMULATIONS)
    check_range("--workers", args.workers, 1, MAX_WORKERS)
    check_range("--batch-size", args.batch_size, 1, MAX_BATCH)
    check_range("--seed", args.seed, 0, MAX_SEED)
    if args.task is not None:
        if args.prior:
            raise UsageError("--prior is only for --simulator; a built-in task has its own prior")
        problem = problem_from_task(args.task)
    else:
        if not args.prior:
            raise UsageError("--simulator needs --prior MODULE:ATTRIBUTE (a torch Distribution)")
        problem = problem_from_refs(args.simulator, args.prior, args.path, theta_format=args.input)
    with console.step(f"simulating {args.simulations} x {problem.name} into {args.out}"):
        stats = engine.simulate(problem, args.out, args.simulations, args.batch_size, args.workers,
                                args.seed, console, dask=args.dask, dask_timeout=args.dask_timeout)
    console.result({"store": str(args.out), **stats},
                   f"{stats['simulations']} simulations in {args.out} ({stats['failed']} failed and dropped)")
    return stats
