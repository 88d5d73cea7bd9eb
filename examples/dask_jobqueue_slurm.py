"""Simulations on a SLURM cluster with Dask: dask-jobqueue submits the workers as batch jobs.

This is a configuration to adapt, not something the tests run (it needs a SLURM cluster and
``pip install 'innverse[dask]' dask-jobqueue``). Run it on the login node (or in a small job); the
scheduler runs in this process, the workers run as SLURM jobs and connect back to it.

What to adapt: the queue (``queue``), the account, cores / memory / walltime per job, and the job
count (``cluster.scale(jobs=...)``). One Dask worker per job with one thread suits simulators that
use one core; a simulator that is itself multi-threaded wants ``processes=1`` and ``cores=k``.

The simulator must be importable on the workers: put ``mysim.py`` in a folder they can read and on
their ``PYTHONPATH`` (``job_script_prologue`` below), or install it as a package in the environment the
workers start with (``python=`` below).

The store is written by this process only, batch by batch, in order; if this process dies (the
login node reboots, the job is cancelled), rerun the script: ``simulate`` continues where the store
stopped, with the same per-batch seeds, so the result does not depend on how often it was
interrupted nor on how many workers joined. A worker whose job ends (walltime) or dies is replaced
by Dask (``cluster.adapt``), and its batch runs again elsewhere.

The same from the command line, with a scheduler started by hand or by dask-jobqueue:

    innverse simulate --simulator mysim:simulate --prior mysim:prior -n 1000000 --out sims.h5 \\
        --dask tcp://LOGIN-NODE:8786
"""

from __future__ import annotations

import torch


def main() -> None:
    from dask_jobqueue import SLURMCluster

    from innverse.amortized import SimulationStore, box_uniform, simulate
    from innverse.amortized.dask_executor import DaskCluster

    cluster = SLURMCluster(
        queue="compute",                         # your partition
        account="my-project",                    # your account (or remove)
        cores=8, processes=8,                    # one SLURM job = 8 single-threaded workers
        memory="16GB", walltime="02:00:00",
        python="/path/to/venv/bin/python",       # the environment with innverse and your simulator
        job_script_prologue=["export PYTHONPATH=/path/to/my/simulator:$PYTHONPATH",
                             "export OMP_NUM_THREADS=1"],
        scheduler_options={"dashboard_address": ":8787"},
    )
    cluster.adapt(minimum_jobs=1, maximum_jobs=20)   # or cluster.scale(jobs=20)
    print("dashboard:", cluster.dashboard_link)

    import mysim  # your module: simulate(theta (n, d), generator=...) -> x (n, ...)

    prior = box_uniform(torch.zeros(3), torch.ones(3))
    path = "sims.h5"
    try:
        store = SimulationStore(path, "a")
    except FileNotFoundError:
        store = SimulationStore.create(path, theta_dim=3, x_shape=(10,), chunk_rows=4096)
    with store:
        sims = simulate(mysim.simulate, prior=prior, n=1_000_000, batch_size=1000, seed=0, store=store,
                        workers=DaskCluster(cluster.scheduler_address, timeout=120))
    print(sims.report)
    cluster.close()


if __name__ == "__main__":
    main()
