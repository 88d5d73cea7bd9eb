"""Image-flow throughput (training and sampling images/s at batch 64) and training memory vs depth, with and without reversible backprop.

    PYTHONPATH=src .venv/bin/python benchmarks/image_throughput.py                  # CPU
    PYTHONPATH=src python benchmarks/image_throughput.py --device cuda              # GPU, when one exists

Models (float32, batch 64):

* ``glow``: unconditional ``image_flow((3, 32, 32), levels=3, blocks_per_level=4)``, 64-channel
  conv subnets, two dense couplings;
* ``cinn``: the colourisation cINN, ``image_flow((2, 32, 32), ConditionCNN((1, 32, 32)), levels=3,
  blocks_per_level=4)``, 32-channel subnets.

Training: one step = ``-log_prob(x, c).mean()``, backward, Adam step; sampling: ``sample_images``
without gradients. Median over ``--repeats`` timings of ``--steps`` calls, after a warm-up. On a
GPU the script also counts the FLOPs of one training step (``torch.utils.flop_counter``) and
reports the achieved FLOP/s as a fraction of the device's measured float32 matmul peak (a
8192x8192 matmul, TF32 off, and with TF32 on). Without ``--device cuda`` or without a CUDA device
the GPU part is skipped (stated in the output).

Memory: peak bytes allocated during one training step of ``glow`` at ``blocks_per_level`` 4, 8
(2x depth) and 16 (4x depth), ordinary vs ``reversible=True`` (memory-saving backprop per
level), measured as in ``benchmarks/reversible_memory.py`` (profiler allocation events on CPU,
``max_memory_allocated`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from _common import machine_tag, write_results
from image_common import parameters
from innverse.flows.image import image_flow
from innverse.flows.image_conditioning import ConditionCNN
from innverse.imaging import sample_images
from innverse.nets import conv_constructor
from reversible_memory import peak_memory

MiB = 2**20
BATCH = 64


def glow(blocks: int = 4, reversible: bool = False):
    return image_flow((3, 32, 32), levels=3, blocks_per_level=blocks, subnet=conv_constructor((64, 64)),
                      dense_blocks=2, reversible=reversible)


def cinn():
    net = ConditionCNN((1, 32, 32), (2, 32, 32), 3, width=16, global_features=32)
    return image_flow((2, 32, 32), net, levels=3, blocks_per_level=4, subnet=conv_constructor((32, 32)), dense_blocks=1)


def data(name: str, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    if name == "glow":
        return torch.rand(BATCH, 3, 32, 32, generator=gen).to(device), None
    return 0.2 * torch.randn(BATCH, 2, 32, 32, generator=gen).to(device), torch.rand(BATCH, 1, 32, 32, generator=gen).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, steps: int, repeats: int, device: torch.device) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def step_fn(flow, x, c):
    opt = torch.optim.Adam(flow.parameters(), 1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = -(flow.log_prob(x) if c is None else flow.log_prob(x, c)).mean()
        loss.backward()
        opt.step()

    return step


def throughput(name: str, device: torch.device, args) -> dict:
    torch.manual_seed(0)
    flow = (glow() if name == "glow" else cinn()).to(device)
    x, c = data(name, device)
    step = step_fn(flow, x, c)
    train_s = median_time(step, args.steps, args.repeats, device)
    flow.eval()
    gen = torch.Generator(device).manual_seed(1)
    cond = None if c is None else c
    sample_s = median_time(lambda: sample_images(flow, 1, cond, generator=gen) if cond is not None
                           else sample_images(flow, BATCH, generator=gen), args.steps, args.repeats, device)
    out = {"parameters": parameters(flow), "train_step_s": train_s, "train_images_per_s": BATCH / train_s,
           "sample_batch_s": sample_s, "sample_images_per_s": BATCH / sample_s}
    if device.type == "cuda":
        out |= flop_rate(flow, x, c, train_s)
    return out


def flop_rate(flow, x, c, step_s: float) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    flow.train()
    with FlopCounterMode(display=False) as counter:
        loss = -(flow.log_prob(x) if c is None else flow.log_prob(x, c)).mean()
        loss.backward()
    flops = counter.get_total_flops()
    return {"train_step_flops": flops, "train_flops_per_s": flops / step_s}


def matmul_peak(device: torch.device) -> dict:
    out = {}
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(8192, 8192, device=device)
        b = torch.randn(8192, 8192, device=device)
        s = median_time(lambda a=a, b=b: a @ b, 5, 3, device)
        out["fp32_tf32" if tf32 else "fp32"] = 2 * 8192**3 / s
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def memory(device: torch.device) -> dict:
    x, _ = data("glow", device)
    out = {}
    for blocks in (4, 8, 16):
        for reversible in (False, True):
            torch.manual_seed(0)
            flow = glow(blocks, reversible).to(device)
            flow.log_prob(x[:8])  # ActNorm's data-dependent initialisation outside the measured step

            def step(flow=flow):
                (-flow.log_prob(x).mean()).backward()

            step()
            flow.zero_grad(set_to_none=True)
            peak = peak_memory(step, device)
            out[f"{blocks}{'_reversible' if reversible else ''}"] = {
                "blocks_per_level": blocks, "reversible": reversible, "peak_MiB": peak / MiB,
                "parameters_MiB": sum(p.numel() * p.element_size() for p in flow.parameters()) / MiB}
            print(f"  memory blocks_per_level={blocks:2d} reversible={reversible!s:5}: {peak / MiB:8.1f} MiB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    gpu_note = "no GPU run requested (--device cuda)"
    if args.device == "cuda":
        if torch.cuda.is_available():
            devices, gpu_note = [torch.device("cuda")], torch.cuda.get_device_name(0)
        else:
            gpu_note = "skipped: --device cuda given but torch.cuda.is_available() is False"
            print(gpu_note)
    results, rows = {"gpu": gpu_note, "load_average": os.getloadavg()}, []
    for device in devices:
        peak = matmul_peak(device) if device.type == "cuda" else None
        for name in ("glow", "cinn"):
            r = throughput(name, device, args)
            if peak:
                r |= {"fraction_of_fp32_peak": r["train_flops_per_s"] / peak["fp32"],
                      "fraction_of_tf32_peak": r["train_flops_per_s"] / peak["fp32_tf32"], "matmul_peak": peak}
            results[f"{name}_{device.type}"] = r
            frac = f" | {r['fraction_of_fp32_peak']:.3f}" if peak else " | -"
            rows.append(f"| {name} | {device.type} | {r['parameters'] / 1e6:.2f}M | {r['train_images_per_s']:.1f} | "
                        f"{r['sample_images_per_s']:.1f}{frac} |")
            print(rows[-1], flush=True)
        results[f"memory_{device.type}"] = memory(device)
    mem = results[f"memory_{devices[-1].type}"]
    table = "\n".join([
        f"Batch {BATCH}, float32, {args.threads} threads; median of {args.repeats} x {args.steps} calls. "
        f"Load average during the run: {results['load_average'][0]:.1f} (shared machine). GPU: {gpu_note}.", "",
        "| model | device | parameters | training images/s | sampling images/s | fraction of fp32 matmul peak |",
        "|---|---|---|---|---|---|", *rows, "",
        f"Peak memory of one training step of glow ({devices[-1].type}, MiB): blocks_per_level 4 / 8 (2x) / 16 (4x).", "",
        "| backprop | 4 | 8 | 16 |", "|---|---|---|---|",
        "| ordinary | " + " | ".join(f"{mem[str(b)]['peak_MiB']:.0f}" for b in (4, 8, 16)) + " |",
        "| reversible | " + " | ".join(f"{mem[f'{b}_reversible']['peak_MiB']:.0f}" for b in (4, 8, 16)) + " |"])
    print(table)
    if not args.no_save:
        meta = vars(args) | {"machine": machine_tag(), "torch": torch.__version__}
        write_results("image_throughput" + ("_cuda" if devices[0].type == "cuda" else ""),
                      {"meta": meta, "results": results}, table)


if __name__ == "__main__":
    main()
