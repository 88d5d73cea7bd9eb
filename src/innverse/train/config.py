"""Options of the training loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TrainConfig", "SCHEDULES"]

SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass
class TrainConfig:
    """Options of :func:`innverse.train.train`.

    Attributes:
        epochs: maximum number of epochs.
        lr: peak learning rate of Adam (AdamW when ``weight_decay > 0``).
        weight_decay: decoupled weight decay.
        schedule: ``"cosine"`` (linear warm-up, then cosine decay to ``lr * final_lr_fraction``
            over ``epochs``), ``"onecycle"`` (warm-up over 30% of the steps, then cosine down) or
            ``"constant"``.
        warmup: fraction of all steps used for the linear warm-up of ``"cosine"``.
        final_lr_fraction: learning rate at the end of the schedule, relative to ``lr``.
        clip_grad: maximum global gradient norm (``None``: no clipping).
        patience: epochs without improvement of the validation loss before stopping early
            (``None``: never stop early).
        min_patience: makes the patience adapt to the best epoch so far (``None``: fixed
            ``patience``): training stops after ``min(patience, max(min_patience, best_epoch + 1))``
            epochs without improvement, i.e. once it has waited as long as it took to reach the
            best epoch, but at least ``min_patience`` and at most ``patience`` epochs. A validation
            loss that bottomed out early (a small budget overfitting quickly, or a start the model
            no longer beats) is not waited on for the full patience; a late best keeps it.
        min_delta: improvement smaller than this does not count.
        restore_best: load the weights of the best validation epoch at the end.
        max_nonfinite: consecutive steps with a non-finite loss or gradient that are skipped
            before training aborts with an error.
        ema: decay of an exponential moving average of the weights (Polyak averaging; ``None``:
            off). Validation, early stopping and the returned model use the averaged weights,
            which removes most of the minibatch noise of the final iterate.
        seed: seed of the data-order generator.
        checkpoint_every: write the checkpoint every this many epochs (when a path is given).
    """

    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: float = 0.02
    final_lr_fraction: float = 0.0
    clip_grad: float | None = 5.0
    patience: int | None = 20
    min_patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    max_nonfinite: int = 20
    ema: float | None = None
    seed: int = 0
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1:
            raise ValueError(f"TrainConfig: epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be positive, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"TrainConfig: patience must be >= 1 or None, got {self.patience}")
        if self.min_patience is not None and self.min_patience < 1:
            raise ValueError(f"TrainConfig: min_patience must be >= 1 or None, got {self.min_patience}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"TrainConfig: clip_grad must be positive or None, got {self.clip_grad}")
        if not 0 <= self.warmup < 1 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("TrainConfig: warmup must be in [0, 1) and final_lr_fraction in [0, 1]")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"TrainConfig: ema must be in (0, 1) or None, got {self.ema}")
        if self.max_nonfinite < 1 or self.checkpoint_every < 1:
            raise ValueError("TrainConfig: max_nonfinite and checkpoint_every must be >= 1")

    def patience_after(self, best_epoch: int | None) -> int | None:
        """Epochs without improvement that stop training, given the best epoch so far (0-based)."""
        if self.patience is None or self.min_patience is None or best_epoch is None:
            return self.patience
        return min(self.patience, max(self.min_patience, best_epoch + 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
