"""Training and sampling throughput in float32, bfloat16 and float16, eager and under ``torch.compile``.

Two models: the amortized estimator (``fit_posterior``'s conditional spline/affine flow with an MLP
summary network, 5 parameters, 50-D observations) and a conditional image flow
(``innverse.flows.image_flow``, 2 levels, 1x16x16 images). For each precision
(``TrainConfig(precision=...)``'s autocast; float16 only where the device runs it) and each mode
(eager; ``torch.compile`` of the loss function, the compile time reported separately), the rows
per second of a full optimiser step (forward, backward, update) after warm-up, and the samples per
second of the estimator's posterior. On CUDA the script also measures the device's dense matmul
rate (a float32/bfloat16 matmul of 8192 x 8192) and reports each model's step as a fraction of it
(a rough utilisation figure: flows are many small matmuls, far below the peak).

    PYTHONPATH=src nice .venv/bin/python benchmarks/precision_compile.py [--device cuda] [--quick]

Every figure is the fastest of ``--reps`` timed windows; ratios to eager float32 come from the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from _common import machine_tag, write_results
from innverse.amortized import box_uniform, fit_posterior
from innverse.flows import image_flow
from innverse.train.precision import LossScaler, autocast


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], None], device: torch.device, steps: int, reps: int) -> float:
    """Seconds per call: the fastest of ``reps`` windows of ``steps`` calls."""
    best = float("inf")
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        synchronize(device)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def estimator_model(device: torch.device, batch: int):
    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-1.0, 1.0, dim=5)
    theta = prior.sample((2048,))
    x = torch.cat([theta.repeat(1, 10) + 0.1 * torch.randn(2048, 50, generator=gen)], 1)
    post = fit_posterior(theta, x, prior=prior, summary="mlp", training={"epochs": 1}, progress=False, seed=0)
    est = post.estimator.to(device).train()
    tb, xb = theta[:batch].to(device), x[:batch].to(device)

    def loss() -> torch.Tensor:
        return -est.log_prob(tb, xb).mean()

    def sample() -> None:
        with torch.no_grad():
            post.sample(batch, x[0])

    return est, loss, sample


def image_model(device: torch.device, batch: int):
    torch.manual_seed(0)
    flow = image_flow((1, 16, 16), levels=2, blocks_per_level=4, condition_shape=(1, 8, 8)).to(device).train()
    xb = torch.rand(batch, 1, 16, 16, device=device)
    cb = torch.nn.functional.avg_pool2d(xb, 2)

    def loss() -> torch.Tensor:
        return -flow.log_prob(xb, cb).mean()

    return flow, loss, None


def step_fn(model: torch.nn.Module, loss: Callable[[], torch.Tensor], precision: str, device: torch.device):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = LossScaler(precision == "float16")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, device):
            value = loss().float()
        (value * scaler.scale).backward()
        if scaler.enabled:
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.div_(scaler.scale)
        opt.step()

    return step


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, 10, 3)
    return 2 * n**3 / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer steps, no torch.compile")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = 5 if args.quick else args.steps
    precisions = ["float32", "bfloat16"] + (["float16"] if device.type == "cuda" else [])
    modes = ["eager"] + ([] if args.quick or args.no_compile else ["compile"])
    peak = {p: matmul_rate(device, {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                    "float16": torch.float16}[p]) for p in precisions}
    rows = []
    for name, build in (("amortized estimator", estimator_model), ("conditional image flow", image_model)):
        for precision in precisions:
            for mode in modes:
                model, loss, sample = build(device, args.batch)
                compile_s = None
                if mode == "compile":
                    t0 = time.perf_counter()
                    loss = torch.compile(loss)
                    step_fn(model, loss, precision, device)()       # the first call compiles
                    synchronize(device)
                    compile_s = time.perf_counter() - t0
                step = step_fn(model, loss, precision, device)
                step()
                seconds = timed(step, device, steps, args.reps)
                row = {"model": name, "precision": precision, "mode": mode, "rows_per_s": args.batch / seconds,
                       "step_ms": 1e3 * seconds, "compile_s": compile_s, "matmul_flops": peak[precision]}
                if sample is not None and mode == "eager" and precision == "float32":
                    row["samples_per_s"] = args.batch / timed(sample, device, steps, args.reps)
                rows.append(row)
                print(f"{name:24s} {precision:9s} {mode:8s} {row['rows_per_s']:10.0f} rows/s"
                      + (f"  (compile {compile_s:.1f} s)" if compile_s else ""), flush=True)
    base = {r["model"]: r["rows_per_s"] for r in rows if r["precision"] == "float32" and r["mode"] == "eager"}
    lines = [f"Device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else machine_tag()}), batch "
             f"{args.batch}, fastest of {args.reps} windows of {steps} optimiser steps. Dense matmul rate: "
             + ", ".join(f"{p} {v / 1e12:.2f} TFLOP/s" for p, v in peak.items()) + ".", "",
             "| model | precision | mode | rows/s | vs eager float32 | step ms | compile s |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        compiled = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        lines.append(f"| {r['model']} | {r['precision']} | {r['mode']} | {r['rows_per_s']:.0f} | "
                     f"{r['rows_per_s'] / base[r['model']]:.2f} | {r['step_ms']:.1f} | {compiled} |")
    sampled = [r for r in rows if "samples_per_s" in r]
    if sampled:
        lines += ["", f"Posterior sampling (float32, eager): {sampled[0]['samples_per_s']:.0f} samples/s."]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_save:
        write_results(f"precision_compile_{device.type}", {"args": vars(args), "rows": rows}, text)


if __name__ == "__main__":
    main()
