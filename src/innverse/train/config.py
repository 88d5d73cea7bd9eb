"""Options of the training loop, with one set of defaults and their budget-aware resolution."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TrainConfig", "SCHEDULES"]

#: Learning-rate schedules ``TrainConfig(schedule=...)`` accepts.
SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`innverse.train.train`, the one training loop of the library.

    ``epochs``, ``batch_size`` and ``lr`` default to ``None``, "chosen for the training-set
    size": :meth:`resolve` fills them in (and only them) from the number of training rows, so
    every model gets the same budget-aware defaults whether its options came as this dataclass,
    as a dict of overrides or not at all; what a fit actually used is the resolved config (e.g.
    ``FitReport.training``).

    Attributes:
        epochs: maximum number of epochs (auto: about 12,000 optimiser steps, 60 to 1,000 epochs).
        batch_size: rows per optimiser step (auto: see :meth:`resolve`).
        lr: peak learning rate of Adam (AdamW when ``weight_decay > 0``); auto: ``1e-3``, scaled
            linearly with batches above 256 rows (``2e-3`` at 512).
        weight_decay: decoupled weight decay.
        schedule: ``"cosine"`` (linear warm-up, then cosine decay to ``lr * final_lr_fraction``
            over ``epochs``), ``"onecycle"`` (warm-up over 30% of the steps, then cosine down) or
            ``"constant"``.
        warmup: fraction of all steps used for the linear warm-up of ``"cosine"``.
        final_lr_fraction: learning rate at the end of the schedule, relative to ``lr``.
        clip_grad: maximum global gradient norm (``None``: no clipping).
        patience: early stopping: at most this many epochs without improvement of the
            validation loss (``None``: never stop early).
        min_patience: the patience adapts to the best epoch so far: training stops after
            ``min(patience, max(min_patience, best_epoch + 1))`` epochs without improvement, i.e.
            once it has waited as long as it took to reach the best epoch, but at least
            ``min_patience`` and at most ``patience`` epochs. ``None`` waits ``patience`` epochs in
            full. The two fields are independent: setting one never changes the other.
        min_delta: improvement smaller than this does not count.
        restore_best: load the weights of the best validation epoch at the end.
        max_nonfinite: consecutive steps with a non-finite loss or gradient that are skipped
            before training aborts with an error.
        ema: decay of an exponential moving average of the weights (Polyak averaging; ``None``:
            off). Validation, early stopping and the returned model use the averaged weights,
            which removes most of the minibatch noise of the final iterate.
        seed: seed of the data order and of the generator the loss draws noise from.
        checkpoint_every: write the checkpoint every this many epochs (when a path is given).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"``: mixed precision, the loss
            function under autocast and the loss in float32; float16 with dynamic loss scaling
            (see :mod:`innverse.train.precision`).
        max_seconds: wall-time budget of the run in seconds, its set-up included (``None``: none;
            the first optimiser a process builds takes a second or two). Training stops after
            the step that uses it up (then validates once more), and the schedule runs on the larger
            of the step and the time fractions, so the learning rate has decayed by the deadline
            whichever comes first; ``History.out_of_time`` says the budget ended the run. Over
            resumed sessions the time adds up. A run cut by time is not reproducible step for step.
        compile: run the loss function (and the model inside it) through ``torch.compile``. The
            first steps compile (30-50 s for the estimators and image flows of
            ``benchmarks/precision_compile.py``), after which a step ran 1.26-1.38x faster on
            CPU there; worth it for long runs, not for short ones. Needs a C compiler on CPU.
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: float = 0.01
    final_lr_fraction: float = 0.0
    clip_grad: float | None = 5.0
    patience: int | None = 20
    min_patience: int | None = 10
    min_delta: float = 0.0
    restore_best: bool = True
    max_nonfinite: int = 20
    ema: float | None = 0.995
    seed: int = 0
    checkpoint_every: int = 1
    precision: str = "float32"
    compile: bool = False
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, allow_none: bool) -> None:
            if (value is None and allow_none) or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                return
            raise ValueError(f"TrainConfig: {name} must be an integer >= 1{' or None' if allow_none else ''}, "
                             f"got {value!r}")

        if self.precision not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"TrainConfig: precision must be 'float32', 'bfloat16' or 'float16', got "
                             f"{self.precision!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"TrainConfig: compile must be True or False, got {self.compile!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "patience", "min_patience"):
            positive_int(name, getattr(self, name), True)
        positive_int("max_nonfinite", self.max_nonfinite, False)
        positive_int("checkpoint_every", self.checkpoint_every, False)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf):
            raise ValueError(f"TrainConfig: lr must be a finite number > 0 or None, got {self.lr!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"TrainConfig: clip_grad must be positive or None, got {self.clip_grad}")
        if not 0 <= self.warmup < 1 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("TrainConfig: warmup must be in [0, 1) and final_lr_fraction in [0, 1], got "
                             f"{self.warmup} and {self.final_lr_fraction}")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float))
                                                 and not isinstance(self.max_seconds, bool)
                                                 and 0 < self.max_seconds < math.inf):
            raise ValueError(f"TrainConfig: max_seconds must be a finite number > 0 or None, got {self.max_seconds!r}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"TrainConfig: ema must be in (0, 1) or None, got {self.ema}")
        if not self.weight_decay >= 0 or not self.min_delta >= 0:
            raise ValueError(f"TrainConfig: weight_decay and min_delta must be >= 0, got {self.weight_decay} "
                             f"and {self.min_delta}")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def coerce(cls, options: TrainConfig | Mapping[str, Any] | None, **defaults: Any) -> TrainConfig:
        """A config from a :class:`TrainConfig`, a dict of overrides or ``None``.

        ``defaults`` are the caller's own settings (e.g. ``seed``); what the user passed wins.

        Raises:
            ValueError: unknown option names (listed with the known ones).
            TypeError: anything else than the three accepted forms.
        """
        if isinstance(options, TrainConfig):
            return options
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"TrainConfig: expected a TrainConfig, a dict of options or None, got "
                            f"{type(options).__name__}")
        return cls.from_dict({**defaults, **dict(options or {})})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def resolve(self, rows: int, rows_per_batch: float = 8.0, max_batch: int = 512) -> TrainConfig:
        """Fill the options left ``None`` from the training-set size ``rows``; the others are kept.

        * ``batch_size``: the power of two nearest ``rows / rows_per_batch``, between 32 and
          ``max_batch``. A step of a small flow costs mostly fixed per-operation overhead, so
          larger batches at larger budgets train faster at the same accuracy; the callers choose
          ``rows_per_batch`` for their model (the amortized estimator: 4 for up to 5 parameters,
          8 otherwise, 16 and at most 256 rows with a summary network, whose cost grows with the
          batch).
        * ``epochs``: about 12,000 optimiser steps, between 60 and 1,000 epochs; early stopping
          on the validation loss decides the actual length.
        * ``lr``: ``1e-3``, scaled linearly with the batch above 256 rows.
        """
        n = max(int(rows), 1)
        batch = self.batch_size
        if batch is None:
            batch = int(min(max_batch, max(32, 2 ** round(math.log2(max(n / rows_per_batch, 1.0))))))
        epochs = self.epochs
        if epochs is None:
            steps_per_epoch = max(1, math.ceil(n / batch))
            epochs = int(min(1000, max(60, 12000 // steps_per_epoch)))
        lr = self.lr if self.lr is not None else 1e-3 * max(1.0, batch / 256)
        return self.replace(batch_size=batch, epochs=epochs, lr=lr)

    @property
    def resolved(self) -> bool:
        """Whether every budget-dependent option is set (see :meth:`resolve`)."""
        return None not in (self.epochs, self.batch_size, self.lr)

    def patience_after(self, best_epoch: int | None) -> int | None:
        """Epochs without improvement that stop training, given the best epoch so far (0-based)."""
        if self.patience is None or self.min_patience is None or best_epoch is None:
            return self.patience
        return min(self.patience, max(self.min_patience, best_epoch + 1))

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
