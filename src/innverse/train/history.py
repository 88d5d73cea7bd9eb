"""Training history: per-epoch records, a JSON-lines log and callbacks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["History", "EpochCallback"]

#: ``callback(record) -> bool | None``; returning True stops training after this epoch.
EpochCallback = Callable[[dict[str, Any]], "bool | None"]


@dataclass
class History:
    """What happened during training, one record per epoch.

    Each record has ``epoch``, ``train_loss``, ``val_loss`` (or None), ``lr`` (at the end of the
    epoch), ``seconds`` (epoch wall time), ``skipped`` (non-finite steps skipped) and ``best``
    (whether the validation loss improved), plus the epoch means of the terms the loss logged
    (:meth:`innverse.train.Step.log`).

    Attributes:
        records: the epoch records.
        best_epoch: epoch whose weights were kept (``None`` without validation).
        best_val_loss: its validation loss.
        stopped_early: whether early stopping ended the run.
        out_of_time: whether the wall-time budget (``TrainConfig.max_seconds``) ended the run.
        skipped_steps: total steps skipped for non-finite loss or gradient.
        seconds: total training wall time (over all resumed sessions).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False
    out_of_time: bool = False
    skipped_steps: int = 0
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.records)

    def column(self, key: str) -> list[Any]:
        """Values of one field over the epochs, e.g. ``history.column("val_loss")`` for a plot."""
        return [r.get(key) for r in self.records]

    def final(self, key: str = "train_loss") -> Any:
        """The last epoch's value of one field (e.g. a loss term the loss logged)."""
        if not self.records:
            raise ValueError("History.final: no epoch was recorded")
        return self.records[-1].get(key)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "stopped_early": self.stopped_early, "out_of_time": self.out_of_time, "skipped_steps": self.skipped_steps, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**d)


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a log line is never half-written for a reader)."""
    line = json.dumps(record, allow_nan=False, default=float) + "\n"
    with open(Path(path), "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
