"""Reference posteriors of the benchmark tasks: how long they take, and an independent check.

For every task: draw the reference posterior for all 10 observations (``n`` samples each) into a
cache directory (a fresh one by default), report what computing them cost (wall clock and
process CPU time as recorded next to the cached samples when they were computed; the machine is
shared, so CPU time is the figure to trust), the sampler's own diagnostics (R-hat, bulk ESS,
thinning, acceptance), and cross-check the samples against self-normalised importance sampling,
an estimator that does not depend on the sampler being right:

* proposal: a multivariate Student-t (5 degrees of freedom) in the prior's unconstrained
  coordinates, fitted to the reference samples and widened 1.5x (for SLCP symmetrised over the
  sign flips of theta_3, theta_4, which the posterior is invariant under);
* weights :math:`w \\propto p(x \\mid \\theta) p(\\theta) |J| / q(z)`, importance ESS
  :math:`(\\sum w)^2 / \\sum w^2`;
* per parameter, z-score of the reference mean against the importance estimate (standard errors
  from the reference's bulk ESS and the importance-sampling delta method) and the ratio of the
  standard deviations. A sampler that is biased, misses modes or mis-weights them shows up as
  large z-scores or ratios away from 1.

Usage::

    PYTHONPATH=src python benchmarks/task_references.py [--tasks sir slcp] [--n 10000] [--draws 50000]

Writes ``benchmarks/results/task_references_<date>_<machine>.{json,md}`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch
from torch.distributions import biject_to

from innverse.tasks import TASKS, get_task
from innverse.tasks.cache import reference_path

try:
    from _common import machine_tag, write_results
except ImportError:  # run from the repository root
    from benchmarks._common import machine_tag, write_results

FOLDED = {"slcp": (2, 3), "slcp_distractors": (2, 3)}
# proposals per observation, as multiples of --draws: ODE likelihoods are expensive; SLCP's
# four-mode posterior leaves the importance weights uneven, so it gets more
DRAW_FACTOR = {"sir": 1, "lotka_volterra": 1, "lotka_volterra_series": 1, "slcp": 10, "slcp_distractors": 10}


def _t_log_density(z: torch.Tensor, mean: torch.Tensor, chol_inv: torch.Tensor, df: float) -> torch.Tensor:
    maha = ((z - mean) @ chol_inv.T).square().sum(-1)
    return -0.5 * (df + z.shape[-1]) * torch.log1p(maha / df)


def importance_check(task, index: int, reference: torch.Tensor, reference_ess: float, draws: int,
                     generator: torch.Generator, df: float = 5.0, widen: float = 1.5) -> dict:
    """Compare ``reference`` samples with self-normalised importance sampling (see module docstring)."""
    fold = FOLDED.get(task.name, ())
    transform = biject_to(task.prior.support)
    z_ref = transform.inv(reference.double())
    if fold:
        z_ref[:, fold] = z_ref[:, fold].abs()
    mean = z_ref.mean(0)
    chol = torch.linalg.cholesky(torch.cov(z_ref.T) * widen**2 + 1e-12 * torch.eye(z_ref.shape[1]))
    chol_inv = torch.linalg.inv(chol)
    eps = torch.randn(draws, z_ref.shape[1], generator=generator, dtype=torch.float64)
    chi2 = torch.randn(draws, int(df), generator=generator, dtype=torch.float64).square().sum(-1)
    z = mean + (eps @ chol.T) / torch.sqrt(chi2 / df)[:, None]
    signs = [torch.ones(z.shape[1], dtype=torch.float64)]
    for j in fold:
        flipped = []
        for s in signs:
            t = s.clone()
            t[j] = -1.0
            flipped.append(t)
        signs += flipped
    if fold:
        pick = torch.randint(0, len(signs), (draws,), generator=generator)
        z = z * torch.stack(signs)[pick]
    log_q = torch.logsumexp(torch.stack([_t_log_density(z * s, mean, chol_inv, df) for s in signs]), 0)
    theta = transform(z)
    x = task.observation(index).double()
    log_p = torch.cat([task.log_joint(t, x) for t in theta.split(20_000)])
    log_p = log_p + transform.log_abs_det_jacobian(z, theta)
    w = torch.softmax(torch.where(torch.isnan(log_p), -torch.inf, log_p) - log_q, 0)
    ess = float(1.0 / w.square().sum())

    def features(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        if fold:
            t[:, fold] = t[:, fold].abs()
        return t

    f_is, f_ref = features(theta), features(reference.double())
    mean_is = (w[:, None] * f_is).sum(0)
    var_is = (w[:, None] * (f_is - mean_is).square()).sum(0)
    se_is = torch.sqrt((w[:, None].square() * (f_is - mean_is).square()).sum(0))
    mean_ref, sd_ref = f_ref.mean(0), f_ref.std(0)
    se_ref = sd_ref / math.sqrt(reference_ess)
    zscore = (mean_ref - mean_is) / torch.sqrt(se_is**2 + se_ref**2)
    ratio = sd_ref / torch.sqrt(var_is)
    return {"importance_ess": ess, "max_abs_z": float(zscore.abs().max()),
            "max_abs_log_sd_ratio": float(torch.log(ratio).abs().max()),
            "z": zscore.tolist(), "sd_ratio": ratio.tolist()}


def _cost(diagnostics: list[dict]) -> tuple[float, float]:
    # what computing the references cost when they were computed (recorded next to the cache)
    wall = cpu = 0.0
    for d in {json.dumps(d["indices_computed"]): d for d in diagnostics}.values():
        wall += d["seconds_for_all_indices"]
        cpu += d.get("cpu_seconds_for_all_indices", d.get("cpu_seconds_all_targets", float("nan")))
    return wall, cpu


def run_task(name: str, n: int, draws: int, root: Path) -> dict:
    task = get_task(name, torch.float64)
    refs = [task.reference_posterior(i, n, root) for i in range(task.num_observations)]
    key = task.reference_key or task.name
    diagnostics = [json.loads(reference_path(root, key, i, n, task.reference_version).with_suffix(".json")
                              .read_text()) for i in range(task.num_observations)]
    wall, cpu = _cost(diagnostics)
    gen = torch.Generator().manual_seed(12345)
    checks = []
    draws = draws * DRAW_FACTOR.get(name, 4)
    for i, (ref, diag) in enumerate(zip(refs, diagnostics)):
        ess = diag.get("min_bulk_ess", float(n))
        checks.append(importance_check(task, i, ref, ess, draws, gen))
    mcmc = "min_bulk_ess" in diagnostics[0]
    row = {"task": name, "shares_reference_of": key if key != name else None, "sampler": diagnostics[0]["sampler"], "wall_s": wall, "cpu_s": cpu, "is_draws": draws,
           "max_rhat": max(d.get("max_split_rhat", float("nan")) for d in diagnostics) if mcmc else None,
           "min_ess": min(d["min_bulk_ess"] for d in diagnostics) if mcmc else None,
           "thin": max(d["thin"] for d in diagnostics) if mcmc else None,
           "rounds": max(d["rounds"] for d in diagnostics) if mcmc else None,
           "min_importance_ess": min(c["importance_ess"] for c in checks),
           "max_abs_z": max(c["max_abs_z"] for c in checks),
           "max_abs_log_sd_ratio": max(c["max_abs_log_sd_ratio"] for c in checks),
           "diagnostics": diagnostics, "checks": checks}
    print(_format_row(row), flush=True)
    return row


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _format_row(r: dict) -> str:
    cost = (f"same as {r['shares_reference_of']} | - " if r["shares_reference_of"]
            else f"{_fmt(r['cpu_s'], '.1f')} | {_fmt(r['wall_s'], '.1f')}")
    return (f"| {r['task']} | {cost} | {_fmt(r['max_rhat'], '.4f')} "
            f"| {_fmt(r['min_ess'], '.0f')} | {_fmt(r['thin'], 'd')} | {_fmt(r['rounds'], 'd')} "
            f"| {r['min_importance_ess']:.0f} | {r['max_abs_z']:.2f} | {math.exp(r['max_abs_log_sd_ratio']):.3f} |")


HEADER = ("| task | CPU s (10 obs) | wall s | max R-hat | min bulk ESS | thin | rounds | min IS ESS "
          "| max abs z (ref vs IS) | max sd ratio |\n|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=50_000,
                        help="importance-sampling proposals per observation (times DRAW_FACTOR)")
    parser.add_argument("--cache", type=Path, default=None, help="reference cache (default: a fresh temp dir)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small-tensor loops: thread hand-offs only slow them down on a shared machine
    root = args.cache or Path(tempfile.mkdtemp(prefix="innverse-references-"))
    print(f"cache: {root}; machine: {machine_tag()}; torch threads: {torch.get_num_threads()}")
    print(HEADER)
    rows = [run_task(name, args.n, args.draws, root) for name in args.tasks]
    table = HEADER + "\n" + "\n".join(_format_row(r) for r in rows)
    table += ("\n\nCPU s: process CPU time for all 10 observations (the sampler runs single-threaded); wall s "
              "depends on the machine's load. z: reference mean vs importance-sampling estimate per parameter "
              "(|z| < ~4 expected); sd ratio: reference sd / importance sd, worst over parameters and "
              "observations (shown as >= 1).")
    if not args.no_write:
        write_results("task_references", {"n": args.n, "draws": args.draws, "rows": rows}, table)


if __name__ == "__main__":
    main()
