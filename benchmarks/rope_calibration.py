"""RoPE on misspecified simulators: LPP and ACAUC before and after calibration, over calibration-set sizes.

    nice python benchmarks/rope_calibration.py --tasks pendulum_friction       # one task (~10 min, 2 cores)
    nice python benchmarks/rope_calibration.py --tasks sir_reporting_delay
    nice python benchmarks/rope_calibration.py --tasks windkessel_drift
    python benchmarks/rope_calibration.py --tasks pendulum_friction --sizes 10,50 --simulations 3000 --no-save
    python benchmarks/rope_calibration.py --plot benchmarks/results/rope_calibration_*.json   # curves only

For each task (``innverse.tasks.design``: pendulum with unmodelled friction, SIR with reporting
delays, windkessel with sensor drift):

1. an NPE (MLP summary network + conditional flow, ``fit_posterior``) is trained on
   ``--simulations`` simulations; its calibration is checked on ``--test`` held-out *simulated*
   pairs and on ``--test`` held-out *real* pairs (the reality stand-in, seed 1), and the
   summary-space misspecification test runs on the real observations;
2. for every calibration-set size n in ``--sizes`` (the first n of one pool of labelled real
   pairs, seed 2, so the sets are nested), the corrections are scored on the same held-out
   real pairs: RoPE (``innverse.design.rope`` with its defaults: the transport posterior from a
   bank of ``--bank`` simulations, epsilon chosen on the calibration pairs' out-of-fold
   summaries, stacked with the folds' fine-tuned NPE copies by their out-of-fold log densities),
   its two parts on their own (the transport posterior; the ensemble of the folds' fine-tuned
   copies), the NPE read through RoPE's fine-tuned summary network without transport (an
   ablation), and the baseline "NPE fine-tuned on the calibration set alone"
   (``fine_tune_posterior``: every weight trained further by maximum likelihood on the n real
   pairs, early stopping on a fifth of them).

Scores (``innverse.design.score_posterior``): LPP, the mean log posterior density of the true
parameters (higher is better, with its standard error), and ACAUC, the signed area between the
expected-coverage curve and the diagonal (0: calibrated; negative: over-confident), for joint
highest-density regions (``--samples`` draws per observation) and for central intervals per
parameter. Nothing is tuned on the held-out pairs: RoPE's choices, epsilon and the stacking
weight, are made on the calibration pairs. Times are wall clock on a shared machine. Results: JSON + Markdown under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from _common import machine_tag, write_results
from innverse.amortized import fit_posterior
from innverse.design import RoPEOptions, fine_tune_posterior, rope, score_posterior
from innverse.diagnostics import misspecification_test
from innverse.tasks.design import PendulumFriction, SIRReportingDelay, WindkesselDrift

TASKS = {t.name: t for t in (PendulumFriction, SIRReportingDelay, WindkesselDrift)}


def scores(model, theta, x, args) -> dict:
    t0 = time.perf_counter()
    hpd = score_posterior(model, theta, x, samples=args.samples, region="hpd", seed=args.seed)
    central = score_posterior(model, theta, x, samples=args.samples, region="central", seed=args.seed)
    return {"lpp": hpd.lpp, "lpp_se": hpd.lpp_se, "acauc_hpd": hpd.acauc, "acauc_central": central.acauc,
            "score_seconds": time.perf_counter() - t0}


def train_npe(task, args):
    theta, x = task.sample_joint(args.simulations, torch.Generator().manual_seed(args.seed))
    t0 = time.perf_counter()
    post = fit_posterior(theta, x, prior=task.prior, summary="mlp",
                         summary_options={"out_features": 16, "hidden": [64, 64]},
                         training={"epochs": args.epochs}, seed=args.seed, progress=False)
    return post, time.perf_counter() - t0


def run_task(name: str, args) -> dict:
    task = TASKS[name]()
    post, seconds = train_npe(task, args)
    print(f"\n{name}: NPE trained in {seconds:.0f} s", flush=True)
    th_sim, x_sim = task.sample_joint(args.test, torch.Generator().manual_seed(args.seed + 3))
    th_test, x_test = task.sample_real(args.test, torch.Generator().manual_seed(args.seed + 1))
    pool_theta, pool_x = task.sample_real(max(args.sizes), torch.Generator().manual_seed(args.seed + 2))
    test = misspecification_test(post.summaries(x_test), post.reference_summaries, seed=args.seed)
    out = {"task": name, "npe_seconds": seconds, "misspecification_p_value": test["p_value"],
           "npe_on_simulations": scores(post, th_sim, x_sim, args), "npe_on_real": scores(post, th_test, x_test, args),
           "sizes": {}}
    print(f"  NPE on simulations {out['npe_on_simulations']}\n  NPE on real {out['npe_on_real']}\n"
          f"  misspecification test p = {test['p_value']:.3g}", flush=True)
    for n in args.sizes:
        th_cal, x_cal = pool_theta[:n], pool_x[:n]
        t0 = time.perf_counter()
        calibrated = rope(post, th_cal, x_cal, task.simulate, RoPEOptions(simulations=args.bank), seed=args.seed)
        fit_rope = time.perf_counter() - t0
        transport = calibrated.first
        row = {"rope": {**scores(calibrated, th_test, x_test, args), "fit_seconds": fit_rope,
                        "epsilon": transport.last_selection.get("epsilon"),
                        "final_epochs": calibrated.report["final_epochs"],
                        "stack_weight": calibrated.report["stack_weight"],
                        "out_of_fold_lpp": calibrated.report["out_of_fold_lpp"]},
               "rope_transport": {**scores(transport, th_test, x_test, args),
                                  "epsilon": transport.last_selection.get("epsilon")},
               "npe_fine_tuned_folds": scores(calibrated.second, th_test, x_test, args),
               "fine_tuned_summary_only": scores(transport.fine_tuned_npe(), th_test, x_test, args)}
        t0 = time.perf_counter()
        tuned = fine_tune_posterior(post, th_cal, x_cal, seed=args.seed)
        row["npe_fine_tuned_on_calibration"] = {**scores(tuned, th_test, x_test, args),
                                                "fit_seconds": time.perf_counter() - t0}
        out["sizes"][n] = row
        print(f"  n={n}: " + "; ".join(f"{k} LPP {v['lpp']:.2f} ACAUC {v['acauc_hpd']:+.3f}/{v['acauc_central']:+.3f}"
                                        for k, v in row.items()), flush=True)
    return out


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines += [f"### {r['task']}", "",
                  f"NPE trained in {r['npe_seconds']:.0f} s; summary-space misspecification test on the real "
                  f"test observations: p = {r['misspecification_p_value']:.3g}.", "",
                  "| model | n | LPP | ACAUC (HPD) | ACAUC (central) | epsilon | transport weight |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for key, label in (("npe_on_simulations", "NPE, simulated test pairs"), ("npe_on_real", "NPE, real test pairs")):
            s = r[key]
            lines.append(f"| {label} | - | {s['lpp']:.2f} ± {s['lpp_se']:.2f} | {s['acauc_hpd']:+.3f} | "
                         f"{s['acauc_central']:+.3f} | | |")
        for n, row in r["sizes"].items():
            for key, label in ROWS:
                s = row[key]
                eps = f"{s['epsilon']:g}" if s.get("epsilon") is not None else ""
                w = f"{s['stack_weight']:.2f}" if s.get("stack_weight") is not None else ""
                lines.append(f"| {label} | {n} | {s['lpp']:.2f} ± {s['lpp_se']:.2f} | {s['acauc_hpd']:+.3f} | "
                             f"{s['acauc_central']:+.3f} | {eps} | {w} |")
        lines.append("")
    return "\n".join(lines)


ROWS = (("rope", "RoPE (transport stacked with fine-tuned NPE)"), ("rope_transport", "RoPE transport only"),
        ("npe_fine_tuned_folds", "NPE fine-tuned, ensemble of the folds' copies"),
        ("fine_tuned_summary_only", "fine-tuned summary, no OT"),
        ("npe_fine_tuned_on_calibration", "NPE fine-tuned on calibration set"))
CURVES = (("rope", "RoPE (stacked)", "C0"), ("rope_transport", "RoPE transport only", "C4"),
          ("fine_tuned_summary_only", "fine-tuned summary, no OT", "C2"),
          ("npe_fine_tuned_on_calibration", "NPE fine-tuned on calibration set", "C1"))


def plot(results: list[dict], path: Path) -> None:
    """LPP and ACAUC (HPD) against the calibration-set size, one column per task; the NPE as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 6.4), squeeze=False)
    for col, r in enumerate(results):
        sizes = [int(n) for n in r["sizes"]]
        for key, label, colour in CURVES:
            rows = [r["sizes"][n][key] for n in r["sizes"]]
            lpp, se = [x["lpp"] for x in rows], [x["lpp_se"] for x in rows]
            axes[0, col].errorbar(sizes, lpp, yerr=se, marker="o", ms=4, capsize=2, color=colour, label=label)
            axes[1, col].plot(sizes, [x["acauc_hpd"] for x in rows], marker="o", ms=4, color=colour, label=label)
        for row, key in ((0, "lpp"), (1, "acauc_hpd")):
            ax = axes[row, col]
            ax.axhline(r["npe_on_real"][key], color="k", ls="--", lw=1, label="NPE, no correction")
            ax.axhline(r["npe_on_simulations"][key], color="grey", ls=":", lw=1, label="NPE on its own simulations")
            ax.set_xscale("log")
            ax.set_xlabel("labelled real pairs n")
        axes[1, col].axhspan(-0.05, 0.05, color="C0", alpha=0.08)
        axes[0, col].set_title(r["task"])
    axes[0, 0].set_ylabel("LPP (higher is better)")
    axes[1, 0].set_ylabel("ACAUC, HPD (0 = calibrated)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--sizes", default="10,25,50,100,200")
    p.add_argument("--simulations", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--bank", type=int, default=5000)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="results name (default rope_calibration_<tasks>)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--plot", nargs="+", metavar="JSON", help="only plot the curves of these result files")
    args = p.parse_args()
    if args.plot:
        results = [r for f in args.plot for r in json.loads(Path(f).read_text())["results"]]
        date = json.loads(Path(args.plot[0]).read_text())["date"][:10]
        plot(results, Path(args.plot[0]).parent / f"rope_calibration_curves_{date}_{machine_tag()}.png")
        return
    args.sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = [run_task(name, args) for name in args.tasks.split(",")]
    text = table(results)
    print("\n" + text)
    if not args.no_save:
        name = args.name or "rope_calibration_" + args.tasks.replace(",", "_")
        path = write_results(name, {"args": vars(args), "seconds": time.perf_counter() - t0, "results": results,
                                         "torch_threads": 1}, text)
        plot(results, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
