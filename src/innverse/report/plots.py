"""The report's own figures: training curves from the log, and a pair plot of posterior samples.

matplotlib is imported inside each function (it is an optional dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["pair_plot", "training_curves"]


def _numeric_series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, row in enumerate(rows):
        v = row.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
            xs.append(row.get("epoch", i + 1))
            ys.append(float(v))
    return np.asarray(xs, dtype=float), np.asarray(ys)


def training_curves(rows: list[dict[str, Any]]) -> Any:
    """Loss per epoch (every numeric column whose name contains "loss"), and the learning rate.

    Args:
        rows: per-epoch records, e.g. ``{"epoch": 3, "train_loss": 1.2, "val_loss": 1.3, "lr": 1e-3}``.

    Returns:
        A matplotlib Figure, or ``None`` if the log has no loss column.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k, v in r.items() if "loss" in k.lower()
                   and isinstance(v, int | float) and not isinstance(v, bool)})
    if not keys:
        return None
    lr_key = next((k for k in ("lr", "learning_rate") if any(k in r for r in rows)), None)
    fig, axes = plt.subplots(1, 2 if lr_key else 1, figsize=(10 if lr_key else 6, 3.6), squeeze=False)
    ax = axes[0, 0]
    for key in keys:
        x, y = _numeric_series(rows, key)
        ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, lw=1.6, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if lr_key:
        x, y = _numeric_series(rows, lr_key)
        axes[0, 1].plot(x, y, color="tab:gray", lw=1.6)
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("learning rate")
        axes[0, 1].set_title("Schedule")
        axes[0, 1].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def pair_plot(samples: np.ndarray, names: Sequence[str], truth: np.ndarray | None = None,
              reference: np.ndarray | None = None, title: str = "", max_points: int = 4000) -> Any:
    """Corner plot: histograms on the diagonal, scatter of sample pairs below it.

    Args:
        samples: ``(n, d)`` posterior samples.
        names: ``d`` parameter names.
        truth: optional ``(d,)`` true parameters (drawn as lines).
        reference: optional ``(m, d)`` reference posterior samples (drawn in grey underneath).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    samples = np.asarray(samples, dtype=float)
    d = samples.shape[1]
    rng = np.random.default_rng(0)
    show = samples[rng.permutation(len(samples))[:max_points]]
    ref = None if reference is None else np.asarray(reference, dtype=float)[:max_points]
    both = samples if ref is None else np.concatenate([samples, ref])
    lo, hi = np.quantile(both, 0.002, axis=0), np.quantile(both, 0.998, axis=0)
    if truth is not None:
        lo, hi = np.minimum(lo, truth), np.maximum(hi, truth)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    lo, hi = lo - pad, hi + pad
    size = min(2.4 * d, 11.0)
    fig, axes = plt.subplots(d, d, figsize=(size, size), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                bins = np.linspace(lo[i], hi[i], 41)
                if ref is not None:
                    ax.hist(ref[:, i], bins=bins, density=True, color="0.75", label="reference")
                ax.hist(samples[:, i], bins=bins, density=True, histtype="step", color="tab:blue", lw=1.5,
                        label="innverse")
                if truth is not None:
                    ax.axvline(truth[i], color="tab:red", lw=1.2, label="truth")
                ax.set_yticks([])
                ax.set_xlim(lo[i], hi[i])
            else:
                if ref is not None:
                    ax.scatter(ref[:, j], ref[:, i], s=2, color="0.75", alpha=0.5, rasterized=True)
                ax.scatter(show[:, j], show[:, i], s=2, color="tab:blue", alpha=0.35, rasterized=True)
                if truth is not None:
                    ax.plot(truth[j], truth[i], marker="*", color="tab:red", ms=10)
                ax.set_xlim(lo[j], hi[j])
                ax.set_ylim(lo[i], hi[i])
            if i == d - 1:
                ax.set_xlabel(names[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if ref is not None or truth is not None:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", frameon=False, fontsize=9,
                   bbox_to_anchor=(0.98, 0.9 if title else 0.98))
    return fig
