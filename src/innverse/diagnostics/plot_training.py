"""Training curves from a per-epoch history: losses, the best validation epoch, the learning rate."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plot_base import COLORS, as_numpy, new_figure, save_figure

__all__ = ["loss_plot"]

Path = str | os.PathLike | None

#: the names a history may give each curve, first match wins
_KEYS = {"train": ("train_loss", "train", "loss"), "val": ("val_loss", "val", "validation_loss", "validation"),
         "lr": ("lr", "learning_rate")}


def _number(value: Any) -> float:
    """A log entry as a float; ``None``, booleans and text are NaN."""
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _columns(history: Any) -> dict[str, np.ndarray]:
    """Every column of a history: per-epoch records (an ``innverse.train.History`` too), a dict or an array."""
    owner = "loss_plot"
    history = getattr(history, "records", history)
    if isinstance(history, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in history.items()}
    if isinstance(history, Sequence) and history and isinstance(history[0], Mapping):
        keys = dict.fromkeys(k for row in history for k in row)
        return {str(k): np.array([_number(row.get(k)) for row in history]) for k in keys}
    a = as_numpy(history, "history", owner)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] not in (1, 2):
        raise ValueError(f"{owner}: an array history must be (epochs,) or (epochs, 2), got {a.shape}")
    return {"train": a[:, 0]} | ({"val": a[:, 1]} if a.shape[1] == 2 else {})


def _curves(history: Any) -> dict[str, np.ndarray]:
    """``{"train": ..., "val"?: ..., "lr"?: ...}``; curves without a single finite value are left out."""
    columns = _columns(history)
    out: dict[str, np.ndarray] = {}
    for name, keys in _KEYS.items():
        found = next((k for k in keys if k in columns and np.isfinite(columns[k]).any()), None)
        if found is not None:
            out[name] = columns[found]
    if "train" not in out:
        raise ValueError(f"loss_plot: no training loss found; expected a key among train_loss/train/loss, "
                         f"got {sorted(columns)}")
    return out


def _losses(ax: Any, curves: dict[str, np.ndarray], log_scale: bool | None) -> None:
    for name in ("train", "val"):
        if name in curves:
            y = curves[name]
            ax.plot(np.arange(1, len(y) + 1), y, color=COLORS[name], lw=1.5, marker="o" if len(y) <= 30 else None,
                    ms=3, label="training" if name == "train" else "validation")
    if "val" in curves:
        best = int(np.nanargmin(curves["val"]))
        ax.axvline(best + 1, color="k", lw=0.8, ls=":", label=f"best validation (epoch {best + 1})")
    allv = np.concatenate([curves[n][np.isfinite(curves[n])] for n in ("train", "val") if n in curves])
    if log_scale is None:
        log_scale = bool(allv.size and allv.min() > 0 and allv.max() / allv.min() > 100)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood)")
    ax.set_title("Training curves")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)


def loss_plot(history: Any, *, log_scale: bool | None = None, save: Path = None) -> Any:
    """Training and validation loss per epoch, marking the best validation epoch; the learning rate beside.

    Args:
        history: an ``innverse.train.History``, a list of per-epoch dicts (e.g. ``{"epoch": 3,
            "train_loss": .., "val_loss": .., "lr": ..}``, as in a run's ``training_log.jsonl``), a
            dict of arrays (``{"train": [...], "val": [...]}``), or an array ``(epochs,)`` /
            ``(epochs, 2)`` of (train, val) losses. A learning-rate column (``lr`` or
            ``learning_rate``) gets a second panel.
        log_scale: logarithmic loss axis (default: when the losses span over two decades and are positive).
        save: file to write.

    Returns:
        The matplotlib ``Figure``.
    """
    curves = _curves(history)
    fig = new_figure(10.0 if "lr" in curves else 6.0, 3.8)
    axes = fig.subplots(1, 2 if "lr" in curves else 1, squeeze=False)[0]
    _losses(axes[0], curves, log_scale)
    if "lr" in curves:
        y = curves["lr"]
        axes[1].plot(np.arange(1, len(y) + 1), y, color=COLORS["schedule"], lw=1.5)
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("learning rate")
        axes[1].set_title("Schedule")
        axes[1].grid(alpha=0.3)
    save_figure(fig, save)
    return fig
