"""Recovery plots: posterior mean vs truth, and posterior z-score vs contraction."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .plot_base import COLORS, as_numpy, panel_grid, parameter_labels, save_figure

__all__ = ["recovery_plot", "zscore_contraction_plot"]

Path = str | os.PathLike | None


def _kd(x: Any, name: str, owner: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = as_numpy(x, name, owner)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        raise ValueError(f"{owner}: {name} must have shape {shape or '(k, D)'}, got {a.shape}")
    return a


def recovery_plot(truth: Any, posterior_mean: Any, posterior_std: Any = None, *, labels: Any = None,
                  save: Path = None) -> Any:
    """Posterior mean (with ±1 posterior sd bars) against the true value, one panel per parameter.

    Points on the diagonal are perfectly recovered; each panel reports R² and RMSE.

    Args:
        truth, posterior_mean, posterior_std: ``(k, D)`` arrays (``posterior_std`` optional).
    """
    t = _kd(truth, "truth", "recovery_plot")
    m = _kd(posterior_mean, "posterior_mean", "recovery_plot", t.shape)
    sd = None if posterior_std is None else _kd(posterior_std, "posterior_std", "recovery_plot", t.shape)
    dims = t.shape[1]
    names = parameter_labels(labels, dims, "recovery_plot")
    fig, axes = panel_grid(dims, 3.2, 3.2)
    for d, ax in enumerate(axes):
        lo = min(t[:, d].min(), m[:, d].min())
        hi = max(t[:, d].max(), m[:, d].max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="ideal")
        ax.errorbar(t[:, d], m[:, d], yerr=None if sd is None else sd[:, d], fmt="o", ms=3,
                    color=COLORS["samples"], ecolor=COLORS["samples"], alpha=0.6, elinewidth=0.8,
                    label="posterior mean ± sd" if sd is not None else "posterior mean")
        sse = ((m[:, d] - t[:, d]) ** 2).sum()
        sst = ((t[:, d] - t[:, d].mean()) ** 2).sum()
        r2 = 1 - sse / sst if sst > 0 else float("nan")
        ax.set_title(f"{names[d]}: R² = {r2:.3f}, RMSE = {np.sqrt(sse / len(t)):.3g}", fontsize=10)
        ax.set_xlabel(f"true {names[d]}")
        ax.set_ylabel(f"estimated {names[d]}")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Parameter recovery ({t.shape[0]} simulated data sets)")
    save_figure(fig, save)
    return fig


def zscore_contraction_plot(z_score: Any, contraction: Any, *, labels: Any = None, save: Path = None) -> Any:
    r"""Posterior z-score against posterior contraction (Schad et al. 2021), one panel per parameter.

    Ideal: contraction near 1 (the data are informative) and z-scores within ±2 (the truth is
    where the posterior says it is). High contraction with large :math:`|z|` means
    over-confidence; low contraction means the prior dominates.
    """
    z = _kd(z_score, "z_score", "zscore_contraction_plot")
    c = _kd(contraction, "contraction", "zscore_contraction_plot", z.shape)
    dims = z.shape[1]
    names = parameter_labels(labels, dims, "zscore_contraction_plot")
    fig, axes = panel_grid(dims, 3.2, 3.0, sharey=True)
    zmax = max(3.5, float(np.nanmax(np.abs(z))) * 1.05)
    for d, ax in enumerate(axes):
        ax.axhspan(-2, 2, color=COLORS["band"], alpha=0.35, lw=0, label="|z| ≤ 2")
        ax.axhline(0, color="k", lw=0.8, ls="--")
        outside = np.abs(z[:, d]) > 2
        ax.scatter(c[~outside, d], z[~outside, d], s=10, color=COLORS["samples"], alpha=0.7, label="data set")
        ax.scatter(c[outside, d], z[outside, d], s=12, color=COLORS["truth"], alpha=0.8,
                   label=f"|z| > 2 ({100 * outside.mean():.0f}%)")
        ax.set_xlim(min(0.0, float(np.nanmin(c[:, d])) - 0.05), 1.02)
        ax.set_ylim(-zmax, zmax)
        ax.set_title(names[d], fontsize=10)
        ax.set_xlabel("posterior contraction")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("posterior z-score")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Posterior z-score vs contraction")
    save_figure(fig, save)
    return fig
