"""The result of comparing measurement setups: rankings per parameter, a table, a plot and the Pareto front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .evaluate import PER_PARAMETER, SetupResult

__all__ = ["Comparison", "pareto_front", "LOWER_IS_BETTER"]

#: metrics for which a smaller value means a better setup
LOWER_IS_BETTER = frozenset({"interval_width", "relative_width", "calibration_error", "multimodal_share"})


def pareto_front(costs: Tensor, values: Tensor) -> list[int]:
    """Indices of the points not dominated in (lower cost, higher value), by increasing cost.

    Point ``i`` is dominated when some ``j`` has ``cost_j <= cost_i`` and ``value_j >= value_i``
    with at least one strict inequality.
    """
    c, v = torch.as_tensor(costs, dtype=torch.float64), torch.as_tensor(values, dtype=torch.float64)
    if c.shape != v.shape or c.dim() != 1:
        raise ValueError(f"pareto_front: expected costs and values of the same shape (k,), got {tuple(c.shape)} and "
                         f"{tuple(v.shape)}")
    front = []
    for i in range(c.shape[0]):
        dominated = ((c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))).any()
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (float(c[i]), -float(v[i])))


@dataclass(frozen=True)
class Comparison:
    """Metrics of every setup (:class:`SetupResult`), per parameter, with the questions users ask of them.

    Attributes:
        parameter_names: names of the ``D`` parameters.
        results: one :class:`SetupResult` per setup, in the order given.
        level: credibility level of the interval widths.
        threshold: contraction below which a parameter counts as unidentifiable.
    """

    parameter_names: tuple[str, ...]
    results: tuple[SetupResult, ...]
    level: float = 0.9
    threshold: float = 0.1

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.results]

    def __getitem__(self, name: str) -> SetupResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"Comparison: no setup named {name!r}; setups: {self.names}")

    def _score(self, metric: str, parameter: str | None) -> Tensor:
        if metric not in PER_PARAMETER:
            raise ValueError(f"Comparison: unknown metric {metric!r}; expected one of {PER_PARAMETER}")
        values = torch.stack([r.metric(metric) for r in self.results])               # (setups, D)
        if parameter is None:
            col = values.mean(1)
        elif parameter in self.parameter_names:
            col = values[:, self.parameter_names.index(parameter)]
        else:
            raise ValueError(f"Comparison: unknown parameter {parameter!r}; parameters: {self.parameter_names}")
        return -col if metric in LOWER_IS_BETTER else col

    def ranking(self, metric: str = "contraction", parameter: str | None = None) -> list[str]:
        """Setup names from best to worst by ``metric`` for one parameter (``None``: averaged over parameters)."""
        score = self._score(metric, parameter)
        return [self.results[int(i)].name for i in torch.argsort(score, descending=True, stable=True)]

    def best(self, metric: str = "contraction") -> dict[str, str]:
        """The best setup for each parameter by ``metric`` among those whose posterior passes SBC for that
        parameter: ``{parameter: setup name}``.

        A posterior that fails SBC can look sharp because it is over-confident, so its contraction and
        interval width do not count. The joint ``"information_gain"`` is a Barber-Agakov lower bound,
        valid for any normalised posterior, so by that metric every setup counts. Where no setup
        passes, the best by ``metric`` regardless, and :meth:`caveats` says so.
        """
        out = {}
        for d, p in enumerate(self.parameter_names):
            ranked = self.ranking(metric, p)
            ok = [n for n in ranked if metric == "information_gain" or bool(self[n].calibrated[d])]
            out[p] = ok[0] if ok else ranked[0]
        return out

    def miscalibrated(self) -> dict[str, list[str]]:
        """Per setup, the parameters whose posterior fails SBC (:func:`~innverse.diagnostics.sbc_test`)."""
        return {r.name: [p for p, ok in zip(self.parameter_names, r.calibrated.tolist()) if not ok]
                for r in self.results}

    def caveats(self) -> list[str]:
        """What the numbers cannot be trusted for: setups whose posteriors fail SBC for a parameter."""
        out = []
        for name, params in self.miscalibrated().items():
            for p in params:
                d = self.parameter_names.index(p)
                out.append(f"{name}: the posterior of {p} fails SBC (p = {float(self[name].sbc_p_value[d]):.3g}); its "
                           "contraction and interval width are not to be trusted, and its information gains are "
                           "lower bounds that may be loose (train it on more simulations, or check it with "
                           "innverse.diagnostics); best() passes it over")
        for d, p in enumerate(self.parameter_names):
            if not any(bool(r.calibrated[d]) for r in self.results):
                out.append(f"{p}: no setup's posterior passes SBC; best() falls back to the uncalibrated ranking")
        return out

    def unidentifiable(self) -> dict[str, list[str]]:
        """Per setup, the parameters whose mean contraction stays below the threshold (posterior ~ prior)."""
        return {r.name: [p for p, ok in zip(self.parameter_names, r.recoverable.tolist()) if not ok]
                for r in self.results}

    def pareto_front(self, metric: str = "information_gain") -> list[str]:
        """Setups on the cost / ``metric`` Pareto front (averaged over parameters), cheapest first.

        Raises:
            ValueError: a setup without a cost.
        """
        missing = [r.name for r in self.results if r.cost is None]
        if missing:
            raise ValueError(f"Comparison.pareto_front: setups {missing} have no cost; give Setup(..., cost=...)")
        costs = torch.tensor([float(r.cost) for r in self.results])  # type: ignore[arg-type]
        return [self.results[i].name for i in pareto_front(costs, self._score(metric, None))]

    def table(self) -> str:
        """A Markdown table: one row per setup and parameter."""
        head = ("| setup | cost | parameter | contraction | CI width (rel.) | EIG (nats) | SBC p | multimodal | "
                "identifiable |\n|---|---:|---|---:|---:|---:|---:|---:|---|")
        # a failed SBC is marked where it is read: "0.000 (fails)"
        rows = [head]
        for r in self.results:
            cost = "" if r.cost is None else f"{r.cost:g}"
            for d, p in enumerate(self.parameter_names):
                rows.append(f"| {r.name} | {cost} | {p} | {float(r.contraction[d]):.3f} | "
                            f"{float(r.relative_width[d]):.3f} | {float(r.marginal_information[d]):.2f} | "
                            f"{float(r.sbc_p_value[d]):.3f}{'' if bool(r.calibrated[d]) else ' (fails)'} | "
                            f"{float(r.multimodal_share[d]):.2f} | "
                            f"{'yes' if bool(r.recoverable[d]) else 'NO'} |")
            rows.append(f"| {r.name} | {cost} | *joint* | | | {r.information_gain:.2f} ± {r.information_gain_se:.2f} "
                        f"| | | |")
        return "\n".join(rows)

    def __str__(self) -> str:
        caveats = self.caveats()
        return self.table() + ("\n\nCaveats:\n" + "\n".join(f"- {c}" for c in caveats) if caveats else "")

    def to_dict(self) -> dict[str, Any]:
        return {"parameter_names": list(self.parameter_names), "level": self.level, "threshold": self.threshold,
                "results": [r.to_dict() for r in self.results]}

    def plot(self, path: str | Path | None = None, metrics: tuple[str, ...] = ("contraction", "relative_width",
                                                                               "marginal_information")) -> Any:
        """Grouped bars per parameter for each metric (one panel each), plus cost vs EIG when costs are known.

        Needs matplotlib (``pip install 'innverse[plots]'``); returns the figure, saved to ``path`` if given.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        with_cost = all(r.cost is not None for r in self.results)
        panels = len(metrics) + int(with_cost)
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
        d, k = len(self.parameter_names), len(self.results)
        width = 0.8 / k
        for ax, metric in zip(axes[0], metrics):
            for j, r in enumerate(self.results):
                ax.bar([i + j * width for i in range(d)], r.metric(metric).tolist(), width, label=r.name)
            ax.set_xticks([i + 0.4 - width / 2 for i in range(d)], self.parameter_names, rotation=30, ha="right")
            ax.set_title(metric.replace("_", " "))
            if metric == "contraction":
                ax.axhline(self.threshold, color="k", lw=0.8, ls="--")
        axes[0][0].legend(fontsize=8)
        if with_cost:
            ax = axes[0][-1]
            ax.errorbar([r.cost for r in self.results], [r.information_gain for r in self.results],
                        yerr=[r.information_gain_se for r in self.results], fmt="o")
            for r in self.results:
                ax.annotate(r.name, (r.cost, r.information_gain), fontsize=8)
            front = [self[n] for n in self.pareto_front()]
            ax.plot([r.cost for r in front], [r.information_gain for r in front], "k--", lw=0.8)
            ax.set_xlabel("cost")
            ax.set_ylabel("EIG lower bound (nats)")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig
