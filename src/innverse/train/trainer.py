"""The training loop: optimiser and schedule, validation, early stopping, clipping, checkpoints, logging."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .average import WeightAverage
from .checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import BatchSource, device_batches, resident
from .distributed import DataParallel
from .history import EpochCallback, History, append_jsonl
from .precision import LossScaler, as_float32, autocast
from .progress import progress_bar
from .schedule import learning_rate

__all__ = ["LossFn", "NonFiniteLossError", "Step", "adam", "train"]

CHECKPOINT_FORMAT = "innverse.train.checkpoint/2"
_READABLE_FORMATS = ("innverse.train.checkpoint/1", CHECKPOINT_FORMAT)


class NonFiniteLossError(RuntimeError):
    """Raised when the loss or gradient stays non-finite for ``max_nonfinite`` consecutive steps."""


@dataclass
class Step:
    """What a loss function sees besides the batch.

    Attributes:
        epoch: the epoch (0-based).
        index: the optimiser step (0-based, over all epochs; the last one during validation).
        progress: fraction of the planned steps done, in ``[0, 1]`` (1 during validation), e.g.
            for a loss term that is ramped up over training.
        generator: the source of any noise the loss draws (on the model's device; checkpointed,
            so a resumed run draws the same noise; fixed during validation).
        training: whether this is a training step (False during validation).
    """

    epoch: int
    index: int
    progress: float
    generator: torch.Generator
    training: bool = True
    terms: dict[str, Tensor | float] = field(default_factory=dict)

    def log(self, **terms: Tensor | float) -> None:
        """Record named loss terms of this step; the epoch record gets their means over the training steps.

        Tensors are detached and summed on their device (no synchronisation per step).
        """
        for name, value in terms.items():
            self.terms[name] = value.detach() if isinstance(value, Tensor) else float(value)


#: ``loss_fn(batch, step) -> scalar`` mean loss of a batch (a tuple of tensors).
LossFn = Callable[[Sequence[Tensor], Step], Tensor]


def adam(parameters: Sequence[nn.Parameter] | Iterator[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The default optimiser: Adam at ``config.lr`` (AdamW with ``config.weight_decay > 0``), fused where possible.

    Only parameters with ``requires_grad`` are optimised. The fused kernel updates all tensors in
    one call, much faster than the per-tensor loop for the many small tensors of a flow.

    Raises:
        ValueError: no trainable parameter, or ``config.lr`` unresolved.
    """
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("train: the model has no trainable parameters")
    if config.lr is None:
        raise ValueError("train: config.lr is None; resolve the config first (TrainConfig.resolve)")
    fused = len({p.device for p in params}) == 1 and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.weight_decay > 0:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    return torch.optim.Adam(params, lr=config.lr, fused=fused or None)


def _snapshot(model: nn.Module) -> dict[str, Any]:
    """A copy of the state dict (tensors cloned; much cheaper than ``copy.deepcopy`` for a flow's many small tensors)."""
    return {k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v) for k, v in model.state_dict().items()}


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


class _Loop:
    """The state of one training run and its steps; :func:`train` is the public entry point."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_data: BatchSource, val_data: BatchSource | None,
                 cfg: TrainConfig, opt: torch.optim.Optimizer, scheduler: Any) -> None:
        self.model, self.loss_fn, self.train_data, self.val_data, self.cfg = model, loss_fn, train_data, val_data, cfg
        if cfg.compile:
            self.loss_fn = torch.compile(loss_fn)
        self.opt, self.scheduler = opt, scheduler
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.device = self.params[0].device
        # in-memory data that fit go to a GPU once; everything else travels batch by batch (pinned, one ahead)
        self.train_data = resident(train_data, self.device)
        self.val_data = None if val_data is None else resident(val_data, self.device)
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.dp = DataParallel(self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.noise = torch.Generator(self.device).manual_seed(cfg.seed + 2)
        self.average = WeightAverage(self.params, cfg.ema) if cfg.ema else None
        self.scaler = LossScaler(cfg.precision == "float16")
        self.history = History()
        self.epoch, self.step, self.bad_epochs, self.consecutive = 0, 0, 0, 0
        self.best_state: dict[str, Any] | None = None
        self.total_steps = cfg.epochs * len(train_data)  # type: ignore[operator]
        self.clock = time.perf_counter()   # the run's start, shifted back by the time of resumed sessions

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock

    def progress(self) -> float:
        """Fraction of the run done: of the planned steps, or of the time budget where that is further along."""
        done = self.step / max(1, self.total_steps)
        if self.cfg.max_seconds is not None:
            done = max(done, self.elapsed() / self.cfg.max_seconds)
        return min(1.0, done)

    def _spent(self) -> bool:
        """Whether the time budget is used up; with several processes, whether it is on any (they stop together)."""
        spent = self.elapsed() >= self.cfg.max_seconds  # type: ignore[operator]
        return spent if self.dp.world == 1 else self.dp.sum(float(spent))[0] > 0

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "step": self.step, "bad_epochs": self.bad_epochs,
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "best_state": self.best_state,
                "generator": self.gen.get_state(), "noise_generator": self.noise.get_state(),
                "torch_rng": torch.get_rng_state(), "history": self.history.to_dict(), "config": self.cfg.to_dict(),
                "average": None if self.average is None else self.average.state(),
                "loss_scale": self.scaler.state() if self.scaler.enabled else None,
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load(self, path: str | Path) -> None:
        state = load_checkpoint(path)
        if state.get("format") not in _READABLE_FORMATS:
            raise ValueError(f"train: {path} has format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        for group in self.opt.param_groups:  # checkpoints of format 1 did not record it
            group.setdefault("base_lr", self.cfg.lr)
        self.gen.set_state(state["generator"])
        if state.get("noise_generator") is not None:
            self.noise.set_state(state["noise_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = History.from_dict(state["history"])
        self.epoch, self.step, self.bad_epochs = state["epoch"], state["step"], state["bad_epochs"]
        self.best_state = state["best_state"]
        if self.average is not None:
            self.average.load(state["average"])
        self.scaler.load(state.get("loss_scale"))
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    # -- steps -----------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        if self.scheduler is not None:
            return float(self.opt.param_groups[0]["lr"])
        c = self.cfg
        step = self.step if c.max_seconds is None else self.progress() * self.total_steps
        factor = learning_rate(step, self.total_steps, 1.0, c.schedule, c.warmup, c.final_lr_fraction)
        for group in self.opt.param_groups:
            group["lr"] = group["base_lr"] * factor
        return float(self.opt.param_groups[0]["lr"])

    def _backward(self, batch: tuple[Tensor, ...], step: Step) -> tuple[float, int, bool]:
        """Loss and gradients of the global batch: ``(mean loss, rows, finite)``; with several processes
        each takes its slice and the gradients are combined (:class:`DataParallel`)."""
        local, n_local, n_global = self.dp.shard(batch)
        with autocast(self.cfg.precision, self.device):
            loss = as_float32(self.loss_fn(local, step)) if n_local else None
        scale = self.scaler.scale
        if self.dp.world == 1:
            ok = bool(torch.isfinite(loss))  # type: ignore[arg-type]
            if ok:
                (loss * scale if self.scaler.enabled else loss).backward()  # type: ignore[operator, union-attr]
            return (float(loss.detach()) if ok else math.nan), n_global, ok  # type: ignore[union-attr]
        value = 0.0 if loss is None else float(loss.detach())
        if loss is not None and math.isfinite(value):
            (loss * scale if self.scaler.enabled else loss).backward()
        (total,) = self.dp.sum(value * n_local)
        self.dp.reduce_gradients(self.params, n_local / n_global)
        return total / n_global, n_global, math.isfinite(total)

    def _optimizer_step(self, batch: tuple[Tensor, ...], step: Step) -> tuple[float, int] | None:
        """Loss, backward, clipping and the update: ``(mean loss, rows)``, or None for a skipped non-finite step."""
        self.opt.zero_grad(set_to_none=True)
        value, rows, ok = self._backward(batch, step)
        overflow = False
        if ok:
            grads = [p for p in self.params if p.grad is not None]
            if self.scaler.enabled:
                for p in grads:
                    p.grad.div_(self.scaler.scale)  # type: ignore[union-attr]
            max_norm = self.cfg.clip_grad if self.cfg.clip_grad is not None else math.inf
            ok = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(grads, max_norm)))
            overflow = not ok and self.scaler.overflowed()   # the scale was too large: skipped, not counted
        self.step += 1
        if overflow:
            return None
        if not ok:
            self.consecutive += 1
            if self.consecutive >= self.cfg.max_nonfinite:
                raise NonFiniteLossError(
                    f"train: {self.consecutive} consecutive steps had a non-finite loss or gradient (epoch "
                    f"{self.epoch}, step {self.step}); check the data for NaN/Inf and extreme values, lower the "
                    "learning rate, or standardise the inputs")
            return None
        self.consecutive = 0
        self.scaler.finite()
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.average is not None:
            self.average.update()
        return value, rows

    def train_epoch(self) -> tuple[float, int, float, dict[str, float]]:
        """One pass over the training data: ``(mean loss, skipped steps, last lr, mean logged terms)``."""
        self.model.train()
        total, rows, skipped, lr = 0.0, 0, 0, float(self.opt.param_groups[0]["lr"])
        terms: dict[str, Tensor | float] = {}
        term_rows = 0
        for batch in device_batches(self.train_data.epoch(self.epoch, self.gen), self.device):
            lr = self._set_lr()
            step = Step(self.epoch, self.step, self.progress(), self.noise)
            done = self._optimizer_step(batch, step)
            if done is None:
                skipped += 1
            else:
                total += done[0] * done[1]
                rows += done[1]
                n = self.dp.shard(batch)[1]  # the terms were logged on this process's rows
                term_rows += n
                for name, value in step.terms.items():
                    terms[name] = terms.get(name, 0.0) + value * n
            if self.cfg.max_seconds is not None and self._spent():
                self.history.out_of_time = True   # this epoch ends here and is validated as usual
                break
        names = sorted(terms)
        sums = self.dp.sum(*[float(terms[k]) for k in names], float(term_rows))
        means = {k: v / max(sums[-1], 1.0) for k, v in zip(names, sums)}
        return (total / rows if rows else math.nan), skipped, lr, means

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_data is None:
            return None
        self.model.eval()
        noise = torch.Generator(self.device).manual_seed(self.cfg.seed + 3)
        total, rows = 0.0, 0
        for raw in device_batches(self.val_data.epoch(0, torch.Generator().manual_seed(self.cfg.seed + 1)), self.device):
            batch, n, _ = self.dp.shard(raw)
            if n:
                with autocast(self.cfg.precision, self.device):
                    total += float(self.loss_fn(batch, Step(self.epoch, self.step, 1.0, noise, training=False))) * n
                rows += n
        total, rows = self.dp.sum(total, float(rows))
        return total / max(rows, 1)

    def judge(self, train_loss: float, val_loss: float | None) -> bool:
        """Early-stopping bookkeeping after an epoch; whether the monitored loss improved."""
        monitored = val_loss if val_loss is not None else train_loss
        h = self.history
        if math.isfinite(monitored) and (h.best_val_loss is None or monitored < h.best_val_loss - self.cfg.min_delta):
            h.best_val_loss, h.best_epoch = monitored, self.epoch
            self.best_state = _snapshot(self.model)
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    def finish(self) -> None:
        if self.cfg.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.average is not None:
            self.average.write_to_model()
        self.model.eval()


def _write_log(path: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the log from the records (used on resume, so no epoch appears twice)."""
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    atomic_write_bytes(path, text.encode())


def _record(loop: _Loop, epoch_result: tuple[float, int, float, dict[str, float]], val_loss: float | None,
            improved: bool, seconds: float) -> dict[str, Any]:
    train_loss, skipped, lr, terms = epoch_result
    record = {"epoch": loop.epoch, "train_loss": _finite_or_none(train_loss),
              "val_loss": None if val_loss is None else _finite_or_none(val_loss), "lr": lr, "seconds": seconds,
              "skipped": skipped, "best": improved}
    clash = set(terms) & set(record)
    if clash:
        raise ValueError(f"train: the loss logged terms named {sorted(clash)}, which the epoch record uses itself")
    return {**record, **{k: _finite_or_none(v) for k, v in terms.items()}}


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _start(loop: _Loop, checkpoint: str | Path | None, resume: bool, log_path: str | Path | None) -> None:
    """Resume from the checkpoint if asked and it exists; start (or rewrite, on resume) the log."""
    resumed = resume and checkpoint is not None and Path(checkpoint).exists()
    if resumed:
        loop.load(checkpoint)  # type: ignore[arg-type]
    if log_path is None or not loop.dp.main:
        return
    if resumed:
        _write_log(Path(log_path), loop.history.records)
    elif Path(log_path).exists():
        Path(log_path).unlink()


def _epoch(loop: _Loop, log_path: str | Path | None, callbacks: Sequence[EpochCallback]) -> tuple[dict[str, Any], bool]:
    """One epoch: training, validation (with the weight average), bookkeeping, log, callbacks; ``(record, stop)``."""
    t0 = time.perf_counter()
    result = loop.train_epoch()
    with loop.average.applied() if loop.average is not None else nullcontext():
        val_loss = loop.validate()
        improved = loop.judge(result[0], val_loss)
    seconds = time.perf_counter() - t0
    loop.history.seconds += seconds
    loop.history.skipped_steps += result[1]
    record = _record(loop, result, val_loss, improved, seconds)
    loop.history.records.append(record)
    if log_path is not None and loop.dp.main:
        append_jsonl(log_path, record)
    asked = any([bool(cb(dict(record))) for cb in callbacks])
    stop = loop.dp.sum(float(asked))[0] > 0  # every process stops when any callback asks
    patience = loop.cfg.patience_after(loop.history.best_epoch)
    if loop.val_data is not None and patience is not None and loop.bad_epochs >= patience:
        stop = loop.history.stopped_early = True
    stop = stop or loop.history.out_of_time
    loop.epoch += 1
    return record, stop


def train(model: nn.Module, loss_fn: LossFn, train_data: BatchSource, val_data: BatchSource | None = None,
          config: TrainConfig | None = None, *, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
          checkpoint: str | Path | None = None, resume: bool = False, log_path: str | Path | None = None,
          callbacks: Sequence[EpochCallback] = (), progress: bool | str = True) -> History:
    r"""Minimise ``loss_fn`` over ``train_data``, validating and stopping early: the one training loop.

    Every step: learning rate from the schedule, ``loss_fn(batch, step)``, backward pass,
    global-norm gradient clipping, and a finiteness check of loss and gradient norm — a
    non-finite step is skipped and counted, and ``max_nonfinite`` skipped steps in a row abort
    with :class:`NonFiniteLossError`. After every epoch: validation loss (with the weight
    average when ``config.ema`` is set), early-stopping bookkeeping (the best weights are kept in
    memory and restored at the end), a JSON-lines log record (with the means of the terms the
    loss logged through :meth:`Step.log`), the callbacks, and (every ``checkpoint_every`` epochs)
    an atomic checkpoint with the weights, optimiser and scheduler states, best weights, history
    and the states of the data-order and noise generators and of torch's global RNG.
    ``resume=True`` continues from the checkpoint and ends with the same weights as an
    uninterrupted run with the same seed. Batches are moved to the device of the trained
    parameters, so the loop runs wherever the model is.

    Args:
        model: the module to train (its parameters are updated in place).
        loss_fn: ``loss_fn(batch, step) -> scalar`` mean loss of a batch (a tuple of tensors);
            ``step`` is a :class:`Step`.
        train_data / val_data: batch sources (see :mod:`innverse.train.data`).
        config: options (:class:`TrainConfig`, resolved: ``epochs`` and ``lr`` set); default
            ``TrainConfig().resolve(rows of train_data)`` where the source knows its rows.
        optimizer: the optimiser of the parameters to train (default :func:`adam` over all
            trainable parameters of ``model``); the schedule scales each group's initial rate.
        scheduler: a ``torch.optim.lr_scheduler`` object stepped after every optimiser step,
            replacing the config's schedule.
        checkpoint: path of the checkpoint file (written atomically), or None.
        resume: continue from ``checkpoint`` if it exists.
        log_path: JSON-lines file with one record per epoch, or None.
        callbacks: ``f(record) -> bool | None`` after every epoch; True stops training.
        progress: show a tqdm bar over epochs (a string: with that label).

    Returns:
        The :class:`History`.
    """
    began = time.perf_counter()   # a time budget counts the set-up too (the first optimiser imports torch._dynamo)
    cfg = config if config is not None and config.resolved else (config or TrainConfig()).resolve(
        getattr(train_data, "rows", 10_000))
    if len(train_data) == 0:
        raise ValueError("train: the training data yield no batches")
    loop = _Loop(model, loss_fn, train_data, val_data, cfg, optimizer or adam(model.parameters(), cfg), scheduler)
    _start(loop, checkpoint, resume, log_path)
    loop.clock = began - loop.history.seconds   # and the resumed sessions' time
    stop = loop.history.stopped_early or loop.history.out_of_time
    bar = progress_bar(cfg.epochs, progress if isinstance(progress, str) else "training",
                       bool(progress) and loop.dp.main, unit="epoch", initial=loop.epoch)
    try:
        while loop.epoch < cfg.epochs and not stop:  # type: ignore[operator]
            record, stop = _epoch(loop, log_path, callbacks)
            bar.update(1)
            bar.set_postfix(train=_short(record["train_loss"]), val=_short(record["val_loss"]))
            due = loop.epoch % cfg.checkpoint_every == 0 or stop or loop.epoch == cfg.epochs
            if checkpoint is not None and due and loop.dp.main:
                save_checkpoint(checkpoint, loop.state())
    finally:
        bar.close()
    loop.finish()
    return loop.history
