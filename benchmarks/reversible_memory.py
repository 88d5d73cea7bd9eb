"""Peak training memory and time of reversible (memory-saving) vs ordinary backprop.

    PYTHONPATH=src /work/main/.venv-peers/bin/python benchmarks/reversible_memory.py
    PYTHONPATH=src python benchmarks/reversible_memory.py --depths 4 16 --no-write   # no peers

Two networks on vectors (``--features`` wide, batch ``--batch``), each at depths 4, 16 and 64:

* ``glow``: depth x [ActNorm, AffineCoupling (MLP subnet), RandomPermutation], loss = NLL with
  the log-det; trained with ordinary backprop and with ``innverse.reversible.Reversible``.
* ``revnet``: depth x [AdditiveCoupling, swap of the halves] (volume preserving, loss =
  0.5 ||y||^2 = NLL + const): ordinary, ``Reversible``, and the same network built with memcnn
  (``InvertibleModuleWrapper`` around each of our blocks) and revlib (``ReversibleSequential`` of
  the same subnets, additive RevNet coupling), when those are installed.

Memory (CPU): every tensor allocation and free during one forward+backward step is recorded by
``torch.profiler`` (``profile_memory=True``); the running sum of these events from the start of
the step gives the exact peak of live tensor bytes allocated by the step, independent of
allocator caching, of the interpreter and of other processes (peak RSS would include all of
those). It works unchanged for the peer libraries. The parameters and the input exist before the
step and are not counted. Gradients are created during the step and are parameter-sized, so
"activation peak" = peak - parameter bytes (for ordinary backprop this slightly underestimates
the activations, whose peak comes before most gradients exist). A known 12 MiB allocation
pattern is measured as a self-check. On a GPU (``--device cuda``) the same quantities come from
``torch.cuda.max_memory_allocated``.

Time: median over ``--repeats`` steps, the configurations of one depth interleaved, after a
warm-up step; this machine is shared, so expect ~10-30% noise (stated in the output).

Gradients: reversible and peer gradients vs ordinary backprop on identical weights and data,
||g - g_ref|| / ||g_ref|| over all parameters (and for the worst single parameter), in float32
(the dtype of the run) and float64. The ``glow`` network also runs ``Reversible(...,
checkpoint_every=k)``, which keeps every k-th block input to bound float32 reconstruction error.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from _common import write_results
from innverse import blocks as B
from innverse.core import Sequence
from innverse.nets import MLP
from innverse.reversible import Reversible

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import memcnn
    except ImportError as err:  # reported in the output
        memcnn = None
        MEMCNN_ERROR = repr(err)
    try:
        import revlib
    except ImportError as err:
        revlib = None
        REVLIB_ERROR = repr(err)

MiB = 2**20


# -- memory measurement -------------------------------------------------------------------------------
def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes of tensors allocated (and still live) during ``fn()``, above the level before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and "CPU" in str(e.device_type())]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def _self_check(device: torch.device) -> float:
    def pattern():
        a = torch.empty(2**21, device=device)  # 8 MiB
        b = torch.ones(2**20, device=device)   # 4 MiB
        del a
        return b * 2

    return peak_memory(pattern, device) / MiB


# -- networks -------------------------------------------------------------------------------------------
def subnet(hidden: tuple[int, ...]):
    return lambda n_in, n_out: MLP(n_in, n_out, hidden, zero_init=False)


def glow(depth: int, features: int, hidden: tuple[int, ...]) -> Sequence:
    return Sequence([b for i in range(depth) for b in (
        B.ActNorm(features), B.AffineCoupling(features, subnet(hidden)), B.RandomPermutation(features, seed=i))])


def _swap(features: int) -> B.RandomPermutation:
    half = features // 2
    return B.RandomPermutation(features, permutation=list(range(half, features)) + list(range(half)))


def revnet(depth: int, features: int, hidden: tuple[int, ...]) -> Sequence:
    return Sequence([b for _ in range(depth) for b in (B.AdditiveCoupling(features, subnet(hidden)), _swap(features))])


class _MemcnnBlock(nn.Module):
    """Our coupling + swap with the forward/inverse interface memcnn expects (log-det 0)."""

    def __init__(self, coupling: B.AdditiveCoupling, swap: B.RandomPermutation) -> None:
        super().__init__()
        self.coupling, self.swap = coupling, swap

    def forward(self, x):
        return self.swap._forward(self.coupling._forward(x, None, False)[0], None, False)[0]

    def inverse(self, y):
        return self.coupling._inverse(self.swap._inverse(y, None, False)[0], None, False)[0]


def memcnn_net(seq: Sequence) -> nn.Module:
    blocks = list(seq)
    return nn.Sequential(*[
        memcnn.InvertibleModuleWrapper(_MemcnnBlock(blocks[i], blocks[i + 1]), keep_input=False,
                                       keep_input_inverse=False)
        for i in range(0, len(blocks), 2)])


def revlib_net(seq: Sequence) -> nn.Module:
    # revlib maps streams (x0, x1) -> (x1, x0 + f(x1)); with x0 = our second half and x1 = our
    # first half this is exactly our AdditiveCoupling followed by the swap.
    return revlib.ReversibleSequential(*[b.subnet for b in list(seq)[::2]], split_dim=1)


# -- one training step ---------------------------------------------------------------------------------
def step_fn(kind: str, impl: str, net: nn.Module, x: torch.Tensor) -> Callable[[], list]:
    params = list(net.parameters())
    half = x.shape[1] // 2

    def loss_of() -> torch.Tensor:
        if impl == "memcnn":
            y = net(x.clone().requires_grad_(True))  # memcnn frees its input's storage
            return 0.5 * y.square().sum(1).mean()
        if impl == "revlib":
            # revlib's backward accumulates parameter gradients as a side effect and needs an
            # input that requires grad to run at all
            y = net(torch.cat([x[:, half:], x[:, :half]], 1).requires_grad_(True))
            return 0.5 * y.square().sum(1).mean()
        y, ld = net(x)
        nll = 0.5 * y.square().sum(1) - ld
        return nll.mean()

    def step() -> list:
        for p in params:
            p.grad = None
        loss_of().backward()
        return [p.grad for p in params]

    return step


def rel_errors(grads: list, ref: list) -> tuple[float, float]:
    """(global, worst parameter) relative error ||g - g_ref|| / ||g_ref||."""
    worst = max(float((g - r).norm() / r.norm().clamp_min(1e-30)) for g, r in zip(grads, ref))
    flat, flat_ref = torch.cat([g.flatten() for g in grads]), torch.cat([r.flatten() for r in ref])
    return float((flat - flat_ref).norm() / flat_ref.norm()), worst


def build(kind: str, impl: str, depth: int, features: int, hidden: tuple[int, ...], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    seq = glow(depth, features, hidden) if kind == "glow" else revnet(depth, features, hidden)
    if impl == "ordinary":
        return seq
    if impl == "reversible":
        return Reversible(seq)
    if impl.startswith("reversible/k="):
        return Reversible(seq, checkpoint_every=int(impl.split("=")[1]))
    return memcnn_net(seq) if impl == "memcnn" else revlib_net(seq)


def run(args: argparse.Namespace) -> tuple[list[dict], str]:
    device = torch.device(args.device)
    dtype = torch.float32
    hidden = tuple(args.hidden)
    impls = {"glow": ["ordinary", "reversible", f"reversible/k={args.checkpoint_every}"],
             "revnet": ["ordinary", "reversible"]}
    if memcnn is not None:
        impls["revnet"].append("memcnn")
    if revlib is not None:
        impls["revnet"].append("revlib")
    records = []
    for kind in ("glow", "revnet"):
        for depth in args.depths:
            gen = torch.Generator().manual_seed(args.seed)
            x = torch.randn(args.batch, args.features, generator=gen).to(device, dtype)
            nets, steps = {}, {}
            for impl in impls[kind]:
                nets[impl] = build(kind, impl, depth, args.features, hidden, args.seed).to(device, dtype)
                if kind == "glow":  # ActNorm data initialisation, identical for every copy
                    with torch.no_grad():
                        nets[impl](x)
                steps[impl] = step_fn(kind, impl, nets[impl], x)
            ref = [g.clone() for g in steps["ordinary"]()]
            param_bytes = sum(p.numel() * p.element_size() for p in nets["ordinary"].parameters())
            grads32 = {impl: rel_errors(steps[impl](), ref) for impl in impls[kind]}
            grads64 = {}
            x64 = x.double()
            ref64 = None
            for impl in impls[kind]:
                net64 = copy.deepcopy(nets[impl]).double()
                g = step_fn(kind, impl, net64, x64)()
                if impl == "ordinary":
                    ref64 = [t.clone() for t in g]
                grads64[impl] = rel_errors(g, ref64)  # type: ignore[arg-type]
            peaks = {impl: peak_memory(steps[impl], device) for impl in impls[kind]}
            times: dict[str, list[float]] = {impl: [] for impl in impls[kind]}
            for impl in impls[kind]:
                steps[impl]()  # warm-up
            for _ in range(args.repeats):
                for impl in impls[kind]:
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    t0 = time.perf_counter()
                    steps[impl]()
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times[impl].append(time.perf_counter() - t0)
            for impl in impls[kind]:
                rec = {"network": kind, "depth": depth, "impl": impl, "peak_bytes": peaks[impl],
                       "param_bytes": param_bytes, "activation_peak_bytes": peaks[impl] - param_bytes,
                       "step_seconds_median": statistics.median(times[impl]),
                       "step_seconds_min": min(times[impl]), "step_seconds_all": times[impl],
                       "grad_rel_err_float32": grads32[impl][0], "grad_rel_err_float32_worst_param": grads32[impl][1],
                       "grad_rel_err_float64": grads64[impl][0], "grad_rel_err_float64_worst_param": grads64[impl][1]}
                records.append(rec)
                print(f"{kind:6s} depth {depth:3d} {impl:10s} peak {peaks[impl] / MiB:8.1f} MiB  "
                      f"act {(peaks[impl] - param_bytes) / MiB:8.1f} MiB  "
                      f"{rec['step_seconds_median'] * 1e3:8.1f} ms  grad err f32 {grads32[impl][0]:.1e} "
                      f"(worst {grads32[impl][1]:.1e}) f64 {grads64[impl][0]:.1e}", flush=True)
            del nets, steps
    return records, _table(records, args)


def _table(records: list[dict], args: argparse.Namespace) -> str:
    by = {(r["network"], r["depth"], r["impl"]): r for r in records}
    rows = []
    for r in records:
        base = by[(r["network"], r["depth"], "ordinary")]
        shallow = by.get((r["network"], min(args.depths), r["impl"]))
        growth = r["activation_peak_bytes"] / shallow["activation_peak_bytes"] if shallow else math.nan
        rows.append([r["network"], r["depth"], r["impl"].replace("|", "/"), f"{r['peak_bytes'] / MiB:.1f}",
                     f"{r['activation_peak_bytes'] / MiB:.1f}", f"{growth:.2f}",
                     f"{base['activation_peak_bytes'] / max(r['activation_peak_bytes'], 1):.1f}",
                     f"{r['step_seconds_median'] * 1e3:.1f}",
                     f"{r['step_seconds_median'] / base['step_seconds_median']:.2f}",
                     f"{r['grad_rel_err_float32']:.1e} ({r['grad_rel_err_float32_worst_param']:.1e})",
                     f"{r['grad_rel_err_float64']:.1e} ({r['grad_rel_err_float64_worst_param']:.1e})"])
    header = ["network", "depth", "impl", "peak MiB", "activation MiB",
              f"act / act(depth {min(args.depths)})", "act saving x", "step ms (median)",
              "time / ordinary", "grad err f32 (worst param)", "grad err f64 (worst param)"]
    return markdown_table(header, rows)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=8, help="k of the extra glow row")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    check = _self_check(device)
    peers = {"memcnn": memcnn.__version__ if memcnn is not None else f"not installed: {MEMCNN_ERROR}",
             "revlib": "installed" if revlib is not None else f"not installed: {REVLIB_ERROR}"}
    print(f"self-check: a 12 MiB allocation pattern measures {check:.2f} MiB; peers: {peers}", flush=True)
    records, table = run(args)
    config = vars(args) | {"torch": torch.__version__, "peers": peers, "self_check_mib": check}
    text = (f"Reversible vs ordinary backprop: peak training memory and time.\n\n"
            f"Config: `{config}`\n\nMemory: {'torch.cuda.max_memory_allocated' if device.type == 'cuda' else 'torch.profiler allocation events'}"
            f" (peak of live tensor bytes during one forward+backward step, parameters excluded "
            f"as described in the script). activation = peak - parameter bytes (the gradients). "
            f"Times: median of {args.repeats} interleaved steps on a shared machine (~10-30% noise).\n\n{table}")
    print(text)
    if not args.no_write:
        write_results("reversible_memory", {"config": config, "results": records}, text)


if __name__ == "__main__":
    main()
