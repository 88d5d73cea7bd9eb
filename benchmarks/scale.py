"""Scale-out: simulation throughput on the process pool and on Dask, and training with DDP processes.

Simulations (``innverse.amortized.simulate`` into memory, seed fixed, so every executor returns the
same data; checked here):

* **overhead**: a free simulator (``x = theta + noise``) at several batch sizes and counts; a least-
  squares fit ``seconds = start + per_batch * batches + per_simulation * n`` gives each executor's fixed
  cost, its cost per batch (scheduling, pickling, the round trip) and per simulation (moving the data),
  so a cluster user can predict the speed-up of a simulator of known cost:
  ``speed-up ~ workers * t_sim / (t_sim + per_batch / batch + per_simulation)`` once the fixed start is
  amortised;
* **throughput** of a simulator that costs CPU (a stochastic Lotka-Volterra path of 400 Euler steps per
  simulation, in pure Python): simulations per second with 1 and 2 workers.

Executors: in this process; the process pool (``ProcessPool(k)``, a fresh pool per call, so its start
is in every call); Dask on a running local cluster of ``k`` worker processes reached by its address
(the cluster user's case; a worker imports torch on its first task, which the warm-up call absorbs),
and the start of an embedded ``LocalCluster`` (``DaskCluster(workers=k)``) measured on its own. Every
figure is the fastest of 3 calls (one for the pool, whose start dominates), the least disturbed by other
load; the load average before and after is recorded with the results.

Training: ``innverse.train.train`` of a coupling flow (8-D, 4 affine blocks, 2 x 128 hidden) on
synthetic data, global batch 512, launched by ``torchrun`` with 1 and 2 CPU processes (gloo):
optimiser steps per second and rows per second. On a machine with 2 shared cores two processes
cannot be faster than one by much; the figure shows the communication cost of the all-reduce.

    PYTHONPATH=src nice .venv/bin/python benchmarks/scale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine_tag, write_results
from innverse.amortized import ProcessPool, box_uniform, simulate
from innverse.amortized.dask_executor import DaskCluster


def free(theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """No cost: the executor's overhead alone."""
    return theta + 0.1 * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)


def lotka_volterra(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A CPU-bound simulator: 400 Euler-Maruyama steps of a stochastic predator-prey model per row."""
    out = np.empty((theta.shape[0], 4))
    for k, (a, b) in enumerate(np.exp(theta)):
        x, y, noise = 1.0, 0.5, rng.normal(size=(400, 2)) * 0.05
        sx = sy = 0.0
        for i in range(400):
            x, y = max(x + 0.01 * (a * x - x * y) + noise[i, 0], 1e-6), max(y + 0.01 * (x * y - b * y) + noise[i, 1], 1e-6)
            sx, sy = sx + x, sy + y
        out[k] = (x, y, sx / 400, sy / 400)
    return out


PRIOR = box_uniform(-torch.ones(2), torch.ones(2))


def run(simulator, executor, n: int, batch: int, numpy: bool = False, reps: int = 1) -> tuple[float, torch.Tensor]:
    """The fastest of ``reps`` calls (the least disturbed by other load on a shared machine) and the data."""
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        sims = simulate(simulator, prior=PRIOR, n=n, batch_size=batch, workers=executor, seed=1, progress=False,
                        theta_format="numpy" if numpy else "torch")
        best = min(best, time.perf_counter() - t0)
    return best, sims.x


def executors(address: str) -> dict:
    return {"in process": 0, "pool x1": ProcessPool(1), "pool x2": ProcessPool(2),
            "dask x1": ("dask", 1), "dask x2": DaskCluster(address)}


def overhead(name: str, executor, grid: list[tuple[int, int]], reference: dict, reps: int) -> dict:
    rows, times = [], []
    for n, batch in grid:
        seconds, x = run(free, executor, n, batch, reps=reps)
        ref = reference.setdefault((n, batch), x)
        assert torch.equal(ref, x), f"{name}: different data for n={n}, batch={batch}"
        rows.append([1.0, math.ceil(n / batch), n])
        times.append(seconds)
        print(f"  {name:<10} n={n:>6} batch={batch:>5}: {seconds:7.3f} s")
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(times), rcond=None)
    return {"start_s": float(coef[0]), "per_batch_ms": float(coef[1] * 1e3), "per_simulation_us": float(coef[2] * 1e6),
            "runs": [{"n": n, "batch": b, "seconds": t} for (n, b), t in zip(grid, times)]}


def embedded_start(workers: int) -> float:
    """Seconds of a one-batch call that starts (and stops) its own LocalCluster: start-up, first import, shutdown."""
    return run(free, DaskCluster(workers=workers), 10, 10)[0]


TRAIN = textwrap.dedent("""
    import json, os, sys, time
    import torch
    import torch.distributed as dist
    from innverse.flows import coupling_flow
    from innverse.train import TensorBatches, TrainConfig, leave_group, train
    torch.set_num_threads(1)
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8192, 8, generator=g) @ torch.randn(8, 8, generator=g)
    torch.manual_seed(0)
    flow = coupling_flow(8, blocks=4, hidden=(128, 128))
    cfg = TrainConfig(epochs=int(sys.argv[2]), batch_size=512, lr=1e-3, patience=None, ema=None, seed=0)
    hist = train(flow, lambda b, s: -flow.log_prob(b[0]).mean(), TensorBatches(x, batch_size=512), config=cfg,
                 progress=False)
    if not dist.is_initialized() or dist.get_rank() == 0:
        secs = [r["seconds"] for r in hist.records][1:]   # the first epoch warms up
        json.dump({"seconds_per_epoch": sum(secs) / len(secs), "steps_per_epoch": 16,
                   "final_loss": hist.records[-1]["train_loss"]}, open(sys.argv[1], "w"))
    leave_group()
""")


def ddp(nproc: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "train.py", Path(tmp) / "out.json"
        script.write_text(TRAIN)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = ([sys.executable, str(script)] if nproc == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(script)])
        proc = subprocess.run([*cmd, str(out), str(epochs)], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        r = json.loads(out.read_text())
    steps = r["steps_per_epoch"] / r["seconds_per_epoch"]
    return {"processes": nproc, "steps_per_s": steps, "rows_per_s": steps * 512, "final_loss": r["final_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes (about a minute)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import distributed

    grid = [(4000, 40), (4000, 400), (16000, 400)] if args.quick else [(8000, 40), (8000, 400), (32000, 400)]
    heavy_n = 800 if args.quick else 3200
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
    one = distributed.LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0")
    results: dict = {"overhead": {}, "throughput": {}, "embedded_start_s": {}, "load_before": os.getloadavg()}
    reference: dict = {}
    heavy_ref = None
    try:
        for name, executor in executors(cluster.scheduler_address).items():
            if executor == ("dask", 1):
                executor = DaskCluster(one.scheduler_address)
            if isinstance(executor, DaskCluster):
                run(free, executor, 20, 10)  # warm-up: the workers import torch and innverse
            reps = 1 if isinstance(executor, ProcessPool) else 3
            results["overhead"][name] = overhead(name, executor, grid, reference, reps)
            seconds, x = run(lotka_volterra, executor, heavy_n, 100, numpy=True, reps=reps)
            heavy_ref = x if heavy_ref is None else heavy_ref
            assert torch.equal(heavy_ref, x), f"{name}: different Lotka-Volterra data"
            results["throughput"][name] = {"n": heavy_n, "seconds": seconds, "simulations_per_s": heavy_n / seconds}
            print(f"  {name:<10} Lotka-Volterra: {heavy_n / seconds:8.0f} sim/s")
    finally:
        cluster.close()
        one.close()
    for k in (1, 2):
        results["embedded_start_s"][f"dask x{k}"] = embedded_start(k)
    results["ddp"] = [ddp(k, 3 if args.quick else 6) for k in (1, 2)]
    results["load_after"] = os.getloadavg()
    write_results("scale", {"machine": machine_tag(), "torch": torch.__version__, "dask": distributed.__version__,
                            "quick": args.quick, **results}, table(results, heavy_n))


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def table(r: dict, heavy_n: int) -> str:
    lines = [f"Load average (1, 5, 15 min) before: {_load(r['load_before'])}, after: {_load(r['load_after'])} "
             f"on {os.cpu_count()} cores: other work shared the machine.", "",
             "## Simulations (same data on every executor)", "",
             "| executor | start (s) | per batch (ms) | per simulation (µs) | Lotka-Volterra sim/s |",
             "|---|---:|---:|---:|---:|"]
    for name, o in r["overhead"].items():
        lines.append(f"| {name} | {o['start_s']:.2f} | {o['per_batch_ms']:.2f} | {o['per_simulation_us']:.2f} | "
                     f"{r['throughput'][name]['simulations_per_s']:.0f} |")
    lines += ["", "Embedded LocalCluster, one-batch call including start, first import and shutdown: "
              + ", ".join(f"{k}: {v:.1f} s" for k, v in r["embedded_start_s"].items()), "",
              f"Lotka-Volterra: {heavy_n} simulations in batches of 100. Start / per batch / per simulation: "
              "least-squares fit of seconds = start + per_batch * batches + per_simulation * n over the free "
              "simulator's runs (a negative value: below the timing noise). Dask rows use a running local cluster "
              "(reached by its address); pool rows start a fresh pool in every call.", "",
              "## Training with DDP (torchrun, gloo, CPU)", "",
              "| processes | steps/s | rows/s | final loss |", "|---:|---:|---:|---:|"]
    for d in r["ddp"]:
        lines.append(f"| {d['processes']} | {d['steps_per_s']:.2f} | {d['rows_per_s']:.0f} | {d['final_loss']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
