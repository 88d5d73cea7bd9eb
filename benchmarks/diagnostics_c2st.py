"""C2ST: innverse's batched torch implementation against sbi's scikit-learn MLP C2ST (the sbibm standard).

For pairs of distributions with a known Bayes-optimal accuracy (the best any classifier can do,
``0.5 + 0.5 TV(p, q)``, estimated by Monte Carlo from the exact densities), both implementations
are run on the same samples at ``n`` points per side. Reported: both C2ST values, their
difference, their distance to the Bayes accuracy, the wall time of each and the speed-up.
sbi's ``c2st(X, Y, classifier="mlp")`` is scikit-learn's ``MLPClassifier`` with sbibm's settings
(two hidden layers of 10 d units, Adam, early stopping after 50 epochs, 5-fold CV).

Also timed: ``innverse.diagnostics.check`` on an analytic Gaussian-linear posterior (numbers only
and with plots), and ``mmd_test``.

    PYTHONPATH=src nice /work/main/.venv-peers/bin/python benchmarks/diagnostics_c2st.py [--quick]

A small run of innverse alone (no sbi, no battery, nothing written), e.g. to time a change:

    nice .venv/bin/python benchmarks/diagnostics_c2st.py --sizes 1000 --no-sbi --no-battery --no-save

Runs are interleaved (sbi, innverse, innverse with another seed) so load on the shared machine
hits both alike, after one untimed warm-up call of each (first-use imports, e.g. the
``torch._dynamo`` that ``torch.optim`` loads, are not timed); both are timed with one intra-op
thread (the fair setting on a shared 2-core machine: several threads thrash when other jobs run).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from scipy import stats

from _common import machine_tag, write_results
from innverse.diagnostics import c2st, check, mmd_test


def _mixture(n: int, g: torch.Generator) -> torch.Tensor:
    comp = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 2, generator=g) * 0.6 + torch.stack([comp * 2.0 - 1.0, torch.zeros(n)], 1)


def _mixture_logpdf(x: np.ndarray) -> np.ndarray:
    a = stats.multivariate_normal([-1, 0], 0.36 * np.eye(2)).logpdf(x)
    b = stats.multivariate_normal([1, 0], 0.36 * np.eye(2)).logpdf(x)
    return np.logaddexp(a, b) - np.log(2)


def _gauss(mean, cov):
    mvn = stats.multivariate_normal(mean, cov)
    chol = torch.linalg.cholesky(torch.as_tensor(np.asarray(cov, dtype=np.float64))).float()
    mu = torch.as_tensor(np.asarray(mean, dtype=np.float64)).float()
    return (lambda n, g: torch.randn(n, len(mean), generator=g) @ chol.T + mu), mvn.logpdf


CASES = {
    "gauss 2-D shift 0.5": (_gauss([0, 0], np.eye(2)), _gauss([0.5, 0], np.eye(2))),
    "gauss 2-D scale 1.5": (_gauss([0, 0], np.eye(2)), _gauss([0, 0], 2.25 * np.eye(2))),
    "mixture vs gauss 2-D": ((_mixture, _mixture_logpdf), _gauss([0, 0], np.diag([1.36, 0.36]))),
    "gauss 10-D shift 0.15": (_gauss(np.zeros(10), np.eye(10)), _gauss(np.full(10, 0.15), np.eye(10))),
    "identical 5-D": (_gauss(np.zeros(5), np.eye(5)), _gauss(np.zeros(5), np.eye(5))),
}


def bayes_accuracy(p, q, m: int = 400_000) -> float:
    """``0.5 (P_p[p > q] + P_q[q >= p])`` by Monte Carlo with the exact log-densities."""
    g = torch.Generator().manual_seed(123)
    xp, xq = p[0](m, g).double().numpy(), q[0](m, g).double().numpy()
    return 0.5 * (np.mean(p[1](xp) > q[1](xp)) + np.mean(q[1](xq) >= p[1](xq)))


def timed(fn, *args, **kwargs):
    """``(result, wall seconds)``; the CPU seconds of the call are kept in ``timed.cpu``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    timed.cpu = time.process_time() - c
    return out, time.perf_counter() - t


def c2st_rows(sizes: list[int], with_sbi: bool = True) -> list[dict]:
    sbi_c2st = None
    if with_sbi:
        from sbi.utils.metrics import c2st as sbi_c2st
    warm = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    for fn in (c2st, sbi_c2st):  # one untimed call each: first-use imports are not part of a C2ST's cost
        if fn is not None:
            fn(warm, warm + 1)
    rows = []
    for name, (p, q) in CASES.items():
        bayes = bayes_accuracy(p, q)
        for n in sizes:
            g = torch.Generator().manual_seed(n)
            a, b = p[0](n, g), q[0](n, g)
            ref = t_ref = c_ref = float("nan")
            if sbi_c2st is not None:
                ref, t_ref = timed(sbi_c2st, a, b, classifier="mlp")
                ref, c_ref = float(ref), timed.cpu
            ours0, t0 = timed(c2st, a, b, seed=0)
            c0 = timed.cpu
            ours1, t1 = timed(c2st, a, b, seed=1)
            c1 = timed.cpu
            rows.append({"case": name, "n": n, "bayes": bayes, "sbi_mlp": ref, "innverse": ours0,
                         "innverse_seed1": ours1, "time_sbi": t_ref, "time_innverse": (t0 + t1) / 2,
                         "cpu_sbi": c_ref, "cpu_innverse": (c0 + c1) / 2, "speedup_cpu": c_ref / ((c0 + c1) / 2),
                         "speedup_wall": t_ref / ((t0 + t1) / 2)})
            r = rows[-1]
            print(f"{name:24s} n={n:6d} bayes={bayes:.3f} sbi={ref:.3f} ({t_ref:6.1f}s, cpu {c_ref:6.1f}s) "
                  f"innverse={ours0:.3f}/{ours1:.3f} ({r['time_innverse']:5.2f}s, cpu {r['cpu_innverse']:5.2f}s) "
                  f"x{r['speedup_cpu']:.1f} (cpu)", flush=True)
    return rows


def check_rows(n: int, samples: int, out_dir: str) -> list[dict]:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.diagnostics.gaussian_linear import GaussianLinear

    model = GaussianLinear(dims=3, obs=5)
    torch.manual_seed(0)
    obs = model.simulator(model.prior.sample((4,)))
    rows = []
    for plots in (False, True):
        res, t = timed(check, model.posterior(), model.prior, model.simulator, n=n, samples=samples,
                       observations=obs, out_dir=out_dir if plots else None)
        rows.append({"what": f"check n={n} samples={samples}" + (" + plots" if plots else ""), "seconds": t,
                     "passed": res.passed, **{f"t_{k}": v for k, v in res.timing.items()}})
        print(rows[-1], flush=True)
    g = torch.Generator().manual_seed(0)
    for m in (500, 2000):
        a, b = torch.randn(m, 5, generator=g), torch.randn(m, 5, generator=g)
        (_, p), t = timed(mmd_test, a, b, permutations=1000)
        rows.append({"what": f"mmd_test {m} vs {m}, 1000 permutations", "seconds": t, "p_value": p})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 1000 only")
    ap.add_argument("--sizes", type=int, nargs="+", help="samples per side (default 1000 10000; --quick: 1000)")
    ap.add_argument("--no-sbi", action="store_true", help="skip sbi's C2ST (its columns are NaN)")
    ap.add_argument("--no-battery", action="store_true", help="skip the timings of check and mmd_test")
    ap.add_argument("--no-save", action="store_true", help="print the table only; write nothing under results/")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ([1000] if args.quick else [1000, 10000])
    crow = c2st_rows(sizes, with_sbi=not args.no_sbi)
    krow = []
    if not args.no_battery:
        with tempfile.TemporaryDirectory() as tmp:
            krow = check_rows(200, 1000, tmp)
    diffs = np.array([abs(r["innverse"] - r["sbi_mlp"]) for r in crow])
    gap_ours = np.array([r["bayes"] - max(r["innverse"], 0.5) for r in crow])
    gap_ref = np.array([r["bayes"] - max(r["sbi_mlp"], 0.5) for r in crow])
    lines = ["| case | n/side | Bayes acc. | sbi MLP C2ST | innverse C2ST (seed 0 / 1) | sbi CPU (wall) | "
             "innverse CPU (wall) | speed-up CPU (wall) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in crow:
        lines.append(f"| {r['case']} | {r['n']} | {r['bayes']:.3f} | {r['sbi_mlp']:.3f} | {r['innverse']:.3f} / "
                     f"{r['innverse_seed1']:.3f} | {r['cpu_sbi']:.1f} s ({r['time_sbi']:.0f} s) | "
                     f"{r['cpu_innverse']:.1f} s ({r['time_innverse']:.0f} s) | {r['speedup_cpu']:.1f}x "
                     f"({r['speedup_wall']:.1f}x) |")
    lines += ["", f"mean |innverse - sbi| = {diffs.mean():.4f} (max {diffs.max():.4f}); mean gap to the Bayes "
              f"accuracy: innverse {gap_ours.mean():.4f}, sbi {gap_ref.mean():.4f}; median speed-up "
              f"{np.median([r['speedup_cpu'] for r in crow]):.1f}x (CPU time)", "",
              "| battery / test | seconds | details |", "|---|---:|---|"]
    for r in krow:
        extra = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k not in ("what", "seconds")}
        lines.append(f"| {r['what']} | {r['seconds']:.1f} | {extra} |")
    lines += ["", f"Threads: {args.threads} (torch and BLAS). Shared 2-core machine under heavy load from other "
              "jobs: wall times vary several-fold, so speed-ups are computed on CPU time (process time, "
              "single-threaded); runs are interleaved."]
    table = "\n".join(lines)
    print(table)
    if args.no_save:
        return
    write_results("diagnostics_c2st", {"machine": machine_tag(), "threads": args.threads, "c2st": crow,
                                       "battery": krow, "summary": {"mean_abs_diff": float(diffs.mean()),
                                                                    "max_abs_diff": float(diffs.max())}}, table)


if __name__ == "__main__":
    main()
