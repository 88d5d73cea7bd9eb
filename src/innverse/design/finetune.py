r"""Fine-tuning on a calibration set, through the one training loop: RoPE's summary network and a plain baseline.

RoPE's step 1 (Wehenkel et al. 2025): a copy :math:`h_o` of the trained summary network
:math:`h^\star` (initialised at its weights) learns to map each real observation onto the
summaries of its simulated counterparts,

.. math::
    \min_{h_o}\ \frac1n\sum_{i=1}^n \big\lVert (h_o(x_i^{\mathrm{real}}) - \bar h_i) / s \big\rVert^2
    + \lambda\, \mathbb E_{x \sim \mathrm{sim}} \big\lVert (h_o(x) - h^\star(x)) / s \big\rVert^2,
    \qquad \bar h_i = \frac1R \sum_{r=1}^R h^\star(x_{ir}^{\mathrm{sim}}),\ x_{ir}^{\mathrm{sim}} \sim p(x \mid \theta_i),

where :math:`s` is the per-feature spread of simulated summaries (a scale-free loss). The mean
of :math:`R` simulated summaries is the target because the squared loss to a random
counterpart has the same minimiser plus noise. The second term (weight :math:`\lambda`,
``anchor``; 0 gives the paper's objective) keeps the copy mapping simulations where the NPE
was trained, so that a calibration set drawn from the simulator itself leaves the summaries
(nearly) unchanged. Only the summary network trains; the fixed observation standardisation is
shared.

:func:`fine_tune_posterior` is the baseline "NPE fine-tuned on the calibration set alone": a copy of
the whole estimator trained further by maximum likelihood on the real pairs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from ..amortized import Posterior, PosteriorEstimator, simulate
from ..amortized.embedding import ObservationEmbedding
from ..train import History, Step, TensorBatches, TrainConfig, train

__all__ = ["summary_targets", "fine_tune_summary", "fine_tune_posterior", "FINE_TUNING"]

#: default options of the fine-tuning runs (small data: short, no weight averaging, early stopping)
FINE_TUNING = {"epochs": 500, "lr": 1e-3, "ema": None, "patience": 50, "min_patience": 20, "schedule": "constant"}


def summary_targets(estimator: PosteriorEstimator, theta: Tensor, simulator: Any, per_pair: int, seed: int) -> Tensor:
    """Mean simulated summaries :math:`\\bar h_i` ``(n, C)`` of ``per_pair`` simulations per row of ``theta (n, D)``.

    Raises:
        ValueError: a simulation of a calibration parameter failed (the target would be biased).
    """
    rows = theta.repeat_interleave(per_pair, 0)
    sims = simulate(simulator, theta=rows, seed=seed, progress=False, dtype=estimator.standardization.shift.dtype)
    if sims.x.shape[0] != rows.shape[0]:
        raise ValueError(f"rope: {rows.shape[0] - sims.x.shape[0]} simulations of calibration parameters failed "
                         f"({sims.report}); the simulator must run at every calibration parameter")
    with torch.no_grad():
        h = estimator.embedding(sims.x)
    return h.reshape(theta.shape[0], per_pair, -1).mean(1)


def _config(training: TrainConfig | dict[str, Any] | None, rows: int, seed: int) -> TrainConfig:
    """A given TrainConfig as it is; otherwise :data:`FINE_TUNING` with the dict's overrides, resolved for ``rows``."""
    if isinstance(training, TrainConfig):
        return training.resolve(rows)
    options = {**FINE_TUNING, "batch_size": max(2, min(32, rows)), "seed": seed, **dict(training or {})}
    return TrainConfig.coerce(options).resolve(rows)


def _summary_loss(model: ObservationEmbedding, anchor: tuple[Tensor, Tensor], weight: float, scale: Tensor):
    anchor_x, anchor_h = anchor

    def loss_fn(batch: tuple[Tensor, ...], step: Step) -> Tensor:
        x, target = batch
        real = ((model(x) - target) / scale).square().mean()
        if weight <= 0 or not step.training:
            return real
        idx = torch.randint(0, anchor_x.shape[0], (x.shape[0],), generator=step.generator)
        sim = ((model(anchor_x[idx]) - anchor_h[idx]) / scale).square().mean()
        step.log(real=real, anchor=sim)
        return real + weight * sim

    return loss_fn


# exempt from the size rule: the data, the anchor and the training options are each one documented keyword.
def fine_tune_summary(estimator: PosteriorEstimator, x: Tensor, targets: Tensor, anchor: tuple[Tensor, Tensor], *,
                      weight: float = 1.0, validation: tuple[Tensor, Tensor] | None = None,
                      training: TrainConfig | dict[str, Any] | None = None, seed: int = 0,
                      progress: bool = False) -> tuple[ObservationEmbedding, History]:
    """Fine-tune a copy of the estimator's observation embedding (see the module docstring).

    Args:
        estimator: the trained NPE; its summary network is copied, never changed.
        x: real observations ``(n, *x_shape)``; targets: their mean simulated summaries ``(n, C)``.
        anchor: simulated observations and their summaries under :math:`h^\\star`, ``((m, ...), (m, C))``.
        weight: :math:`\\lambda`, the anchor term's weight.
        validation: held-out ``(x, targets)`` for early stopping (without: the training loss decides).
        training: options over :data:`FINE_TUNING` (e.g. a fixed ``epochs`` and ``patience=None``).

    Returns:
        The fine-tuned embedding (in eval mode) and the training history.
    """
    if estimator.summary is None:
        raise ValueError("rope: the posterior has no summary network to fine-tune; train it with a summary "
                         "network (fit_posterior(..., summary='mlp'))")
    model = copy.deepcopy(estimator.embedding)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.summary.parameters())  # type: ignore[union-attr]
    for p in params:
        p.requires_grad_(True)
    scale = anchor[1].std(0).clamp_min(1e-6)
    cfg = _config(training, x.shape[0], seed)
    val = None if validation is None else TensorBatches(*validation, batch_size=256, shuffle=False)
    history = train(model, _summary_loss(model, anchor, weight, scale), TensorBatches(x, targets,
                    batch_size=cfg.batch_size or 32), val, cfg, progress=progress)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), history


def fine_tune_posterior(posterior: Posterior, theta: Tensor, x: Tensor, *, validation_fraction: float = 0.2,
                        training: TrainConfig | dict[str, Any] | None = None, seed: int = 0,
                        progress: bool = False) -> Posterior:
    r"""Baseline: a copy of the whole NPE trained further on real pairs, :math:`\min -\frac1n\sum_i \log q(\theta_i \mid x_i^{\mathrm{real}})`.

    Early stopping on a random ``validation_fraction`` of the pairs (at least 2); the posterior
    given is not changed.
    """
    est = copy.deepcopy(posterior.estimator)
    dtype = est.standardization.shift.dtype
    theta, x = theta.to(dtype), x.to(dtype)
    n = theta.shape[0]
    n_val = max(2, round(validation_fraction * n)) if validation_fraction > 0 else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    def loss_fn(batch: tuple[Tensor, ...], step: Step) -> Tensor:
        return -est.log_prob(batch[0], batch[1]).mean()

    cfg = _config(training, len(train_idx), seed)
    val = TensorBatches(theta[val_idx], x[val_idx], batch_size=256, shuffle=False) if n_val else None
    train(est, loss_fn, TensorBatches(theta[train_idx], x[train_idx], batch_size=cfg.batch_size or 32),
                    val, cfg, progress=progress)
    return Posterior(est.eval())
