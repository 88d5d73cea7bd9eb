"""Residual flow vs coupling flow on the 2-D densities, trained with the same budget.

    PYTHONPATH=src python benchmarks/residual_density.py --jobs 6     # full run (~ an hour on 2 cores)
    PYTHONPATH=src python benchmarks/residual_density.py --steps 300 --lrs 1e-2  # quick look

Both flows are trained by maximum likelihood with the same optimiser (Adam, cosine schedule,
gradient clipping), batch size and number of steps on fresh samples of
``innverse.tasks.densities`` (two_moons, eight_gaussians, rings); each model is trained at every
learning rate of ``--lrs`` and the one with the best NLL on a separate validation set is
reported, so both get the same tuning budget. The residual flow trains with its default log-det estimator (unbiased
Russian roulette with the Neumann gradient); test NLLs are computed in eval mode, where the
residual blocks use the exact log-det (D = 2). Reported: test NLL ± standard error on fresh
samples, the true entropy (the best possible NLL), the gap residual - coupling (target: at most
0.1 nats), wall time, parameter counts, the largest Lipschitz bound of the residual blocks and
the round-trip error of the fixed-point inverse on test points.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch

import innverse
from _common import write_results
from innverse.blocks import lipschitz_bounds
from innverse.tasks import density


def train(flow, target, steps: int, batch: int, lr: float, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    flow.train()
    with torch.no_grad():
        flow.log_prob(target.sample(batch, gen).float())  # ActNorm data initialisation
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    for step in range(steps):
        loss = -flow.log_prob(target.sample(batch, gen).float()).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        sched.step()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"non-finite loss at step {step}")
    return time.perf_counter() - start


def evaluate(flow, test: torch.Tensor) -> tuple[float, float]:
    flow.eval()
    with torch.no_grad():
        lp = torch.cat([flow.log_prob(chunk) for chunk in test.float().split(5000)])
    return float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def run_task(task: tuple[str, str, float], args: argparse.Namespace) -> dict:
    """Train one model (``kind``) at one learning rate on one density; score it on the
    validation and test sets (runs in a worker process)."""
    name, kind, lr = task
    torch.set_num_threads(args.threads)
    target = density(name)
    valid = target.sample(args.test_size, torch.Generator().manual_seed(20_000 + args.seed))
    test = target.sample(args.test_size, torch.Generator().manual_seed(10_000 + args.seed))
    torch.manual_seed(args.seed)
    if kind == "coupling":
        flow = innverse.flows.coupling_flow(2, blocks=args.coupling_blocks, hidden=tuple(args.coupling_hidden),
                                            seed=args.seed)
    else:
        flow = innverse.flows.residual_flow(2, blocks=args.residual_blocks, hidden=tuple(args.residual_hidden),
                                            coeff=args.coeff)
    seconds = train(flow, target, args.steps, args.batch, lr, args.seed)
    nll, se = evaluate(flow, test)
    entry = {"density": name, "kind": kind, "lr": lr, "nll": nll, "nll_se": se,
             "valid_nll": evaluate(flow, valid)[0], "train_seconds": seconds,
             "parameters": sum(p.numel() for p in flow.parameters())}
    if kind == "residual":
        entry["max_lipschitz_bound"] = max(lipschitz_bounds(flow).values())
        with torch.no_grad():
            z, _ = flow.transform(test[:2000].float())
            x2, _ = flow.transform.inverse(z)
        entry["round_trip_max_abs_error"] = float((x2 - test[:2000].float()).abs().max())
        entry["inverse_iterations_max"] = max(
            b.last_inverse.iterations for b in flow.modules() if getattr(b, "last_inverse", None))
    print(f"{name:16s} {kind:9s} lr {lr:g}: test NLL {nll:.4f} ± {se:.4f}, valid {entry['valid_nll']:.4f} "
          f"({seconds:.0f} s)", flush=True)
    return entry


def summarise(name: str, runs: list[dict]) -> dict:
    """Per model, the learning rate with the best validation NLL; the gap on the test set."""
    target = density(name)
    entropy, entropy_se = target.entropy()
    result: dict = {"density": name, "entropy": entropy, "entropy_se": entropy_se, "runs": runs}
    for kind in ("coupling", "residual"):
        result[kind] = min((r for r in runs if r["kind"] == kind), key=lambda r: r["valid_nll"])
    result["gap"] = result["residual"]["nll"] - result["coupling"]["nll"]
    result["gap_se"] = math.hypot(result["residual"]["nll_se"], result["coupling"]["nll_se"])
    result["within_0.1"] = result["gap"] <= 0.1
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--densities", nargs="+", default=["two_moons", "eight_gaussians", "rings"])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2],
                    help="learning rates tried for both models; the best on validation data is reported")
    ap.add_argument("--coupling-blocks", type=int, default=8)
    ap.add_argument("--coupling-hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--residual-blocks", type=int, default=32)
    ap.add_argument("--residual-hidden", type=int, nargs="+", default=[32, 32])
    ap.add_argument("--coeff", type=float, default=0.97)
    ap.add_argument("--test-size", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="training runs in parallel processes")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. a partial rerun)")
    args = ap.parse_args()

    # residual runs first: they are the long ones
    tasks = [(name, kind, lr) for kind in ("residual", "coupling") for name in args.densities for lr in args.lrs]
    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            runs = list(pool.map(run_task, tasks, [args] * len(tasks)))
    else:
        runs = [run_task(task, args) for task in tasks]
    records = [summarise(name, [r for r in runs if r["density"] == name]) for name in args.densities]
    rows = []
    for r in records:
        c, res = r["coupling"], r["residual"]
        rows.append([r["density"], f"{r['entropy']:.3f}", f"{c['nll']:.3f} ± {c['nll_se']:.3f} ({c['lr']:g})",
                     f"{res['nll']:.3f} ± {res['nll_se']:.3f} ({res['lr']:g})",
                     f"{r['gap']:+.3f} ± {r['gap_se']:.3f}", "yes" if r["within_0.1"] else "NO",
                     f"{c['parameters']} / {res['parameters']}",
                     f"{c['train_seconds']:.0f} / {res['train_seconds']:.0f}",
                     f"{res['max_lipschitz_bound']:.3f}", f"{res['round_trip_max_abs_error']:.1e}",
                     res["inverse_iterations_max"]])
    header = ["density", "entropy", "coupling NLL (lr)", "residual NLL (lr)", "gap (res - coup)", "<= 0.1",
              "params (coup / res)", "train s (coup / res)", "max Lip", "round trip", "inverse iters"]
    every = markdown_table(["density", "model", "lr", "test NLL", "valid NLL", "train s"], [
        [r["density"], r["kind"], f"{r['lr']:g}", f"{r['nll']:.3f} ± {r['nll_se']:.3f}", f"{r['valid_nll']:.3f}",
         f"{r['train_seconds']:.0f}"] for r in runs])
    config = vars(args) | {"torch": torch.__version__}
    text = (f"Residual flow vs coupling flow on the 2-D densities. Config: `{config}`\n\n"
            f"Test NLL in nats on {args.test_size} fresh samples (± standard error); for each model the "
            f"learning rate with the best NLL on a separate validation set is reported. Training times "
            f"are wall-clock on a shared machine (noisy; the residual flow needs several "
            f"vector-Jacobian products per block and step).\n\n{markdown_table(header, rows)}\n\n"
            f"All runs:\n\n{every}")
    print(text)
    if not args.no_write:
        write_results("residual_density" + (f"_{args.tag}" if args.tag else ""), {"config": config, "results": records}, text)


if __name__ == "__main__":
    main()
