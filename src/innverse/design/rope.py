r"""RoPE: correct a trained NPE for a misspecified simulator with a small calibration set of real labelled pairs.

Given a trained NPE (summary network :math:`h^\star` + conditional flow :math:`q`) and real
pairs :math:`\{(\theta_i, x_i^{\mathrm{real}})\}_{i=1}^n` (parameters measured independently),
:func:`rope` returns a calibrated posterior built in these steps:

1. fine-tune a copy :math:`h_o` of the summary network so real observations map onto the
   summaries of their simulated counterparts (:mod:`innverse.design.finetune`; the one training
   loop), with ``folds``-fold cross-fitting: each fold's pairs are summarised by a copy tuned on
   the other folds (which also decides, by early stopping on the held-out fold, how many epochs
   the final copy, tuned on all pairs, trains);
2. simulate a bank of ``simulations`` pairs from the prior and summarise them with :math:`h^\star`;
3. for every batch of real observations, solve an entropic (optionally semi-unbalanced)
   transport problem between their :math:`h_o`-summaries, joined by the calibration pairs'
   out-of-fold summaries, and the bank, and return the transport-weighted mixture of the NPE's
   posteriors of the bank (:mod:`innverse.design.mixture`); the entropic scale is chosen on the
   calibration rows of that same problem.

4. (``stack=True``, the default) fine-tune copies of the whole NPE on the calibration pairs, one
   per fold, and return the linear pool of the transport posterior and those copies' ensemble,
   weighted by stacking on the calibration pairs' cross-fitted scores
   (:mod:`innverse.design.stacking`: the best-calibrated weight among those whose log density is
   within one standard error of the highest). The transport posterior is calibrated from a handful of
   pairs on but, a mixture over several simulations, wider than need be once there are many;
   the fine-tuned copy is sharp but over-confident while they are few. Stacking leans on the
   first for small calibration sets and moves weight to the second as it earns it.

The cross-fitting makes the choice of :math:`\varepsilon` honest: the calibration summaries
that score it were produced by networks that never saw those pairs.

References:
    Wehenkel, Gamella, Sener, Behrmann, Sapiro, Jacobsen, Cuturi. "Addressing Misspecification
    in Simulation-based Inference through Data-driven Calibration". ICML 2025.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._tensors import to_tensor
from ..amortized import EnsemblePosterior, Posterior, sample_with_generator, simulate
from ..amortized.inputs import check_x
from .finetune import fine_tune_posterior, fine_tune_summary, summary_targets
from .mixture import EPSILONS, CalibrationRows, RoPEPosterior
from .stacking import StackedPosterior, stacking_weight

__all__ = ["rope", "RoPEOptions", "MIN_CALIBRATION"]

#: the smallest calibration set :func:`rope` accepts
MIN_CALIBRATION = 10


@dataclass(frozen=True)
class RoPEOptions:
    """Options of :func:`rope`.

    Attributes:
        simulations: size :math:`m` of the simulation bank the mixtures are built from.
        simulations_per_pair: simulated counterparts :math:`R` averaged into each fine-tuning target.
        folds: cross-fitting folds (at most ``n // 2``).
        anchor: weight :math:`\\lambda` of the term that keeps simulations' summaries in place.
        epsilon: ``"auto"`` or a fixed multiple of the median simulated cost.
        unbalanced: semi-unbalanced penalty :math:`\\tau` (multiple of the median cost), or None (balanced).
        epsilons: the grid ``"auto"`` searches.
        training: fine-tuning options (see :data:`~innverse.design.finetune.FINE_TUNING`).
        max_components: most mixture components per observation.
        selection: how ``"auto"`` chooses epsilon: ``"one_se"`` or ``"best"`` (see :class:`RoPEPosterior`).
        stack: also fine-tune a copy of the whole NPE on the calibration pairs and return the linear
            pool of the transport posterior and that copy, weighted by stacking on cross-fitted
            log densities of the calibration pairs (:mod:`innverse.design.stacking`); ``False``
            returns the transport posterior alone.
        stack_selection: how the weight is chosen (:func:`~innverse.design.stacking.stacking_weight`):
            ``"calibrated"``, the best-calibrated weight (by the pooled marginal PIT values of the
            calibration pairs) among those within one standard error of the highest out-of-fold log
            density, or ``"best"``, the highest.
        stack_samples: draws per calibration pair for its PIT values.
    """

    simulations: int = 2000
    simulations_per_pair: int = 16
    folds: int = 5
    anchor: float = 1.0
    epsilon: float | str = "auto"
    unbalanced: float | None = None
    epsilons: tuple[float, ...] = EPSILONS
    training: dict[str, Any] | None = None
    max_components: int = 256
    selection: str = "one_se"
    stack: bool = True
    stack_selection: str = "calibrated"
    stack_samples: int = 200


def _check_calibration(posterior: Posterior, theta: Any, x: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(posterior, Posterior):
        raise TypeError(f"rope: expected an innverse.amortized.Posterior, got {type(posterior).__name__}")
    if posterior.estimator.summary is None:
        raise ValueError("rope: the posterior has no summary network to fine-tune; train it with one "
                         "(fit_posterior(..., summary='mlp'))")
    dtype = posterior.estimator.standardization.shift.dtype
    t = to_tensor(theta, "theta", "rope", dtype)
    if t.dim() != 2 or t.shape[1] != posterior.theta_dim:
        raise ValueError(f"rope: calibration theta must have shape (n, {posterior.theta_dim}), got {tuple(t.shape)}")
    if t.shape[0] < MIN_CALIBRATION:
        raise ValueError(f"rope: the calibration set needs at least {MIN_CALIBRATION} pairs, got {t.shape[0]}")
    if not torch.isfinite(t).all():
        raise ValueError("rope: calibration theta contains NaN or Inf")
    inside = posterior.estimator.support.inside(t)
    if not inside.all():
        rows = (~inside).nonzero().flatten()[:10].tolist()
        support = posterior.estimator.support
        raise ValueError(f"rope: calibration parameters in rows {rows} lie outside the prior's support (lower "
                         f"{support.lower.tolist()}, upper {support.upper.tolist()})")
    xt, single = check_x(x, posterior.x_shape, "rope", posterior.estimator.variable_size, dtype)
    if single or xt.shape[0] != t.shape[0]:
        raise ValueError(f"rope: expected {t.shape[0]} calibration observations (one per parameter row) of shape "
                         f"{posterior.x_shape}, got x of shape {tuple(torch.as_tensor(x).shape)}")
    return t, xt


def _bank(posterior: Posterior, simulator: Callable[..., Any], m: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``m`` prior simulations: parameters, observations and their summaries under the trained network."""
    est = posterior.estimator
    dtype = est.standardization.shift.dtype
    theta = sample_with_generator(posterior.prior, m, torch.Generator().manual_seed(seed + 1)).to(dtype)
    sims = simulate(simulator, theta=theta, seed=seed + 2, progress=False, dtype=dtype)
    with torch.no_grad():
        h = torch.cat([est.embedding(sims.x[i:i + 4096]) for i in range(0, sims.x.shape[0], 4096)])
    return sims.theta.to(dtype), sims.x, h


def _cross_fit(posterior: Posterior, x: Tensor, targets: Tensor, anchor: tuple[Tensor, Tensor],
               options: RoPEOptions, seed: int) -> tuple[Tensor, list[int]]:
    """Out-of-fold summaries ``(n, C)`` and each fold's best epoch."""
    out = torch.empty_like(targets)
    epochs = []
    for f, (kept, held) in enumerate(_folds(x.shape[0], options.folds, seed + 3)):
        emb, history = fine_tune_summary(posterior.estimator, x[kept], targets[kept], anchor, weight=options.anchor,
                                         validation=(x[held], targets[held]), training=options.training,
                                         seed=seed + 10 + f)
        with torch.no_grad():
            out[held] = emb(x[held])
        epochs.append(int(history.best_epoch if history.best_epoch is not None else history.epochs - 1))
    return out, epochs


def _folds(n: int, folds: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """``(kept, held)`` row indices of each cross-fitting fold."""
    folds = max(2, min(folds, n // 2))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [(perm[torch.isin(perm, perm[f::folds], invert=True)], perm[f::folds]) for f in range(folds)]


def _pit(draws: Tensor, theta: Tensor) -> Tensor:
    """Marginal PIT values ``(k, D)`` of ``theta (k, D)`` under draws ``(s, k, D)`` (mid-ranks for ties)."""
    below = (draws < theta).to(torch.float64).mean(0)
    return below + 0.5 * (draws == theta).to(torch.float64).mean(0)


def _fine_tuned_out_of_fold(posterior: Posterior, theta: Tensor, x: Tensor, options: RoPEOptions,
                            seed: int) -> tuple[EnsemblePosterior, Tensor, Tensor]:
    """Copies of the NPE fine-tuned on all folds but one, as an equal-weight ensemble, and each
    pair's ``log q(theta_i | x_i)`` ``(n,)`` and marginal PIT values ``(n, D)`` under the copy that
    did not see it."""
    log_q = torch.empty(theta.shape[0], dtype=torch.float64)
    pit = torch.empty(theta.shape, dtype=torch.float64)
    members = []
    gen = torch.Generator().manual_seed(seed + 8)
    for f, (kept, held) in enumerate(_folds(theta.shape[0], options.folds, seed + 7)):
        tuned = fine_tune_posterior(posterior, theta[kept], x[kept], seed=seed + 20 + f)
        with torch.no_grad():
            log_q[held] = tuned.log_prob(theta[held], x[held]).to(torch.float64)
            pit[held] = _pit(tuned.sample(options.stack_samples, x[held], generator=gen).reshape(
                options.stack_samples, len(held), -1), theta[held])
        members.append(tuned)
    return EnsemblePosterior(members), log_q, pit


@torch.no_grad()
def _calibration_log_q(posterior: Posterior, theta: Tensor, bank_h: Tensor) -> Tensor:
    """``log q(theta_i | h_k)`` for every calibration row ``i`` and bank summary ``k``: ``(n, m)``."""
    rows = []
    for t in theta:
        rows.append(posterior.estimator.flow.log_prob(t.expand(bank_h.shape[0], -1), bank_h).to(torch.float64))
    return torch.stack(rows)


def rope(posterior: Posterior, theta: Any, x: Any, simulator: Callable[..., Any],
         options: RoPEOptions | None = None, *, seed: int = 0) -> RoPEPosterior:
    """Calibrate ``posterior`` for real data with the labelled pairs ``theta (n, D)``, ``x (n, *x_shape)`` (see module).

    Args:
        posterior: a trained NPE with a summary network (:func:`~innverse.amortized.fit_posterior`).
        theta: the calibration pairs' parameters, inside the prior's support; ``n >= 10``.
        x: their real observations.
        simulator: the simulator the NPE was trained on (any style :func:`~innverse.amortized.simulate` takes).
        options: :class:`RoPEOptions`.
        seed: seed of the bank, the targets, the folds and the fine-tuning.

    Returns:
        The calibrated posterior: a :class:`~innverse.design.stacking.StackedPosterior` of the
        transport posterior (``.first``, a :class:`~innverse.design.mixture.RoPEPosterior`) and the
        folds' fine-tuned NPE copies (``.second``, an :class:`~innverse.amortized.EnsemblePosterior`), or with ``stack=False`` the transport posterior alone. Its
        ``report`` records the folds' best epochs, the final fine-tuning length and, when stacked,
        the weight and the out-of-fold LPP of the transport part, the fine-tuned NPE and the pool.

    Raises:
        ValueError: fewer than :data:`MIN_CALIBRATION` pairs, parameters outside the prior's
            support, observations of the wrong shape, a posterior without a summary network.
    """
    opts = options or RoPEOptions()
    t, xt = _check_calibration(posterior, theta, x)
    _, bank_x, bank_h = _bank(posterior, simulator, opts.simulations, seed)
    anchor = (bank_x, bank_h)
    targets = summary_targets(posterior.estimator, t, simulator, opts.simulations_per_pair, seed + 4)
    oof, epochs = _cross_fit(posterior, xt, targets, anchor, opts, seed)
    final_epochs = max(1, round(statistics.median(epochs)) + 1)
    training = {**(opts.training or {}), "epochs": final_epochs, "patience": None}
    embedding, _ = fine_tune_summary(posterior.estimator, xt, targets, anchor, weight=opts.anchor, training=training,
                                     seed=seed + 5)
    calibration = CalibrationRows(oof, _calibration_log_q(posterior, t, bank_h))
    result = RoPEPosterior(posterior.estimator, embedding, bank_h, calibration, opts.epsilon, opts.unbalanced,
                           opts.epsilons, opts.max_components, selection=opts.selection)
    result.report = {"calibration_pairs": int(t.shape[0]), "fold_best_epochs": epochs,
                     "final_epochs": final_epochs, "bank": int(bank_h.shape[0]), "options": opts}
    if not opts.stack:
        return result
    transport_oof = result.calibration_log_prob()
    transport_pit = _pit(result.calibration_sample(opts.stack_samples, torch.Generator().manual_seed(seed + 9)), t)
    tuned, tuned_oof, tuned_pit = _fine_tuned_out_of_fold(posterior, t, xt, opts, seed)
    weight = stacking_weight(transport_oof, tuned_oof, transport_pit, tuned_pit, selection=opts.stack_selection)
    stacked = StackedPosterior(result, tuned, weight, names=("RoPE transport", "NPE fine-tuned on the calibration set"))
    stacked.report = {**result.report, "stack_weight": weight,
                      "out_of_fold_lpp": {"transport": float(transport_oof.mean()), "fine_tuned": float(tuned_oof.mean()),
                                          "stacked": float(torch.logaddexp(
                                              transport_oof + torch.tensor(weight).log(),
                                              tuned_oof + torch.tensor(1 - weight).log()).mean())}}
    return stacked
