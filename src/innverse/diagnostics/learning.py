r"""Did the posterior learn anything? Its posterior mean against a cross-fitted regression of θ on x.

A posterior equal to the prior is perfectly calibrated: SBC, coverage and TARP pass it. What
tells it apart from a good posterior is what the data say about the parameters, and a posterior
mean that ignores them. This check measures both on the battery's simulated data sets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import special, stats

from .sbc import check_samples_truth

__all__ = ["learning_test"]

#: ridge penalties tried, relative to the mean squared singular value of the design
_PENALTIES = np.logspace(-4, 2, 13)


def learning_test(samples: Any, truth: Any, x: Any, *, log_prob_truth: Any = None, prior_log_prob: Any = None,
                  level: float = 0.05, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    r"""Does the posterior mean use what the data say about each parameter?

    Per data set :math:`j` and parameter :math:`d`: the posterior mean :math:`\mu_{jd}`, the
    out-of-fold prediction :math:`m_{jd}` of a ridge regression of :math:`\theta_d` on features
    of :math:`x` (rank-Gaussianised features :math:`z` and :math:`z^2 - 1`, the penalty chosen by
    generalised cross-validation; fitted on the other ``folds - 1`` folds), and the squared errors

    .. math::
        e_j = (\mu_{jd} - \theta_{jd})^2,\quad b_j = (m_{jd} - \theta_{jd})^2,\quad
        v_j = (\theta_{jd} - \bar\theta_d)^2,\qquad R^2 = 1 - \textstyle\sum e / \sum v .

    The exact posterior mean minimises the expected squared error over *all* functions of
    :math:`x`, so :math:`E[e] \le E[b]`. The parameter FAILS when the posterior mean explains
    less than half of the variance the regression explains: a one-sided t-test of
    :math:`\delta_j = e_j - (b_j + v_j)/2 > 0` at ``level / D`` (Bonferroni). For the exact
    posterior :math:`E[\delta] \le -(E[v] - E[b])/2 \le 0`, so it fails with probability at most
    ``level``; a posterior equal to the prior has :math:`E[\delta] = (E[v] - E[b])/2 > 0` wherever
    the regression finds information. Where the regression finds none (a one-sided test of
    :math:`v_j - b_j > 0`), the parameter is reported as *uninformative* — a posterior near the
    prior is then what the data support, or the information is beyond a quadratic regression:
    this check can prove that nothing was learned, not that everything was.

    With ``log_prob_truth`` and ``prior_log_prob`` the mean log-density gain
    :math:`\overline{\log q(\theta_j\mid x_j) - \log p(\theta_j)}` (nats; a lower bound on the
    mutual information of :math:`\theta` and :math:`x` in expectation, Barber & Agakov 2003) is
    reported with its standard error; it does not enter the verdict.

    Args:
        samples: ``(L, k, D)`` posterior samples; truth: ``(k, D)``; x: ``(k, *x_shape)`` the data.
        log_prob_truth, prior_log_prob: ``(k,)`` posterior and prior log-densities at the truth.
        level: significance level; folds: cross-fitting folds (>= 2); seed: fold assignment.

    Returns:
        dict with per-parameter lists ``r2_posterior``, ``r2_regression``, ``p_value`` (of the
        failure test), ``p_informative``, ``status`` (``"learned"``, ``"FAILED"`` or
        ``"uninformative"``), the ``log_prob_gain`` (and ``_se``) when available, and ``passed``.

    References:
        Barber, Agakov. "The IM algorithm: a variational approach to information maximization".
        NeurIPS 2003.
    """
    s, t = check_samples_truth(samples, truth, "learning_test")
    k, dims = t.shape
    features = torch.as_tensor(x).reshape(k, -1).detach().to("cpu", torch.float64).numpy()
    if not 2 <= folds <= k // 2:
        raise ValueError(f"learning_test: folds must be in [2, k/2] = [2, {k // 2}], got {folds}")
    theta = t.cpu().numpy()
    mean = s.mean(0).cpu().numpy()
    pred = _cross_fitted_ridge(_design(features), theta, folds, seed)
    e, b, v = (mean - theta) ** 2, (pred - theta) ** 2, (theta - theta.mean(0)) ** 2
    p_fail = _one_sided_p(e - (b + v) / 2)
    p_informative = _one_sided_p(v - b)
    bonferroni = level / dims
    status = ["FAILED" if pf < bonferroni else "learned" if pi < bonferroni else "uninformative"
              for pf, pi in zip(p_fail, p_informative)]
    result: dict[str, Any] = {
        "r2_posterior": (1 - e.sum(0) / v.sum(0)).tolist(),
        "r2_regression": (1 - b.sum(0) / v.sum(0)).tolist(),
        "p_value": p_fail.tolist(), "p_informative": p_informative.tolist(), "status": status,
        "passed": "FAILED" not in status, "level": level, "folds": folds,
    }
    if log_prob_truth is not None and prior_log_prob is not None:
        gain = (torch.as_tensor(log_prob_truth, dtype=torch.float64).cpu()
                - torch.as_tensor(prior_log_prob, dtype=torch.float64).cpu()).numpy()
        gain = gain[np.isfinite(gain)]
        if gain.size >= 2:
            result["log_prob_gain"] = float(gain.mean())
            result["log_prob_gain_se"] = float(gain.std(ddof=1) / np.sqrt(gain.size))
    return result


def _design(features: np.ndarray) -> np.ndarray:
    """Rank-Gaussianised features ``z`` (robust to outliers and to the scale) and ``z**2 - 1``."""
    finite = np.where(np.isfinite(features), features, 0.0)
    ranks = stats.rankdata(finite, axis=0)
    z = special.ndtri(ranks / (finite.shape[0] + 1))
    z = z[:, z.std(0) > 0]                                   # constant features carry nothing
    return np.concatenate([z, z**2 - 1], axis=1)


def _cross_fitted_ridge(design: np.ndarray, theta: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold ridge predictions of every parameter, the penalty chosen by GCV on each training fold."""
    k = design.shape[0]
    fold = np.random.default_rng(seed).permutation(k) % folds
    pred = np.empty_like(theta)
    for f in range(folds):
        train, test = fold != f, fold == f
        y_mean = theta[train].mean(0)
        if design.shape[1] == 0:
            pred[test] = y_mean
            continue
        x_mean = design[train].mean(0)
        u, sv, vt = np.linalg.svd(design[train] - x_mean, full_matrices=False)
        uty = u.T @ (theta[train] - y_mean)
        best, best_gcv = None, np.inf
        for lam in _PENALTIES * max(float(np.mean(sv**2)), 1e-12):
            shrink = sv**2 / (sv**2 + lam)
            resid = (theta[train] - y_mean) - u @ (shrink[:, None] * uty)
            gcv = (resid**2).sum(0) / (train.sum() - shrink.sum()) ** 2
            if gcv.sum() < best_gcv:
                best_gcv, best = gcv.sum(), (sv / (sv**2 + lam))[:, None] * uty
        pred[test] = (design[test] - x_mean) @ (vt.T @ best) + y_mean
    return pred


def _one_sided_p(diff: np.ndarray) -> np.ndarray:
    """p-value of the one-sided t-test of ``mean(diff) > 0``, per column (1 where the spread is zero)."""
    n = diff.shape[0]
    sd = diff.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(sd > 0, diff.mean(0) / (sd / np.sqrt(n)), -np.inf)
    return stats.t.sf(tstat, df=n - 1)
