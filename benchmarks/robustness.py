"""Posterior quality under bad data: outliers at 1e30, data at 1e-12 and 1e12, non-finite simulations.

For two moons and Gaussian linear (Lueckmann et al. 2021) the same simulations are corrupted in
one way at a time and ``fit_posterior`` trains with its defaults (``drop_invalid=True`` where rows
are non-finite). Scores: C2ST against the task's reference posterior on its first ``--observations``
observations (10,000 samples each; the observations are scaled like the data where the data are
scaled), and the recovery R² of the posterior mean over ``--test`` fresh simulations, averaged over
parameters. The target: every corrupted run within 0.05 C2ST of the clean one.

    PYTHONPATH=src nice .venv/bin/python benchmarks/robustness.py
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from _common import machine_tag, write_results
from innverse.amortized import fit_posterior, simulate
from innverse.diagnostics import c2st
from innverse.tasks import get_task

CONDITIONS = ("clean", "outliers 0.1%", "outliers 1%", "scale 1e-12", "scale 1e12", "non-finite 1%")


def corrupt(x: torch.Tensor, condition: str, gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """The corrupted training data and the factor applied to every observation."""
    x = x.clone()
    if condition.startswith("outliers"):
        share = 0.001 if "0.1%" in condition else 0.01
        rows = torch.randperm(x.shape[0], generator=gen)[:max(1, round(share * x.shape[0]))]
        x[rows] = 1e30
    elif condition.startswith("scale"):
        factor = float(condition.split()[1])
        return x * factor, factor
    elif condition.startswith("non-finite"):
        rows = torch.randperm(x.shape[0], generator=gen)[:round(0.01 * x.shape[0])]
        x[rows, 0] = float("nan")
    return x, 1.0


def recovery_r2(post, task, factor: float, n: int, seed: int) -> float:
    """R² of the posterior mean as a predictor of the true parameters, averaged over parameters."""
    sims = simulate(task.simulate, prior=task.prior, n=n, seed=seed, progress=False)
    means = post.sample(500, sims.x * factor, seed=seed).mean(0)
    resid = (means - sims.theta).square().sum(0)
    total = (sims.theta - sims.theta.mean(0)).square().sum(0)
    return float((1 - resid / total).mean())


def run(task_name: str, condition: str, args) -> dict:
    task = get_task(task_name)
    sims = simulate(task.simulate, prior=task.prior, n=args.budget, seed=args.budget, progress=False)
    x, factor = corrupt(sims.x, condition, torch.Generator().manual_seed(7))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = fit_posterior(sims.theta, x, prior=task.prior, drop_invalid=condition.startswith("non-finite"),
                             progress=False)
    seconds = time.perf_counter() - t0
    scores = [c2st(task.reference_posterior(i, args.samples), post.sample(args.samples, task.observation(i) * factor,
                                                                          seed=i), seed=i)
              for i in range(args.observations)]
    return {"task": task_name, "condition": condition, "c2st": scores, "c2st_mean": statistics.fmean(scores),
            "r2": recovery_r2(post, task, factor, args.test, seed=123), "train_seconds": seconds,
            "dropped": post.report.dropped_invalid, "warnings": [str(w.message)[:160] for w in caught]}


def table(rows: list[dict]) -> str:
    clean = {r["task"]: r["c2st_mean"] for r in rows if r["condition"] == "clean"}
    lines = ["| task | condition | C2ST | Δ C2ST vs clean | recovery R² | dropped | train s | within 0.05 |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        delta = r["c2st_mean"] - clean[r["task"]]
        lines.append(f"| {r['task']} | {r['condition']} | {r['c2st_mean']:.3f} | {delta:+.3f} | {r['r2']:.3f} | "
                     f"{r['dropped']} | {r['train_seconds']:.1f} | {'yes' if abs(delta) <= 0.05 else '**no**'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="two_moons,gaussian_linear")
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--observations", type=int, default=5)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for task in args.tasks.split(","):
        for condition in CONDITIONS:
            rows.append(run(task, condition, args))
            r = rows[-1]
            print(f"{task:>16} {condition:>14}: C2ST {r['c2st_mean']:.3f}  R2 {r['r2']:.3f}  "
                  f"{r['train_seconds']:.1f} s  warnings {len(r['warnings'])}", flush=True)
    text = table(rows)
    print(text)
    if not args.no_save:
        write_results("robustness", {"machine": machine_tag(), "args": vars(args), "rows": rows}, text)


if __name__ == "__main__":
    main()
