"""One call from simulations (in memory, in a store, or online) to a trained :class:`Posterior`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

from ..nets.summaries import SUMMARY_NETWORKS, summary_from_config
from ..train import EpochCallback, TrainConfig
from .candidates import Candidate, RunOptions, flow_candidates, train_candidates
from .ensemble import EnsemblePosterior, fit_ensemble
from .estimator import FlowOptions, PosteriorEstimator
from .fit_report import FitReport
from .posterior import Posterior, check_device
from .priors import as_prior
from .sources import AbstractSource, InMemory, Online, Stored
from .store import SimulationStore

__all__ = ["fit_posterior", "default_training", "build_summary", "summary_candidates", "BUDGETS"]

#: the presets of ``fit_posterior(budget=...)``
BUDGETS = ("fast", "accurate")
#: ``budget="accurate"``: members of the ensemble
ACCURATE_MEMBERS = 5
#: under a wall-time budget (``max_seconds``) the default peak learning rate is this many times larger
TIME_BUDGET_LR_FACTOR = 2.0


def default_training(rows: int, theta_dim: int | None = None, summary: bool = False,
                     training: TrainConfig | dict[str, Any] | None = None) -> TrainConfig:
    """The training options ``fit_posterior`` uses for ``rows`` training pairs: ``training`` with the rest resolved.

    Batch size: the power of two nearest ``rows / 4`` for up to 5 parameters and ``rows / 8`` for
    more (between 32 and 512 rows), or ``rows / 16`` (at most 256) with a summary network, whose
    cost grows with the batch; epochs and learning rate follow the batch
    (:meth:`~innverse.train.TrainConfig.resolve`). Under a wall-time budget (``max_seconds``) the
    default learning rate is :data:`TIME_BUDGET_LR_FACTOR` times larger: the schedule then anneals
    over the budget, far fewer steps than the planned epochs, and a larger step learns more of
    the posterior in them (on the ten benchmark tasks at 10^4 pairs under budgets of 5-25 s, a lower
    validation loss on nine and .008 nats higher on the tenth; ``benchmarks/time_to_accuracy.py``). A learning
    rate passed in ``training`` is kept as it is.
    """
    cfg = TrainConfig.coerce(training)
    resolved = cfg.resolve(rows, 16, 256) if summary else \
        cfg.resolve(rows, 4 if theta_dim is not None and theta_dim <= 5 else 8, 512)
    if cfg.lr is None and cfg.max_seconds is not None:
        resolved = resolved.replace(lr=resolved.lr * TIME_BUDGET_LR_FACTOR)  # type: ignore[operator]
    return resolved


def build_summary(kind: str | nn.Module | None, x_shape: tuple[int, ...], theta_dim: int,
                  options: dict[str, Any] | None = None) -> nn.Module | None:
    """The summary network for ``kind``: ``"auto"``, ``"identity"``/None, a registered name, or a module.

    ``"auto"``: identity for vectors ``(F,)``, :class:`~innverse.nets.DeepSet` for sets ``(N, F)``,
    an MLP otherwise (``fit_posterior`` may race an MLP against identity for wide vectors, see
    :func:`~innverse.amortized.summary_candidates`). A module is used as it is (its output size is inferred).
    """
    if isinstance(kind, nn.Module):
        if options:
            raise ValueError(f"fit_posterior: summary_options {sorted(options)} given with a summary module; "
                             "configure the module itself")
        return kind
    opts = dict(options or {})
    if kind == "auto":
        kind = _auto_summary(x_shape)
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


def _auto_summary(x_shape: tuple[int, ...]) -> str | None:
    return None if len(x_shape) == 1 else ("deepset" if len(x_shape) == 2 else "mlp")


#: ``summary="auto"`` races an MLP summary against none for vectors at least this many times wider than the
#: summary it would make (``max(16, 4 D)`` features)
WIDE_VECTOR = 2
#: in ``summary="auto"``'s race, the MLP summary trains at these multiples of the default learning rate, each a
#: candidate: the step that lets it learn to ignore uninformative features overshoots where every feature informs
MLP_SUMMARY_LR_FACTORS = (1.0, 4.0)


def summary_candidates(summary: Any, options: dict[str, Any] | None, x_shape: tuple[int, ...], theta_dim: int,
                       compare: bool) -> list[Any]:
    """The summary networks ``fit_posterior`` trains, to keep the one with the lower validation loss.

    ``summary="auto"`` on vectors of at least :data:`WIDE_VECTOR` times as many features as an MLP
    summary would make (``max(16, 4 D)``), trained where validation losses can ``compare`` (offline,
    with a validation split, likelihood-trained flows rather than flow matching): none (every
    coupling sees all the features) and an MLP summary. Which is better depends on the data and the
    budget, and validation loss tells: with 100 features, 8 of them
    informative (SLCP with distractors), the MLP's compression wins at 10^3 and 10^4 simulations
    (C2ST .972 / .921 against .974 / .939); where the information is linear in the features
    (Bernoulli GLM's raw spike train), the flow's linear head wins at 10^3 (.821 against .881) and the
    MLP at 10^4 (.683 against .713). ``fit_posterior`` trains the MLP at two learning rates
    (``MLP_SUMMARY_LR_FACTORS`` times the default, where ``training`` sets none): the larger
    step lets it learn to ignore SLCP's distractors (.913 against .927 at 10^4; validation loss 3.55
    against 4.64), and overshoots on the spike train (.712 against .685), and validation loss picks
    the right one on both. Otherwise: ``[summary]``.
    """
    wide = len(x_shape) == 1 and x_shape[0] >= WIDE_VECTOR * max(16, 4 * theta_dim)
    if isinstance(summary, str) and summary == "auto" and not options and wide and compare:
        return ["identity", "mlp"]
    return [summary]


def _apply_budget(budget: str | None, flow: Any, ensemble: int | None, offline_in_memory: bool) -> tuple[Any, int]:
    """``flow`` and ``ensemble`` with the preset of ``budget`` filled in where the caller left them unset.

    ``"fast"``: only the first default candidate flow. ``"accurate"``: an ensemble of
    :data:`ACCURATE_MEMBERS` members, each with the default candidate flows (pairs in memory only).
    """
    if budget is not None and (not isinstance(budget, str) or budget not in BUDGETS):
        raise ValueError(f"fit_posterior: budget must be None, 'fast' or 'accurate', got {budget!r}")
    if budget == "fast" and flow is None:
        flow = FlowOptions()  # the first default candidate, without the race against MAF
    if budget == "accurate" and ensemble is None:
        if not offline_in_memory:
            raise ValueError("fit_posterior: budget='accurate' trains an ensemble, which needs the pairs in memory "
                             "(theta and x), not a store or a simulator; load the pairs, or pass budget=None or 'fast'")
        ensemble = ACCURATE_MEMBERS
    return flow, 1 if ensemble is None else ensemble


def _source(theta: Any, x: Any, prior: Distribution | None, simulator: Callable[..., Any] | None,
            store: SimulationStore | str | os.PathLike | None, online: dict[str, Any]) -> AbstractSource:
    """The one data source the arguments name."""
    if sum([theta is not None or x is not None, store is not None, simulator is not None]) != 1:
        raise ValueError("fit_posterior: give exactly one data source: theta and x, a store, or a simulator (online)")
    if simulator is not None:
        return Online(simulator, prior, **online)
    if store is not None:
        return Stored(store)
    return InMemory(theta, x)


def _candidates(flow: Any, summary: Any, summary_options: dict[str, Any] | None, shapes: tuple[int, tuple[int, ...]],
                source: AbstractSource, validation_fraction: float, training: TrainConfig,
                race: bool = True) -> list[Candidate]:
    """Every (flow, summary network) pair to train, each with its training options resolved for it
    (``race=False``, for ``budget="fast"``: one summary network, the first of the race)."""
    theta_dim, x_shape = shapes
    online, validation = source.mode == "online", validation_fraction > 0
    flows = flow_candidates(flow, theta_dim, online, validation, False, source.rows)
    # a flow-matching loss ranks vector fields, not posteriors: it chose the worse summary for FMPE on Bernoulli
    # GLM's raw spike train at 10^3 (C2ST .899 against .857 without a summary network)
    compare = race and not online and validation and not any(f.flow_matching for f in flows)
    out = []
    kinds = summary_candidates(summary, summary_options, x_shape, theta_dim, compare)
    for kind in kinds:
        has_summary = isinstance(kind, nn.Module) or (_auto_summary(x_shape) if kind == "auto" else kind) not in (
            None, "identity")
        cfg = default_training(source.rows, theta_dim, has_summary, training)
        # in the race, the MLP summary trains at two learning rates (the default one and a larger one)
        factors = MLP_SUMMARY_LR_FACTORS if len(kinds) > 1 and kind == "mlp" and training.lr is None else (1.0,)
        out += [Candidate(f, kind, cfg.replace(lr=cfg.lr * factor))  # type: ignore[operator]
                for factor in factors
                for f in flow_candidates(flow, theta_dim, online, validation, has_summary, source.rows)]
    return out


# exempt from the size rule: the one-call entry point keeps every option a documented, validated keyword
# (grouping them into option objects would lengthen the common call); the body is a short composition of
# named steps (data source, estimator, candidates).
def fit_posterior(theta: Any = None, x: Any = None, prior: Distribution | None = None, *,
                  simulator: Callable[..., Any] | None = None, store: SimulationStore | str | os.PathLike | None = None,
                  summary: str | nn.Module | None = "auto", summary_options: dict[str, Any] | None = None,
                  flow: FlowOptions | dict[str, Any] | Sequence[FlowOptions | dict[str, Any]] | None = None,
                  training: TrainConfig | dict[str, Any] | None = None, validation_fraction: float = 0.1,
                  simulations_per_epoch: int | None = None, validation_simulations: int | None = None,
                  workers: int = 0, seed: int = 0, drop_invalid: bool = False, reference_size: int = 2000,
                  gaussian_start: bool | None = None, log_x: bool | str = "auto", x_scaling: str = "robust",
                  checkpoint: str | os.PathLike | None = None, resume: bool = False,
                  log_path: str | os.PathLike | None = None, callbacks: Sequence[EpochCallback] = (),
                  progress: bool = True, device: str | torch.device | None = None,
                  ensemble: int | None = None, budget: str | None = None) -> Posterior | EnsemblePosterior:
    r"""Train a :class:`PosteriorEstimator` by maximum likelihood and return the :class:`Posterior`.

    Minimises :math:`-\frac1N\sum_i \log q(\theta_i \mid x_i)` over simulated pairs (neural
    posterior estimation), which is minimised by the true posterior for every ``x``.

    Data, one of:
      * ``theta (n, D)`` and ``x (n, *x_shape)`` in memory (torch or numpy) — offline;
      * ``store``: a :class:`SimulationStore` (or its path), read in shuffled minibatches — offline;
      * ``simulator`` (with ``prior``): ``simulations_per_epoch`` fresh pairs every epoch — online.

    What it did is ``posterior.report`` (:class:`FitReport`): the resolved training options,
    the training history, the Gaussian start and the candidate flows.

    Args:
        prior: the prior (required online; otherwise used for the support bijection and recorded).
        summary: ``"auto"``, ``"identity"``, ``"mlp"``, ``"deepset"``, ``"set_transformer"``,
            ``"time_series"`` or a module ``(B, *x_shape) -> (B, C)``; ``summary_options`` go to
            the constructor of a named one. ``"auto"``: a DeepSet for sets ``(N, F)``, an MLP for
            other arrays, none for vectors; for vectors at least twice as wide as an MLP summary
            (``max(16, 4 D)`` features), trained offline with a validation split, both none and an
            MLP summary train (the MLP at two learning rates where ``training`` sets none) and the
            lowest validation loss is kept (:func:`~innverse.amortized.summary_candidates`).
        flow: :class:`FlowOptions` (or dict): coupling type, blocks, widths, bins, ...; or a list
            of them: each is trained and the one with the lowest validation loss is kept
            (checkpoints and logs of candidate ``i > 0`` go to ``<stem>.candidate<i><suffix>``
            next to the given paths). ``None``: the default, plus a masked autoregressive
            candidate for 6 or more parameters (see :func:`~innverse.amortized.candidates.flow_candidates`).
        training: :class:`~innverse.train.TrainConfig` or a dict of its options; the options left
            unset (``epochs``, ``batch_size``, ``lr``) are resolved from the number of training
            pairs (:func:`default_training`), whichever form was passed. ``{"max_seconds": s}``
            bounds the wall time of all training, the learning rate decayed by the deadline;
            candidate flows race for it (see :func:`~innverse.amortized.candidates.train_candidates`).
        validation_fraction: held-out fraction for early stopping (offline).
        simulations_per_epoch / validation_simulations: online budget per epoch / fixed validation set.
        workers: simulation processes (online).
        seed: seed of the initial weights, the split, data order and online simulations (the result
            does not depend on the global random state).
        drop_invalid: drop (and log) training pairs with NaN/Inf instead of raising.
        reference_size: training summaries kept in the posterior (misspecification checks).
        gaussian_start: first fit the conditional Gaussian the affine head can represent
            (:mod:`innverse.amortized.gaussian_start`), then train the whole model from there;
            early stopping keeps that Gaussian fit unless the full model beats it on the
            validation data. Default (``None``): on for offline training without a summary
            network; off online (it would spend simulations) and with a summary network.
        log_x: ``"auto"``: data features that are strictly positive and span more than three
            decades are standardised on the log scale (see :meth:`ObservationEmbedding.fit`);
            ``False``: none.
        x_scaling: ``"robust"`` (median, robust scale and a soft bound: rare extreme simulations
            neither set the scale nor overflow the networks) or ``"moments"`` (mean and standard
            deviation); see :class:`ObservationEmbedding`.
        checkpoint / resume / log_path / callbacks / progress: see :func:`innverse.train.train`.
        ensemble: train this many posteriors (seeds ``seed``, ``seed + 1``, ...; in parallel processes,
            one per core) and return their equal-weight mixture, an
            :class:`~innverse.amortized.EnsemblePosterior` (in-memory data only). ``None``: 1, or
            what ``budget`` sets.
        budget: a preset trading time for accuracy; ``None`` (the default) changes nothing.
            ``"fast"``: only the first default candidate flow, no race against MAF for 6 or more
            parameters, and no summary network racing on wide vectors (with fewer parameters, a
            summary network or online training the defaults train one flow already, and ``"fast"``
            changes nothing; a shorter early stopping was measured
            and rejected: it stopped on plateaus at 10^3 simulations and saved no time at 10^4).
            ``"accurate"``: an ensemble of 5 members (each with the default candidate race), so
            pairs in memory only: with a store or a simulator it raises ``ValueError``. Options
            given explicitly win over the preset: ``flow`` replaces the fast single candidate,
            ``ensemble=3`` (or ``ensemble=1``) the 5 members; ``training`` is never changed by a
            preset. The preset is recorded as ``posterior.report.budget`` (in every member's
            report of an ensemble). ``benchmarks/budget_modes.py`` measures the three on sbibm tasks.
        device: where the networks train and the returned posterior computes (``"cpu"``, the
            default, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``). Simulations, the
            standardisation and the least-squares start stay on the CPU. On a GPU, prepared
            in-memory pairs that fit in a quarter of its free memory are copied there once; batches
            from a store or a simulator travel through pinned memory, one batch ahead of the step.

    Raises:
        ValueError: bad options, too few valid pairs, or a device that does not exist here
            (e.g. ``device="cuda"`` on a machine without a GPU).
    """
    if ensemble is not None and (isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1):
        raise ValueError(f"fit_posterior: ensemble must be an int >= 1, got {ensemble!r}")
    flow, ensemble = _apply_budget(budget, flow, ensemble, store is None and simulator is None)
    if ensemble > 1:
        # the members get the resolved options (one member each, the budget only recorded in their reports)
        options = {k: v for k, v in locals().items() if k not in ("theta", "x", "ensemble", "seed", "workers")}
        if store is not None or simulator is not None:
            raise ValueError("fit_posterior: an ensemble trains on pairs in memory (theta and x)")
        return fit_ensemble(theta, x, ensemble, workers=min(ensemble, os.cpu_count() or 1), seed=seed, ensemble=1,
                            **{k: v for k, v in options.items() if k not in ("store", "simulator")})
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"fit_posterior: validation_fraction must be in [0, 1), got {validation_fraction}")
    target = torch.device("cpu") if device is None else check_device(device, "fit_posterior")
    prior = as_prior(prior) if prior is not None else None
    source = _source(theta, x, prior, simulator, store, {
        "per_epoch": simulations_per_epoch, "validation_simulations": validation_simulations,
        "workers": workers, "seed": seed})
    try:
        theta_dim, x_shape = source.shapes

        def make_estimator(candidate: Candidate) -> PosteriorEstimator:
            # the networks' initial weights come from ``seed``, not from the global random state
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return PosteriorEstimator(theta_dim, x_shape, prior,
                                          build_summary(candidate.summary, x_shape, theta_dim, summary_options),
                                          candidate.flow, reference_size=min(reference_size, max(source.rows, 1)),
                                          x_scaling=x_scaling)

        generator = torch.Generator().manual_seed(seed)
        cfg = TrainConfig.coerce(training, seed=seed)
        est = make_estimator(Candidate(flow_candidates(flow, theta_dim, source.mode == "online", False, False,
                                                       source.rows)[0], summary, cfg))
        source.setup(est, validation_fraction, drop_invalid, generator)
        candidates = _candidates(flow, summary, summary_options, (theta_dim, x_shape), source, validation_fraction, cfg,
                                 race=budget != "fast")
        run = RunOptions(candidates[0].training, gaussian_start, log_x, checkpoint, resume, log_path, tuple(callbacks),
                         progress, target)
        kept, report = train_candidates(est, candidates, make_estimator, source, run)
        reference = source.x[torch.randperm(source.x.shape[0], generator=generator)[:reference_size]]
        kept.set_reference(reference.to(target))
    finally:
        source.close()
    return Posterior(kept, report=report if budget is None else dataclasses.replace(report, budget=budget))


__all__ += ["FitReport"]
