"""Pair (corner) plot of posterior samples with the true value and a reference posterior overlaid."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from .plot_base import COLORS, as_numpy, new_figure, parameter_labels, save_figure

__all__ = ["pair_plot"]


def _check(x: Any, name: str, dims: int | None) -> np.ndarray:
    a = as_numpy(x, name, "pair_plot")
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or (dims is not None and a.shape[1] != dims):
        want = "(n, D)" if dims is None else f"(n, {dims})"
        raise ValueError(f"pair_plot: {name} must have shape {want}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"pair_plot: {name} contains NaN or Inf")
    return a


def _levels(h: np.ndarray, masses: tuple[float, ...]) -> list[float]:
    """Density thresholds enclosing the given probability masses of a 2-D histogram."""
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat) / max(flat.sum(), 1e-300)
    out = sorted({float(flat[min(np.searchsorted(cum, m), len(flat) - 1)]) for m in masses})
    return [v for v in out if v > 0] or [float(flat[0]) * 0.5]


def _limits(s: np.ndarray, ref: np.ndarray | None, t: np.ndarray | None, limits: Any) -> np.ndarray:
    """``(D, 2)`` axis limits: ``limits``, or the 0.5-99.5% range of all samples and the truth, padded."""
    if limits is not None:
        return np.asarray(limits, dtype=float).reshape(s.shape[1], 2)
    both = s if ref is None else np.concatenate([s, ref])
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    if t is not None:
        lo, hi = np.minimum(lo, t), np.maximum(hi, t)
    pad = 0.08 * np.where(hi > lo, hi - lo, 1.0)
    return np.stack([lo - pad, hi + pad], 1)


def _marginal(ax: Any, i: int, s: np.ndarray, ref: np.ndarray | None, t: np.ndarray | None,
              edges: np.ndarray) -> None:
    """Diagonal panel: histograms of parameter ``i``, the truth as a vertical line."""
    ax.hist(s[:, i], bins=edges, density=True, color=COLORS["samples"], alpha=0.6)
    if ref is not None:
        ax.hist(ref[:, i], bins=edges, density=True, histtype="step", color=COLORS["reference"], lw=1.5)
    if t is not None:
        ax.axvline(t[i], color=COLORS["truth"], lw=1.5)
    ax.set_yticks([])


def _joint(ax: Any, ij: tuple[int, int], s: np.ndarray, ref: np.ndarray | None, t: np.ndarray | None,
           edges: tuple[np.ndarray, np.ndarray]) -> None:
    """Panel below the diagonal: smoothed 2-D density of parameters ``j`` (x) and ``i`` (y) with mass contours."""
    i, j = ij
    ex, ey = edges
    cx, cy = (ex[:-1] + ex[1:]) / 2, (ey[:-1] + ey[1:]) / 2
    h = gaussian_filter(np.histogram2d(s[:, j], s[:, i], bins=(ex, ey))[0], 1.0)
    ax.pcolormesh(ex, ey, h.T, cmap="Blues", shading="flat", rasterized=True)
    ax.contour(cx, cy, h.T, levels=_levels(h, (0.86, 0.39)), colors=COLORS["samples"], linewidths=1.0)
    if ref is not None:
        hr = gaussian_filter(np.histogram2d(ref[:, j], ref[:, i], bins=(ex, ey))[0], 1.0)
        ax.contour(cx, cy, hr.T, levels=_levels(hr, (0.86, 0.39)), colors=COLORS["reference"], linewidths=1.2,
                   linestyles="--")
    if t is not None:
        ax.axvline(t[j], color=COLORS["truth"], lw=1.0)
        ax.axhline(t[i], color=COLORS["truth"], lw=1.0)
        ax.plot(t[j], t[i], "s", color=COLORS["truth"], ms=4)
    ax.set_ylim(ey[0], ey[-1])


def _axis_labels(ax: Any, ij: tuple[int, int], names: list[str]) -> None:
    """Names on the outer panels only: x below the last row, y left of the first column."""
    i, j = ij
    if i == len(names) - 1:
        ax.set_xlabel(names[j])
    else:
        ax.set_xticklabels([])
    if j == 0 and i > 0:
        ax.set_ylabel(names[i])
    elif j > 0:
        ax.set_yticklabels([])


def _legend(axes: Any, labels: tuple[str, str | None], truth: bool) -> None:
    """The legend in the empty top-right panel (or on the only panel for one parameter)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    dims = axes.shape[0]
    sample_label, reference_label = labels
    regions = " (39% / 86% regions)" if dims > 1 else ""
    handles = [Patch(color=COLORS["samples"], alpha=0.6, label=f"{sample_label}{regions}")]
    if reference_label is not None:
        handles.append(Line2D([], [], color=COLORS["reference"], ls="--", lw=1.5, label=reference_label))
    if truth:
        handles.append(Line2D([], [], color=COLORS["truth"], lw=1.5, label="true value"))
    if dims > 1:
        spare = axes[0, dims - 1]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    else:
        axes[0, 0].legend(handles=handles, fontsize=8)


def pair_plot(samples: Any, *, truth: Any = None, reference: Any = None, labels: Any = None,
              bins: int = 40, limits: Any = None, save: str | os.PathLike | None = None,
              sample_label: str = "posterior", reference_label: str = "reference", title: str | None = None) -> Any:
    """Corner plot: 1-D marginal histograms on the diagonal, 2-D densities below.

    The samples are shown as a shaded 2-D histogram (smoothed, shaded by density) with
    contours enclosing 39% and 86% of the mass (the 1σ and 2σ regions of a 2-D Gaussian); the
    reference samples, if given, as dashed contours at the same masses; the true value as red
    lines. The one pair plot of the library: the diagnostics battery and the HTML report draw it.

    Args:
        samples: ``(n, D)`` posterior samples.
        truth: ``(D,)`` true parameter, optional.
        reference: ``(m, D)`` reference posterior samples, optional.
        labels: parameter names.
        bins: histogram bins per axis.
        limits: ``(D, 2)`` axis limits (default: the 0.5-99.5% range of all samples, padded).
        save: file to write.
        sample_label, reference_label: legend names; title: figure title.

    Returns:
        The matplotlib ``Figure``.
    """
    s = _check(samples, "samples", None)
    dims = s.shape[1]
    ref = None if reference is None else _check(reference, "reference", dims)
    t = None if truth is None else _check(np.reshape(as_numpy(truth, "truth", "pair_plot"), (1, -1)),
                                          "truth", dims)[0]
    names = parameter_labels(labels, dims, "pair_plot")
    lim = _limits(s, ref, t, limits)
    edges = [np.linspace(lim[d, 0], lim[d, 1], bins + 1) for d in range(dims)]
    size = min(2.2 * dims, 12.0) if dims > 1 else 4.0
    fig = new_figure(size, size)
    axes = fig.subplots(dims, dims, squeeze=False)
    for i in range(dims):
        for j in range(dims):
            if j > i:
                axes[i, j].set_visible(False)
                continue
            if i == j:
                _marginal(axes[i, j], i, s, ref, t, edges[i])
            else:
                _joint(axes[i, j], (i, j), s, ref, t, (edges[j], edges[i]))
            axes[i, j].set_xlim(lim[j])
            _axis_labels(axes[i, j], (i, j), names)
    if title:
        fig.suptitle(title)
    _legend(axes, (sample_label, None if ref is None else reference_label), t is not None)
    save_figure(fig, save)
    return fig
