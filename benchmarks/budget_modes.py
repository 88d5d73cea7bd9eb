"""The ``budget`` presets of ``fit_posterior``: ``"fast"``, the defaults (``None``) and ``"accurate"``, side by side.

For every task and simulation budget (seed = budget, the simulations of ``sbi_c2st.py``), the three
presets train on the same simulations (seed 0) and are scored by C2ST against the task's reference
posteriors on its first ``--observations`` observations (``--samples`` draws each, against as many of
the task's 10,000 cached reference samples, a random subset; 0.5 = perfect).
The wall time is that of the whole ``fit_posterior`` call. Training runs in this process on one
torch thread, except ``"accurate"``: its 5 ensemble members train in parallel processes, one per
core (one thread each), so its wall time depends on the core count (the table says the machine).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/budget_modes.py --budgets 1000,10000
    PYTHONPATH=src .venv/bin/python benchmarks/budget_modes.py --tasks two_moons --budgets 1000 --observations 2

Rows are appended to the JSON file as each (task, budget) finishes (``--resume`` skips finished ones).
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
from innverse.tasks import get_task
from sbi_c2st import _score, _timed

#: (label, budget, explicit training options): "fast" once with the default early stopping (patience,
#: min_patience) = (20, 10), which is the preset, and once with a shorter one, 10/5, the candidate the
#: preset was measured against (it stopped on plateaus, see the results)
MODES = (("fast 10/5", "fast", {"patience": 10, "min_patience": 5}),
         ("fast 20/10", "fast", {"patience": 20, "min_patience": 10}),
         ("default", None, None), ("accurate", "accurate", None))


#: reference samples as the other benchmarks draw (and cache) them; a random subset of them is scored against
REFERENCE_SAMPLES = 10_000


def _reference(task, i: int, n: int) -> torch.Tensor:
    """``n`` of the task's cached reference samples for observation ``i`` (a random subset, seed ``i``)."""
    ref = task.reference_posterior(i, max(n, REFERENCE_SAMPLES))
    return ref[torch.randperm(ref.shape[0], generator=torch.Generator().manual_seed(i))[:n]]


def run_case(name: str, budget: int, args) -> dict:
    """The three presets on one task at one simulation budget."""
    task = get_task(name)
    sims = simulate(task.simulate, prior=task.prior, n=budget, seed=budget, progress=False)
    observations = range(min(args.observations, task.num_observations))
    refs = {i: _reference(task, i, args.samples) for i in observations}
    row = {"task": name, "budget": budget, "theta_dim": task.theta_dim, "modes": {}}
    for label, mode, training in MODES:
        post, wall, cpu = _timed(lambda m=mode, t=training: fit_posterior(sims.theta, sims.x, prior=task.prior, seed=0,
                                                                          progress=False, budget=m, training=t))
        scores, outside = _score(task, lambda n, x_o, i, p=post: p.sample(n, x_o, seed=i), observations, refs,
                                 args.samples)
        reports = [m.report for m in post.members] if hasattr(post, "members") else [post.report]
        row["modes"][label] = {
            "c2st": scores, "c2st_mean": statistics.fmean(scores), "wall_s": wall, "cpu_s": cpu,
            "outside_support": outside, "members": len(reports),
            "epochs": [r.history.epochs for r in reports],
            "candidates": [c.flow["coupling"] for c in reports[0].candidates],
            "chosen": [r.candidates[r.chosen].flow["coupling"] for r in reports]}
        print(f"{name:>24} {budget:>6} {label:>17}: C2ST {row['modes'][label]['c2st_mean']:.3f} "
              f"in {wall:.1f} s", flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = " | ".join(f"{label} C2ST | {label} s" for label, _, _ in MODES)
    lines = [f"| task | D | simulations | {head} |", "|---|---:|---:|" + "---:|" * (2 * len(MODES))]
    for r in rows:
        cells = " | ".join(f"{r['modes'][label]['c2st_mean']:.3f} | {r['modes'][label]['wall_s']:.1f}"
                           for label, _, _ in MODES)
        lines.append(f"| {r['task']} | {r['theta_dim']} | {r['budget']} | {cells} |")
    return "\n".join(lines) + "\n"


def write(out: Path, rows: list[dict], args) -> None:
    out.write_text(json.dumps({"benchmark": "budget_modes", "machine": machine_tag(), "args": vars(args),
                               "rows": rows}, indent=1))
    text = table(rows)
    out.with_suffix(".md").write_text(
        f"# budget_modes — {time.strftime('%Y-%m-%d')} — {machine_tag()}\n\n"
        f"`fit_posterior(budget=...)`: C2ST is the mean over the task's first {args.observations} observations "
        f"({args.samples} samples each; 0.5 = perfect); wall time (s) of the whole call. fast and default train "
        "on one torch thread in this process; accurate trains its 5 ensemble members in parallel processes, one "
        "per core, one thread each. 'fast P/M' is `budget=\"fast\"` (one candidate flow) with the early "
        "stopping `training={\"patience\": P, \"min_patience\": M}` given explicitly (the default's is 20/10). "
        "The preset `budget=\"fast\"` is fast 20/10 (it leaves the training options alone). "
        "Simulations: seed = budget; training seed 0.\n\n"
        + text + (f"\n{args.note}\n" if args.note else ""))
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="two_moons,gaussian_mixture,slcp,bernoulli_glm")
    ap.add_argument("--budgets", default="1000", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--observations", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph added under the table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or RESULTS / f"budget_modes_{time.strftime('%Y-%m-%d')}_{machine_tag()}.json")
    rows = json.loads(out.read_text())["rows"] if args.resume and out.exists() else []
    done = {(r["task"], r["budget"]) for r in rows}
    for budget in args.budgets:
        for name in args.tasks.split(","):
            if (name, budget) not in done:
                rows.append(run_case(name, budget, args))
                write(out, rows, args)
    write(out, rows, args)


if __name__ == "__main__":
    main()
