"""What :func:`~innverse.amortized.fit_posterior` did, as typed records (saved with the model file)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..train import History, TrainConfig

__all__ = ["CandidateRun", "FitReport", "GaussianStartReport"]


@dataclass(frozen=True)
class GaussianStartReport:
    """The Gaussian start (see :mod:`innverse.amortized.gaussian_start`) of the kept flow.

    Attributes:
        epochs / best_epoch / best_val_loss: its training run.
        kept: whether the Gaussian fit was kept because the full flow never beat it on the
            validation pairs.
        ridge / loo_mse: the least-squares start (relative penalty and leave-one-out error),
            ``None`` when it did not start from least squares (summary network, online).
        seconds: its training time.
    """

    epochs: int
    best_epoch: int | None
    best_val_loss: float | None
    kept: bool
    ridge: float | None = None
    loo_mse: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class CandidateRun:
    """One candidate flow trained by ``fit_posterior`` (see ``FitReport.candidates``).

    Attributes:
        flow: its :class:`~innverse.amortized.FlowOptions` as a dict.
        val_loss: its best validation loss (Gaussian start included), in the units its networks see
            (the parameters after its fixed support map and standardisation).
        theta_val_loss: the same in the parameters' own units, the selection criterion: the
            negative log density of the held-out parameters, ``val_loss`` plus the fixed maps' mean
            ``log|dθ/dv|``, so candidates whose maps differ (support map,
            half-width) compare. ``None`` for flow matching (no likelihood) and in older files.
        epochs / seconds: its training length and time (Gaussian start included).
        log_path: its JSON-lines training log, if one was written.
        summary: the class name of its summary network; ``None`` where it had none.
        lr: its peak learning rate (candidates may differ in it: the MLP summary races at two).
    """

    flow: dict[str, Any]
    val_loss: float | None
    epochs: int
    seconds: float
    log_path: str | None = None
    summary: str | None = None
    lr: float | None = None
    theta_val_loss: float | None = None


@dataclass(frozen=True)
class FitReport:
    """How a posterior was trained: data, resolved options, stages and the choice between candidate flows.

    Attributes:
        mode: ``"memory"``, ``"store"`` or ``"online"``.
        training_pairs: simulations per epoch the budget-aware defaults were computed from.
        dropped_invalid: training pairs dropped for NaN/Inf (``drop_invalid=True``).
        training: the training options actually used, defaults resolved (batch size included).
        log_features: data features standardised on the log scale (flat indices of the statistics).
        history: the kept flow's training history.
        gaussian_start: the kept flow's Gaussian start, if it had one.
        candidates: every candidate flow trained, in order (one unless several were compared).
        chosen: index of the kept candidate.
        baseline_val_loss: validation loss of the flow that learned nothing (standard normal on the
            standardised parameters, the INN's start); a kept validation loss not below it means
            training failed or the data are uninformative (``fit_posterior`` warns).
        budget: the preset ``fit_posterior`` was called with (``"fast"``, ``"accurate"``), or
            ``None``; ``training`` and ``candidates`` show what it resolved to.
    """

    mode: str
    training_pairs: int
    dropped_invalid: int
    training: TrainConfig
    log_features: list[int]
    history: History = field(default_factory=History)
    gaussian_start: GaussianStartReport | None = None
    candidates: tuple[CandidateRun, ...] = ()
    chosen: int = 0
    baseline_val_loss: float | None = None
    budget: str | None = None

    @property
    def batch_size(self) -> int | None:
        return self.training.batch_size

    @property
    def compared_flows(self) -> bool:
        """Whether several candidate flows were trained and the one with the lowest validation loss kept."""
        return len(self.candidates) > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in model files)."""
        out = asdict(self)
        out["training"] = self.training.to_dict()
        out["history"] = self.history.to_dict()
        out["candidates"] = [asdict(c) for c in self.candidates]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitReport:
        """Inverse of :meth:`to_dict`; also reads the ``info`` dict of model files from innverse 0.1."""
        if "train_config" in d:  # innverse 0.1: an untyped info dict
            return cls._from_v1_info(d)
        start = d.get("gaussian_start")
        return cls(mode=d["mode"], training_pairs=int(d["training_pairs"]), dropped_invalid=int(d["dropped_invalid"]),
                   training=TrainConfig.from_dict(d["training"]), log_features=list(d["log_features"]),
                   history=History.from_dict(d["history"]),
                   gaussian_start=None if start is None else GaussianStartReport(**start),
                   candidates=tuple(CandidateRun(**c) for c in d.get("candidates", ())), chosen=int(d.get("chosen", 0)),
                   baseline_val_loss=d.get("baseline_val_loss"), budget=d.get("budget"))

    @classmethod
    def _from_v1_info(cls, info: dict[str, Any]) -> FitReport:
        config = {k: v for k, v in info["train_config"].items() if k in TrainConfig.__dataclass_fields__}
        config["batch_size"] = info.get("batch_size")
        start = info.get("gaussian_start")
        fit = (start or {}).get("least_squares") or {}
        sel = info.get("flow_selection")
        candidates: tuple[CandidateRun, ...] = ()
        if sel:
            candidates = tuple(CandidateRun(flow, loss, epochs, seconds, path) for flow, loss, epochs, seconds, path in
                               zip(sel["candidates"], sel["val_loss"], sel["epochs"], sel["seconds"], sel["log_paths"]))
        return cls(mode=info.get("mode", "memory"), training_pairs=int(info.get("training_pairs", 0)),
                   dropped_invalid=int(info.get("dropped_invalid", 0)), training=TrainConfig.from_dict(config),
                   log_features=list(info.get("log_features", [])),
                   gaussian_start=None if start is None else GaussianStartReport(
                       start["epochs"], start["best_epoch"], start["best_val_loss"], start["kept"],
                       fit.get("ridge"), fit.get("loo_mse")),
                   candidates=candidates, chosen=int(sel["chosen"]) if sel else 0)
