"""Training the candidate flows of ``fit_posterior`` (each with its Gaussian start) and keeping the best one."""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..blocks.support import half_width_for
from ..train import EpochCallback, History, Step, TrainConfig, adam, atomic_write_bytes, train
from .estimator import FlowOptions, PosteriorEstimator
from .fit_report import CandidateRun, FitReport, GaussianStartReport
from .flow_matching import FlowMatchingLoss
from .gaussian_start import gaussian_flow, gaussian_parameters, least_squares_start
from .sources import AbstractSource, Batches

__all__ = ["Candidate", "RunOptions", "flow_candidates", "train_candidates"]

#: where training happens unless fit_posterior is given a device
CPU = torch.device("cpu")
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
    #: where the networks train (the standardisation and the least-squares start are fitted on the CPU first)
    device: torch.device = CPU


@dataclass(frozen=True)
class Candidate:
    """One posterior ``fit_posterior`` trains: its flow, its summary network (a name for
    :func:`~innverse.amortized.fit.build_summary`, a module or ``None``) and its training options, resolved
    for it (a summary network trains in smaller batches)."""

    flow: FlowOptions
    summary: Any
    training: TrainConfig


def flow_candidates(flow: Any, theta_dim: int, online: bool, validation: bool, summary: bool,
                    simulations: int | None = None) -> list[FlowOptions]:
    """The flow architectures to train: the user's one or list, else the defaults.

    By default (``flow=None``) a posterior over 6 or more parameters, trained offline with a
    validation split and no summary network, gets two candidates and keeps the one with the lower
    validation loss: spline couplings behind the affine head (the default everywhere), and masked
    affine autoregressive blocks (MAF) without the head. A coupling transforms half of the
    parameters per block, while one autoregressive affine block is already a full-covariance
    conditional Gaussian: strongly correlated, nearly Gaussian posteriors favour MAF, non-Gaussian
    ones the splines (``benchmarks/sbi_c2st.py``). With fewer parameters the couplings are rarely
    worse and training twice would not pay.

    Where a candidate leaves the support map's half-width unset (``None``, the default), it is set
    from ``simulations``, the number of training pairs (``None`` online), by
    :func:`~innverse.blocks.half_width_for`.
    """
    if isinstance(flow, (list, tuple)):
        if not flow:
            raise ValueError("fit_posterior: flow is an empty list; give FlowOptions, a dict, a list of them or None")
        options = [f if isinstance(f, FlowOptions) else FlowOptions(**(f or {})) for f in flow]
        if len({o.flow_matching for o in options}) > 1:
            raise ValueError("fit_posterior: flow-matching and likelihood-trained flows cannot be compared on their "
                             "validation losses (a flow-matching loss is no likelihood); give one kind")
    elif flow is None and not online and validation and not summary and theta_dim >= 6:
        options = [FlowOptions(), FlowOptions(coupling="autoregressive", head="none")]
    else:
        options = [flow if isinstance(flow, FlowOptions) else FlowOptions(**(flow or {}))]
    half_width = half_width_for(None if online else simulations)
    return [o if o.support_half_width is not None else replace(o, support_half_width=half_width) for o in options]


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


#: share of a candidate's time budget (``TrainConfig.max_seconds``) its Gaussian start may use at most
GAUSSIAN_START_TIME_SHARE = 0.2


def _gaussian_start(est: PosteriorEstimator, data: Batches, cfg: TrainConfig, progress: bool,
                    device: torch.device) -> tuple[History, GaussianStartReport]:
    """Train the Gaussian head alone (:mod:`~innverse.amortized.gaussian_start`), from least squares where possible.

    A quarter of the epochs (at least 20, at most all) suffices for so small a model; without a
    summary network it is a linear model of the data and takes a 5x larger step. Under a time
    budget it gets at most :data:`GAUSSIAN_START_TIME_SHARE` of it.
    """
    fit = None
    if data.init is not None and est.summary is None and est.context_features <= MAX_LEAST_SQUARES_FEATURES:
        fit = least_squares_start(est, *data.init)
    est.to(device)
    stage = cfg.replace(epochs=min(cfg.epochs, max(20, cfg.epochs // 4)),  # type: ignore[operator]
                        lr=cfg.lr * (5.0 if est.summary is None else 1.0),  # type: ignore[operator]
                        max_seconds=None if cfg.max_seconds is None else GAUSSIAN_START_TIME_SHARE * cfg.max_seconds)
    flow = gaussian_flow(est)
    flow.validate_args = False
    history = train(est, _loss(lambda v, z: flow.log_prob(v, est.embedding.summarize(z))), data.train, data.val,
                    stage, optimizer=adam(gaussian_parameters(est), stage),
                    progress="fit_posterior (Gaussian start)" if progress else False)
    return history, GaussianStartReport(history.epochs, history.best_epoch, history.best_val_loss, False,
                                        None if fit is None else fit.ridge, None if fit is None else fit.loo_mse,
                                        history.seconds)


def _check_resumable(est: PosteriorEstimator, checkpoint: str | os.PathLike | None, resume: bool) -> None:
    """Refuse to resume a checkpoint trained as another flow; record this one's options next to its checkpoint.

    Options that leave no trace in the weights would otherwise resume silently into the wrong
    posterior: the support map (its half-width follows the number of simulations, so it changes
    when a store has grown) and its interval. Checkpoints written without the record resume as before.
    """
    if checkpoint is None:
        return
    record = Path(checkpoint).with_name(Path(checkpoint).name + ".flow.json")
    options = json.loads(json.dumps(asdict(est.flow_options)))
    support = est.support
    if not bool((support.lower.isfinite() & support.upper.isfinite()).any()):
        del options["support_interval"], options["support_half_width"]   # no component bounded on both sides
    elif support.interval != "linear":
        del options["support_half_width"]                                 # only the linear map has one
    if resume and Path(checkpoint).exists() and record.exists():
        saved = json.loads(record.read_text())
        differ = [k for k, v in options.items() if k in saved and saved[k] != v]
        if differ:
            was = ", ".join(f"{k}={saved[k]!r}" for k in differ)
            now = ", ".join(f"{k}={options[k]!r}" for k in differ)
            why = " (the support map's half-width follows the number of simulations)" \
                if "support_half_width" in differ else ""
            raise ValueError(f"fit_posterior: cannot resume {checkpoint}: it was trained with {was}, but this fit "
                             f"resolves {now}{why}; "
                             f"pass flow={{{', '.join(f'{k!r}: {saved[k]!r}' for k in differ)}}} to resume it, "
                             f"or resume=False to start over")
    atomic_write_bytes(record, json.dumps(options).encode())


def _train_one(est: PosteriorEstimator, data: Batches, run: RunOptions, start: bool, index: int,
               label: str) -> tuple[History, GaussianStartReport | None, float | None]:
    """Train one candidate (its Gaussian start first where ``start``); its history, start and best validation loss.

    ``run.training.max_seconds``, where set, is this candidate's time budget, the start's included.
    """
    _check_resumable(est, _candidate_path(run.checkpoint, index), run.resume)
    start_history, report, start_state = None, None, None
    t0, cfg = time.perf_counter(), run.training
    # inputs are validated by the data source, so the flows skip their per-call NaN checks
    est.inn_flow.validate_args = False
    try:
        if start:  # also when resuming: it is deterministic, so the comparison below stays exact
            start_history, report = _gaussian_start(est, data, run.training, run.progress, run.device)
            start_state = copy.deepcopy(est.state_dict())
        est.to(run.device)
        if cfg.max_seconds is not None:   # what the start left of the budget (a sliver at least: one step)
            cfg = cfg.replace(max_seconds=max(cfg.max_seconds - (time.perf_counter() - t0), 1e-3))
        history = train(est, _objective(est), data.train, data.val, cfg,
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


#: under a time budget, the share of it for which all candidates train (equal parts) before the best takes the rest
RACE_SHARE = 0.25


def _continued_path(path: str | os.PathLike | None, i: int) -> Path | None:
    """Checkpoint / log of the continued training of candidate ``i`` (next to its own)."""
    if path is None:
        return None
    p = Path(_candidate_path(path, i))  # type: ignore[arg-type]
    return p.with_name(f"{p.stem}.continued{p.suffix}")


def _chain(first: History, second: History) -> History:
    """One history of two consecutive runs of the same model (the second's epochs numbered on)."""
    n = first.epochs
    records = first.records + [{**r, "epoch": r["epoch"] + n} for r in second.records]
    better = second.best_val_loss is not None and (first.best_val_loss is None
                                                   or second.best_val_loss < first.best_val_loss)
    return History(records, second.best_epoch + n if better else first.best_epoch,  # type: ignore[operator]
                   second.best_val_loss if better else first.best_val_loss, second.stopped_early,
                   second.out_of_time, first.skipped_steps + second.skipped_steps, first.seconds + second.seconds)


def _continue(est: PosteriorEstimator, data: Batches, run: RunOptions, index: int, seconds: float,
              done: History, val_loss: float | None) -> tuple[History, float | None]:
    """The winner of a race under a time budget trains on for ``seconds``: a warm restart from its weights.

    A new optimiser and learning-rate cycle (SGDR-style) on the rest of the budget; the weights
    of the race are kept if the continued run never beats them on the validation data. Returns
    the chained history and the best validation loss. Its checkpoint and log sit next to the
    candidate's (``.continued``); the candidate's log is then rewritten with both runs.
    """
    before = copy.deepcopy(est.state_dict())
    est.inn_flow.validate_args = False
    try:
        more = train(est, _objective(est), data.train, data.val, run.training.replace(max_seconds=seconds),
                     checkpoint=_continued_path(run.checkpoint, index), resume=run.resume,
                     log_path=_continued_path(run.log_path, index), callbacks=run.callbacks,
                     progress="fit_posterior (continued)" if run.progress else False)
    finally:
        est.inn_flow.validate_args = True
    if more.best_val_loss is None or (val_loss is not None and more.best_val_loss >= val_loss):
        est.load_state_dict(before)
    else:
        val_loss = more.best_val_loss
    history = _chain(done, more)
    if run.log_path is not None:
        text = "".join(json.dumps(r, allow_nan=False, default=float) + "\n" for r in history.records)
        atomic_write_bytes(Path(_candidate_path(run.log_path, index)), text.encode())  # type: ignore[arg-type]
        _continued_path(run.log_path, index).unlink(missing_ok=True)  # type: ignore[union-attr]
    return history, val_loss


def _objective(est: PosteriorEstimator) -> Callable[[Sequence[Tensor], Step], Tensor]:
    """Maximum likelihood of the prepared pairs, or the flow-matching loss of a ``"flow_matching"`` INN (FMPE)."""
    if not est.flow_options.flow_matching:
        return _loss(est.prepared_log_prob)
    matching, block = FlowMatchingLoss(), est.inn.blocks[0]

    def loss(batch: Sequence[Tensor], step: Step) -> Tensor:
        return matching(block, batch[0], est.embedding.summarize(batch[1]), step.generator)  # type: ignore[arg-type]

    return loss


@torch.no_grad()
def _map_log_det(est: PosteriorEstimator, data: Batches) -> float | None:
    r"""Mean :math:`\log|\partial\theta/\partial v|` of ``est``'s fixed parameter map over the validation pairs.

    A validation loss is :math:`-\log q(v)` in the networks' units; adding this gives the negative
    log density of the parameters themselves, :math:`-\log q(\theta) = -\log q(v) + \log|\partial
    \theta/\partial v|`, which compares across candidates whose support maps or half-widths differ.
    """
    if data.val is None:
        return None
    total, rows = 0.0, 0
    for v, _ in data.val.epoch(0, torch.Generator()):
        _, log_det = est.parameter_map.inverse(v)
        total += float(log_det.double().sum())
        rows += v.shape[0]
    return total / max(rows, 1)


def _baseline_loss(data: Batches) -> float | None:
    r"""Validation loss of the flow that learned nothing: :math:`\mathcal N(0, I)` on the standardised parameters.

    The INN starts as the identity, so this is its loss before training; beating it is the least a
    trained posterior must do (a Gaussian fit of the prior in the networks' units).
    """
    if data.val is None:
        return None
    total, rows = 0.0, 0
    for v, _ in data.val.epoch(0, torch.Generator()):
        total += float((0.5 * v.double().square().sum(1) + 0.5 * v.shape[1] * math.log(2 * math.pi)).sum())
        rows += v.shape[0]
    return total / max(rows, 1)


#: a kept flow must beat the baseline by this many nats per parameter, else fit_posterior warns
MIN_GAIN_PER_PARAMETER = 0.05


def _warn_if_nothing_learned(report: FitReport, theta_dim: int) -> None:
    kept, baseline = report.candidates[report.chosen].val_loss, report.baseline_val_loss
    if kept is None or baseline is None:
        return
    gain = (baseline - kept) / theta_dim
    if not gain >= MIN_GAIN_PER_PARAMETER:
        warnings.warn(f"fit_posterior: the posterior did not beat a Gaussian fit of the prior on the validation pairs "
                      f"(a gain of {gain:.3g} nats per parameter; loss {kept:.4g} vs {baseline:.4g}): training failed "
                      "(diverged? lower the learning rate) or the data carry (almost) no information about the "
                      "parameters; check it with innverse.diagnostics.check", RuntimeWarning, stacklevel=3)


def _describe(est: PosteriorEstimator) -> str:
    """A candidate in a progress bar's label: its coupling, and its summary network if it has one."""
    return est.flow_options.coupling + ("" if est.summary is None else f", {type(est.summary).__name__}")


def train_candidates(first: PosteriorEstimator, candidates: list[Candidate],
                     make: Callable[[Candidate], PosteriorEstimator], source: AbstractSource,
                     run: RunOptions) -> tuple[PosteriorEstimator, FitReport]:
    """Train every candidate on the source's data and keep the one with the lowest validation loss.

    ``first`` is the estimator of the first candidate (already built); the others are built by
    ``make``. Every estimator's standardisation is fitted on the same pairs, and every candidate
    trains with its own resolved options (``run.training`` is the first one's). The validation
    losses compare, whatever the flows, summary networks and parameter maps: each, with its fixed
    map's log-determinant added (:func:`_map_log_det`), is the negative log posterior density of
    the same held-out parameters given the same data.

    A time budget (``TrainConfig.max_seconds``) is for all of them together. Several candidates
    race: each trains for an equal part of :data:`RACE_SHARE` of the budget (a full, short
    learning-rate cycle), and the one with the lowest validation loss then trains on for the rest
    (:func:`_continue`). When time is short, the flow that learns fastest is the one to keep; and
    the winner gets most of the budget instead of a 1/K share.
    """
    budget = candidates[0].training.max_seconds
    deadline = None if budget is None else time.perf_counter() + budget
    race = deadline is not None and len(candidates) > 1
    runs: list[tuple[PosteriorEstimator, History, GaussianStartReport | None, float | None]] = []
    prepared: list[Batches] = []
    baselines: list[float | None] = []
    map_log_dets: list[float | None] = []
    runs_of: list[RunOptions] = []
    for i, candidate in enumerate(candidates):
        options, run_i = candidate.flow, replace(run, training=candidate.training)
        runs_of.append(run_i)
        est = first if i == 0 else make(candidate)
        est.fit_standardization(source.theta, source.x, run.log_x)
        start = run.gaussian_start
        if start is None:
            start = source.mode != "online" and est.summary is None and options.gaussian_head
        elif len(candidates) > 1:  # an explicit gaussian_start=True applies to the candidates with the head
            start = start and options.gaussian_head
        label = "fit_posterior" if len(candidates) == 1 else \
            f"fit_posterior ({_describe(est)}, lr {candidate.training.lr:.2g})"
        data = source.batches(est, run_i.training.batch_size)  # type: ignore[arg-type]
        # a flow-matching validation loss is no likelihood: nothing to compare with the baseline
        baselines.append(None if options.flow_matching else _baseline_loss(data))
        map_log_dets.append(None if options.flow_matching else _map_log_det(est, data))
        prepared.append(data)
        if deadline is not None:
            left = (deadline - time.perf_counter()) / (len(candidates) - i)
            share = max(RACE_SHARE * budget / len(candidates) if race else left, 1e-3)  # type: ignore[operator]
            run_i = replace(run_i, training=run_i.training.replace(max_seconds=share))
        runs.append((est, *_train_one(est, data, run_i, start, i, label)))
    def criterion(i: int, loss: float | None) -> float:   # in theta's units where the loss is a likelihood
        return math.inf if loss is None else loss + (map_log_dets[i] or 0.0)

    best = min(range(len(runs)), key=lambda i: criterion(i, runs[i][3]))
    if race and deadline - time.perf_counter() > 0:  # type: ignore[operator]
        est, done, start_report, loss = runs[best]
        left = deadline - time.perf_counter()  # type: ignore[operator]
        history, loss = _continue(est, prepared[best], runs_of[best], best, left, done, loss)
        runs[best] = (est, history, start_report, loss)
    kept, history, start_report, _ = runs[best]
    records = tuple(CandidateRun(asdict(est.flow_options), loss, h.epochs,
                                 h.seconds + (s.seconds if s else 0.0),
                                 None if run.log_path is None else str(_candidate_path(run.log_path, i)),
                                 None if est.summary is None else type(est.summary).__name__,
                                 candidates[i].training.lr,
                                 None if loss is None or map_log_dets[i] is None else criterion(i, loss))
                    for i, (est, h, s, loss) in enumerate(runs))
    report = FitReport(mode=source.mode, training_pairs=source.rows, dropped_invalid=source.dropped,
                       training=candidates[best].training, log_features=kept.embedding.log_features.flatten().nonzero()
                       .flatten().tolist(), history=history, gaussian_start=start_report, candidates=records,
                       chosen=best, baseline_val_loss=baselines[best])
    _warn_if_nothing_learned(report, kept.theta_dim)
    return kept, report
