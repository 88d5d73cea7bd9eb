"""Inverse problems: split-latent INN vs conditional INN vs point regressor, against reference posteriors.

    nice python benchmarks/inverse_problems.py                  # all three tasks, full budget
    python benchmarks/inverse_problems.py --tasks inverse_kinematics --steps 500 --targets 20  # smoke

For each task (8-modes toy, 4-DOF inverse kinematics, ballistics with drag; Ardizzone et al. 2019,
Kruse et al. 2021) the three models are trained on the same simulated pairs (x, y = s(x)) with
the same budget (steps, batch size, learning-rate schedule, seed) and matched parameter counts
(the cINN's and the regressor's hidden widths are solved for the split-latent INN's count).
Each is then scored against a reference posterior for ``--targets`` observations y* drawn from
the prior predictive (the analytic posterior for the 8-modes toy, rejection ABC over
``--abc-simulations`` prior simulations otherwise):

* MMD^2 (Gaussian kernel, bandwidth by the median heuristic on the reference, x standardised by
  the prior std) and C2ST accuracy (0.5 = indistinguishable), averaged over targets;
* re-simulation error: mean over targets and samples of |s(x_hat) - y*| (Euclidean, y units);
* calibration error: mean over credible levels q in {0.05, ..., 0.95} and parameters of
  |coverage(q) - q|, with coverage the fraction of true x* inside the central q-interval;
* spread: mean posterior standard deviation (over parameters and targets), next to the
  reference's; a point estimate has zero spread and so ignores the ambiguity;
* training time (wall clock, single thread) and parameter count.

Times on this shared 2-core machine are noisy (other jobs run alongside); compare them only
within one run. Results: JSON and a Markdown table under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import write_results
from innverse.diagnostics import c2st, credibility_central, median_bandwidth, mmd
from innverse.inverse import (
    ConditionalINN,
    PointRegressor,
    SplitLatentINN,
    hidden_width_for,
    train_conditional_inn,
    train_regressor,
    train_split_latent,
)
from innverse.tasks import AbstractInverseTask, Ballistics, EightModes, InverseKinematics, abc_reference
from innverse.train import TrainConfig

TASKS = {"eight_modes": EightModes, "inverse_kinematics": InverseKinematics, "ballistics": Ballistics}
LEVELS = np.round(np.arange(0.05, 0.951, 0.05), 10)


def reference(task: AbstractInverseTask, y_star: torch.Tensor, n: int, args) -> tuple[torch.Tensor, str]:
    """Reference posterior samples ``(n, k, x_dim)`` and how they were obtained."""
    if isinstance(task, EightModes):
        return task.reference_posterior(y_star, n, torch.Generator().manual_seed(args.seed + 7)), "analytic"
    ref = abc_reference(task, y_star, n_keep=n, n_simulations=args.abc_simulations, seed=args.seed + 7)
    eps = ref.epsilon.median().item()
    return ref.samples, f"ABC, {args.abc_simulations:.0e} simulations, median eps {eps:.3g} (scaled y)"


def build(task: AbstractInverseTask, args) -> dict[str, torch.nn.Module]:
    """The three models with matched parameter counts."""
    z_dim = 2 if isinstance(task, EightModes) else None
    sl = SplitLatentINN(task.x_dim, task.y_dim, z_dim=z_dim, blocks=args.blocks,
                        hidden=(args.hidden, args.hidden), seed=args.seed)
    target = sl.num_parameters()
    wc = hidden_width_for(target, lambda h: ConditionalINN(task.x_dim, task.y_dim, args.blocks,
                                                           (h, h)).num_parameters())
    wr = hidden_width_for(target, lambda h: PointRegressor(task.x_dim, task.y_dim, (h, h, h)).num_parameters())
    return {"split-latent INN": sl,
            "conditional INN": ConditionalINN(task.x_dim, task.y_dim, args.blocks, (wc, wc), seed=args.seed),
            "regressor": PointRegressor(task.x_dim, task.y_dim, (wr, wr, wr))}


def budget(args) -> TrainConfig:
    """The same budget for every model: ``--steps`` minibatches of ``--batch`` pairs (whole epochs), Adam with a
    cosine decay of ``--lr`` to 2% and no warm-up, no weight averaging, the last weights kept."""
    epochs = max(1, round(args.steps * args.batch / args.train_size))
    return TrainConfig(epochs=epochs, batch_size=args.batch, lr=args.lr, seed=args.seed, warmup=0.0,
                       final_lr_fraction=0.02, clip_grad=10.0, weight_decay=1e-5, ema=None, restore_best=False,
                       patience=None)


def train(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, budget: TrainConfig):
    fn = {"split-latent INN": train_split_latent, "conditional INN": train_conditional_inn,
          "regressor": train_regressor}[name]
    return fn(model, x.float(), y.float(), budget)


def evaluate(task: AbstractInverseTask, samples: torch.Tensor, ref: torch.Tensor, x_star: torch.Tensor,
             y_star: torch.Tensor, prior_std: torch.Tensor, seed: int) -> dict[str, float]:
    """Scores of posterior samples ``(n, k, D)`` against reference samples ``(n, k, D)``."""
    n, k, d = samples.shape
    samples = samples.double()
    sim = task.simulate(samples.reshape(-1, d)).reshape(n, k, -1)
    err = (sim - y_star[None]).norm(dim=-1)
    finite = torch.isfinite(err)
    mmds, c2sts = [], []
    # The 8-modes targets repeat (4 colours): score each distinct target once, weight by count.
    _, first, counts = np.unique(y_star.numpy(), axis=0, return_index=True, return_counts=True)
    for j, c in zip(first, counts):
        a, b = ref[:, j] / prior_std, samples[:, j] / prior_std
        bw = median_bandwidth(a)
        mmds += [mmd(a, b, bandwidth=bw)] * int(c)
        c2sts += [c2st(a, b, seed=seed)] * int(c)
    cred = credibility_central(samples, x_star, seed=seed).numpy()            # (k, D)
    coverage = (cred[None] <= LEVELS[:, None, None]).mean(1)                  # (levels, D)
    return {"mmd": float(np.mean(mmds)), "c2st": float(np.mean(c2sts)),
            "resim_error": float(err[finite].mean()), "resim_nonfinite": float(1 - finite.double().mean()),
            "calibration_error": float(np.abs(coverage - LEVELS[:, None]).mean()),
            "spread": float(samples.std(0).mean())}


def run_task(name: str, args) -> dict:
    task = TASKS[name]()
    x, y = task.sample_joint(args.train_size, torch.Generator().manual_seed(args.seed))
    x_star, y_star = task.sample_joint(args.targets, torch.Generator().manual_seed(args.seed + 1))
    prior_std = task.sample_prior(100_000, torch.Generator().manual_seed(args.seed + 2)).std(0)
    t0 = time.perf_counter()
    ref, how = reference(task, y_star, args.posterior_samples, args)
    ref_seconds = time.perf_counter() - t0
    sim = task.simulate(ref.reshape(-1, task.x_dim)).reshape(ref.shape[0], args.targets, -1)
    rows = {"reference": {"how": how, "seconds": ref_seconds, "spread": float(ref.std(0).mean()),
                          "resim_error": float((sim - y_star).norm(dim=-1).mean())}}
    for model_name, model in build(task, args).items():
        torch.manual_seed(args.seed)
        history = train(model_name, model, x, y, budget(args))
        t1 = time.perf_counter()
        samples = model.sample(args.posterior_samples, y_star.float(), torch.Generator().manual_seed(args.seed + 3))
        sample_seconds = time.perf_counter() - t1
        scores = evaluate(task, samples, ref, x_star, y_star, prior_std, args.seed)
        rows[model_name] = {**scores, "train_seconds": history.seconds, "sample_seconds": sample_seconds,
                            "parameters": model.num_parameters(), "final_loss": history.final()}
        print(f"  {name:>18} {model_name:>17}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in rows[model_name].items() if isinstance(v, float)), flush=True)
    return rows


def table(results: dict) -> str:
    cols = ["mmd", "c2st", "resim_error", "calibration_error", "spread", "train_seconds", "parameters"]
    head = "| task | model | MMD² | C2ST | re-sim error | calibration error | spread | train s | params |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for task, rows in results.items():
        ref = rows["reference"]
        lines.append(f"| {task} | reference ({ref['how']}) | 0 | 0.5 | {ref['resim_error']:.4f} | – | "
                     f"{ref['spread']:.4f} | – | – |")
        for model, r in rows.items():
            if model == "reference":
                continue
            cells = [f"{r['mmd']:.4f}", f"{r['c2st']:.3f}", f"{r['resim_error']:.4f}",
                     f"{r['calibration_error']:.3f}", f"{r['spread']:.4f}", f"{r['train_seconds']:.0f}",
                     f"{r['parameters']}"]
            lines.append(f"| {task} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=64, help="hidden width of the split-latent INN")
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--posterior-samples", type=int, default=500)
    ap.add_argument("--abc-simulations", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    start = time.perf_counter()
    for name in args.tasks:
        print(f"== {name}", flush=True)
        results[name] = run_task(name, args)
    text = table(results)
    print(text)
    if not args.no_save:
        write_results("inverse_problems", {"args": vars(args), "results": results,
                                           "total_seconds": time.perf_counter() - start,
                                           "torch": torch.__version__, "threads": args.threads,
                                           "levels": LEVELS.tolist()}, text)


if __name__ == "__main__":
    main()
