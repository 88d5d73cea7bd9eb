"""The standard diagnostics battery for a trained posterior estimator, in one call."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._tensors import check_finite, to_tensor
from .coverage import coverage_test, credibility_central, credibility_hpd, credibility_tarp
from .ecdf import ECDFBand, ecdf_band
from .learning import learning_test
from .misspecification import SummaryOutlierDetector, misspecification_test
from .parameter_recovery import recovery
from .protocol import posterior_log_prob, posterior_sample, prior_variance, simulate
from .result import CheckResult, write_json
from .sbc import sbc_ranks, sbc_test

__all__ = ["check"]


def _summaries(fn: Callable[[Tensor], Any] | None, posterior: Any, x: Tensor) -> Tensor:
    if fn is None:
        fn = getattr(posterior, "summaries", None)
    if fn is None:  # no summary network: the data themselves, flattened
        return x.reshape(x.shape[0], -1).to(torch.float64)
    return to_tensor(fn(x), "summaries", "check", torch.float64).detach().reshape(x.shape[0], -1)


def _data_test(observations: Tensor, simulated: Tensor, level: float, seed: int) -> dict[str, Any]:
    """The set-level test on the observations themselves (flattened), against fresh simulations."""
    obs, sim = (t.reshape(t.shape[0], -1).to(torch.float64) for t in (observations, simulated))
    if not (bool(torch.isfinite(obs).all()) and bool(torch.isfinite(sim).all())):
        return {"available": False, "reason": "the observations or simulations hold NaN (padded sets or series): "
                                              "only their summaries are tested"}
    return {"available": True, **misspecification_test(obs, sim, level=level, seed=seed)}


def _misspecification(posterior: Any, observations: Tensor, simulate_reference: Callable[[], Tensor],
                      summary: Any, reference: Any, level: float, seed: int) -> dict[str, Any]:
    obs_s = _summaries(summary, posterior, observations)
    summarised = summary is not None or getattr(posterior, "summaries", None) is not None
    simulated: list[Tensor] = []

    def fresh() -> Tensor:                    # simulated once, for the reference summaries and the data test
        if not simulated:
            simulated.append(simulate_reference())
        return simulated[0]

    if reference is None:
        reference = getattr(posterior, "reference_summaries", None)
    if reference is None:
        ref = _summaries(summary, posterior, fresh())
    else:
        ref = to_tensor(reference, "reference_summaries", "check", torch.float64).detach()
    try:
        det = SummaryOutlierDetector(ref, level=level, seed=seed)
    except ValueError as err:
        return {"available": False, "reason": str(err)}
    p = det.p_values(obs_s)
    out: dict[str, Any] = {
        "available": True,
        "method": det.method,
        "scores": det.score(obs_s).tolist(),
        "threshold": det.threshold,
        "p_values": p.tolist(),
        "flags": det.flags(obs_s).tolist(),
        "level": level,
        "num_reference": int(ref.shape[0]),
    }
    k = obs_s.shape[0]
    # Bonferroni: half the level to the k per-observation tests, half to the set-level tests. A
    # summary network trained on simulations can map misspecified data onto ordinary summaries
    # (a sensor drift it learned to ignore), so with summaries the observations themselves are
    # tested too, against fresh simulations.
    tests = 2 * k if k >= 2 else 1
    ok = bool((p > level / tests).all())
    if k >= 2:
        out["set_test"] = misspecification_test(obs_s, ref, level=level, seed=seed)
        set_tests = [out["set_test"]]
        if summarised:
            out["data_test"] = _data_test(observations, fresh(), level, seed)
            if out["data_test"]["available"]:
                set_tests.append(out["data_test"])
        ok = ok and all(t["p_value"] > level / (2 * len(set_tests)) for t in set_tests)
    out["passed"] = ok
    return out


def _observations(observations: Any, x_shape: tuple[int, ...]) -> Tensor:
    obs = to_tensor(observations, "observations", "check").detach()
    if tuple(obs.shape) == x_shape:
        obs = obs[None]
    if tuple(obs.shape[1:]) != x_shape:
        raise ValueError(f"check: observations must have shape (k, *{x_shape}) like the simulator's "
                         f"output, got {tuple(obs.shape)}")
    if obs.shape[0] == 0:
        raise ValueError(f"check: observations is empty (shape {tuple(obs.shape)}); give at least one or None")
    check_finite(obs, "observations", "check")
    return obs


@dataclass(frozen=True)
class _Draws:
    """What the battery simulates and samples under its seed."""

    theta: Tensor                        # (k, D) parameters whose simulations are finite
    x: Tensor                            # (k, *x_shape) their simulations
    dropped: int                         # simulations dropped for non-finite output
    samples: Tensor                      # (L, k, D) posterior samples, float64
    log_prob_samples: Tensor | None      # (L, k), when the posterior has log_prob
    log_prob_truth: Tensor | None        # (k,)
    prior_variance: Tensor               # (D,)


def _check_arguments(prior: Any, n: Any, samples: Any, level: float, out_dir: Any,
                     parameter_names: Sequence[str] | None) -> list[str]:
    """Check the battery's arguments; the ``D`` parameter names."""
    if not isinstance(prior, torch.distributions.Distribution) or len(prior.event_shape) != 1:
        raise TypeError("check: prior must be a torch.distributions.Distribution with event shape (D,), "
                        f"got {type(prior).__name__} with event shape {getattr(prior, 'event_shape', None)}")
    if not isinstance(n, int) or n < 10:
        raise ValueError(f"check: n must be an integer >= 10 (simulated data sets), got {n!r}")
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"check: samples must be an integer >= 2, got {samples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"check: level must be in (0, 1), got {level}")
    if out_dir is not None:
        from .plot_base import _matplotlib

        _matplotlib()  # fail before the expensive part if plots are impossible
    dims = int(prior.event_shape[0])
    names = [f"θ{d + 1}" for d in range(dims)] if parameter_names is None else [str(p) for p in parameter_names]
    if len(names) != dims:
        raise ValueError(f"check: {len(names)} parameter names for {dims} parameters")
    return names


def _draw(posterior: Any, prior: torch.distributions.Distribution, simulator: Callable[[Tensor], Any], n: int,
          samples: int, seed: int, max_rows: int, timing: dict[str, float]) -> _Draws:
    """Simulate ``n`` data sets from the prior and sample the posterior for each (global RNG forked)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clock = time.perf_counter()
        theta, x, dropped = simulate(simulator, prior.sample((n,)))
        timing["simulate"] = time.perf_counter() - clock
        if theta.shape[0] < 10:
            raise ValueError(f"check: only {theta.shape[0]} of {n} simulations gave finite output (need >= 10)")
        clock = time.perf_counter()
        post = posterior_sample(posterior, samples, x, int(prior.event_shape[0]), max_rows)
        timing["sample"] = time.perf_counter() - clock
        clock = time.perf_counter()
        lp_samples = lp_truth = None
        if callable(getattr(posterior, "log_prob", None)):
            try:
                lp_samples = posterior_log_prob(posterior, post, x, max_rows)
                lp_truth = posterior_log_prob(posterior, theta[None].to(torch.float64), x, max_rows)[0]
            except NotImplementedError:   # known only up to its normaliser (the MCMC posterior of NLE)
                lp_samples = lp_truth = None
        timing["log_prob"] = time.perf_counter() - clock
        pv = prior_variance(prior, prior.sample((10000,)))
    return _Draws(theta, x, dropped, post, lp_samples, lp_truth, pv)


def _sbc(d: _Draws, level: float, bins: int | None, band: ECDFBand, seed: int) -> dict[str, Any]:
    ranks = sbc_ranks(d.samples, d.theta, seed=seed)
    return sbc_test(ranks, d.samples.shape[0], level=level, bins=bins, band=band, seed=seed) | {
        "ranks": ranks.tolist()}


def _coverage(d: _Draws, level: float, band: ECDFBand, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Central (per parameter) and HPD coverage, Bonferroni over both; and the credibility values."""
    has_log_prob = d.log_prob_samples is not None
    tests = d.theta.shape[1] + int(has_log_prob)
    v_central = credibility_central(d.samples, d.theta, seed=seed + 1)
    central = coverage_test(v_central, level=level, band=band, seed=seed, tests=tests)
    v_hpd = None
    if d.log_prob_samples is not None and d.log_prob_truth is not None:
        v_hpd = credibility_hpd(d.log_prob_samples, d.log_prob_truth, seed=seed + 2)
        hpd = coverage_test(v_hpd, level=level, band=band, seed=seed, tests=tests) | {"available": True}
    else:
        hpd = {"available": False, "reason": "the posterior has no log_prob", "passed": True}
    section = {"central": central, "hpd": hpd, "passed": central["passed"] and hpd["passed"]}
    return section, {"central": v_central, "HPD": v_hpd}


def _tarp(d: _Draws, level: float, band: ECDFBand, seed: int) -> tuple[dict[str, Any], Tensor]:
    """TARP coverage test (with the ATC, its signed mean deviation) and the TARP credibility values."""
    v_tarp = credibility_tarp(d.samples, d.theta, seed=seed + 3)
    tarp = coverage_test(v_tarp, level=level, band=band, seed=seed)
    tarp["atc"] = tarp["mean_deviation"][0]
    return tarp, v_tarp


def _calibration(d: _Draws, level: float, bins: int | None,
                 seed: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The SBC, coverage and TARP sections (one ECDF band for all), and the credibility values for plots."""
    band = ecdf_band(d.theta.shape[0], level=level, seed=seed)
    sbc = _sbc(d, level, bins, band, seed)
    coverage, credibility = _coverage(d, level, band, seed)
    tarp, credibility["TARP"] = _tarp(d, level, band, seed)
    return sbc, coverage, tarp, credibility


def _learning(d: _Draws, prior: torch.distributions.Distribution, level: float, seed: int) -> dict[str, Any]:
    """Did the posterior learn what the data say? (:func:`learning_test`; log-density gain when available)."""
    prior_lp = None
    if d.log_prob_truth is not None:
        try:
            prior_lp = prior.log_prob(d.theta.to(prior.mean.dtype)).detach()
        except (NotImplementedError, ValueError):   # a prior without a density (or one refusing the truth)
            prior_lp = None
    folds = min(5, d.theta.shape[0] // 2)
    return learning_test(d.samples, d.theta, d.x, log_prob_truth=d.log_prob_truth, prior_log_prob=prior_lp,
                         level=level, folds=folds, seed=seed)


def _simulate_reference(prior: torch.distributions.Distribution, simulator: Callable[[Tensor], Any], count: int,
                        seed: int) -> Tensor:
    """Fresh simulations from the prior to compare observations with (global RNG forked)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return simulate(simulator, prior.sample((count,)))[1]


def _save(result: CheckResult, out_dir: Path, *, posterior: Any, observations: Tensor | None,
          reference_samples: Sequence[Any] | None, history: Any, credibility: dict[str, Any]) -> None:
    """Write the battery's plots and ``diagnostics.json`` into ``out_dir``."""
    from .check_plots import battery_plots

    clock = time.perf_counter()
    result.plots = battery_plots(result, out_dir, posterior=posterior, observations=observations,
                                 reference_samples=reference_samples, history=history,
                                 seed=result.settings["seed"], credibility=credibility)
    result.timing["plots"] = time.perf_counter() - clock
    write_json(result.to_dict(), out_dir / "diagnostics.json")


_NO_OBSERVATIONS: dict[str, Any] = {"available": False, "reason": "no observations given", "passed": True}


# exempt from the size rule: the public battery takes every option as a keyword (README, CLI); the steps are above.
def check(posterior: Any, prior: torch.distributions.Distribution, simulator: Callable[[Tensor], Any],
          n: int = 200, *, samples: int = 1000, level: float = 0.05, seed: int = 0,
          out_dir: str | os.PathLike | None = None, observations: Any = None,
          reference_summaries: Any = None, summary: Callable[[Tensor], Any] | None = None,
          reference_samples: Sequence[Any] | None = None, parameter_names: Sequence[str] | None = None,
          history: Any = None, bins: int | None = None, reference_simulations: int = 1000,
          max_rows: int = 1 << 20) -> CheckResult:
    r"""Run the standard diagnostics battery on a posterior estimator.

    Draws :math:`\theta_j \sim p(\theta)`, :math:`x_j \sim p(x\mid\theta_j)` for ``n`` data sets
    (rows with non-finite output are dropped and counted), draws ``samples`` posterior samples
    for all data sets in batched calls, and reports:

    * **SBC** (:func:`sbc_test`): rank uniformity per parameter, simultaneous ECDF band test,
      calibration error, rank histogram;
    * **coverage** (:func:`coverage_test`): central credible intervals per parameter and, when
      the posterior has ``log_prob``, joint highest-density regions;
    * **TARP**: density-free joint coverage test;
    * **recovery** (:func:`recovery`): z-scores, contraction, RMSE, R²;
    * **learning** (:func:`learning_test`): does the posterior mean use what the data say about
      each parameter (against a cross-fitted regression of the parameters on the data)? A
      posterior equal to the prior passes every calibration check and fails this one;
    * **misspecification** of ``observations`` (if given): a conformal outlier score per
      observation in summary space (:class:`SummaryOutlierDetector`) and set-level MMD tests
      over several bandwidths (:func:`misspecification_test`) on the summaries and, for a
      posterior with a summary network, on the observations themselves against
      ``reference_simulations`` fresh simulations: a summary network trained on simulations
      can map misspecified data onto ordinary summaries.

    Each check gives a verdict at ``level`` (Bonferroni-corrected within the check, so a
    calibrated posterior fails it with probability at most ``level``); the overall verdict passes
    when every check does, so it raises a false alarm with probability at most about
    ``6 * level`` (less in practice: the checks are positively correlated). With ``out_dir``,
    all plots are saved there (PNG) with ``diagnostics.json``; their paths are in
    ``result["plots"]``.

    Args:
        posterior: object with ``sample(n, x)`` -> ``(n, k, D)`` for ``x (k, *x_shape)``, and
            optionally ``log_prob(theta (n, k, D), x)`` -> ``(n, k)``; ``summaries(x)`` and
            ``reference_summaries`` are used for misspecification when present.
        prior: ``torch.distributions.Distribution`` with event shape ``(D,)``.
        simulator: ``theta (m, D) -> x (m, *x_shape)`` (tensor or array).
        n: number of simulated data sets; samples: posterior samples per data set.
        level: significance level of every verdict; seed: seeds all randomness (global torch
            RNG state is forked and restored, so the caller's stream is untouched).
        observations: ``(k, *x_shape)`` real observations to check for misspecification and to
            draw pair plots for.
        reference_summaries: simulated summaries ``(N, S)`` to compare observations with
            (default: ``posterior.reference_summaries``, else the summaries of
            ``reference_simulations`` fresh simulations from the prior).
        summary: ``x -> (k, S)`` summary function (default: ``posterior.summaries``, else flatten).
        reference_samples: reference posterior samples ``(m, D)`` per observation (pair-plot overlay).
        parameter_names: labels for the ``D`` parameters.
        history: training history for the loss plot (see :func:`loss_plot`).
        bins: rank-histogram bins; max_rows: posterior rows per call (observations are chunked).

    Returns:
        A :class:`CheckResult`.

    References:
        Talts et al. 2018 (SBC); Säilynoja et al. 2022 (ECDF bands); Hermans et al. 2022
        (expected coverage); Lemos et al. 2023 (TARP); Schad et al. 2021 (z-score/contraction).
    """
    names = _check_arguments(prior, n, samples, level, out_dir, parameter_names)
    timing: dict[str, float] = {}
    d = _draw(posterior, prior, simulator, n, samples, seed, max_rows, timing)
    clock = time.perf_counter()
    sbc, coverage, tarp, credibility = _calibration(d, level, bins, seed)
    rec = recovery(d.samples, d.theta, prior_variance=d.prior_variance, level=level)
    learned = _learning(d, prior, level, seed)
    timing["statistics"] = time.perf_counter() - clock
    obs, mis = None, dict(_NO_OBSERVATIONS)
    if observations is not None:
        obs = _observations(observations, tuple(d.x.shape[1:]))
        reference = functools.partial(_simulate_reference, prior, simulator, reference_simulations, seed)
        mis = _misspecification(posterior, obs, reference, summary, reference_summaries, level, seed)
    result = CheckResult(
        settings={"n": n, "samples": samples, "level": level, "seed": seed, "theta_dim": len(names),
                  "x_shape": list(d.x.shape[1:]), "parameter_names": names,
                  "has_log_prob": d.log_prob_samples is not None},
        simulation={"requested": n, "used": d.theta.shape[0], "dropped_nonfinite": d.dropped},
        sbc=sbc, coverage=coverage, tarp=tarp, recovery=rec, learning=learned, misspecification=mis, timing=timing,
    )
    result.passed = all(result[s]["passed"] for s in ("sbc", "coverage", "tarp", "recovery", "learning",
                                                       "misspecification"))
    if out_dir is not None:
        _save(result, Path(out_dir), posterior=posterior, observations=obs, reference_samples=reference_samples,
              history=history, credibility=credibility)
    return result

