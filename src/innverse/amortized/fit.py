"""One call from simulations (in memory, in a store, or online) to a trained :class:`Posterior`."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..nets.summaries import SUMMARY_NETWORKS, summary_from_config
from ..train import EpochCallback, History, TensorBatches, TrainConfig, train
from .estimator import FlowOptions, PosteriorEstimator
from .executor import simulate
from .inputs import invalid_rows, to_tensor
from .online import OnlineBatches
from .posterior import Posterior
from .priors import as_prior
from .simulation import batch_seed
from .store import SimulationStore, StoreBatches

__all__ = ["fit_posterior", "default_training", "build_summary"]

logger = logging.getLogger("innverse")


def default_training(n_train: int, theta_dim: int | None = None, summary: bool = False) -> tuple[int, TrainConfig]:
    """Budget-aware defaults: ``(batch_size, TrainConfig)`` for ``n_train`` training pairs.

    Batch size, a power of two: with a summary network (whose cost grows with the batch) near
    ``n_train / 16``, from 32 to 256. Without one, a step of the small default flow costs mostly
    fixed per-operation overhead (256 rows take ~1.2x the time of 64), so batches are larger:
    near ``n_train / 8``, from 32 to 512, and near ``n_train / 4`` for ``theta_dim <= 5``.
    Measured on the benchmark tasks: 2-5 parameters at 1,000 simulations train ~2x faster with
    256 rows than with 64 at the same C2ST; 10 parameters at that budget reached a worse C2ST
    with 256 rows (Bernoulli GLM 0.855 vs 0.827 with 128); at 10,000 simulations 512 rows cut the
    training time by a third at the same C2ST. The maximum number of epochs allows about
    6,000-12,000 optimiser steps; early stopping on the validation loss decides the actual length.
    Its patience adapts (``min_patience``): 20 epochs after a best epoch of 20 or later, as long as
    it took to reach the best epoch for an earlier one, at least 10. In 48 validation curves of
    the benchmark tasks (10^3 and 10^4 simulations, two simulation sets) a best before epoch 20
    (Bernoulli GLM, Gaussian linear, SLCP with distractors; couplings behind a Gaussian start
    they do not beat) was never improved on after more than 9 epochs without improvement, while
    the late bests of two moons, SIR and the Gaussian mixture came after gaps of up to 16 epochs.
    The early ones now stop 15-48% sooner, with the same kept weights.
    The learning rate is 1e-3, scaled linearly with batches above 256 rows (2e-3 at 512).
    """
    n = max(n_train, 1)
    if summary:
        batch = min(256, max(32, 2 ** round(math.log2(n / 16))))
    else:
        per = 4 if theta_dim is not None and theta_dim <= 5 else 8
        batch = min(512, max(32, 2 ** round(math.log2(n / per))))
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    epochs = int(min(1000, max(60, 12000 // steps_per_epoch)))
    # the learning rate grows linearly with the batch above 256 rows (5 of 5 tasks at 10^4
    # simulations, 512 rows: 2e-3 trained 10-40% faster than 1e-3 at a C2ST within +-0.03)
    lr = 1e-3 * max(1.0, batch / 256)
    return int(batch), TrainConfig(epochs=epochs, lr=lr, schedule="cosine", warmup=0.01, patience=20,
                                   min_patience=10, clip_grad=5.0, weight_decay=0.0, ema=0.995)


def build_summary(kind: str | nn.Module | None, x_shape: tuple[int, ...], theta_dim: int,
                  options: dict[str, Any] | None = None) -> nn.Module | None:
    """The summary network for ``kind``: ``"auto"``, ``"identity"``/None, a registered name, or a module.

    ``"auto"``: identity for vectors ``(F,)``, :class:`~innverse.nets.DeepSet` for sets ``(N, F)``,
    an MLP otherwise.
    """
    if isinstance(kind, nn.Module):
        if not hasattr(kind, "out_features"):
            raise ValueError("fit_posterior: a custom summary network needs an int attribute out_features")
        return kind
    opts = dict(options or {})
    if kind == "auto":
        kind = None if len(x_shape) == 1 else ("deepset" if len(x_shape) == 2 else "mlp")
    if kind in (None, "identity"):
        if opts:
            raise ValueError(f"fit_posterior: summary_options {sorted(opts)} given without a summary network")
        return None
    if kind not in SUMMARY_NETWORKS:
        raise ValueError(f"fit_posterior: summary must be 'auto', 'identity', a module or one of "
                         f"{tuple(SUMMARY_NETWORKS)}, got {kind!r}")
    opts.setdefault("out_features", max(16, 4 * theta_dim))
    if kind == "mlp":
        opts.setdefault("in_shape", list(x_shape))
    elif kind == "time_series":
        opts.setdefault("in_channels", x_shape[-1] if len(x_shape) == 2 else 1)
    else:
        if len(x_shape) != 2:
            raise ValueError(f"fit_posterior: summary {kind!r} needs sets of shape (N, F), got x_shape {x_shape}")
        opts.setdefault("in_features", x_shape[-1])
    return summary_from_config({"type": kind, **opts})


def _fit_gaussian_start(est: PosteriorEstimator, loss: Callable[[Sequence[Tensor]], Tensor], train_src: Any,
                        val_src: Any, cfg: TrainConfig, progress: bool,
                        init: tuple[Tensor, Tensor] | None) -> tuple[History, dict[str, float] | None]:
    """Stage one of ``gaussian_start``: train the conditional Gaussian of :meth:`PosteriorEstimator.gaussian_stage`.

    Without a summary network the Gaussian starts from the ridge least-squares fit to the
    prepared training pairs ``init`` (:meth:`PosteriorEstimator.init_gaussian_head`), so the
    gradient steps only refine it, whatever the batch size. A quarter of the epochs (at least 20,
    at most all) suffices for so small a model; without a summary network it is a linear model
    of the data and takes a 5x larger step.
    """
    # (a least-squares fit in more than 1,000 data dimensions would cost more than it saves)
    fitted = (est.init_gaussian_head(*init) if init is not None and est.summary is None
              and est.context_features <= 1000 else None)
    lr = cfg.lr * (5.0 if est.summary is None else 1.0)
    stage = dataclasses.replace(cfg, epochs=min(cfg.epochs, max(20, cfg.epochs // 4)), lr=lr)
    with est.gaussian_stage():
        history = train(est, loss, train_src, val_src, stage, progress=progress, desc="fit_posterior (Gaussian start)")
    return history, fitted


def _flow_candidates(flow: Any, theta_dim: int, online: bool, validation: bool,
                     summary: bool) -> list[FlowOptions]:
    """The flow architectures to train: the user's one or list, else the defaults.

    By default (``flow=None``) a posterior over 6 or more parameters, trained offline with a
    validation split and no summary network, gets two candidates and keeps the one with the lower
    validation loss: spline couplings behind the affine head (the default everywhere), and masked
    affine autoregressive blocks (MAF) without the head. A coupling transforms half of the
    parameters per block, while one autoregressive affine block is already a full-covariance
    conditional Gaussian; on strongly correlated, nearly Gaussian posteriors (Bernoulli GLM, 10
    parameters) the splines overfit and MAF wins (C2ST 0.79 / 0.64 vs 0.83 / 0.70 at 10^3 / 10^4
    simulations), while on non-Gaussian ones (SLCP, Gaussian linear with uniform prior) the
    splines do. Fewer parameters: the couplings are rarely worse and training twice would not pay.
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


def _train_estimator(est: PosteriorEstimator, loss_kind: str, train_src: Any, val_src: Any, cfg: TrainConfig,
                     online: bool, gaussian_start: bool | None, init_pairs: tuple[Tensor, Tensor] | None,
                     init_prepared: tuple[Tensor, Tensor] | None, checkpoint: str | os.PathLike | None,
                     resume: bool, log_path: str | os.PathLike | None, callbacks: Sequence[EpochCallback],
                     progress: bool, desc: str) -> dict[str, Any]:
    """Train one estimator (with its Gaussian start where that applies); its history and best validation loss."""

    def loss(batch: Sequence[Tensor]) -> Tensor:
        if loss_kind == "raw":
            return -est.prepared_log_prob(*est.prepare(batch[0], batch[1])).mean()
        return -est.prepared_log_prob(batch[0], batch[1]).mean()

    o = est.flow_options
    if gaussian_start is None:
        gaussian_start = not online and est.summary is None and o.head == "affine" and o.head_linear
    start_history, start_state, start_fit, kept = None, None, None, False
    # inputs are validated above (or by the executor), so the flow skips its per-call NaN checks
    est.flow.validate_args = False
    try:
        if gaussian_start:  # also when resuming: it is deterministic, so the comparison below stays exact
            if init_prepared is None and init_pairs is not None:
                init_prepared = est.prepare(*init_pairs)
            start_history, start_fit = _fit_gaussian_start(est, loss, train_src, val_src, cfg, progress,
                                                           init_prepared)
            start_state = copy.deepcopy(est.state_dict())
        history = train(est, loss, train_src, val_src, cfg, checkpoint=checkpoint, resume=resume,
                        log_path=log_path, callbacks=callbacks, progress=progress, desc=desc)
        kept = (start_history is not None and start_history.best_val_loss is not None
                and history.best_val_loss is not None and start_history.best_val_loss <= history.best_val_loss)
        if kept:
            # the couplings never beat the Gaussian fit on the validation data
            est.load_state_dict(start_state)
    finally:
        est.flow.validate_args = True
    val_loss = start_history.best_val_loss if kept else history.best_val_loss
    start = None if start_history is None else {
        "epochs": start_history.epochs, "best_epoch": start_history.best_epoch,
        "best_val_loss": start_history.best_val_loss, "kept": kept, "least_squares": start_fit}
    return {"history": history, "gaussian_start": start, "val_loss": val_loss,
            "start_seconds": 0.0 if start_history is None else start_history.seconds}


def _check_training_data(theta: Tensor, x: Tensor, prior: Distribution | None, est_support: Any,
                         variable_size: bool, drop_invalid: bool) -> tuple[Tensor, Tensor, int]:
    if theta.dim() != 2:
        raise ValueError(f"fit_posterior: theta must be (n, D), got shape {tuple(theta.shape)}")
    if x.shape[0] != theta.shape[0]:
        raise ValueError(f"fit_posterior: theta has {theta.shape[0]} rows but x has {x.shape[0]}")
    bad_x = invalid_rows(x, x.dim() - 1, variable_size)
    bad_t = ~torch.isfinite(theta).all(1)
    outside = ~est_support.inside(theta) & ~bad_t
    if outside.any():
        rows = outside.nonzero().flatten()[:10].tolist()
        raise ValueError(f"fit_posterior: theta rows {rows} lie outside the prior's support "
                         f"(lower {est_support.lower.tolist()}, upper {est_support.upper.tolist()})")
    bad = bad_x | bad_t
    if bad.any():
        rows = bad.nonzero().flatten()[:10].tolist()
        if not drop_invalid:
            raise ValueError(f"fit_posterior: {int(bad.sum())} training pairs contain NaN/Inf (rows {rows}"
                             f"{'...' if int(bad.sum()) > 10 else ''}); remove them or pass drop_invalid=True")
        logger.warning("fit_posterior: dropped %d of %d training pairs with NaN/Inf", int(bad.sum()), len(bad))
    return theta[~bad], x[~bad], int(bad.sum())


def fit_posterior(theta: Any = None, x: Any = None, prior: Distribution | None = None, *,
                  simulator: Callable[..., Any] | None = None, store: SimulationStore | str | os.PathLike | None = None,
                  summary: str | nn.Module | None = "auto", summary_options: dict[str, Any] | None = None,
                  flow: FlowOptions | dict[str, Any] | None = None, training: TrainConfig | dict[str, Any] | None = None,
                  batch_size: int | None = None, validation_fraction: float = 0.1,
                  simulations_per_epoch: int | None = None, validation_simulations: int | None = None,
                  workers: int = 0, seed: int = 0, drop_invalid: bool = False, reference_size: int = 2000,
                  gaussian_start: bool | None = None, log_x: bool | str = "auto",
                  checkpoint: str | os.PathLike | None = None, resume: bool = False,
                  log_path: str | os.PathLike | None = None, callbacks: Sequence[EpochCallback] = (),
                  progress: bool = True) -> Posterior:
    r"""Train a :class:`PosteriorEstimator` by maximum likelihood and return the :class:`Posterior`.

    Minimises :math:`-\frac1N\sum_i \log q(\theta_i \mid x_i)` over simulated pairs (neural
    posterior estimation), which is minimised by the true posterior for every ``x``.

    Data, one of:
      * ``theta (n, D)`` and ``x (n, *x_shape)`` in memory (torch or numpy) — offline;
      * ``store``: a :class:`SimulationStore` (or its path), read in shuffled minibatches — offline;
      * ``simulator`` (with ``prior``): ``simulations_per_epoch`` fresh pairs every epoch — online.

    Args:
        prior: the prior (required online; otherwise used for the support bijection and recorded).
        summary: ``"auto"``, ``"identity"``, ``"mlp"``, ``"deepset"``, ``"set_transformer"``,
            ``"time_series"`` or a module with ``out_features``; ``summary_options`` go to its constructor.
        flow: :class:`FlowOptions` (or dict): coupling type, blocks, widths, bins, ...; or a list
            of them: each is trained and the one with the lowest validation loss is kept
            (``post.info["flow_selection"]``; checkpoints and logs of candidate ``i > 0`` go to
            ``<stem>.candidate<i><suffix>`` next to the given paths). ``None``: the default,
            plus a masked autoregressive candidate for 6 or more parameters (see
            :func:`_flow_candidates`).
        training: :class:`~innverse.train.TrainConfig` (or dict of overrides of the budget-aware
            defaults of :func:`default_training`; overriding ``patience`` alone turns the adaptive
            patience off, so that exactly that many epochs are waited).
        batch_size: minibatch size (default: budget-aware).
        validation_fraction: held-out fraction for early stopping (offline).
        simulations_per_epoch / validation_simulations: online budget per epoch / fixed validation set.
        workers: simulation processes (online).
        seed: seed of the initial weights, the split, data order and online simulations (the result
            does not depend on the global random state).
        drop_invalid: drop (and log) training pairs with NaN/Inf instead of raising.
        reference_size: training summaries kept in the posterior (misspecification checks).
        gaussian_start: first fit the conditional Gaussian the affine head can represent with its
            linear conditioner (summary network included; without one it starts from the ridge
            least-squares fit of the parameters on the data), then train the whole model from there;
            early stopping keeps that Gaussian fit unless the full model beats it on the validation
            data. This guards near-Gaussian posteriors against the couplings' overfitting at small
            budgets. Default (``None``): on for offline training of the affine head on vector data
            without a summary network; off online (it would spend simulations) and with a summary
            network (a DeepSet shaped for the Gaussian first ended worse within the same epochs).
        log_x: ``"auto"``: data features that are strictly positive and span more than three
            decades are standardised on the log scale (see
            :meth:`PosteriorEstimator.fit_standardization`); ``False``: none.
        checkpoint / resume / log_path / callbacks / progress: see :func:`innverse.train.train`.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"fit_posterior: validation_fraction must be in [0, 1), got {validation_fraction}")
    prior = as_prior(prior) if prior is not None else None
    online = simulator is not None
    if sum([theta is not None or x is not None, store is not None, online]) != 1:
        raise ValueError("fit_posterior: give exactly one data source: theta and x, a store, or a simulator (online)")
    gen = torch.Generator().manual_seed(seed)
    opened: SimulationStore | None = None
    try:
        if online:
            if prior is None:
                raise ValueError("fit_posterior: online training needs the prior")
            per_epoch = int(simulations_per_epoch or 10_000)
            n_val = int(validation_simulations or max(500, per_epoch // 10))
            sims = simulate(simulator, prior=prior, n=n_val, workers=workers, seed=batch_seed(seed, 0, 3),
                            progress=False)
            th_fit, x_fit = sims.theta, sims.x
            n_train = per_epoch
        elif store is not None:
            opened = store if isinstance(store, SimulationStore) else SimulationStore(store, "r")
            if opened.rows < 2:
                raise ValueError(f"fit_posterior: the store {opened.path} has {opened.rows} committed rows")
            perm = torch.randperm(opened.rows, generator=gen).numpy()
            n_val = round(validation_fraction * opened.rows)
            val_rows, train_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            th_fit, x_fit = opened.read_rows(train_rows[:50_000])
            n_train = len(train_rows)
        else:
            if theta is None or x is None:
                raise ValueError("fit_posterior: give both theta and x")
            th_fit = to_tensor(theta, "theta", "fit_posterior", torch.float32)
            x_fit = to_tensor(x, "x", "fit_posterior", torch.float32)
            if x_fit.dim() == 1:
                x_fit = x_fit.unsqueeze(-1)
            n_train = th_fit.shape[0]
        if th_fit.dim() == 1:
            th_fit = th_fit.unsqueeze(-1)
        theta_dim, x_shape = th_fit.shape[1], tuple(x_fit.shape[1:])

        def make_estimator(options: FlowOptions) -> PosteriorEstimator:
            # the networks' initial weights come from ``seed``, not from the global random state
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return PosteriorEstimator(theta_dim, x_shape, prior,
                                          build_summary(summary, x_shape, theta_dim, summary_options), options,
                                          reference_size=min(reference_size, n_train))

        # the first candidate is the user's flow (or the first of their list, or the default)
        est = make_estimator(_flow_candidates(flow, theta_dim, online, False, False)[0])
        candidates = _flow_candidates(flow, theta_dim, online, validation_fraction > 0, est.summary is not None)
        th_fit, x_fit, dropped = _check_training_data(th_fit, x_fit, prior, est.support, est.variable_size,
                                                      drop_invalid)
        auto_batch, cfg = default_training(n_train, theta_dim, summary=est.summary is not None)
        if isinstance(training, TrainConfig):
            cfg = training
        else:
            overrides = dict(training or {})
            if "patience" in overrides:  # a patience the user chose is waited in full unless said otherwise
                overrides.setdefault("min_patience", None)
            cfg = TrainConfig.from_dict({**dataclasses.asdict(cfg), "seed": seed, **overrides})
        bs = int(batch_size or auto_batch)
        est.fit_standardization(th_fit, x_fit, log_x)

        # standardisation (and the prepared pairs below) are the same for every candidate flow
        loss = "raw"
        # training pairs for the least-squares start of the Gaussian stage (offline only)
        init_pairs: tuple[Tensor, Tensor] | None = None
        init_prepared: tuple[Tensor, Tensor] | None = None

        if online:
            train_src: Any = OnlineBatches(prior, simulator, per_epoch, bs, seed, workers)  # type: ignore[arg-type]
            val_src: Any = TensorBatches(th_fit, x_fit, batch_size=4096, shuffle=False)
        elif opened is not None:
            train_src = StoreBatches(opened, train_rows, bs)
            init_pairs = (th_fit, x_fit)
            val_src = StoreBatches(opened, val_rows, 4096, shuffle=False) if n_val else None
        else:
            # In memory: map the pairs once into the spaces the networks see.
            v_all, z_all = est.prepare(th_fit, x_fit)
            perm = torch.randperm(th_fit.shape[0], generator=gen)
            n_val = round(validation_fraction * th_fit.shape[0])
            if validation_fraction > 0 and th_fit.shape[0] >= 10:
                n_val = max(n_val, 1)
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            train_src = TensorBatches(v_all[tr_idx], z_all[tr_idx], batch_size=bs)
            init_prepared = (v_all[tr_idx], z_all[tr_idx])
            val_src = TensorBatches(v_all[val_idx], z_all[val_idx], batch_size=4096, shuffle=False) if n_val else None
            loss = "prepared"
        runs: list[dict[str, Any]] = []
        for i, options in enumerate(candidates):
            if i:
                est = make_estimator(options)
                est.fit_standardization(th_fit, x_fit, log_x)
            # an explicit gaussian_start=True applies to the candidates that have the affine head
            applies = len(candidates) == 1 or (options.head == "affine" and options.head_linear)
            run = _train_estimator(est, loss, train_src, val_src, cfg, online, gaussian_start if applies else False,
                                   init_pairs, init_prepared, _candidate_path(checkpoint, i), resume,
                                   _candidate_path(log_path, i), callbacks, progress,
                                   "fit_posterior" if len(candidates) == 1 else f"fit_posterior ({options.coupling})")
            runs.append({"estimator": est, **run})
        best = min(range(len(runs)), key=lambda i: runs[i]["val_loss"] if runs[i]["val_loss"] is not None
                   else math.inf)
        est, history, start = runs[best]["estimator"], runs[best]["history"], runs[best]["gaussian_start"]
        est.set_reference(x_fit[torch.randperm(x_fit.shape[0], generator=gen)[:reference_size]])
    finally:
        if opened is not None and opened is not store:
            opened.close()
    post = Posterior(est, history)
    if start is not None:
        post.info["gaussian_start"] = start
    if len(runs) > 1:
        post.info["flow_selection"] = {
            "chosen": best, "candidates": [dataclasses.asdict(r["estimator"].flow_options) for r in runs],
            "val_loss": [r["val_loss"] for r in runs], "epochs": [r["history"].epochs for r in runs],
            "seconds": [r["history"].seconds + r["start_seconds"] for r in runs],
            "log_paths": [None if log_path is None else str(_candidate_path(log_path, i)) for i in range(len(runs))]}
    post.info.update({"log_features": est.x_log.flatten().nonzero().flatten().tolist(), "dropped_invalid": dropped, "training_pairs": n_train, "batch_size": bs,
                      "train_config": cfg.to_dict(), "mode": "online" if online else ("store" if store is not None else "memory")})
    return post
