"""Helpers shared by the image benchmarks (``image_*.py``): training through the one loop, parameter counts, PNGs."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from _common import RESULTS, machine_tag
from innverse.train import TensorBatches, TrainConfig, train


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fit(model: nn.Module, loss_fn: Callable, data, val, epochs: int, lr: float, seed: int = 0) -> dict:
    """Train through ``innverse.train.train`` (cosine schedule, EMA 0.995, best validation epoch restored)."""
    cfg = TrainConfig(epochs=epochs, batch_size=getattr(data, "batch_size", 64), lr=lr, patience=None,
                      clip_grad=10.0, seed=seed)
    start = time.perf_counter()
    history = train(model, loss_fn, data, val, cfg, progress=False)
    seconds = time.perf_counter() - start
    last = history.records[-1]
    print(f"    {epochs} epochs in {seconds:.0f} s: train {last['train_loss']:.4f}, val {last['val_loss']}, "
          f"best epoch {history.best_epoch}", flush=True)
    return {"seconds": seconds, "epochs": epochs, "best_epoch": history.best_epoch,
            "train_loss": last["train_loss"], "val_loss": last["val_loss"]}


def batches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True) -> TensorBatches:
    return TensorBatches(*tensors, batch_size=batch_size, shuffle=shuffle)


def png_path(name: str, what: str) -> Path:
    """``benchmarks/results/<name>_<date>_<machine>_<what>.png``, next to the run's JSON and Markdown."""
    return RESULTS / f"{name}_{datetime.date.today().isoformat()}_{machine_tag()}_{what}.png"
