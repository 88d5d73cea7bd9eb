"""Expected coverage of credible regions: central intervals, highest-density regions and TARP."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._tensors import check_finite, to_tensor
from .ecdf import ECDFBand, uniformity_test
from .sbc import _rank_with_ties, check_samples_truth, randomized_pit

__all__ = [
    "credibility_central",
    "credibility_hpd",
    "credibility_tarp",
    "coverage_curve",
    "coverage_test",
    "LEVELS",
]

#: credibility levels at which coverage curves are reported
LEVELS = np.round(np.linspace(0.0, 1.0, 101), 10)


def _pit_of_rank(below: Tensor, equal: Tensor, num_samples: int, seed: int) -> Tensor:
    return randomized_pit(_rank_with_ties(below, equal, seed), num_samples, seed=seed)


def credibility_central(samples: Any, truth: Any, *, seed: int = 0) -> Tensor:
    r"""Smallest central (equal-tailed) credible interval level that contains the truth, per parameter.

    With :math:`u` the randomised PIT of the truth among the posterior samples (see
    :func:`~innverse.diagnostics.randomized_pit`), the level is :math:`v = |2u - 1|`; the
    truth lies in the central interval of level :math:`q` iff :math:`v \le q`. Under
    calibration :math:`v \sim U(0, 1)`, so the coverage :math:`P(v \le q)` equals :math:`q`.

    Args:
        samples: ``(L, k, D)``; truth: ``(k, D)``.

    Returns:
        ``(k, D)`` values in ``[0, 1]``.
    """
    s, t = check_samples_truth(samples, truth, "credibility_central")
    u = _pit_of_rank((s < t).sum(0), (s == t).sum(0), s.shape[0], seed)
    return (2 * u - 1).abs()


def credibility_hpd(log_prob_samples: Any, log_prob_truth: Any, *, seed: int = 0) -> Tensor:
    r"""Smallest highest-posterior-density region level that contains the truth, per data set.

    .. math:: v_j = \Pr_{\theta\sim q(\cdot\mid x_j)}\big[q(\theta\mid x_j) > q(\theta^*_j\mid x_j)\big],

    estimated from the ``L`` posterior samples (randomised over ties and discreteness so that
    :math:`v \sim U(0,1)` exactly under calibration). The truth lies in the HPD region of level
    :math:`q` iff :math:`v \le q`. Joint over all parameters.

    Args:
        log_prob_samples: ``(L, k)`` log-densities of the posterior samples.
        log_prob_truth: ``(k,)`` log-density of the true parameters.

    References:
        Hermans et al. "A Trust Crisis In Simulation-Based Inference? Your Posterior
        Approximations Can Be Unfaithful". TMLR 2022.
    """
    owner = "credibility_hpd"
    lp = to_tensor(log_prob_samples, "log_prob_samples", owner, torch.float64).detach()
    lt = to_tensor(log_prob_truth, "log_prob_truth", owner, torch.float64).detach().to(lp.device)
    if lp.dim() != 2 or lt.dim() != 1 or lp.shape[1] != lt.shape[0]:
        raise ValueError(f"{owner}: expected log_prob_samples (L, k) and log_prob_truth (k,), got "
                         f"{tuple(lp.shape)} and {tuple(lt.shape)}")
    if torch.isnan(lp).any() or torch.isnan(lt).any():
        raise ValueError(f"{owner}: log-densities contain NaN")
    if bool((lt == torch.inf).any()) or bool((lp == torch.inf).any()):
        raise ValueError(f"{owner}: log-densities contain +inf")
    # -inf at the truth (outside the estimator's support) means: outside every HPD region.
    return _pit_of_rank((lp > lt).sum(0), (lp == lt).sum(0), lp.shape[0], seed)


def credibility_tarp(samples: Any, truth: Any, *, references: Any = None, seed: int = 0) -> Tensor:
    r"""TARP credibility of the truth: the posterior mass closer to a random reference point.

    After scaling every parameter to ``[0, 1]`` with the 0.5% and 99.5% quantiles of the
    posterior samples of the other half of the data sets (the original code uses the range of the
    true values, which makes the reference depend on the truth and breaks exact uniformity), a
    reference point :math:`\theta^r_j` is drawn uniformly in the unit box for each data set and

    .. math:: f_j = \Pr_{\theta\sim q(\cdot\mid x_j)}\big[\lVert\theta - \theta^r_j\rVert
              < \lVert\theta^*_j - \theta^r_j\rVert\big].

    Under calibration :math:`f \sim U(0, 1)` for any reference distribution (randomised over
    ties as above); the expected coverage of the balls around the references at level
    :math:`\alpha` is :math:`P(f \le \alpha)`. Needs no density.

    Args:
        samples: ``(L, k, D)``; truth: ``(k, D)``.
        references: ``(k, D)`` reference points in the original units (default: random).

    References:
        Lemos, Coogan, Hezaveh, Perreault-Levasseur. "Sampling-Based Accuracy Testing of
        Posterior Estimators for General Inference". ICML 2023.
    """
    s, t = check_samples_truth(samples, truth, "credibility_tarp")
    # The box for data set j must not depend on its truth (nor, for exchangeability, on its own
    # samples): it is taken from the posterior samples of the *other half* of the data sets.
    k = t.shape[0]
    half = torch.arange(k, device=t.device) < k // 2
    lo, hi = torch.empty_like(t), torch.empty_like(t)
    for part in (half, ~half):
        pool = s[:, ~part].reshape(-1, s.shape[-1])
        if pool.shape[0] > 200_000:
            pick = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))[:200_000]
            pool = pool[pick.to(pool.device)]
        lo[part], hi[part] = pool.quantile(0.005, dim=0), pool.quantile(0.995, dim=0)
    scale = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    s, t_n = (s - lo) / scale, (t - lo) / scale
    if references is None:
        gen = torch.Generator().manual_seed(seed + 104729)  # not the PIT's or the ties' stream
        ref = torch.rand(t.shape, generator=gen, dtype=torch.float64).to(t.device)
    else:
        ref = to_tensor(references, "references", "credibility_tarp", torch.float64).detach().to(t.device)
        if ref.shape != t.shape:
            raise ValueError(f"credibility_tarp: references must have the truth's shape {tuple(t.shape)}, "
                             f"got {tuple(ref.shape)}")
        check_finite(ref, "references", "credibility_tarp")
        ref = (ref - lo) / scale
    d_samples = (s - ref).norm(dim=-1)  # (L, k)
    d_truth = (t_n - ref).norm(dim=-1)  # (k,)
    return _pit_of_rank((d_samples < d_truth).sum(0), (d_samples == d_truth).sum(0), s.shape[0], seed)


def coverage_curve(credibility: Any, levels: Any = None) -> np.ndarray:
    """Empirical coverage :math:`P(v \\le q)` at each level ``q``: ``(len(levels), D)`` from ``(k, D)``."""
    v = to_tensor(credibility, "credibility", "coverage_curve", torch.float64).detach().cpu().numpy()
    v = v[:, None] if v.ndim == 1 else v
    q = LEVELS if levels is None else np.asarray(levels, dtype=float)
    return (v[None, :, :] <= q[:, None, None]).mean(1)


def coverage_test(credibility: Any, *, level: float = 0.05, band: ECDFBand | None = None, seed: int = 0,
                  simulations: int = 5000, tests: int | None = None) -> dict[str, Any]:
    r"""Expected-coverage check of credibility values ``(k,)`` or ``(k, D)``.

    Reports the coverage curve at :data:`LEVELS`, the worst deviation
    :math:`\max_q |\mathrm{cov}(q) - q|`, the signed mean deviation (the area between curve and
    diagonal: positive = conservative / under-confident, negative = over-confident), and a
    p-value from the simultaneous ECDF band test of :math:`v \sim U(0,1)`; the verdict is
    Bonferroni-corrected over ``tests`` tests (default: the number of columns).

    Returns:
        ``{"levels", "coverage" (per column), "max_deviation", "mean_deviation", "p_value",
        "passed_per_parameter", "passed", "level"}``.
    """
    v = to_tensor(credibility, "credibility", "coverage_test", torch.float64).detach()
    v = v[:, None] if v.dim() == 1 else v
    curve = coverage_curve(v)
    dev = curve - LEVELS[:, None]
    res = uniformity_test(v, level=level, band=band, seed=seed, simulations=simulations)
    ok = [p >= level / (tests or v.shape[1]) for p in res["p_value"]]
    return {
        "levels": LEVELS.tolist(),
        "coverage": curve.T.tolist(),
        "max_deviation": np.abs(dev).max(0).tolist(),
        "mean_deviation": dev.mean(0).tolist(),
        "p_value": res["p_value"],
        "passed_per_parameter": ok,
        "passed": all(ok),
        "level": level,
    }
