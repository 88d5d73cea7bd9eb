"""Power and false-positive rate of the set-level misspecification test, one bandwidth vs several.

    nice python benchmarks/misspecification_power.py                      # 3 tasks, ~5 min on 2 cores
    python benchmarks/misspecification_power.py --tasks windkessel_drift --repeats 5 --no-save

For each misspecified task of ``innverse.tasks.design`` (pendulum with unmodelled friction, SIR
with reporting delays, windkessel with sensor drift) an NPE (MLP summary network, as in
``benchmarks/rope_calibration.py``) is trained on ``--simulations`` simulations. Then, ``--repeats``
times, ``--observed`` fresh *real* observations (the misspecified reality: power) and
``--observed`` fresh *simulated* ones (the null: false positives) are tested against the
simulations with ``innverse.diagnostics.misspecification_test`` in two variants:

* one Gaussian kernel at the median heuristic (``scales=(1.0,)``, the test before multi-bandwidth
  aggregation), and
* the default: bandwidths 0.25..4 times the median, aggregated by ``mmd_agg_test``,

each both on the summary network's outputs (what ``innverse check`` uses) and on the raw
observations. Reported: the share of repeats flagged at level 0.05 and the median p-value.
Results: JSON + Markdown under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import write_results
from innverse.amortized import fit_posterior
from innverse.diagnostics import misspecification_test
from innverse.tasks.design import PendulumFriction, SIRReportingDelay, WindkesselDrift

TASKS = {t.name: t for t in (PendulumFriction, SIRReportingDelay, WindkesselDrift)}
VARIANTS = {"one bandwidth (median)": (1.0,), "bandwidths 0.25-4 x median": (0.25, 0.5, 1.0, 2.0, 4.0)}


def run_task(name: str, args) -> dict:
    task = TASKS[name]()
    theta, x = task.sample_joint(args.simulations, torch.Generator().manual_seed(args.seed))
    t0 = time.perf_counter()
    post = fit_posterior(theta, x, prior=task.prior, summary="mlp",
                         summary_options={"out_features": 16, "hidden": [64, 64]},
                         training={"epochs": args.epochs}, seed=args.seed, progress=False)
    seconds = time.perf_counter() - t0
    reference = {"summaries": post.reference_summaries, "raw data": x[-args.reference:].reshape(args.reference, -1)}
    p_values: dict[str, dict[str, list[float]]] = {}
    for r in range(args.repeats):
        gen = torch.Generator().manual_seed(args.seed + 100 + r)
        observed = {"real": task.sample_real(args.observed, gen)[1], "simulated": task.sample_joint(args.observed, gen)[1]}
        for kind, obs in observed.items():
            for space, ref in reference.items():
                o = post.summaries(obs) if space == "summaries" else obs.reshape(obs.shape[0], -1)
                for label, scales in VARIANTS.items():
                    key = f"{space} | {label}"
                    p = misspecification_test(o, ref, scales=scales, permutations=args.permutations, seed=r)["p_value"]
                    p_values.setdefault(key, {}).setdefault(kind, []).append(p)
    rows = {key: {kind: {"flagged": sum(p <= 0.05 for p in ps) / len(ps), "median_p": statistics.median(ps),
                         "p_values": ps} for kind, ps in per.items()} for key, per in p_values.items()}
    for key, row in rows.items():
        print(f"  {name:22s} {key:42s} real flagged {row['real']['flagged']:.2f} (median p {row['real']['median_p']:.3f})"
              f"  simulated flagged {row['simulated']['flagged']:.2f}", flush=True)
    return {"task": name, "npe_seconds": seconds, "rows": rows}


def table(results: list[dict], args) -> str:
    lines = [f"Share of {args.repeats} repeats flagged at level 0.05 ({args.observed} observations each, "
             f"{args.permutations} permutations); median p-value in brackets. Real: the misspecified reality "
             "(power); simulated: fresh simulations (false positives, nominal 0.05).", "",
             "| task | space | kernel | real: flagged (median p) | simulated: flagged |", "|---|---|---|---|---|"]
    for r in results:
        for key, row in r["rows"].items():
            space, kernel = key.split(" | ")
            lines.append(f"| {r['task']} | {space} | {kernel} | {row['real']['flagged']:.2f} "
                         f"({row['real']['median_p']:.3f}) | {row['simulated']['flagged']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--simulations", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--observed", type=int, default=100)
    p.add_argument("--reference", type=int, default=2000, help="simulations the raw-data test compares with")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--permutations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = [run_task(name, args) for name in args.tasks.split(",")]
    text = table(results, args)
    print("\n" + text)
    if not args.no_save:
        write_results("misspecification_power", {"args": vars(args), "seconds": time.perf_counter() - t0,
                                                 "results": results}, text)


if __name__ == "__main__":
    main()
