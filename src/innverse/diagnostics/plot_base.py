"""Shared helpers of the diagnostic plots: figures without pyplot's global state, atomic saving."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import atomic_write
from .._tensors import to_tensor

__all__ = ["new_figure", "save_figure", "as_numpy", "parameter_labels", "panel_grid", "COLORS"]

#: colours used consistently by every plot
COLORS = {
    "samples": "#1f77b4",
    "reference": "#ff7f0e",
    "truth": "#d62728",
    "band": "#b0b0b0",
    "train": "#1f77b4",
    "val": "#ff7f0e",
    "schedule": "#7f7f7f",
}
DPI = 100


def _matplotlib() -> Any:
    try:
        import matplotlib  # noqa: F401  (imported lazily: plotting is an optional extra)
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("innverse.diagnostics plots need matplotlib: pip install 'innverse[plots]'") from err
    return Figure


def new_figure(width: float, height: float) -> Any:
    """A ``matplotlib.figure.Figure`` (not registered with pyplot) with constrained layout."""
    figure_cls = _matplotlib()
    return figure_cls(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig: Any, save: str | os.PathLike | None) -> None:
    """Write ``fig`` to ``save`` atomically (temporary file in the same folder, then ``os.replace``)."""
    if save is None:
        return
    path = Path(save)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=DPI), suffix=f".{fmt}")


def as_numpy(x: Any, name: str, owner: str) -> np.ndarray:
    """A float64 numpy array (no copy where possible) of a tensor, array or nested list; clear errors otherwise."""
    return to_tensor(x, name, owner, torch.float64).detach().cpu().numpy()


def parameter_labels(labels: Any, dims: int, owner: str) -> list[str]:
    """``labels`` or ``θ1..θD``; checks the count."""
    if labels is None:
        return [f"θ{d + 1}" for d in range(dims)]
    labels = [str(s) for s in labels]
    if len(labels) != dims:
        raise ValueError(f"{owner}: got {len(labels)} labels for {dims} parameters")
    return labels


def panel_grid(panels: int, width: float, height: float, *, sharey: bool = False) -> tuple[Any, list[Any]]:
    """A figure of ``panels`` axes of ``width x height`` inches, at most 4 a row (spare cells hidden).

    Returns:
        The figure and its ``panels`` axes, row by row.
    """
    cols = min(panels, 4)
    rows = math.ceil(panels / cols)
    fig = new_figure(width * cols, height * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:panels])
