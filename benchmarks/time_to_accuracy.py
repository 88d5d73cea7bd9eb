"""Time to accuracy: how soon innverse reaches the C2ST that sbi's NPE reaches at the end of its training.

For every task, at one simulation budget (default 10^4, seed = budget, the simulations of
``sbi_c2st.py`` and ``sbibm_table.py``), sbi 0.27's NPE trains with its defaults and is scored by
C2ST on the task's observations (10,000 samples each, against the reference posteriors): its
training wall time ``T`` and its mean C2ST are the bar. Then ``fit_posterior`` (defaults) trains on
the same simulations under a wall-time budget of ``0.9 f T`` (``TrainConfig.max_seconds``: training
stops when the budget is spent and the learning-rate schedule runs on the time fraction, so the
model is annealed by then) for the fractions ``f`` in ascending order until its mean C2ST is at or
below sbi's (the 10% margin is for what the call does around training and for the last step and
validation, which may cross the budget). The time to accuracy is the measured wall time of ``fit_posterior`` (everything in the
call: standardisation, Gaussian start, candidate flows) of the first budget that reaches it,
relative to ``T``. Both run in one process, one torch thread each, sbi first.

    PYTHONPATH=src nice .venv/bin/python benchmarks/time_to_accuracy.py
    PYTHONPATH=src .venv/bin/python benchmarks/time_to_accuracy.py --tasks two_moons --observations 2

Rows are appended to the JSON file as each task finishes (``--resume`` skips finished tasks).
``--merge A.json B.json`` writes one table (and JSON) from runs split over processes (a later file's
row for a task replaces an earlier one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from _common import RESULTS, machine_tag
from innverse.amortized import fit_posterior, simulate
from innverse.tasks import SBI_TASKS, get_task
from sbi_c2st import _Sbi, _score, _timed

#: the training budget is this share of the target time (the rest: the call's own work around training)
MARGIN = 0.9


def run_task(name: str, args) -> dict:
    """sbi's bar, then innverse under growing time budgets until it reaches the bar."""
    task = get_task(name)
    sims = simulate(task.simulate, prior=task.prior, n=args.budget, seed=args.budget, progress=False)
    observations = range(min(args.observations, task.num_observations))
    refs = {i: task.reference_posterior(i, args.samples) for i in observations}
    sbi = _Sbi(task)
    torch.manual_seed(0)  # sbi draws its initial weights and data order from torch's global RNG
    _, sbi_wall, _ = _timed(lambda: sbi.train(sims.theta, sims.x))
    sbi_scores, _ = _score(task, sbi.sample, observations, refs, args.samples)
    bar = statistics.fmean(sbi_scores)
    row = {"task": name, "budget": args.budget, "sbi": {"c2st": sbi_scores, "c2st_mean": bar,
                                                        "train_wall_s": sbi_wall, "epochs": sbi.epochs},
           "innverse": [], "time_to_accuracy": None}
    print(f"{name:>24}: sbi C2ST {bar:.3f} in {sbi_wall:.1f} s", flush=True)
    for fraction in sorted(args.fractions):
        training = {"max_seconds": MARGIN * fraction * sbi_wall}
        post, wall, _ = _timed(lambda t=training: fit_posterior(sims.theta, sims.x, prior=task.prior, seed=0,
                                                                progress=False, training=t))
        scores, _ = _score(task, lambda n, x_o, i, p=post: p.sample(n, x_o, seed=i), observations, refs,
                           args.samples)
        h = post.report.history
        attempt = {"fraction": fraction, "max_seconds": training["max_seconds"], "wall_s": wall,
                   "wall_ratio": wall / sbi_wall, "c2st": scores, "c2st_mean": statistics.fmean(scores),
                   "epochs": h.epochs, "out_of_time": h.out_of_time, "stopped_early": h.stopped_early,
                   "candidates": [c.flow["coupling"] for c in post.report.candidates],
                   "summaries": [c.summary for c in post.report.candidates], "chosen": post.report.chosen,
                   "lr": post.report.training.lr}
        row["innverse"].append(attempt)
        print(f"{'':>24}  innverse at {fraction:g}x ({wall:.1f} s, {h.epochs} epochs): C2ST "
              f"{attempt['c2st_mean']:.3f}", flush=True)
        if attempt["c2st_mean"] <= bar:
            row["time_to_accuracy"] = wall / sbi_wall
            break
    return row


def table(rows: list[dict], target: float) -> str:
    order = {t: i for i, t in enumerate(SBI_TASKS)}
    lines = ["| task | sbi NPE C2ST | sbi train s | innverse C2ST (budget, wall s) per try | time to sbi's C2ST "
             f"(x sbi's time) | within {target:g}x |", "|---|---:|---:|---|---:|:---:|"]
    for r in sorted(rows, key=lambda r: order.get(r["task"], 99)):
        tries = "; ".join(f"{a['c2st_mean']:.3f} ({a['fraction']:g}x, {a['wall_s']:.1f} s)" for a in r["innverse"])
        reached = r["time_to_accuracy"]
        lines.append(f"| {r['task']} | {r['sbi']['c2st_mean']:.3f} | {r['sbi']['train_wall_s']:.1f} | {tries} | "
                     f"{'not reached' if reached is None else f'{reached:.2f}'} | "
                     f"{'yes' if reached is not None and reached <= target else 'no'} |")
    met = sum(r["time_to_accuracy"] is not None and r["time_to_accuracy"] <= target for r in rows)
    return "\n".join(lines) + f"\n\nWithin {target:g}x of sbi's training time: {met} of {len(rows)} tasks.\n"


def write(out: Path, rows: list[dict], args) -> None:
    out.write_text(json.dumps({"machine": machine_tag(), "args": {k: v for k, v in vars(args).items()
                                                                  if k != "merge"}, "rows": rows}, indent=1))
    text = table(rows, args.target)
    out.with_suffix(".md").write_text(
        f"# time_to_accuracy — {time.strftime('%Y-%m-%d')} — {machine_tag()}\n\n"
        f"Budget {args.budget} simulations; C2ST is the mean over the task's first {args.observations} observations "
        f"({args.samples} samples each). sbi 0.27 NPE with its defaults sets the bar (its final C2ST and training "
        "wall time T); innverse's `fit_posterior` defaults then train under `max_seconds = 0.9 f T` for growing f "
        "until they reach the bar. Wall times are of the whole training call, one torch thread, same process.\n\n"
        + text + (f"\n{args.note}\n" if args.note else ""))
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(SBI_TASKS))
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--fractions", default="0.25,0.5,1.0", type=lambda s: [float(v) for v in s.split(",")])
    ap.add_argument("--target", type=float, default=0.25, help="the acceptance ratio the table checks")
    ap.add_argument("--observations", type=int, default=10)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--merge", nargs="+", default=None, help="write the table from these result files")
    ap.add_argument("--note", default="", help="a paragraph added under the table (e.g. which run gave which rows)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or RESULTS / f"time_to_accuracy_{time.strftime('%Y-%m-%d')}_{machine_tag()}.json")
    if args.merge:
        rows = {}   # a later file's row for a task replaces an earlier one
        for path in args.merge:
            rows.update({r["task"]: r for r in json.loads(Path(path).read_text())["rows"]})
        write(out, list(rows.values()), args)
        return
    rows = json.loads(out.read_text())["rows"] if args.resume and out.exists() else []
    done = {r["task"] for r in rows}
    for name in args.tasks.split(","):
        if name not in done:
            rows.append(run_task(name, args))
            write(out, rows, args)
    write(out, rows, args)


if __name__ == "__main__":
    main()
