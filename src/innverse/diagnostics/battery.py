"""The standard diagnostics battery for a trained posterior estimator, in one call."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._inputs import as_tensor
from .coverage import coverage_test, credibility_central, credibility_hpd, credibility_tarp
from .ecdf import ecdf_band
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
    return as_tensor(fn(x), "summaries", "check", torch.float64).reshape(x.shape[0], -1)


def _misspecification(posterior: Any, observations: Tensor, simulate_reference: Callable[[], Tensor],
                      summary: Any, reference: Any, level: float, seed: int) -> dict[str, Any]:
    obs_s = _summaries(summary, posterior, observations)
    if reference is None:
        reference = getattr(posterior, "reference_summaries", None)
    if reference is None:
        ref = _summaries(summary, posterior, simulate_reference())
    else:
        ref = as_tensor(reference, "reference_summaries", "check", torch.float64)
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
    # Bonferroni over the k per-observation tests and the set-level test.
    tests = 2 * k if k >= 2 else 1
    ok = bool((p > level / tests).all())
    if k >= 2:
        out["set_test"] = misspecification_test(obs_s, ref, level=level, seed=seed)
        ok = ok and out["set_test"]["p_value"] > level / 2
    out["passed"] = ok
    return out


def _observations(observations: Any, x_shape: tuple[int, ...]) -> Tensor:
    obs = as_tensor(observations, "observations", "check")
    if tuple(obs.shape) == x_shape:
        obs = obs[None]
    if tuple(obs.shape[1:]) != x_shape:
        raise ValueError(f"check: observations must have shape (k, *{x_shape}) like the simulator's "
                         f"output, got {tuple(obs.shape)}")
    if not torch.isfinite(obs).all():
        raise ValueError("check: observations contain NaN or Inf")
    return obs


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
    * **misspecification** of ``observations`` (if given): a conformal outlier score per
      observation in summary space (:class:`SummaryOutlierDetector`) and a set-level MMD test.

    Each check gives a verdict at ``level`` (Bonferroni-corrected within the check, so a
    calibrated posterior fails it with probability at most ``level``); the overall verdict passes
    when every check does, so it raises a false alarm with probability at most about
    ``5 * level`` (less in practice: the checks are positively correlated). With ``out_dir``, all plots are saved there (PNG)
    with ``diagnostics.json``; their paths are in ``result["plots"]``.

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
    timing: dict[str, float] = {}
    clock = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        theta_all = prior.sample((n,))
        theta, x, dropped = simulate(simulator, theta_all)
        timing["simulate"] = time.perf_counter() - clock
        if theta.shape[0] < 10:
            raise ValueError(f"check: only {theta.shape[0]} of {n} simulations gave finite output (need >= 10)")
        clock = time.perf_counter()
        post = posterior_sample(posterior, samples, x, dims, max_rows)
        timing["sample"] = time.perf_counter() - clock
        has_log_prob = callable(getattr(posterior, "log_prob", None))
        clock = time.perf_counter()
        if has_log_prob:
            lp_samples = posterior_log_prob(posterior, post, x, max_rows)
            lp_truth = posterior_log_prob(posterior, theta[None].to(torch.float64), x, max_rows)[0]
        timing["log_prob"] = time.perf_counter() - clock
        pv = prior_variance(prior, prior.sample((10000,)))
    clock = time.perf_counter()
    k = theta.shape[0]
    band = ecdf_band(k, level=level, seed=seed)
    ranks = sbc_ranks(post, theta, seed=seed)
    sbc = sbc_test(ranks, samples, level=level, bins=bins, band=band, seed=seed) | {"ranks": ranks.tolist()}
    v_central = credibility_central(post, theta, seed=seed + 1)
    coverage_tests = dims + int(has_log_prob)  # Bonferroni over central (per parameter) and HPD
    central = coverage_test(v_central, level=level, band=band, seed=seed, tests=coverage_tests)
    coverage: dict[str, Any] = {"central": central}
    if has_log_prob:
        v_hpd = credibility_hpd(lp_samples, lp_truth, seed=seed + 2)
        coverage["hpd"] = coverage_test(v_hpd, level=level, band=band, seed=seed, tests=coverage_tests) | {
            "available": True}
    else:
        coverage["hpd"] = {"available": False, "reason": "the posterior has no log_prob", "passed": True}
    coverage["passed"] = central["passed"] and coverage["hpd"]["passed"]
    v_tarp = credibility_tarp(post, theta, seed=seed + 3)
    tarp = coverage_test(v_tarp, level=level, band=band, seed=seed)
    tarp["atc"] = tarp["mean_deviation"][0]
    rec = recovery(post, theta, prior_variance=pv, level=level)
    timing["statistics"] = time.perf_counter() - clock
    mis: dict[str, Any] = {"available": False, "reason": "no observations given", "passed": True}
    obs = None
    if observations is not None:
        obs = _observations(observations, tuple(x.shape[1:]))

        def simulate_reference() -> Tensor:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                return simulate(simulator, prior.sample((reference_simulations,)))[1]

        mis = _misspecification(posterior, obs, simulate_reference, summary, reference_summaries, level, seed)
    result = CheckResult(
        settings={"n": n, "samples": samples, "level": level, "seed": seed, "theta_dim": dims,
                  "x_shape": list(x.shape[1:]), "parameter_names": names, "has_log_prob": has_log_prob},
        simulation={"requested": n, "used": k, "dropped_nonfinite": dropped},
        sbc=sbc, coverage=coverage, tarp=tarp, recovery=rec, misspecification=mis, timing=timing,
    )
    result.passed = all(result[s]["passed"] for s in ("sbc", "coverage", "tarp", "recovery", "misspecification"))
    if out_dir is not None:
        from .check_plots import battery_plots

        clock = time.perf_counter()
        result.plots = battery_plots(result, Path(out_dir), posterior=posterior, observations=obs,
                                     reference_samples=reference_samples, history=history, seed=seed,
                                     credibility={"central": v_central, "HPD": v_hpd if has_log_prob else None,
                                                  "TARP": v_tarp})
        timing["plots"] = time.perf_counter() - clock
        write_json(result.to_dict(), Path(out_dir) / "diagnostics.json")
    return result
