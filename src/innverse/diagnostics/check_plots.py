"""The figures of the diagnostics battery, written into a run's output folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .plot_calibration import coverage_plot, rank_histogram_plot, sbc_ecdf_plot
from .plot_posterior import pair_plot
from .plot_recovery import recovery_plot, zscore_contraction_plot
from .plot_training import loss_plot
from .protocol import posterior_sample
from .result import CheckResult

__all__ = ["battery_plots"]

#: pair plots are drawn for at most this many observations
MAX_PAIR_PLOTS = 6


def battery_plots(result: CheckResult, out_dir: Path, *, posterior: Any, observations: torch.Tensor | None,
                  reference_samples: Sequence[Any] | None, history: Any, seed: int,
                  credibility: dict[str, Any]) -> dict[str, str]:
    """Save every plot of a :class:`CheckResult`; returns ``{name: path}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = result.settings["parameter_names"]
    level = result.settings["level"]
    samples = result.settings["samples"]
    rec = result.recovery
    paths: dict[str, str] = {}

    def keep(name: str, fig_fn: Any, *args: Any, **kwargs: Any) -> None:
        path = out_dir / f"{name}.png"
        fig_fn(*args, save=path, **kwargs)
        paths[name] = str(path)

    ranks = torch.tensor(result.sbc["ranks"])
    keep("sbc_rank_histogram", rank_histogram_plot, ranks, samples, bins=len(result.sbc["histogram"]["counts"][0]),
         labels=names)
    keep("sbc_ecdf", sbc_ecdf_plot, ranks, samples, level=level, labels=names, seed=seed)
    keep("coverage", coverage_plot, {k: v for k, v in credibility.items() if v is not None}, level=level,
         labels=names, seed=seed)
    keep("recovery", recovery_plot, rec["truth"], rec["posterior_mean"], rec["posterior_std"], labels=names)
    keep("zscore_contraction", zscore_contraction_plot, rec["z_score"], rec["contraction"], labels=names)
    if history is not None:
        keep("training_loss", loss_plot, history)
    if observations is not None:
        shown = observations[:MAX_PAIR_PLOTS]
        if reference_samples is not None and len(reference_samples) < shown.shape[0]:
            raise ValueError(f"check: {len(reference_samples)} reference sample sets for "
                             f"{shown.shape[0]} observations")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 17)
            post = posterior_sample(posterior, max(samples, 2000), shown, len(names))
        for i in range(shown.shape[0]):
            ref = None if reference_samples is None else reference_samples[i]
            flag = ""
            if result.misspecification.get("available"):
                flag = "  (FLAGGED: outside the simulations)" if result.misspecification["flags"][i] else ""
            keep(f"pair_plot_observation_{i}", pair_plot, post[:, i], reference=ref, labels=names,
                 title=f"Posterior for observation {i}{flag}")
    return paths
