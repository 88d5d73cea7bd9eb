"""
Scale-out: simulations on Dask, training on several processes
=============================================================

Amortized inference spends its time in two places: running the simulator, and training the
networks. Both scale out without changing the result.

*Simulations* are cut into batches; batch :math:`i` runs with its own seed
:math:`s_i = \\mathrm{batch\\_seed}(s, i)` derived from the master seed :math:`s`, so the data depend
on the seed and the batch size only, not on where or in which order the batches ran: in this
process, on a process pool, or on a Dask cluster (an embedded one on this machine, or any scheduler
address: SLURM / PBS through dask-jobqueue, Kubernetes).

*Training* with :math:`R` data-parallel processes splits every global batch of :math:`n` rows into
slices of :math:`n_r` rows; each process computes the gradient :math:`g_r` of the loss on its slice,
and all take the step of the global batch,

.. math::

    g = \\sum_{r=1}^{R} \\frac{n_r}{n}\\, g_r
      = \\nabla_\\phi \\frac1n \\sum_{i=1}^{n} \\ell(\\phi; \\theta_i, x_i),

so :math:`R` processes give the weights of one process with the same global batch (up to the
order of floating-point sums). On a single accelerator, mixed precision and ``torch.compile`` are
the other two levers.
"""

# %%
# Setup. ``FAST`` is the reduced budget the documentation build uses in CI.
#
# Worker processes (the process pool, the Dask workers) are started by *spawn*: each one imports
# the main script again before it runs anything. A script of your own must therefore keep the work
# under ``if __name__ == "__main__":`` and define its simulator at module level (or import it from
# a module), as this page does; only the definitions above the first guard run in the workers.
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from distributed import LocalCluster
from safetensors.torch import load_file

from innverse.amortized import DaskCluster, ProcessPool, SimulationStore, box_uniform, fit_posterior, simulate
from innverse.tasks import get_task
from innverse.train import TrainConfig

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
N_SIMS, N_TIMED, EPOCHS = (4000, 800, 4) if FAST else (20000, 4000, 20)
SEED, BATCH = 7, 250
task = get_task("two_moons")                 # a built-in simulator: task(theta, generator) -> x
DT, STEPS, SAVE_EVERY = 0.002, 2000, 250


def pendulum(theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A damped pendulum integrated row by row in plain Python: the cost is per simulation, as with
    simulators that wrap an external solver. ``theta = (log length, damping)``; ``x`` is the angle at
    8 times, with noise of 0.05 rad."""
    noise = 0.05 * torch.randn(theta.shape[0], STEPS // SAVE_EVERY, generator=generator)
    rows = []
    for log_length, damping in theta.tolist():
        omega2, angle, velocity, row = 9.81 / math.exp(log_length), 1.0, 0.0, []
        for step in range(STEPS):
            velocity += DT * (-omega2 * math.sin(angle) - damping * velocity)
            angle += DT * velocity
            if step % SAVE_EVERY == SAVE_EVERY - 1:
                row.append(angle)
        rows.append(row)
    return torch.tensor(rows) + noise


pendulum_prior = box_uniform(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 1.0]))

# %%
# Simulations on a local Dask cluster
# -----------------------------------
# ``DaskCluster(workers=2)`` starts a ``LocalCluster`` of two worker processes on the loopback
# interface for the duration of the call, and closes it when ``simulate`` returns. The batches
# stream into a :class:`~innverse.amortized.SimulationStore` as they finish (in batch order, so an
# interrupted run resumes where it stopped). ``DaskCluster("tcp://host:8786")`` would use a
# running scheduler instead (``examples/dask_jobqueue_slurm.py`` starts one on SLURM).
if __name__ == "__main__":
    folder = Path(tempfile.mkdtemp(prefix="innverse-scale-out-"))
    with SimulationStore.create(folder / "two_moons.h5", task.theta_dim, task.x_shape) as store:
        on_dask = simulate(task, prior=task.prior, n=N_SIMS, batch_size=BATCH, seed=SEED,
                           workers=DaskCluster(workers=2), store=store, progress=False)
    served = "served while the run lasted" if find_spec("bokeh") else "served only when bokeh is installed"
    print(on_dask.report)
    print(f"{on_dask.report.workers} Dask workers, {on_dask.report.batches} batches; "
          f"dashboard {on_dask.report.dashboard} ({served})")

# %%
# The same simulations in this process and on a pool of two processes, with the same seed and
# batch size: the store holds exactly the same numbers. A different batch size gives other
# (equally valid) draws, because the seeds belong to the batches.
if __name__ == "__main__":
    with SimulationStore(folder / "two_moons.h5") as store:
        theta, x = store.read()
        print(f"store: {len(store)} rows, progress {store.progress}")
    here = simulate(task, prior=task.prior, n=N_SIMS, batch_size=BATCH, seed=SEED, progress=False)
    pool = simulate(task, prior=task.prior, n=N_SIMS, batch_size=BATCH, seed=SEED, workers=ProcessPool(2),
                    progress=False)
    other = simulate(task, prior=task.prior, n=N_SIMS, batch_size=BATCH // 2, seed=SEED, progress=False)
    for name, run in (("in this process", here), ("process pool x2", pool), (f"batch size {BATCH // 2}", other)):
        print(f"Dask store == {name:<16}: theta {torch.equal(theta, run.theta)}, x {torch.equal(x, run.x)}")

# %%
# Throughput against batch size
# -----------------------------
# Every batch sent to a worker costs a round trip through the scheduler (milliseconds) on top of
# the simulations, so small batches waste a cluster. The measurement below runs the pendulum, a
# function of this script: Dask sends it to the workers by value (cloudpickle), so it needs no
# module of its own there. The cluster is started once and reached by its address, as a remote
# one would be; ``report.seconds`` counts the simulations, not the connection.
if __name__ == "__main__":
    sizes = [10, 40, 160] if FAST else [5, 10, 20, 40, 80, 160, 320]
    rates: dict[str, list[float]] = {"in this process": [], "Dask, 2 workers": []}
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        remote = DaskCluster(cluster.scheduler_address)
        simulate(pendulum, prior=pendulum_prior, n=40, batch_size=20, workers=remote, progress=False)  # warm-up
        for size in sizes:
            for name, workers in zip(rates, (0, remote)):
                run = simulate(pendulum, prior=pendulum_prior, n=N_TIMED, batch_size=size, seed=1, workers=workers,
                               progress=False)
                rates[name].append(run.report.succeeded / run.report.seconds)
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for k, size in enumerate(sizes):
        print(f"batch {size:>4}: " + ", ".join(f"{name} {r[k]:7.0f} sim/s" for name, r in rates.items()))

    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for name, r in rates.items():
        ax.plot(sizes, r, "o-", label=name)
    ax.set(xscale="log", xlabel="batch size (simulations per task)", ylabel="simulations / s",
           title=f"pendulum, {N_TIMED} simulations")
    ax.set_ylim(bottom=0)
    ax.legend()
    plt.show()

# %%
# Two workers can at most double the rate of one process, and only with two free cores: this page
# is built on a small shared machine, so read the figure for its shape (the per-batch overhead
# at small batches) rather than for the speed-up. ``benchmarks/scale.py`` measures the executors
# properly (start-up, cost per batch, cost per simulation); its results are in
# ``benchmarks/results/scale_*``.
#
# Training on several processes
# -----------------------------
# The command line trains a posterior estimator from a config file; ``--nproc N`` runs the same
# command under ``torchrun`` with N processes on this machine (gloo on CPU, NCCL with one GPU per
# process on CUDA). The first process simulates and writes the run folder; all of them train.
#
# .. code-block:: bash
#
#     innverse fit config.toml --run runs/mine --nproc 2
#     # the same by hand, on one machine or several (torchrun --nnodes, --rdzv-endpoint):
#     torchrun --standalone --nproc-per-node 2 -m innverse.cli -- fit config.toml --run runs/mine
#
# From Python, any script that trains through :func:`innverse.train.train` (the loop of every model
# in the package; ``innverse fit`` runs ``fit_posterior`` this way) trains data-parallel when it runs
# inside a process group: start it with ``torchrun`` and join the group first. Only the first
# process writes checkpoints and logs. Leave the group with :func:`innverse.train.leave_group`:
# ``destroy_process_group`` alone lets a process that finishes first reset the connections while
# another still reads its last message, and gloo aborts that one.
#
# .. code-block:: python
#
#     import torch.distributed as dist
#     from innverse.train import TrainConfig, leave_group, train
#     dist.init_process_group("gloo")          # "nccl" on GPUs; torchrun sets RANK and WORLD_SIZE
#     history = train(model, loss, batches, config=TrainConfig(epochs=50, batch_size=512))
#     leave_group()                            # wait for every process, then dist.destroy_process_group()
#
# Here the same small config is trained by one process and by two (``--nproc 2``).
CONFIG = f"""
[simulator]
task = "two_moons"

[simulations]
count = {N_SIMS}
batch_size = {BATCH}
seed = {SEED}

[flow]
coupling = "affine"
blocks = 3
hidden = [32]

[training]
epochs = {EPOCHS}
batch_size = 128
learning_rate = 1e-3
seed = 1
"""
if __name__ == "__main__":
    (folder / "config.toml").write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results, weights = {}, {}
    for nproc in (1, 2):
        run_dir = folder / f"fit_{nproc}"
        command = [sys.executable, "-m", "innverse.cli", "fit", str(folder / "config.toml"), "--run", str(run_dir),
                   "--nproc", str(nproc), "--json", "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"innverse fit --nproc {nproc} failed:\n{done.stderr[-3000:]}")
        results[nproc] = json.loads(done.stdout.strip().splitlines()[-1])
        weights[nproc] = load_file(run_dir / "model.safetensors")
        print(f"{nproc} process(es): {results[nproc]['epochs']} epochs, best validation loss "
              f"{results[nproc]['best_val_loss']:.5f}, training {results[nproc]['training_seconds']:.1f} s, "
              f"command {time.perf_counter() - start:.1f} s")
    gap = max((weights[2][k].double() - weights[1][k].double()).abs().max().item() for k in weights[1])
    print(f"largest difference between the weights of 1 and 2 processes: {gap:.2e} ({len(weights[1])} tensors)")

# %%
# The same model: two processes sum the gradients in another order than one, so the weights agree
# to float32 rounding after a few epochs (the reduced budget of this page), and over a long run
# these rounding differences grow, as between two machines, while the losses stay alike. For a
# network this small, two processes are not faster: every step exchanges the gradients between
# the processes, and the start of ``torchrun`` and of a second Python dominate. Data parallelism pays when a step is expensive (large models, large batches, one GPU
# per process). The measured run of ``benchmarks/scale.py`` on 2 shared CPU cores
# (``benchmarks/results/scale_2026-12-05_2cpu-x86_64-linux.md``) trained 63.1 steps/s with one
# process and 52.3 with two, to the same final loss.
#
# Mixed precision and ``torch.compile``
# -------------------------------------
# ``TrainConfig(precision="bfloat16")`` runs the loss under ``torch.autocast``: the matrix
# products and convolutions of the subnetworks compute in bfloat16, while the log-determinants,
# the loss, the weights, the gradients and the optimiser state stay in float32;
# ``precision="float16"`` adds dynamic loss scaling (for GPUs without bfloat16).
# ``TrainConfig(compile=True)`` runs the loss function through ``torch.compile``; the first steps
# compile (30-50 s below), so it pays only on long runs. The figures below are quoted from
# ``benchmarks/results/precision_compile_cpu_2026-12-05_2cpu-x86_64-linux.md`` (2 CPU cores,
# batch 512, speed of an optimiser step relative to eager float32), not measured on this page:
#
# ======================  =========  =======  ================  =========
# model                   precision  mode     vs eager float32  compile s
# ======================  =========  =======  ================  =========
# amortized estimator     float32    compile  1.38              51.8
# amortized estimator     bfloat16   eager    0.95
# amortized estimator     bfloat16   compile  1.37              32.8
# conditional image flow  float32    compile  1.26              52.9
# conditional image flow  bfloat16   eager    1.82
# conditional image flow  bfloat16   compile  1.95              47.3
# ======================  =========  =======  ================  =========
#
# Here, a posterior on the simulations of the Dask store, trained in float32 and in bfloat16
# (mixed precision on the CPU), to see that the loss is unaffected; the speed of such a small
# network on a shared machine says nothing, so it is not reported.
if __name__ == "__main__":
    for precision in ("float32", "bfloat16"):
        posterior = fit_posterior(store=folder / "two_moons.h5", prior=task.prior,
                                  flow={"coupling": "affine", "blocks": 3, "hidden": [32]},
                                  training=TrainConfig(epochs=EPOCHS, batch_size=128, lr=1e-3, precision=precision,
                                                       seed=1), progress=False)
        history = posterior.report.history
        print(f"{precision:>8}: best validation loss {history.best_val_loss:.4f} after {history.epochs} epochs")
    shutil.rmtree(folder)  # the stores and run folders of this page
