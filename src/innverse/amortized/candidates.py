"""Training the candidate flows of ``fit_posterior`` (each with its Gaussian start) and keeping the best one."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from ..train import EpochCallback, History, Step, TrainConfig, adam, train
from .estimator import FlowOptions, PosteriorEstimator
from .fit_report import CandidateRun, FitReport, GaussianStartReport
from .gaussian_start import gaussian_flow, gaussian_parameters, least_squares_start
from .sources import AbstractSource, Batches

__all__ = ["RunOptions", "flow_candidates", "train_candidates"]

#: a least-squares start in more data dimensions would cost more than it saves
MAX_LEAST_SQUARES_FEATURES = 1000


@dataclass(frozen=True)
class RunOptions:
    """How ``fit_posterior`` trains each candidate (see its arguments)."""

    training: TrainConfig
    gaussian_start: bool | None
    log_x: bool | str
    checkpoint: str | os.PathLike | None
    resume: bool
    log_path: str | os.PathLike | None
    callbacks: tuple[EpochCallback, ...]
    progress: bool


def flow_candidates(flow: Any, theta_dim: int, online: bool, validation: bool, summary: bool) -> list[FlowOptions]:
    """The flow architectures to train: the user's one or list, else the defaults.

    By default (``flow=None``) a posterior over 6 or more parameters, trained offline with a
    validation split and no summary network, gets two candidates and keeps the one with the lower
    validation loss: spline couplings behind the affine head (the default everywhere), and masked
    affine autoregressive blocks (MAF) without the head. A coupling transforms half of the
    parameters per block, while one autoregressive affine block is already a full-covariance
    conditional Gaussian: strongly correlated, nearly Gaussian posteriors favour MAF, non-Gaussian
    ones the splines (``benchmarks/sbi_c2st.py``). With fewer parameters the couplings are rarely
    worse and training twice would not pay.
    """
    if isinstance(flow, (list, tuple)):
        if not flow:
            raise ValueError("fit_posterior: flow is an empty list; give FlowOptions, a dict, a list of them or None")
        return [f if isinstance(f, FlowOptions) else FlowOptions(**(f or {})) for f in flow]
    if flow is None and not online and validation and not summary and theta_dim >= 6:
        return [FlowOptions(), FlowOptions(coupling="autoregressive", head="none")]
    return [flow if isinstance(flow, FlowOptions) else FlowOptions(**(flow or {}))]


def _candidate_path(path: str | os.PathLike | None, i: int) -> str | os.PathLike | None:
    """Checkpoint / log of candidate ``i``: the given path for the first, a sibling for the others."""
    if path is None or i == 0:
        return path
    p = Path(path)
    return p.with_name(f"{p.stem}.candidate{i}{p.suffix}")


def _loss(log_prob: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Sequence[Tensor], Step], Tensor]:
    def loss(batch: Sequence[Tensor], step: Step) -> Tensor:
        return -log_prob(batch[0], batch[1]).mean()

    return loss


def _gaussian_start(est: PosteriorEstimator, data: Batches, cfg: TrainConfig,
                    progress: bool) -> tuple[History, GaussianStartReport]:
    """Train the Gaussian head alone (:mod:`~innverse.amortized.gaussian_start`), from least squares where possible.

    A quarter of the epochs (at least 20, at most all) suffices for so small a model; without a
    summary network it is a linear model of the data and takes a 5x larger step.
    """
    fit = None
    if data.init is not None and est.summary is None and est.context_features <= MAX_LEAST_SQUARES_FEATURES:
        fit = least_squares_start(est, *data.init)
    stage = cfg.replace(epochs=min(cfg.epochs, max(20, cfg.epochs // 4)),  # type: ignore[operator]
                        lr=cfg.lr * (5.0 if est.summary is None else 1.0))  # type: ignore[operator]
    flow = gaussian_flow(est)
    flow.validate_args = False
    history = train(est, _loss(lambda v, z: flow.log_prob(v, est.embedding.summarize(z))), data.train, data.val,
                    stage, optimizer=adam(gaussian_parameters(est), stage),
                    progress="fit_posterior (Gaussian start)" if progress else False)
    return history, GaussianStartReport(history.epochs, history.best_epoch, history.best_val_loss, False,
                                        None if fit is None else fit.ridge, None if fit is None else fit.loo_mse,
                                        history.seconds)


def _train_one(est: PosteriorEstimator, data: Batches, run: RunOptions, start: bool, index: int,
               label: str) -> tuple[History, GaussianStartReport | None, float | None]:
    """Train one candidate (its Gaussian start first where ``start``); its history, start and best validation loss."""
    start_history, report, start_state = None, None, None
    # inputs are validated by the data source, so the flows skip their per-call NaN checks
    est.inn_flow.validate_args = False
    try:
        if start:  # also when resuming: it is deterministic, so the comparison below stays exact
            start_history, report = _gaussian_start(est, data, run.training, run.progress)
            start_state = copy.deepcopy(est.state_dict())
        history = train(est, _loss(est.prepared_log_prob), data.train, data.val, run.training,
                        checkpoint=_candidate_path(run.checkpoint, index), resume=run.resume,
                        log_path=_candidate_path(run.log_path, index), callbacks=run.callbacks,
                        progress=label if run.progress else False)
    finally:
        est.inn_flow.validate_args = True
    val_loss = history.best_val_loss
    if report is not None and start_history is not None and start_history.best_val_loss is not None and (
            val_loss is None or start_history.best_val_loss <= val_loss):
        est.load_state_dict(start_state)  # the full flow never beat the Gaussian fit on the validation data
        report, val_loss = replace(report, kept=True), start_history.best_val_loss
    return history, report, val_loss


def train_candidates(first: PosteriorEstimator, candidates: list[FlowOptions],
                     make: Callable[[FlowOptions], PosteriorEstimator], source: AbstractSource,
                     run: RunOptions) -> tuple[PosteriorEstimator, FitReport]:
    """Train every candidate flow on the source's data and keep the one with the lowest validation loss.

    ``first`` is the estimator of the first candidate (already built); the others are built by
    ``make``. Every estimator's standardisation is fitted on the same pairs.
    """
    runs: list[tuple[PosteriorEstimator, History, GaussianStartReport | None, float | None]] = []
    for i, options in enumerate(candidates):
        est = first if i == 0 else make(options)
        est.fit_standardization(source.theta, source.x, run.log_x)
        start = run.gaussian_start
        if start is None:
            start = source.mode != "online" and est.summary is None and options.gaussian_head
        elif len(candidates) > 1:  # an explicit gaussian_start=True applies to the candidates with the head
            start = start and options.gaussian_head
        label = "fit_posterior" if len(candidates) == 1 else f"fit_posterior ({options.coupling})"
        runs.append((est, *_train_one(est, source.batches(est, run.training.batch_size), run, start, i, label)))  # type: ignore[arg-type]
    best = min(range(len(runs)), key=lambda i: math.inf if runs[i][3] is None else runs[i][3])
    kept, history, start_report, _ = runs[best]
    records = tuple(CandidateRun(asdict(est.flow_options), loss, h.epochs,
                                 h.seconds + (s.seconds if s else 0.0),
                                 None if run.log_path is None else str(_candidate_path(run.log_path, i)))
                    for i, (est, h, s, loss) in enumerate(runs))
    return kept, FitReport(mode=source.mode, training_pairs=source.rows, dropped_invalid=source.dropped,
                           training=run.training, log_features=kept.embedding.log_features.flatten().nonzero()
                           .flatten().tolist(), history=history, gaussian_start=start_report,
                           candidates=records, chosen=best)
