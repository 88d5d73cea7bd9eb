"""Throughput of an identical coupling flow in innverse, peer libraries and bare PyTorch.

Architecture (every library): 8 blocks of [one-sided affine coupling, random permutation], the
coupling's subnet an MLP ``d1 (+ context) -> 256 -> 256 -> 2 * d2`` with ReLU, soft-clamped
log-scales, float32, batch 512, D in {2, 16, 64}, plus conditional variants with 8 context
features. Measured in the same process, interleaved over rounds:

* ``train``: log_prob + backward + Adam step on a batch of 512,
* ``log_prob``: log_prob of a batch of 512 without gradient,
* ``sample``: 10,000 samples without gradient.

The ``bare`` row is the floor: the same Linear layers and elementwise maths written directly in
PyTorch, with no framework around them. Peers: FrEIA, zuko, nflows, normflows (whichever import).

Run (peers live in the benchmark environment)::

    PYTHONPATH=src .venv-peers/bin/python benchmarks/flows_throughput.py --rounds 7

Writes ``benchmarks/results/flows_throughput_<date>_<machine>.{json,md}``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch
from torch import nn

from _common import build, context_net, interleaved, machine_tag, train_step, write_results

HIDDEN = 256
BLOCKS = 8
BATCH = 512
N_SAMPLE = 10_000
CLAMP = 2.0
LOG2PI = math.log(2 * math.pi)


def mlp(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(i, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, o))


def perms(d: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(d, generator=g) for _ in range(BLOCKS)]


# --------------------------------------------------------------------------------- models -----
class Model:
    """Uniform interface: log_prob(x, c) and sample(n, c) for one library."""

    def __init__(self, params, log_prob: Callable, sample: Callable | None) -> None:
        self.params = list(params)
        self.log_prob = log_prob
        self.sample = sample


class Bare(nn.Module):
    """The floor: the coupling maths written out in plain PyTorch."""

    def __init__(self, d: int, ctx: int) -> None:
        super().__init__()
        self.d1 = d // 2
        self.d2 = d - self.d1
        self.nets = nn.ModuleList(mlp(self.d1 + ctx, 2 * self.d2) for _ in range(BLOCKS))
        p = perms(d)
        for i, q in enumerate(p):
            self.register_buffer(f"p{i}", q)
            self.register_buffer(f"q{i}", torch.argsort(q))
        self.d = d

    def log_prob(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        ld = 0.0
        for i, net in enumerate(self.nets):
            x1, x2 = x[:, : self.d1], x[:, self.d1:]
            h = net(x1 if c is None else torch.cat([x1, c], 1))
            s, t = h.chunk(2, 1)
            s = CLAMP * torch.tanh(s / CLAMP)
            x = torch.cat([x1, x2 * torch.exp(s) + t], 1).index_select(1, getattr(self, f"p{i}"))
            ld = ld + s.sum(1)
        return -0.5 * x.square().sum(1) - 0.5 * self.d * LOG2PI + ld

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, self.d)
        for i in reversed(range(BLOCKS)):
            z = z.index_select(1, getattr(self, f"q{i}"))
            z1, z2 = z[:, : self.d1], z[:, self.d1:]
            h = self.nets[i](z1 if c is None else torch.cat([z1, c], 1))
            s, t = h.chunk(2, 1)
            s = CLAMP * torch.tanh(s / CLAMP)
            z = torch.cat([z1, (z2 - t) * torch.exp(-s)], 1)
        return z


def make_bare(d: int, ctx: int) -> Model:
    m = Bare(d, ctx)
    return Model(m.parameters(), m.log_prob, m.sample)


def make_innverse(d: int, ctx: int) -> Model:
    import innverse

    flow = innverse.flows.coupling_flow(d, ctx, blocks=BLOCKS, hidden=(HIDDEN, HIDDEN), clamp=CLAMP)
    # conditional: one sample per context row, like the peers ((1, k, d) in the (n, k, d) convention)
    return Model(flow.parameters(), flow.log_prob,
                 lambda n, c: flow.sample(n) if c is None else flow.sample(1, c)[0])


def make_freia(d: int, ctx: int) -> Model:
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    inn = Ff.SequenceINN(d)
    p = perms(d)
    for i in range(BLOCKS):
        kw = {"cond": 0, "cond_shape": (ctx,)} if ctx else {}
        inn.append(Fm.AffineCouplingOneSided, subnet_constructor=mlp, clamp=CLAMP,
                   clamp_activation="TANH", **kw)
        inn.append(Fm.PermuteRandom, seed=i)
    del p

    def log_prob(x, c):
        z, jac = inn(x, c=[c] if ctx else [])
        return -0.5 * z.square().sum(1) - 0.5 * d * LOG2PI + jac

    @torch.no_grad()
    def sample(n, c):
        z = torch.randn(n, d)
        return inn(z, c=[c] if ctx else [], rev=True, jac=False)[0]

    return Model(inn.parameters(), log_prob, sample)


def make_zuko(d: int, ctx: int) -> Model:
    import zuko

    g = torch.Generator().manual_seed(0)
    transforms = []
    for _ in range(BLOCKS):
        mask = torch.zeros(d, dtype=torch.bool)
        mask[torch.randperm(d, generator=g)[: d // 2]] = True
        transforms.append(zuko.flows.GeneralCouplingTransform(d, ctx, mask=mask,
                                                              hidden_features=(HIDDEN, HIDDEN)))
    base = zuko.flows.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(d),
                                                torch.ones(d), buffer=True)
    flow = zuko.flows.Flow(transforms, base)

    def log_prob(x, c):
        return flow(c if ctx else None).log_prob(x)

    @torch.no_grad()
    def sample(n, c):
        return flow(c if ctx else None).sample(() if ctx else (n,))

    return Model(flow.parameters(), log_prob, sample)


def make_nflows(d: int, ctx: int) -> Model:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import AffineCouplingTransform, CompositeTransform, Permutation

    CondMLP = context_net(mlp, ctx)
    layers = []
    for p in perms(d):
        mask = torch.zeros(d)
        mask[d // 2:] = 1  # transform the second half, like the others
        layers += [AffineCouplingTransform(mask, CondMLP), Permutation(p)]
    flow = Flow(CompositeTransform(layers), StandardNormal([d]))

    def log_prob(x, c):
        return flow.log_prob(x, context=c if ctx else None)

    @torch.no_grad()
    def sample(n, c):
        return flow.sample(1 if ctx else n, context=c if ctx else None)

    return Model(flow.parameters(), log_prob, sample)


def make_normflows(d: int, ctx: int) -> Model | None:
    if ctx:
        return None  # normflows' affine coupling takes no context
    import normflows as nf

    flows = []
    for _ in range(BLOCKS):
        pm = nf.nets.MLP([d // 2, HIDDEN, HIDDEN, 2 * (d - d // 2)], init_zeros=True)
        flows += [nf.flows.AffineCouplingBlock(pm), nf.flows.Permute(d, mode="shuffle")]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(d, trainable=False), flows)

    @torch.no_grad()
    def sample(n, c):
        return model.sample(n)[0]

    return Model(model.parameters(), lambda x, c: model.log_prob(x), sample)


LIBRARIES = {"bare": make_bare, "innverse": make_innverse, "FrEIA": make_freia, "zuko": make_zuko,
             "nflows": make_nflows, "normflows": make_normflows}


# -------------------------------------------------------------------------------- timing -----
def bench_case(d: int, ctx: int, libs: list[str], rounds: int, reps: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(BATCH, d)
    c = torch.randn(BATCH, ctx) if ctx else None
    cs = torch.randn(N_SAMPLE, ctx) if ctx else None
    models = {name: (m, torch.optim.Adam(m.params, lr=1e-4)) for name, m in build(LIBRARIES, libs, d, ctx).items()}

    nograd = torch.no_grad()
    return interleaved({name: {
        "train": (lambda m=m, opt=opt: train_step(m.log_prob, opt, x, c), reps),
        "log_prob": (nograd(lambda m=m: m.log_prob(x, c)), reps),
        "sample": (lambda m=m: m.sample(N_SAMPLE, cs), max(1, reps // 4)),
    } for name, (m, opt) in models.items()}, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64])
    ap.add_argument("--context", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--libs", nargs="+", default=list(LIBRARIES))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cases = [(d, 0) for d in args.dims] + ([(d, args.context) for d in args.dims] if args.context else [])
    rows = []
    for d, ctx in cases:
        print(f"D={d} context={ctx} ...", flush=True)
        res = bench_case(d, ctx, args.libs, args.rounds, args.reps)
        for op in ("train", "log_prob", "sample"):
            peers = {n: r[op] for n, r in res.items() if n not in ("bare", "innverse")}
            row = {"D": d, "context": ctx, "op": op, **{n: r[op] for n, r in res.items()}}
            if "innverse" in res:
                if peers:
                    best = min(peers, key=peers.get)
                    row["fastest_peer"] = best
                    row["innverse/fastest_peer"] = res["innverse"][op] / peers[best]
                if "bare" in res:
                    row["innverse/bare"] = res["innverse"][op] / res["bare"][op]
            rows.append(row)

    libs = [n for n in LIBRARIES if any(n in r for r in rows)]
    header = "| D | ctx | op | " + " | ".join(f"{n} (ms)" for n in libs) + " | innverse/fastest peer | innverse/bare |"
    lines = [header, "|" + "---|" * (len(libs) + 5)]
    for r in rows:
        cells = [f"{1e3 * r[n]:.2f}" if n in r else "n/a" for n in libs]
        ratio_p = f"{r['innverse/fastest_peer']:.2f} ({r['fastest_peer']})" if "fastest_peer" in r else "n/a"
        ratio_b = f"{r['innverse/bare']:.2f}" if "innverse/bare" in r else "n/a"
        lines.append(f"| {r['D']} | {r['context']} | {r['op']} | " + " | ".join(cells) + f" | {ratio_p} | {ratio_b} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_save:
        meta = {"threads": args.threads, "rounds": args.rounds, "reps": args.reps, "batch": BATCH,
                "blocks": BLOCKS, "hidden": HIDDEN, "n_sample": N_SAMPLE, "torch": torch.__version__,
                "machine": machine_tag()}
        write_results("flows_throughput", {"meta": meta, "rows": rows}, table)


if __name__ == "__main__":
    main()
