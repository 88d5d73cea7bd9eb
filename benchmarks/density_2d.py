"""Density estimation on 2-D densities with exact log-densities: innverse vs FrEIA vs zuko.

Every model gets the same budget: ``--steps`` Adam steps (cosine schedule) on fresh batches of
``--batch`` samples from the true density, 8 coupling blocks with 2 x 128 ReLU subnets. The
score is the held-out negative log-likelihood (nats) on 100,000 test points; the best possible
value is the true differential entropy, estimated by Monte Carlo from the exact log-density.

Rows: affine couplings (innverse, FrEIA, zuko RealNVP-style coupling) and rational-quadratic
spline couplings (innverse, zuko NSF with two passes = coupling; FrEIA has no splines).

    PYTHONPATH=src .venv-peers/bin/python benchmarks/density_2d.py
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from _common import machine_tag, write_results
from innverse.flows import coupling_flow
from innverse.tasks import density

BLOCKS = 8
HIDDEN = (128, 128)


def mlp(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(i, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                         nn.Linear(HIDDEN[1], o))


def innverse_model(kind: str):
    flow = coupling_flow(2, blocks=BLOCKS, hidden=HIDDEN, coupling=kind, bound=4.0)
    return flow.parameters(), flow.log_prob


def freia_model(kind: str):
    if kind != "affine":
        return None
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    inn = Ff.SequenceINN(2)
    for i in range(BLOCKS):
        inn.append(Fm.AffineCouplingOneSided, subnet_constructor=mlp, clamp=2.0, clamp_activation="TANH")
        inn.append(Fm.PermuteRandom, seed=i)

    def log_prob(x):
        z, jac = inn(x)
        return -0.5 * z.square().sum(1) - math.log(2 * math.pi) + jac

    return inn.parameters(), log_prob


def zuko_model(kind: str):
    import zuko

    if kind == "affine":
        flow = zuko.flows.MAF(2, transforms=BLOCKS, passes=2, hidden_features=HIDDEN)
    else:
        flow = zuko.flows.NSF(2, transforms=BLOCKS, passes=2, hidden_features=HIDDEN, bins=8)
    return flow.parameters(), lambda x: flow().log_prob(x)


LIBS = {"innverse": innverse_model, "FrEIA": freia_model, "zuko": zuko_model}


def train_and_score(make, kind: str, target, steps: int, batch: int, seed: int) -> dict | None:
    torch.manual_seed(seed)
    built = make(kind)
    if built is None:
        return None
    params, log_prob = built
    params = list(params)
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    nonfinite = 0
    for _ in range(steps):
        x = target.sample(batch, gen).float()
        loss = -log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            nonfinite += 1
            continue
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        sched.step()
    elapsed = time.perf_counter() - start
    test = target.sample(100_000, torch.Generator().manual_seed(10_000 + seed)).float()
    with torch.no_grad():
        lp = torch.cat([log_prob(chunk) for chunk in test.split(10_000)])
    nll = float(-lp.mean())
    return {"nll": nll, "nll_se": float(lp.std() / math.sqrt(len(lp))), "train_s": elapsed,
            "skipped_nonfinite": nonfinite}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--densities", nargs="+", default=["two_moons", "eight_gaussians", "rings", "checkerboard"])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--libs", nargs="+", default=list(LIBS))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name in args.densities:
        target = density(name)
        entropy, ent_se = target.entropy(200_000, seed=1)
        for kind in ("affine", "spline"):
            for lib in args.libs:
                try:
                    res = train_and_score(LIBS[lib], kind, target, args.steps, args.batch, args.seed)
                except ImportError as err:
                    print(f"{lib}: not installed ({err})")
                    continue
                if res is None:
                    continue
                row = {"density": name, "coupling": kind, "library": lib, "entropy": entropy,
                       "entropy_se": ent_se, "gap": res["nll"] - entropy, **res}
                rows.append(row)
                print(f"{name:16s} {kind:7s} {lib:9s} NLL {res['nll']:.4f} (entropy {entropy:.4f}, "
                      f"gap {row['gap']:+.4f}) {res['train_s']:.0f} s", flush=True)

    lines = ["| density | coupling | library | test NLL | entropy | gap (nats) | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['density']} | {r['coupling']} | {r['library']} | {r['nll']:.4f} ± {r['nll_se']:.4f} "
                     f"| {r['entropy']:.4f} ± {r['entropy_se']:.4f} | {r['gap']:+.4f} | {r['train_s']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_save:
        meta = {"steps": args.steps, "batch": args.batch, "blocks": BLOCKS, "hidden": HIDDEN,
                "threads": args.threads, "machine": machine_tag(), "torch": torch.__version__}
        write_results("density_2d", {"meta": meta, "rows": rows}, table)


if __name__ == "__main__":
    main()
