"""Sampling and density throughput of an identical conditional masked autoregressive flow (MAF).

A MAF evaluates densities in one pass but samples sequentially: feature ``k`` needs features
``< k``. The peers run ``D`` full passes of the masked network (every output from every input);
innverse computes, in pass ``k``, only the hidden units of degree ``k`` (which no later feature
changes) and feature ``k``'s outputs, so the ``D`` passes cost about one (``MADE.sequential``).

Architecture (every library): ``blocks`` x [masked affine autoregressive layer, random
permutation], each MADE ``D (+ context) -> H -> H -> 2D`` with ReLU, float32, a standard normal
base. innverse's layers also carry its direct masked linear path (``linear_skip``), a little
more work than the peers'. Measured in the same process, interleaved over rounds:

* ``sample``: ``N`` samples without gradient, one per context row (``N`` different contexts),
* ``log_prob``: log-density of ``N`` points without gradient.

Peers: zuko (``zuko.flows.MAF``) and nflows (``MaskedAffineAutoregressiveTransform``), whichever
import. normflows is left out: its MAF is nflows' code, and its MADE takes a context only with
residual blocks, a different network.

Run (peers live in the benchmark environment)::

    PYTHONPATH=src .venv-peers/bin/python benchmarks/maf_sampling.py --rounds 5

Writes ``benchmarks/results/maf_sampling_<date>_<machine>.{json,md}``.
"""

from __future__ import annotations

import argparse

import torch

from _common import build, interleaved, machine_tag, write_results

# (D, context) cases: the Bernoulli GLM posteriors (10 parameters; 10 summary statistics or 100
# raw features) and a wider one
CASES = [(10, 10), (10, 100), (32, 8)]


class Model:
    """Uniform interface: log_prob(x, c) and sample(c) (one sample per context row)."""

    def __init__(self, module, log_prob, sample) -> None:
        self.module = module
        self.log_prob = log_prob
        self.sample = sample


def make_innverse(d: int, ctx: int, blocks: int, hidden: int) -> Model:
    import innverse

    flow = innverse.flows.coupling_flow(d, ctx, blocks=blocks, hidden=(hidden, hidden), coupling="autoregressive")
    return Model(flow, flow.log_prob, lambda c: flow.sample(1, c)[0])


def make_zuko(d: int, ctx: int, blocks: int, hidden: int) -> Model:
    import zuko

    flow = zuko.flows.MAF(d, ctx, transforms=blocks, hidden_features=(hidden, hidden), randperm=True)
    return Model(flow, lambda x, c: flow(c).log_prob(x), lambda c: flow(c).sample())


def make_nflows(d: int, ctx: int, blocks: int, hidden: int) -> Model:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, MaskedAffineAutoregressiveTransform, RandomPermutation

    layers = []
    for _ in range(blocks):  # num_blocks=1 without residual blocks: two hidden layers, like the others
        layers += [MaskedAffineAutoregressiveTransform(d, hidden, context_features=ctx, num_blocks=1,
                                                       use_residual_blocks=False), RandomPermutation(d)]
    flow = Flow(CompositeTransform(layers), StandardNormal([d]))
    return Model(flow, lambda x, c: flow.log_prob(x, context=c), lambda c: flow.sample(1, context=c)[:, 0])


LIBRARIES = {"innverse": make_innverse, "zuko": make_zuko, "nflows": make_nflows}


def perturb(module: torch.nn.Module) -> None:
    """Move every library off its identity initialisation, so samples are not trivially the base's."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def bench_case(d: int, ctx: int, n: int, blocks: int, hidden: int, libs: list[str], rounds: int) -> dict:
    torch.manual_seed(0)
    x, c = torch.randn(n, d), torch.randn(n, ctx)
    models = build(LIBRARIES, libs, d, ctx, blocks, hidden)
    for m in models.values():
        perturb(m.module)
        m.module.eval()
        s = m.sample(c[:5])
        if tuple(s.shape) != (5, d):
            raise SystemExit(f"maf_sampling: {type(m.module).__name__} sampled shape {tuple(s.shape)}, expected (5, {d})")
    nograd = torch.no_grad()
    return interleaved({name: {
        "sample": (nograd(lambda m=m: m.sample(c)), 1),
        "log_prob": (nograd(lambda m=m: m.log_prob(x, c)), 3),
    } for name, m in models.items()}, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="samples / points per call")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--libs", nargs="+", default=list(LIBRARIES))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for d, ctx in CASES:
        print(f"D={d} context={ctx} ...", flush=True)
        res = bench_case(d, ctx, args.n, args.blocks, args.hidden, args.libs, args.rounds)
        for op in ("sample", "log_prob"):
            row = {"D": d, "context": ctx, "op": op, **{name: r[op] for name, r in res.items()},
                   "spread": {name: r["spread"][op] for name, r in res.items()}}
            peers = {name: r[op] for name, r in res.items() if name != "innverse"}
            if "innverse" in res and peers:
                best = min(peers, key=peers.get)
                row["fastest_peer"] = best
                row["innverse/fastest_peer"] = res["innverse"][op] / peers[best]
            rows.append(row)

    libs = [name for name in LIBRARIES if any(name in r for r in rows)]
    lines = ["| D | ctx | op | " + " | ".join(f"{name} (ms)" for name in libs) + " | innverse / fastest peer |",
             "|" + "---|" * (len(libs) + 4)]
    for r in rows:
        cells = [f"{1e3 * r[name]:.1f}" if name in r else "n/a" for name in libs]
        ratio = f"{r['innverse/fastest_peer']:.2f} ({r['fastest_peer']})" if "fastest_peer" in r else "n/a"
        lines.append(f"| {r['D']} | {r['context']} | {r['op']} | " + " | ".join(cells) + f" | {ratio} |")
    table = (f"{args.n} rows per call, {args.blocks} blocks, hidden ({args.hidden}, {args.hidden}), "
             f"{args.threads} thread(s); median of {args.rounds} interleaved rounds.\n\n" + "\n".join(lines))
    print(table)
    if not args.no_save:
        meta = {"threads": args.threads, "rounds": args.rounds, "n": args.n, "blocks": args.blocks,
                "hidden": args.hidden, "torch": torch.__version__, "machine": machine_tag()}
        write_results("maf_sampling", {"meta": meta, "rows": rows}, table)


if __name__ == "__main__":
    main()
