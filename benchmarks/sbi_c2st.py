"""Amortized posterior accuracy and speed: innverse vs sbi's NPE on the SBI benchmark tasks.

For every task and simulation budget, both libraries train on the SAME simulations with their
default settings (innverse: ``fit_posterior``; sbi 0.27: ``NPE(prior)`` with its default density
estimator, ``train()`` with its defaults). For each of the task's observations both draw 10,000
posterior samples, scored by C2ST against the task's reference posterior (0.5 = perfect). Training
wall and CPU time are measured around the training call. Then batched amortized sampling,
1,000 observations x 1,000 samples in one call (``Posterior.sample`` vs sbi's ``sample_batched``),
is timed (repeats interleaved, median reported) and its samples outside the prior's support are
counted. sbi rejects samples outside the prior; where its rejection gives up after 300 s
(SLCP and SLCP with distractors at 10^4: almost no proposal is accepted) the timing keeps that
lower bound, is not repeated, and draws nothing more.

Run under the peers' environment (sbi is imported only here)::

    PYTHONPATH=src nice /work/main/.venv-peers/bin/python benchmarks/sbi_c2st.py
    PYTHONPATH=src ... benchmarks/sbi_c2st.py --tasks two_moons,slcp --budgets 1000 --observations 3

``--sbi-from FILE...`` takes sbi's rows from earlier runs of this benchmark instead of training sbi
again: the simulations (seed = budget), observations, reference samples and C2ST seeds (seed =
observation index) are the same, so only innverse is rerun; such rows are marked with their
source file, the first ``--observations`` scores are used, and the batched timing (which needs
both posteriors in one process) is innverse-only for them.

``--replicates R`` repeats every task and budget on R independent simulation sets (seed
``budget + 7919 r``; replicate 0 is the set above) with training seed r for both libraries, sbi
trained first on odd replicates so that a drift of the machine's speed favours neither; the table
then adds per task and budget the median C2ST and training time of each library and the number of
replicates where innverse trained faster and reached the lower C2ST. A single timing on a shared
2-core machine varies by +-40%, and sbi's epoch count on the same data by 2x between seeds, so
a speed comparison at a small budget needs replicates.

Results are appended to a JSON file as each (task, budget) finishes (``--resume`` skips the
finished ones), and a Markdown table is written next to it. Both libraries run in one process
with the same torch thread count (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

from _common import machine_tag
from innverse.amortized import fit_posterior, simulate
from innverse.diagnostics import c2st
from innverse.tasks import SBI_TASKS, TASKS, get_task

RESULTS = Path(__file__).parent / "results"


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _outside(task, samples: torch.Tensor) -> int:
    """Samples outside the prior's support (or not finite)."""
    flat = samples.reshape(-1, task.theta_dim)
    ok = task.prior.support.check(flat) & torch.isfinite(flat).all(-1)
    return int((~ok).sum())


class _Sbi:
    """sbi's NPE (or another of its estimators) with its defaults (imported lazily: only the peers' environment has sbi)."""

    # sbi rejects its samples outside the prior's support; a posterior that leaks almost all its mass
    # there (seen on SLCP with distractors: "0.000% proposal samples are accepted") would never
    # finish, so after this many seconds the samples are drawn without the rejection, counted as
    # outside the support where they are, scored as they are, and the timeout is recorded
    max_sampling_time: float = 300.0

    def __init__(self, task, method: str = "NPE"):
        import sbi.inference

        self.task = task
        # NPE by default; FMPE and NPSE (flow matching, score-based) for benchmarks/sbibm_table.py
        self.inference = getattr(sbi.inference, method)(prior=task.prior, show_progress_bars=False)
        self.timeouts = 0

    def train(self, theta, x):
        self.inference.append_simulations(theta, x)
        self.inference.train()
        self.posterior = self.inference.build_posterior()
        self.epochs = int(self.inference._summary["epochs_trained"][-1])

    def _draw(self, method, n, x, seed, fallback: bool = True):
        """Samples; after a rejection timeout, drawn without rejection (``fallback``) or ``None``."""
        torch.manual_seed(seed)
        try:
            return method((n,), x, show_progress_bars=False, max_sampling_time=self.max_sampling_time)
        except RuntimeError as err:
            if "sampling time" not in str(err).lower() and "max_sampling_time" not in str(err):
                raise
        self.timeouts += 1
        if not fallback:
            return None
        torch.manual_seed(seed)
        return method((n,), x, show_progress_bars=False, reject_outside_prior=False)

    def sample(self, n, x_o, seed):
        return self._draw(self.posterior.sample, n, x_o, seed)

    def sample_batched(self, n, xs, seed):
        # for timing only: after a timeout no samples are drawn (a draw of 10^6 samples without the
        # rejection ran out of memory on SLCP with distractors: 22 GB resident on a 24 GB machine)
        return self._draw(self.posterior.sample_batched, n, xs, seed, fallback=False)


def _score(task, draw, observations, refs, samples: int) -> tuple[list[float], int]:
    scores, outside = [], 0
    for i in observations:
        s = draw(samples, task.observation(i), i)
        outside += _outside(task, s)
        scores.append(c2st(refs[i], s, seed=i))
    return scores, outside


def _run_innverse(task, theta, x, seed: int, observations, refs, args) -> tuple[dict, object]:
    post, wall, cpu = _timed(lambda: fit_posterior(theta, x, prior=task.prior, seed=seed, progress=False))
    scores, outside = _score(task, lambda n, x_o, i: post.sample(n, x_o, seed=i), observations, refs, args.samples)
    row = {"c2st": scores, "c2st_mean": statistics.fmean(scores), "train_wall_s": wall, "train_cpu_s": cpu,
           "epochs": post.history.epochs, "best_epoch": post.history.best_epoch, "outside_support": outside,
           "flow": post.estimator.flow_options.coupling, "log_features": post.report.log_features}
    report = post.report
    if report.compared_flows:
        row["flow_selection"] = {"candidates": [c.flow["coupling"] for c in report.candidates],
                                 "val_loss": [c.val_loss for c in report.candidates],
                                 "theta_val_loss": [c.theta_val_loss for c in report.candidates],
                                 "seconds": [c.seconds for c in report.candidates], "chosen": report.chosen}
    return row, post


def _run_sbi(task, theta, x, seed: int, observations, refs, args) -> tuple[dict, _Sbi]:
    sbi = _Sbi(task)
    torch.manual_seed(seed)  # sbi draws its initial weights and data order from torch's global RNG
    _, wall, cpu = _timed(lambda: sbi.train(theta, x))
    scores, outside = _score(task, sbi.sample, observations, refs, args.samples)
    return {"c2st": scores, "c2st_mean": statistics.fmean(scores), "train_wall_s": wall, "train_cpu_s": cpu,
            "epochs": sbi.epochs, "outside_support": outside, "rejection_timeouts": sbi.timeouts}, sbi


def simulation_seed(budget: int, replicate: int) -> int:
    """Seed of the simulations of a replicate: the budget itself for the first (as in earlier runs)."""
    return budget + 7919 * replicate


def run_budget(name: str, budget: int, args, replicate: int = 0) -> dict:
    """Both libraries on the same simulations of one replicate; odd replicates train sbi first."""
    task = get_task(name)
    seed = simulation_seed(budget, replicate)
    sims = simulate(task.simulate, prior=task.prior, n=budget, seed=seed, progress=False)
    theta, x = sims.theta, sims.x
    entry: dict = {"task": name, "budget": budget, "replicate": replicate, "simulation_seed": seed,
                   "simulations_kept": int(theta.shape[0]), "libraries": {}}
    observations = range(min(args.observations, task.num_observations))
    refs = {i: task.reference_posterior(i, args.samples) for i in observations}

    reused = args.sbi_rows.get((name, budget)) if replicate == 0 else None
    skip = (("skipped" if args.skip_sbi else "sbi's default NPE cannot take NaN-padded sets" if task.set_valued
             else "sbi's default NPE needs flat x (no default embedding net)")
            if task.set_valued or x.dim() > 2 or args.skip_sbi else None)
    order = ["innverse", "sbi"] if replicate % 2 == 0 else ["sbi", "innverse"]
    for lib in order:
        if lib == "innverse":
            row, entry["_posterior"] = _run_innverse(task, theta, x, replicate, observations, refs, args)
        elif skip is not None:
            row = {"skipped": skip}
        elif reused is not None:
            if len(reused["c2st"]) < len(observations):
                raise SystemExit(f"sbi_c2st: {reused['source']} has {len(reused['c2st'])} sbi scores for {name} "
                                 f"{budget}, fewer than --observations {len(observations)}")
            kept = reused["c2st"][:len(observations)]
            row = {**reused, "c2st": kept, "c2st_mean": statistics.fmean(kept)}
        else:
            row, entry["_sbi"] = _run_sbi(task, theta, x, replicate, observations, refs, args)
        entry["libraries"][lib] = row
    entry["libraries"] = {k: entry["libraries"][k] for k in ("innverse", "sbi")}
    return entry


def time_batched(name: str, entry: dict, args) -> dict:
    """1,000 observations x 1,000 samples in one call, repeats interleaved between the libraries."""
    task = get_task(name)
    gen = torch.Generator().manual_seed(7)
    xs = task.simulate(task.sample_prior(args.batch_observations, gen), gen)
    post, sbi = entry["_posterior"], entry.get("_sbi")
    runs: dict[str, list[float]] = {"innverse": [], "sbi": []}
    cpu: dict[str, list[float]] = {"innverse": [], "sbi": []}
    outside: dict[str, int] = {}
    timeouts_before = sbi.timeouts if sbi is not None else 0
    for r in range(args.repeats):
        s, wall, c = _timed(lambda r=r: post.sample(args.batch_samples, xs, seed=r))
        runs["innverse"].append(wall)
        cpu["innverse"].append(c)
        outside["innverse"] = _outside(task, s)
        del s
        if sbi is not None and sbi.timeouts == timeouts_before:  # one timeout says enough; not repeated
            s, wall, c = _timed(lambda r=r: sbi.sample_batched(args.batch_samples, xs, r))
            runs["sbi"].append(wall)
            cpu["sbi"].append(c)
            if s is not None:
                outside["sbi"] = _outside(task, s)
            del s
    out = {"observations": args.batch_observations, "samples": args.batch_samples, "repeats": args.repeats,
           "innverse_s": runs["innverse"], "innverse_cpu_s": cpu["innverse"],
           "innverse_median_s": statistics.median(runs["innverse"]),
           "innverse_median_cpu_s": statistics.median(cpu["innverse"]), "innverse_outside": outside["innverse"]}
    if runs["sbi"]:
        out.update({"sbi_s": runs["sbi"], "sbi_cpu_s": cpu["sbi"], "sbi_median_s": statistics.median(runs["sbi"]),
                    "sbi_median_cpu_s": statistics.median(cpu["sbi"]), "sbi_outside": outside.get("sbi"),
                    "speedup": statistics.median(runs["sbi"]) / statistics.median(runs["innverse"]),
                    "speedup_cpu": statistics.median(cpu["sbi"]) / statistics.median(cpu["innverse"]),
                    # a call whose rejection sampling gave up after max_sampling_time returns no samples;
                    # its time, up to the timeout, is a lower bound on sbi's
                    "sbi_rejection_timeouts": sbi.timeouts - timeouts_before})
    return out


def _replicate_summary(entries: list[dict]) -> list[str]:
    """Per task and budget over the replicates (different simulations and seeds): medians and counts."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for e in entries:
        sbi = e["libraries"].get("sbi", {})
        if "train_cpu_s" in sbi and "source" not in sbi:  # both trained in this run
            groups.setdefault((e["task"], e["budget"]), []).append(e)
    lines = ["", "Over replicates (each: new simulations, new seeds of both libraries; odd replicates train sbi "
             "first). Medians; 'faster' and 'lower' count the replicates where innverse's training CPU time is "
             "shorter and its C2ST lower:", "",
             "| task | budget | replicates | C2ST innverse / sbi | train cpu s innverse / sbi | ratio | faster | lower |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    total = [0, 0, 0]
    for (name, budget), es in groups.items():
        a = [e["libraries"]["innverse"] for e in es]
        b = [e["libraries"]["sbi"] for e in es]
        ta, tb = statistics.median(r["train_cpu_s"] for r in a), statistics.median(r["train_cpu_s"] for r in b)
        faster = sum(x["train_cpu_s"] <= y["train_cpu_s"] for x, y in zip(a, b))
        lower = sum(x["c2st_mean"] < y["c2st_mean"] for x, y in zip(a, b))
        total = [total[0] + len(es), total[1] + faster, total[2] + lower]
        lines.append(f"| {name} | {budget} | {len(es)} | {statistics.median(r['c2st_mean'] for r in a):.3f} / "
                     f"{statistics.median(r['c2st_mean'] for r in b):.3f} | {ta:.1f} / {tb:.1f} | {ta / tb:.2f} | "
                     f"{faster} | {lower} |")
    lines.append(f"| all | | {total[0]} | | | | {total[1]} | {total[2]} |")
    return lines


def table(results: dict) -> str:
    meta = results["meta"]
    lines = [f"# innverse vs sbi NPE: C2ST and speed ({meta['date']}, {meta['machine']})", "",
             f"torch threads: {meta['threads']}; observations per task: {meta['observations']}; "
             f"posterior samples per observation: {meta['samples']}; load average at start: {meta['load']}.", "",
             "| task | budget | innverse C2ST | sbi C2ST | innverse train wall / cpu s | sbi train wall / cpu s "
             "| epochs (innverse / sbi) |", "|---|---:|---:|---:|---:|---:|---:|"]
    replicated = any(e.get("replicate", 0) for e in results["entries"])
    if replicated:
        lines[-2] = lines[-2].replace("| task | budget |", "| task | budget | replicate |")
        lines[-1] = "|---|---:" + lines[-1]
    for e in results["entries"]:
        a, b = e["libraries"]["innverse"], e["libraries"].get("sbi", {})
        sb = (f"{b['c2st_mean']:.3f}" if "c2st_mean" in b else f"n/a ({b.get('skipped', '')})")
        if "source" in b:
            sb += f" ({b['source'].removeprefix('sbi_c2st_').removesuffix('.json')})"
        st = f"{b['train_wall_s']:.1f} / {b['train_cpu_s']:.1f}" if "train_wall_s" in b else "-"
        mark = " **" if "c2st_mean" in b and a["c2st_mean"] < b["c2st_mean"] else ""
        rep = f" {e.get('replicate', 0)} |" if replicated else ""
        lines.append(f"| {e['task']} | {e['budget']} |{rep} {a['c2st_mean']:.3f}{mark} | {sb} | "
                     f"{a['train_wall_s']:.1f} / {a['train_cpu_s']:.1f} | {st} | {a['epochs']} / {b.get('epochs', '-')} |")
    lines += ["", "(** = innverse lower.)"]
    if replicated:
        lines += _replicate_summary(results["entries"])
    if not any(e.get("batched") for e in results["entries"]):
        return "\n".join(lines) + "\n"
    lines += ["", "Batched sampling, 1,000 observations x 1,000 samples in one call "
              "(median of interleaved repeats, wall and CPU seconds; samples outside the prior's support; "
              "'>' where sbi's rejection sampling timed out, so its time is a lower bound):", "",
              "| task | budget | innverse wall / cpu s | sbi wall / cpu s | speed-up wall / cpu | outside (innverse / sbi) |",
              "|---|---:|---:|---:|---:|---:|"]
    for e in results["entries"]:
        t = e.get("batched")
        if not t:
            continue
        bound = ">" if t.get("sbi_rejection_timeouts") else ""
        sbi_s = f"{bound}{t['sbi_median_s']:.1f} / {bound}{t['sbi_median_cpu_s']:.1f}" if "sbi_median_s" in t else "-"
        sp = f"{bound}{t['speedup']:.1f}x / {bound}{t['speedup_cpu']:.1f}x" if "speedup" in t else "-"
        lines.append(f"| {e['task']} | {e['budget']} | {t['innverse_median_s']:.1f} / {t['innverse_median_cpu_s']:.1f} "
                     f"| {sbi_s} | {sp} | {t['innverse_outside']} / {t.get('sbi_outside') if t.get('sbi_outside') is not None else '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--budgets", default="1000,10000", help="comma-separated simulation budgets")
    ap.add_argument("--large", action="store_true", help="add the 100,000 budget")
    ap.add_argument("--observations", type=int, default=10)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--batch-observations", type=int, default=1000)
    ap.add_argument("--batch-samples", type=int, default=1000)
    ap.add_argument("--timing-budget", type=int, default=None, help="budget whose posteriors are timed (default: largest)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--replicates", type=int, default=1,
                    help="train both libraries on this many independent simulation sets per task and budget")
    ap.add_argument("--skip-sbi", action="store_true")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/sbi_c2st_<date>_<machine>.json)")
    ap.add_argument("--resume", action="store_true", help="skip (task, budget, replicate) runs already in --out")
    ap.add_argument("--sbi-from", nargs="*", default=[], help="earlier result JSON files whose sbi rows are reused")
    args = ap.parse_args()
    args.sbi_rows = {}
    for path in args.sbi_from:
        for e in json.loads(Path(path).read_text())["entries"]:
            lib = e["libraries"].get("sbi", {})
            if "c2st" in lib:
                args.sbi_rows[(e["task"], e["budget"])] = {**lib, "source": Path(path).name}
    torch.set_num_threads(args.threads)
    # torch imports its compiler stack (torch._dynamo, ~1.5 s) lazily at the first optimiser step
    # of a process; do it here so that no timed training (of either library) pays it
    p = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([p]).step()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(tasks) - set(TASKS)
    if unknown:
        sys.exit(f"sbi_c2st: unknown tasks {sorted(unknown)}; choose from {TASKS}")
    budgets = [int(b) for b in args.budgets.split(",")] + ([100_000] if args.large else [])
    timing_budget = args.timing_budget or max(budgets)
    machine = machine_tag()
    out = Path(args.out) if args.out else RESULTS / f"sbi_c2st_{date.today()}_{machine}.json"
    results = {"meta": {"date": str(date.today()), "machine": machine, "threads": args.threads,
                        "sbi_from": [Path(p).name for p in args.sbi_from],
                        "observations": args.observations, "samples": args.samples, "load": os.getloadavg()[0],
                        "torch": torch.__version__, "cpu_count": os.cpu_count(), "sbi_tasks": list(SBI_TASKS)},
               "entries": []}
    if args.resume and out.exists():
        results = json.loads(out.read_text())
    done = {(e["task"], e["budget"], e.get("replicate", 0)) for e in results["entries"]}
    for name, budget, replicate in itertools.product(tasks, budgets, range(args.replicates)):
        if (name, budget, replicate) in done:
            continue
        print(f"== {name} {budget} replicate {replicate}", flush=True)
        entry = run_budget(name, budget, args, replicate)
        if budget == timing_budget and replicate == 0:
            entry["batched"] = time_batched(name, entry, args)
        entry = {k: v for k, v in entry.items() if not k.startswith("_")}
        results["entries"].append(entry)
        libs = entry["libraries"]
        print(json.dumps({k: {m: v for m, v in lib.items() if m != "c2st"} for k, lib in libs.items()}), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, allow_nan=False, default=lambda o: None))
        os.replace(tmp, out)
        out.with_suffix(".md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
