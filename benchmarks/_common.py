"""Shared helpers for benchmarks: machine tag and result writing (JSON + Markdown table)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_tag() -> str:
    """A short description of the machine: CPU count, processor, OS."""
    cpus = os.cpu_count() or 0
    proc = platform.processor() or platform.machine()
    return f"{cpus}cpu-{proc}-{platform.system().lower()}"


def write_results(name: str, payload: dict, table: str) -> Path:
    """Write ``<name>_<date>_<machine>.json`` and ``.md`` atomically under benchmarks/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{_dt.date.today().isoformat()}_{machine_tag()}"
    payload = {"benchmark": name, "date": _dt.datetime.now().isoformat(timespec="seconds"), **payload}
    for suffix, text in ((".json", json.dumps(payload, indent=2, default=str)),
                         (".md", f"# {name} — {payload['date']} — {machine_tag()}\n\n{table}\n")):
        path = RESULTS / (stem + suffix)
        tmp = path.with_suffix(suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print(f"wrote {RESULTS / stem}.json/.md")
    return RESULTS / (stem + ".json")


def timed(fn: Callable[[], object], reps: int) -> float:
    """Mean seconds per call of ``fn`` over ``reps`` calls, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def interleaved(cases: dict[str, dict[str, tuple[Callable[[], object], int]]], rounds: int) -> dict:
    """Median seconds per call of every ``cases[name][op] = (fn, reps)``, plus ``spread`` (min, max).

    Every round visits every case and op in turn, so slow drifts of a shared machine hit all alike.
    """
    times = {n: {op: [] for op in ops} for n, ops in cases.items()}
    for _ in range(rounds):
        for name, ops in cases.items():
            for op, (fn, reps) in ops.items():
                times[name][op].append(timed(fn, reps))
    return {n: {op: statistics.median(v) for op, v in t.items()} | {"spread": {op: (min(v), max(v)) for op, v in t.items()}}
            for n, t in times.items()}


def train_step(log_prob: Callable, opt, x, c) -> None:
    """One maximum-likelihood step: ``-log_prob(x, c).mean()``, backward, optimiser step."""
    loss = -log_prob(x, c).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def build(factories: dict[str, Callable], names: list[str], *args) -> dict:
    """``factories[name](*args)`` for every name whose library imports (``None`` results dropped)."""
    built = {}
    for name in names:
        try:
            obj = factories[name](*args)
        except ImportError as err:
            print(f"  {name}: not installed ({err})")
            continue
        if obj is not None:
            built[name] = obj
    return built


def context_net(make: Callable, ctx: int) -> type:
    """nflows' ``transform_net_create_fn(i, o)``: the network ``make(i + ctx, o)`` applied to ``[x, context]``."""
    import torch
    from torch import nn

    class ContextNet(nn.Module):
        def __init__(self, i: int, o: int) -> None:
            super().__init__()
            self.net = make(i + ctx, o)

        def forward(self, x, context=None):
            return self.net(x if context is None else torch.cat([x, context], 1))

    return ContextNet
