"""Training-loss curves from a per-epoch history."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plot_base import COLORS, as_numpy, new_figure, save_figure

__all__ = ["loss_plot"]

Path = str | os.PathLike | None


def _curves(history: Any) -> dict[str, np.ndarray]:
    """Normalise a loss history to ``{"train": array, "val": array?}``."""
    owner = "loss_plot"
    if isinstance(history, Mapping):
        items = {str(k): np.asarray(v, dtype=float) for k, v in history.items()}
    elif isinstance(history, Sequence) and history and isinstance(history[0], Mapping):
        keys = [k for k in history[0] if isinstance(history[0][k], (int, float, np.floating, np.integer))]
        items = {k: np.asarray([row.get(k, np.nan) for row in history], dtype=float) for k in keys}
    else:
        a = as_numpy(history, "history", owner)
        a = a[:, None] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] not in (1, 2):
            raise ValueError(f"{owner}: an array history must be (epochs,) or (epochs, 2), got {a.shape}")
        items = {"train": a[:, 0]} | ({"val": a[:, 1]} if a.shape[1] == 2 else {})
    out: dict[str, np.ndarray] = {}
    for name, key in (("train", ("train_loss", "train", "loss")), ("val", ("val_loss", "val", "validation_loss",
                                                                            "validation"))):
        found = next((k for k in key if k in items), None)
        if found is not None:
            out[name] = items[found]
    if "train" not in out:
        raise ValueError(f"{owner}: no training loss found; expected a key among train_loss/train/loss, "
                         f"got {sorted(items)}")
    return out


def loss_plot(history: Any, *, log_scale: bool | None = None, save: Path = None) -> Any:
    """Training and validation loss per epoch, marking the epoch of the best validation loss.

    Args:
        history: a list of per-epoch dicts (e.g. ``{"epoch": 3, "train_loss": .., "val_loss": ..}``),
            a dict of arrays (``{"train": [...], "val": [...]}``), or an array ``(epochs,)`` /
            ``(epochs, 2)`` of (train, val) losses.
        log_scale: symmetric-log y axis (default: when the losses span over two decades and are positive).
    """
    curves = _curves(history)
    fig = new_figure(6.0, 3.8)
    ax = fig.subplots()
    for name, y in curves.items():
        epochs = np.arange(1, len(y) + 1)
        ax.plot(epochs, y, color=COLORS[name], lw=1.5, marker="o" if len(y) <= 30 else None, ms=3,
                label="training" if name == "train" else "validation")
    if "val" in curves and np.isfinite(curves["val"]).any():
        best = int(np.nanargmin(curves["val"]))
        ax.axvline(best + 1, color="k", lw=0.8, ls=":", label=f"best validation (epoch {best + 1})")
    allv = np.concatenate([y[np.isfinite(y)] for y in curves.values()])
    if log_scale is None:
        log_scale = bool(allv.size and allv.min() > 0 and allv.max() / allv.min() > 100)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood)")
    ax.set_title("Training curves")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, save)
    return fig
