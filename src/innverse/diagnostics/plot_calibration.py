"""Calibration plots: SBC rank histograms, ECDF differences with simultaneous bands, coverage curves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .coverage import LEVELS, coverage_curve
from .ecdf import ECDFBand, ecdf_band
from .plot_base import COLORS, as_numpy, new_figure, panel_grid, parameter_labels, save_figure
from .sbc import randomized_pit, rank_histogram

__all__ = ["rank_histogram_plot", "ecdf_difference_plot", "sbc_ecdf_plot", "coverage_plot"]

Path = str | os.PathLike | None


def rank_histogram_plot(ranks: Any, num_samples: int, *, bins: int | None = None, level: float = 0.01,
                        labels: Any = None, save: Path = None) -> Any:
    """SBC rank histograms, one panel per parameter, with the pointwise binomial band.

    Args:
        ranks: ``(k, D)`` SBC ranks in ``0..L``; num_samples: ``L``.
        bins: number of bins (see :func:`~innverse.diagnostics.rank_histogram`).
        level: the grey band holds each bin's count with probability ``1 - level`` under calibration.
        labels: parameter names.
        save: file to write (format from the suffix).

    Returns:
        The matplotlib ``Figure``.

    References:
        Talts et al. "Validating Bayesian Inference Algorithms with Simulation-Based Calibration". 2018.
    """
    hist = rank_histogram(ranks, num_samples, bins=bins, level=level)
    counts = np.asarray(hist["counts"])
    dims = counts.shape[0]
    names = parameter_labels(labels, dims, "rank_histogram_plot")
    fig, axes = panel_grid(dims, 3.2, 2.6)
    edges = np.asarray(hist["edges"], dtype=float)
    for d, ax in enumerate(axes):
        ax.fill_between(edges, np.r_[hist["lower"], hist["lower"][-1]], np.r_[hist["upper"], hist["upper"][-1]],
                        step="post", color=COLORS["band"], alpha=0.5, lw=0,
                        label=f"{100 * (1 - level):.0f}% band (uniform)")
        ax.stairs(hist["expected"], edges, color="k", lw=1, ls="--", label="expected")
        ax.stairs(counts[d], edges, fill=True, color=COLORS["samples"], alpha=0.55, label="observed")
        ax.stairs(counts[d], edges, color=COLORS["samples"], lw=1.2)
        ax.set_title(f"{names[d]}  (χ² p = {hist['chi2_p_value'][d]:.2g})", fontsize=10)
        ax.set_xlabel(f"rank of true value among {num_samples} samples")
        ax.set_ylabel("number of data sets")
        ax.set_xlim(edges[0], edges[-1])
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    fig.suptitle(f"SBC rank histograms ({int(counts[0].sum())} simulated data sets)")
    save_figure(fig, save)
    return fig


def ecdf_difference_plot(values: Any, *, level: float = 0.05, band: ECDFBand | None = None, labels: Any = None,
                         title: str = "ECDF difference", xlabel: str = "fractional rank z",
                         save: Path = None, seed: int = 0) -> Any:
    r"""ECDF difference :math:`\hat F(z) - z` of values that should be uniform, with a simultaneous band.

    The band (Säilynoja et al. 2022, :func:`~innverse.diagnostics.ecdf_band`) contains the
    whole curve of a uniform sample with probability ``1 - level``; leaving it anywhere is
    evidence of miscalibration. A ∩-shape means too few extreme ranks (under-confidence), a
    ∪-shape too many (over-confidence), a curve above/below zero a negative/positive bias.

    Args:
        values: ``(k,)`` or ``(k, D)`` values in [0, 1]; labels: column names.
    """
    u = as_numpy(values, "values", "ecdf_difference_plot")
    u = u[:, None] if u.ndim == 1 else u
    k, dims = u.shape
    band = ecdf_band(k, level=level, seed=seed) if band is None else band
    names = parameter_labels(labels, dims, "ecdf_difference_plot")
    fig, axes = panel_grid(dims, 3.2, 2.6, sharey=True)
    z = np.r_[0.0, band.z, 1.0]
    lo, hi = np.r_[0.0, band.lower - band.z, 0.0], np.r_[0.0, band.upper - band.z, 0.0]
    for d, ax in enumerate(axes):
        ecdf = np.r_[0.0, (u[:, d][None, :] < band.z[:, None]).mean(1), 1.0]
        inside = bool(np.all((ecdf[1:-1] >= band.lower - 1e-12) & (ecdf[1:-1] <= band.upper + 1e-12)))
        ax.fill_between(z, lo, hi, color=COLORS["band"], alpha=0.5, lw=0,
                        label=f"{100 * (1 - level):.0f}% simultaneous band")
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        ax.plot(z, ecdf - z, color=COLORS["samples"] if inside else COLORS["truth"], lw=1.5,
                label="ECDF − z")
        ax.set_title(f"{names[d]}" + ("" if inside else "  (outside band)"), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_xlim(0, 1)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("ECDF difference")
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    fig.suptitle(f"{title} ({k} data sets)")
    save_figure(fig, save)
    return fig


def sbc_ecdf_plot(ranks: Any, num_samples: int, *, level: float = 0.05, labels: Any = None,
                  save: Path = None, seed: int = 0) -> Any:
    """ECDF-difference plot of SBC ranks (as randomised fractional ranks), see :func:`ecdf_difference_plot`."""
    r = as_numpy(ranks, "ranks", "sbc_ecdf_plot")
    u = randomized_pit(torch.as_tensor(r).reshape(r.shape[0], -1), num_samples, seed=seed)
    return ecdf_difference_plot(u, level=level, labels=labels, title="SBC: ECDF of ranks − uniform",
                                save=save, seed=seed)


def coverage_plot(credibility: Mapping[str, Any], *, level: float = 0.05, labels: Any = None,
                  save: Path = None, seed: int = 0) -> Any:
    """Expected coverage vs credibility level, with the diagonal and a simultaneous band.

    Args:
        credibility: named credibility values, e.g. ``{"central": (k, D), "HPD": (k,),
            "TARP": (k,)}`` (from :func:`~innverse.diagnostics.credibility_central` etc.). A
            ``(k, D)`` entry gives one curve per parameter, named by ``labels``.
        level: the band holds a calibrated curve entirely with probability ``1 - level``.

    A curve below the diagonal means over-confident credible regions (they hold the truth less
    often than claimed), above it means conservative ones.
    """
    if not credibility:
        raise ValueError("coverage_plot: needs at least one set of credibility values")
    panels = list(credibility.items())
    fig = new_figure(3.6 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, values) in zip(axes, panels):
        v = as_numpy(values, name, "coverage_plot")
        v = v[:, None] if v.ndim == 1 else v
        band = ecdf_band(v.shape[0], level=level, seed=seed)
        z = np.r_[0.0, band.z, 1.0]
        ax.fill_between(z, np.r_[0.0, band.lower, 1.0], np.r_[0.0, band.upper, 1.0], color=COLORS["band"],
                        alpha=0.5, lw=0, label=f"{100 * (1 - level):.0f}% band")
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="ideal")
        curves = coverage_curve(v)
        names = parameter_labels(labels, v.shape[1], "coverage_plot") if v.shape[1] > 1 else [name]
        for d in range(v.shape[1]):
            ax.plot(LEVELS, curves[:, d], lw=1.5, label=names[d])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"{name} ({v.shape[0]} data sets)", fontsize=10)
        ax.set_xlabel("credibility level")
        ax.set_ylabel("expected coverage")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Expected coverage of credible regions")
    save_figure(fig, save)
    return fig
