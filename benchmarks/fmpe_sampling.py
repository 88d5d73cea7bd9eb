"""Sampling and density cost of flow-matching posteriors (FMPE) next to the default coupling flow.

A flow-matching posterior samples by solving an ODE (fixed-step RK4, ``steps`` steps, four network
calls each) and evaluates densities by integrating the exact divergence along it, where the default
coupling flow needs one pass. For each task both estimators train on the same simulations (seed =
budget; ``sbibm_table.py``'s FMPE settings, hidden [128] x 3), then are timed on one torch thread,
interleaved, median of ``--rounds``:

* batched sampling: ``--observations`` observations x ``--samples`` samples in one call;
* ``log_prob`` of 1,000 parameter vectors at one observation.

The cost depends on the networks, not on how well they are trained, so the default budget is small.

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fmpe_sampling.py
"""

from __future__ import annotations

import argparse

import torch

from _common import interleaved, machine_tag, write_results
from innverse.amortized import fit_posterior, simulate
from innverse.tasks import get_task

#: the FMPE settings of benchmarks/sbibm_table.py
FMPE = {"coupling": "flow_matching", "hidden": [128] * 3}


def run_task(name: str, args: argparse.Namespace) -> dict:
    task = get_task(name)
    sims = simulate(task.simulate, prior=task.prior, n=args.budget, seed=args.budget, progress=False)
    posts = {"coupling (default)": fit_posterior(sims.theta, sims.x, prior=task.prior, seed=0, progress=False),
             "FMPE": fit_posterior(sims.theta, sims.x, prior=task.prior, seed=0, progress=False, flow=FMPE)}
    xs = sims.x[: args.observations]
    theta = sims.theta[:1000]
    cases = {label: {"sample": (lambda p=p: p.sample(args.samples, xs, seed=0), 1),
                     "log_prob": (lambda p=p: p.log_prob(theta, xs[0]), 1)} for label, p in posts.items()}
    times = interleaved(cases, args.rounds)
    row = {"task": name, "theta_dim": task.theta_dim, "times": times}
    base = times["coupling (default)"]
    row["fmpe_over_default"] = {op: times["FMPE"][op] / base[op] for op in ("sample", "log_prob")}
    print(f"{name}: {row['fmpe_over_default']}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="two_moons,slcp,bernoulli_glm")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--observations", type=int, default=100)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [run_task(name, args) for name in args.tasks.split(",")]
    n = args.observations * args.samples
    lines = [f"Trained on {args.budget} simulations; one torch thread, median of {args.rounds} interleaved rounds. "
             f"Sampling: {args.observations} observations x {args.samples} samples ({n:,}) in one call; "
             "log_prob: 1,000 parameter vectors at one observation.", "",
             "| task | D | sample s: coupling / FMPE | FMPE / coupling | log_prob s: coupling / FMPE | FMPE / coupling |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        c, f = r["times"]["coupling (default)"], r["times"]["FMPE"]
        lines.append(f"| {r['task']} | {r['theta_dim']} | {c['sample']:.3f} / {f['sample']:.3f} | "
                     f"{r['fmpe_over_default']['sample']:.0f}x | {c['log_prob']:.4f} / {f['log_prob']:.4f} | "
                     f"{r['fmpe_over_default']['log_prob']:.0f}x |")
    table = "\n".join(lines)
    print(table)
    write_results("fmpe_sampling", {"machine": machine_tag(), "args": vars(args), "rows": rows}, table)


if __name__ == "__main__":
    main()
