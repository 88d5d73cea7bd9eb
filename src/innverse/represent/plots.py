"""Figures of representations: image grids (metamers, reconstructions, latent traversals) and latent spectra.

matplotlib is imported inside the functions (``pip install 'innverse[plots]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .invariance import MetamerResult
from .latents import LatentSpectrum

__all__ = ["plot_image_rows", "plot_latent_spectrum", "plot_metamers", "plot_traversals"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the plots of innverse.represent need matplotlib (pip install 'innverse[plots]')") from err
    return plt


def _as_images(owner: str, t: Tensor) -> Tensor:
    t = t.detach().cpu().float()
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3:
        raise ValueError(f"{owner}: expected grey images (n, H, W) or (n, 1, H, W), got shape {tuple(t.shape)}")
    return t


def _finish(fig: Any, path: str | Path | None) -> Any:
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_image_rows(rows: Sequence[Tensor], labels: Sequence[str] = (), titles: Sequence[str] = (),
                    path: str | Path | None = None, cell: float = 0.9, shared_scale: bool = True,
                    value_range: tuple[float, float] | None = None) -> Any:
    """A grid with one row per tensor of grey images ``(n, H, W)`` / ``(n, 1, H, W)``; returns the figure.

    ``labels`` name the rows, ``titles`` the columns (or every cell: ``len(rows) * n`` strings).
    Grey scale: ``value_range`` (values outside saturate), else with ``shared_scale`` the range
    of the whole grid, else each image's own.
    """
    plt = _pyplot()
    images = [_as_images("plot_image_rows", r) for r in rows]
    n = max(len(r) for r in images)
    lo = min(float(r.min()) for r in images) if shared_scale else None
    hi = max(float(r.max()) for r in images) if shared_scale else None
    if value_range is not None:
        lo, hi = value_range
    fig, axes = plt.subplots(len(images), n, figsize=(cell * n + 1.2, cell * len(images) + 0.3), squeeze=False)
    for i, row in enumerate(images):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(row[j].numpy(), cmap="gray_r", vmin=lo, vmax=hi)
            else:
                ax.axis("off")
            cell_title = titles[i * n + j] if len(titles) == len(images) * n else (titles[j] if i == 0 and j < len(
                titles) else None)
            if cell_title:
                ax.set_title(cell_title, fontsize=7)
        if i < len(labels):
            axes[i][0].set_ylabel(labels[i], fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return _finish(fig, path)


def plot_metamers(result: MetamerResult, logit_source: Tensor, nuisance_source: Tensor,
                  path: str | Path | None = None) -> Any:
    """Three rows: the inputs whose logits are kept, the metamers, the inputs whose nuisance they took.

    Each metamer is titled with its predicted class (that of the first row) and each source
    with its own prediction. The grey scale is the range of the two sources (metamer values
    outside it saturate).
    """
    pred = [int(k) for k in result.logits_metamer.argmax(1)]
    pred_a = [int(k) for k in result.logits_a.argmax(1)]
    n = len(pred)
    titles = [f"pred {k}" for k in pred_a] + [f"pred {k}" for k in pred] + [""] * n
    sources = torch.cat([logit_source.detach().flatten(), nuisance_source.detach().flatten()])
    return plot_image_rows([logit_source, result.metamers, nuisance_source],
                           ["logits of", "metamer", "nuisance of"], titles, path,
                           value_range=(float(sources.min()), float(sources.max())))


def plot_traversals(images: Tensor, dims: Sequence[int] = (), path: str | Path | None = None,
                    value_range: tuple[float, float] | None = None) -> Any:
    """Latent traversals ``(rows, steps, H, W)`` (from :func:`~innverse.represent.latent_traversals`), one row per latent.

    One grey scale for the grid: ``value_range`` (e.g. the data's, values outside saturate) or the grid's range.
    """
    if images.dim() == 5 and images.shape[2] == 1:
        images = images[:, :, 0]
    if images.dim() != 4:
        raise ValueError(f"plot_traversals: expected images (rows, steps, H, W), got shape {tuple(images.shape)}")
    labels = [f"z{d}" for d in dims]
    return plot_image_rows(list(images), labels, path=path, value_range=value_range)


def plot_latent_spectrum(spectrum: LatentSpectrum, path: str | Path | None = None, title: str = "") -> Any:
    """The standard deviations of the latents, largest first, on a log scale, the informative ones highlighted."""
    plt = _pyplot()
    stds = spectrum.stds.detach().cpu().double()
    k = spectrum.informative
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    idx = torch.arange(1, len(stds) + 1)
    ax.bar(idx[:k].numpy(), stds[:k].numpy(), color="tab:orange", label=f"informative ({k})")
    ax.bar(idx[k:].numpy(), stds[k:].numpy(), color="tab:gray", label="other")
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension (sorted)")
    ax.set_ylabel("standard deviation")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _finish(fig, path)
