"""One training loop for every inverse model, so comparisons run under the same budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["TrainingBudget", "TrainingResult", "fit"]

LossFn = Callable[[Tensor, Tensor, float, torch.Generator], tuple[Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainingBudget:
    """How long and how to optimise: Adam with a cosine learning-rate decay.

    Attributes:
        steps: optimiser steps (one mini-batch each).
        batch_size: mini-batch size (drawn uniformly with replacement from the training set).
        lr: initial learning rate; it decays along a half cosine to ``lr * final_lr_fraction``.
        final_lr_fraction: the last step's learning rate relative to ``lr``.
        weight_decay: L2 penalty on the weights (Adam's ``weight_decay``).
        grad_clip: maximal global gradient norm (``inf`` disables clipping).
        seed: seed of the mini-batch draws and of all noise the loss draws.
        log_every: steps between history entries (each the mean over those steps).
    """

    steps: int = 8000
    batch_size: int = 512
    lr: float = 2e-3
    final_lr_fraction: float = 0.02
    weight_decay: float = 1e-5
    grad_clip: float = 10.0
    seed: int = 0
    log_every: int = 100

    def __post_init__(self) -> None:
        for nm in ("steps", "batch_size", "log_every"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainingBudget: {nm} must be a positive int, got {v!r}")
        if self.batch_size < 2:
            raise ValueError(f"TrainingBudget: batch_size must be >= 2, got {self.batch_size}")
        if not self.lr > 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"TrainingBudget: need lr > 0 and 0 < final_lr_fraction <= 1, got "
                             f"{self.lr}, {self.final_lr_fraction}")
        if self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError("TrainingBudget: weight_decay must be >= 0 and grad_clip > 0")


@dataclass
class TrainingResult:
    """What a training run did: per-interval mean loss terms, wall time, steps, parameter count."""

    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0
    parameters: int = 0

    def final(self, term: str = "total") -> float:
        """The last logged value of a loss term."""
        return self.history[term][-1]


def check_training_data(owner: str, x: Tensor, y: Tensor, x_dim: int, y_dim: int) -> None:
    """Raise a clear error unless ``x (N, x_dim)`` and ``y (N, y_dim)`` are finite and match."""
    for name, t, d in (("x", x, x_dim), ("y", y, y_dim)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{owner}: expected {name} as a floating-point tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2 or t.shape[1] != d:
            raise ValueError(f"{owner}: expected {name} of shape (N, {d}) to match the model, "
                             f"got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{owner}: training {name} contains NaN or Inf")
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"{owner}: x and y need the same number N >= 2 of rows, got "
                         f"{x.shape[0]} and {y.shape[0]}")


def fit(module: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor,
        budget: TrainingBudget | None = None) -> TrainingResult:
    """Minimise ``loss_fn(x_batch, y_batch, progress, generator)`` over ``module``'s parameters.

    ``progress`` runs from 0 to 1 over training (for schedules inside the loss). The data stay
    where they are; each batch is moved to the module's device and dtype. Raises a
    ``FloatingPointError`` naming the step if the loss becomes NaN or Inf.
    """
    budget = budget or TrainingBudget()
    params = [p for p in module.parameters() if p.requires_grad]
    ref = params[0]
    opt = torch.optim.Adam(params, lr=budget.lr, weight_decay=budget.weight_decay)
    floor = budget.final_lr_fraction

    def lr_factor(step: int) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / max(1, budget.steps - 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(budget.seed)
    dev_gen = gen if ref.device.type == "cpu" else torch.Generator(ref.device).manual_seed(budget.seed)
    result = TrainingResult(parameters=sum(p.numel() for p in params))
    acc: dict[str, float] = {}
    module.train()
    start = time.perf_counter()
    for step in range(budget.steps):
        idx = torch.randint(0, x.shape[0], (budget.batch_size,), generator=gen)
        xb = x[idx].to(device=ref.device, dtype=ref.dtype)
        yb = y[idx].to(device=ref.device, dtype=ref.dtype)
        loss, terms = loss_fn(xb, yb, step / budget.steps, dev_gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fit: the loss became {float(loss)} at step {step}; "
                                     "lower the learning rate or the loss weights")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if math.isfinite(budget.grad_clip):
            nn.utils.clip_grad_norm_(params, budget.grad_clip)
        opt.step()
        sched.step()
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + v
        if (step + 1) % budget.log_every == 0 or step + 1 == budget.steps:
            count = (step % budget.log_every) + 1
            for k, v in acc.items():
                result.history.setdefault(k, []).append(v / count)
            acc = {}
    result.seconds = time.perf_counter() - start
    result.steps = budget.steps
    module.eval()
    return result
