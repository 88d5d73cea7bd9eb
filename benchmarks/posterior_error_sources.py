"""Where a posterior's C2ST error comes from, on sbibm's observations: sampler, data, or the estimator's moments.

Three measurements per observation, for a task with an exact likelihood (Bernoulli GLM by default, the
one task where no innverse mode reaches the best published figure at 10^3 and 10^4):

* ``exact_mcmc``: the adaptive MCMC of :mod:`innverse.amortized.mcmc` on the task's *exact* likelihood,
  scored against sbibm's reference samples. This is the floor of every likelihood-based mode: what is
  left when the learned likelihood is perfect (sampler error plus C2ST noise).
* ``nle_ideal_N``: neural likelihood estimation trained on ``N`` simulations whose parameters are
  draws of the *true* posterior of the observation (the MCMC above, another seed). A sequential
  scheme proposes from its current estimate of that posterior, so this is about the best SNLE with
  ``N`` simulations in all can reach with this estimator; ``--ensemble K`` makes its likelihood a
  K-member ensemble (``nle_ideal_N_ensembleK``), ``--likelihood gaussian`` the Gaussian with a mean
  linear in the parameters of ``fit_likelihood(model="gaussian")`` (``nle_ideal_N_gaussian``).
* ``npe_B``: the default amortized posterior trained on ``B`` prior simulations, with two
  Gaussians next to it: one with the moments of the reference (``gauss_ref``: how far the true
  posterior is from Gaussian) and one with the moments of the estimated posterior (``gauss_est``).
  When ``gauss_est`` scores like the flow itself, the error is in the posterior's mean and covariance
  (``mean_err``: largest and RMS mean error over the parameters, in reference standard deviations;
  ``sd_ratio``: estimated over reference standard deviation).

    pip download sbibm==1.1.0 --no-deps -d /tmp/sbibm
    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 .venv/bin/python benchmarks/posterior_error_sources.py \\
        --sbibm-files /tmp/sbibm/sbibm-1.1.0-py2.py3-none-any.whl --parts exact,ideal --ideal 1000
    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 .venv/bin/python benchmarks/posterior_error_sources.py \\
        --sbibm-files /tmp/sbibm/sbibm-1.1.0-py2.py3-none-any.whl --parts npe --budgets 10000,100000 --out b.json

Rows are written to ``--out`` (JSON) as they finish; ``--merge`` joins several such files into the
committed result (JSON + Markdown table under ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from _common import machine_tag, write_results
from _sbibm_files import SbibmFiles
from innverse.amortized import fit_likelihood, fit_posterior, simulate
from innverse.amortized.mcmc import MCMCConfig, sample_mcmc
from innverse.diagnostics import c2st
from innverse.tasks import get_task

SAMPLES = 10_000


def _gaussian_like(samples: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` draws of the Gaussian with the sample mean and covariance of ``samples``."""
    s = samples.to(torch.float64)
    factor = torch.linalg.cholesky(torch.cov(s.T))
    noise = torch.randn(n, s.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (s.mean(0) + noise @ factor.T).to(torch.float32)


def _exact_draws(task, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` draws of the exact posterior of ``x`` by the adaptive MCMC on the task's likelihood."""
    draws, _ = sample_mcmc(task.log_likelihood, task.prior, x.to(torch.float64).reshape(1, *task.x_shape), n,
                           torch.Generator().manual_seed(seed), MCMCConfig(), name="exact posterior")
    return draws[0].to(torch.float32)


def exact_mcmc(task, files: SbibmFiles, i: int) -> dict:
    """The sampler on the exact likelihood against sbibm's reference: the floor of likelihood-based modes."""
    draws = _exact_draws(task, files.observation(task.name, i), SAMPLES, seed=i)
    return {"c2st": c2st(files.reference(task.name, i, SAMPLES).to(torch.float32), draws, seed=i)}


def nle_ideal(task, files: SbibmFiles, i: int, n: int, ensemble: int = 1, model: str = "flow") -> dict:
    """NLE on ``n`` simulations at exact-posterior parameters (MCMC on the exact likelihood, another seed).

    With ``ensemble > 1`` the likelihood is the mixture of that many members trained on the same simulations.
    """
    x = files.observation(task.name, i).to(task.dtype).reshape(task.x_shape)
    pool = _exact_draws(task, x, max(n, SAMPLES), seed=10_000 + i)   # converged chains need enough draws
    proposal = pool[torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(i))[:n]].to(task.dtype)
    sims = simulate(task.simulate, proposal, seed=i, progress=False)
    options = {"ensemble": ensemble} if ensemble > 1 else {}
    post = fit_likelihood(sims.theta, sims.x, task.prior, seed=i, model=model, **options)
    ref = files.reference(task.name, i, SAMPLES).to(torch.float32)
    return {"c2st": c2st(ref, post.sample(SAMPLES, x, seed=i), seed=i)}


def npe_moments(task, files: SbibmFiles, budget: int, indices: list[int]) -> list[dict]:
    """The default amortized posterior, and Gaussians with its moments and with the reference's."""
    sims = simulate(task.simulate, prior=task.prior, n=budget, seed=budget, progress=False)
    post = fit_posterior(sims.theta, sims.x, prior=task.prior, progress=False)
    rows = []
    for i in indices:
        ref = files.reference(task.name, i, SAMPLES).to(torch.float32)
        x = files.observation(task.name, i).to(task.dtype).reshape(task.x_shape)
        est = post.sample(SAMPLES, x, seed=i)
        err = (est.mean(0) - ref.mean(0)) / ref.std(0)
        rows.append({"c2st": c2st(ref, est, seed=i),
                     "gauss_ref": c2st(ref, _gaussian_like(ref, SAMPLES, i), seed=i),
                     "gauss_est": c2st(ref, _gaussian_like(est, SAMPLES, i), seed=i),
                     "mean_err_max": float(err.abs().max()), "mean_err_rms": float(err.pow(2).mean().sqrt()),
                     "sd_ratio": (est.std(0) / ref.std(0)).tolist()})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| task | measurement | mean C2ST | per observation | more |", "|---|---|---:|---|---|"]
    for r in rows:
        scores = [o["c2st"] for o in r["observations"]]
        more = ""
        if r["part"].startswith("npe"):
            obs = r["observations"]
            more = (f"Gaussian, reference moments {statistics.fmean(o['gauss_ref'] for o in obs):.3f}; "
                    f"Gaussian, estimated moments {statistics.fmean(o['gauss_est'] for o in obs):.3f}; "
                    f"mean error (ref. sd) max {statistics.fmean(o['mean_err_max'] for o in obs):.2f}, "
                    f"RMS {statistics.fmean(o['mean_err_rms'] for o in obs):.2f}")
        lines.append(f"| {r['task']} | {r['part']} | {statistics.fmean(scores):.3f} | "
                     f"{', '.join(f'{s:.3f}' for s in scores)} | {more} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="bernoulli_glm")
    ap.add_argument("--sbibm-files", required=False, help="sbibm's wheel (pip download sbibm==1.1.0 --no-deps)")
    ap.add_argument("--parts", default="exact,ideal,npe", help="exact, ideal, npe")
    ap.add_argument("--ideal", type=int, default=1000, help="simulations of the ideal-proposal NLE")
    ap.add_argument("--ensemble", type=int, default=1, help="members of the ideal-proposal NLE's likelihood")
    ap.add_argument("--likelihood", choices=("flow", "gaussian"), default="flow",
                    help="the ideal-proposal NLE's likelihood model")
    ap.add_argument("--budgets", default="10000,100000", help="budgets of the npe part")
    ap.add_argument("--observations", type=int, default=10)
    ap.add_argument("--out", default=None, help="JSON file the rows are written to as they finish")
    ap.add_argument("--merge", nargs="+", default=[], help="join these --out files into the committed result")
    args = ap.parse_args()
    if args.ensemble < 1:
        ap.error(f"--ensemble must be >= 1 (members of the likelihood), got {args.ensemble}")
    if args.ensemble > 1 and args.likelihood == "gaussian":
        ap.error("--ensemble applies to the flow likelihood only")
    torch.set_num_threads(1)
    if args.merge:
        rows = [r for p in args.merge for r in json.loads(Path(p).read_text())["rows"]]
        print(table(rows))
        write_results("posterior_error_sources", {"machine": machine_tag(), "rows": rows}, table(rows))
        return
    if not args.sbibm_files:
        ap.error("--sbibm-files is required (the reference samples are sbibm's)")
    task, files = get_task(args.task), SbibmFiles(args.sbibm_files)
    indices, rows = list(range(1, args.observations + 1)), []
    out = Path(args.out or f"/tmp/posterior_error_sources_{args.task}.json")
    jobs = {"exact": [("exact_mcmc", lambda: [exact_mcmc(task, files, i) for i in indices])],
            "ideal": [(f"nle_ideal_{args.ideal}" + (f"_ensemble{args.ensemble}" if args.ensemble > 1 else "")
                       + ("_gaussian" if args.likelihood == "gaussian" else ""),
                       lambda: [nle_ideal(task, files, i, args.ideal, args.ensemble, args.likelihood)
                                for i in indices])],
            "npe": [(f"npe_{b}", lambda b=b: npe_moments(task, files, b, indices))
                    for b in (int(s) for s in args.budgets.split(","))]}
    for part in args.parts.split(","):
        if part not in jobs:
            ap.error(f"unknown part {part!r}; known: {', '.join(jobs)}")
        for name, run in jobs[part]:
            rows.append({"task": args.task, "part": name, "observations": run()})
            print(table(rows[-1:]), flush=True)
            out.write_text(json.dumps({"machine": machine_tag(), "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
