"""Training step of a small conditional spline-coupling flow: innverse vs peer libraries.

The flows that amortized inference trains (a few parameters, a few data features) are small, so
on a CPU their training step costs mostly per-operation overhead, and the rational-quadratic
spline (~50 small operations per block) dominates it. innverse's spline records one autograd node
with a hand-written backward pass; the ``innverse (autograd)`` row runs the same flow with autograd
through the spline's plain operations instead, i.e. the same maths without that backward.

Architecture: 6 blocks of [spline coupling on half of the features, permutation], the coupling's
conditioner an MLP ``d1 + context -> 64 -> 64 -> params`` with ReLU, 8 bins, linear tails, 8
context features, float32, one torch thread. Differences that each library's API imposes:
zuko's spline bound is 5 (others 4); normflows' conditioner is its residual network with one
residual block (4 linear layers instead of 3).

* ``train``: log_prob + backward + Adam step on one batch,
* ``log_prob``: log_prob of the batch without gradient. Without gradient both innverse rows run the
  same code, so their ``log_prob`` ratio shows the timing noise of the run.

Measured in one process, interleaved over rounds (median of rounds, each the mean of ``--reps``).

Run (peers live in the benchmark environment)::

    PYTHONPATH=src .venv-peers/bin/python benchmarks/spline_step.py --rounds 7

Writes ``benchmarks/results/spline_step_<date>_<machine>.{json,md}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from _common import build, context_net, interleaved, machine_tag, train_step, write_results

HIDDEN = 64
BLOCKS = 6
BINS = 8
BOUND = 4.0


def mlp(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(i, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, o))


def make_innverse(d: int, ctx: int) -> tuple[list, Callable]:
    import innverse

    flow = innverse.flows.coupling_flow(d, ctx, blocks=BLOCKS, hidden=(HIDDEN, HIDDEN), coupling="spline",
                                        bins=BINS, bound=BOUND)
    flow.validate_args = False
    return list(flow.parameters()), flow.log_prob


def make_innverse_autograd(d: int, ctx: int) -> tuple[list, Callable]:
    from innverse.blocks import _rqs, transformers

    params, log_prob = make_innverse(d, ctx)

    def plain(v, theta, cfg, inverse):  # autograd through the spline's plain operations
        out, ld, _ = _rqs._spline(v, theta, cfg, inverse)
        return out, ld

    def run(x, c):
        saved, transformers.rq_spline = transformers.rq_spline, plain
        try:
            return log_prob(x, c)
        finally:
            transformers.rq_spline = saved

    return params, run


def make_nflows(d: int, ctx: int) -> tuple[list, Callable]:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, Permutation
    from nflows.transforms.coupling import PiecewiseRationalQuadraticCouplingTransform

    CondMLP = context_net(mlp, ctx)
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(BLOCKS):
        mask = torch.zeros(d)
        mask[d // 2:] = 1
        layers += [PiecewiseRationalQuadraticCouplingTransform(mask, CondMLP, num_bins=BINS, tails="linear",
                                                               tail_bound=BOUND),
                   Permutation(torch.randperm(d, generator=g))]
    flow = Flow(CompositeTransform(layers), StandardNormal([d]))
    return list(flow.parameters()), lambda x, c: flow.log_prob(x, context=c)


def make_zuko(d: int, ctx: int) -> tuple[list, Callable]:
    from functools import partial

    import zuko

    g = torch.Generator().manual_seed(0)
    transforms = []
    for _ in range(BLOCKS):
        mask = torch.zeros(d, dtype=torch.bool)
        mask[torch.randperm(d, generator=g)[: d // 2]] = True
        transforms.append(zuko.flows.GeneralCouplingTransform(
            d, ctx, mask=mask, univariate=partial(zuko.transforms.MonotonicRQSTransform),
            shapes=[(BINS,), (BINS,), (BINS - 1,)], hidden_features=(HIDDEN, HIDDEN)))
    base = zuko.flows.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(d), torch.ones(d),
                                                buffer=True)
    flow = zuko.flows.Flow(transforms, base)
    return list(flow.parameters()), lambda x, c: flow(c).log_prob(x)


def make_normflows(d: int, ctx: int) -> tuple[list, Callable]:
    import normflows as nf

    flows = []
    for _ in range(BLOCKS):
        flows += [nf.flows.CoupledRationalQuadraticSpline(d, 1, HIDDEN, num_context_channels=ctx, num_bins=BINS,
                                                          tail_bound=BOUND),
                  nf.flows.Permute(d, mode="shuffle")]
    model = nf.ConditionalNormalizingFlow(nf.distributions.DiagGaussian(d, trainable=False), flows)
    return list(model.parameters()), lambda x, c: model.log_prob(x, c)


LIBRARIES = {"innverse": make_innverse, "innverse (autograd)": make_innverse_autograd, "nflows": make_nflows,
             "zuko": make_zuko, "normflows": make_normflows}



def bench_case(d: int, ctx: int, batch: int, libs: list[str], rounds: int, reps: int) -> dict:
    torch.manual_seed(0)
    x, c = torch.randn(batch, d), torch.randn(batch, ctx)
    models = {name: (log_prob, torch.optim.Adam(params, lr=1e-4))
              for name, (params, log_prob) in build(LIBRARIES, libs, d, ctx).items()}

    nograd = torch.no_grad()
    return interleaved({name: {
        "train": (lambda f=log_prob, o=opt: train_step(f, o, x, c), reps),
        "log_prob": (nograd(lambda f=log_prob: f(x, c)), reps),
    } for name, (log_prob, opt) in models.items()}, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 10])
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--context", type=int, default=8)
    ap.add_argument("--libs", nargs="+", default=list(LIBRARIES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # torch imports its compiler stack lazily at the first optimiser step; not part of any timing
    p = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([p]).step()

    results, lines = [], []
    names = [n for n in args.libs if n in LIBRARIES]
    lines.append("| D | batch | op | " + " | ".join(f"{n} (ms)" for n in names)
                 + " | innverse / fastest peer | innverse / innverse (autograd) |")
    lines.append("|---" * (4 + len(names) + 1) + "|")
    for d in args.dims:
        for batch in args.batches:
            print(f"== D={d} batch={batch}", flush=True)
            case = bench_case(d, args.context, batch, names, args.rounds, args.reps)
            results.append({"d": d, "batch": batch, "context": args.context, "times_s": case})
            for op in ("train", "log_prob"):
                cells = [f"{case[n][op] * 1e3:.2f}" if n in case else "n/a" for n in names]
                peers = {n: case[n][op] for n in case if not n.startswith("innverse")}
                best = min(peers, key=peers.get) if peers else None
                ratio = f"{case['innverse'][op] / peers[best]:.2f} ({best})" if best and "innverse" in case else "n/a"
                own = (f"{case['innverse'][op] / case['innverse (autograd)'][op]:.2f}"
                       if {"innverse", "innverse (autograd)"} <= set(case) else "n/a")
                lines.append(f"| {d} | {batch} | {op} | " + " | ".join(cells) + f" | {ratio} | {own} |")
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    write_results("spline_step", {"machine": machine_tag(), "threads": args.threads, "rounds": args.rounds,
                                  "reps": args.reps, "blocks": BLOCKS, "hidden": HIDDEN, "bins": BINS,
                                  "results": results}, table)
    print(table)


if __name__ == "__main__":
    main()
