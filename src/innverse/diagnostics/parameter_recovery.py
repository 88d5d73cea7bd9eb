"""Parameter recovery: posterior mean vs truth, z-scores, contraction, RMSE and R²."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .._tensors import check_finite, to_tensor
from .sbc import check_samples_truth

__all__ = ["recovery"]


def recovery(samples: Any, truth: Any, *, prior_variance: Any = None, level: float = 0.05) -> dict[str, Any]:
    r"""Recovery statistics of posterior samples against the parameters that generated the data.

    Per data set :math:`j` and parameter :math:`d`, with posterior mean :math:`\mu_{jd}` and
    standard deviation :math:`\sigma_{jd}`:

    .. math::
        z_{jd} = \frac{\mu_{jd} - \theta^*_{jd}}{\sigma_{jd}},\qquad
        c_{jd} = 1 - \frac{\sigma^2_{jd}}{\sigma^2_{\text{prior},d}}

    (posterior z-score and contraction, Schad et al.), and per parameter
    :math:`\mathrm{RMSE}_d = \sqrt{\overline{(\mu_{\cdot d} - \theta^*_{\cdot d})^2}}`, its value
    relative to the prior standard deviation, :math:`R^2_d = 1 - \sum_j(\mu_{jd}-\theta^*_{jd})^2
    / \sum_j(\theta^*_{jd} - \bar\theta^*_d)^2` and the correlation of :math:`\mu` with
    :math:`\theta^*`.

    Verdict: for a calibrated posterior :math:`E[z] = 0` and :math:`E[z^2] = 1` exactly (the
    truth is a draw from the posterior). Both are tested per parameter with a CLT z-test; the
    check passes when no test falls below ``level / (2 D)`` (Bonferroni). Large :math:`|z|` with
    high contraction means over-confidence; RMSE and R² measure how well the data identify
    each parameter (no pass/fail: that is a property of the problem, not of the estimator).

    Args:
        samples: ``(L, k, D)`` posterior samples (``L >= 2``); truth: ``(k, D)``.
        prior_variance: ``(D,)`` prior variances (default: variance of ``truth``).
        level: significance level of the verdict.

    Returns:
        dict of per-parameter lists (``rmse``, ``nrmse``, ``r2``, ``correlation``,
        ``mean_z``, ``mean_z2``, ``mean_contraction``, ``z_p_value``, ``z2_p_value``), per
        data set arrays (``posterior_mean``, ``posterior_std``, ``z_score``, ``contraction``,
        ``truth``, as ``k x D`` lists) and the verdict.

    References:
        Schad, Betancourt, Vasishth. "Toward a principled Bayesian workflow in cognitive
        science". Psychological Methods 2021.
    """
    s, t = check_samples_truth(samples, truth, "recovery")
    if s.shape[0] < 2:
        raise ValueError(f"recovery: needs at least 2 posterior samples per data set, got {s.shape[0]}")
    k, dims = t.shape
    pv = _prior_variance(prior_variance, t)
    mean, std = s.mean(0), s.std(0)
    std_safe = torch.where(std > 0, std, torch.full_like(std, torch.finfo(std.dtype).tiny))
    z = (mean - t) / std_safe
    contraction = 1 - std**2 / pv
    sse = (mean - t).square().sum(0)
    sst = (t - t.mean(0)).square().sum(0)
    rmse = (sse / k).sqrt()
    zn, z2 = z.cpu().numpy(), (z**2).cpu().numpy()
    p_z, p_z2 = _calibration_p_values(zn, z2)
    ok = [bool(a >= level / (2 * dims) and b >= level / (2 * dims)) for a, b in zip(p_z, p_z2)]

    def lst(x: Tensor) -> list:
        return x.cpu().tolist()

    return {
        "rmse": lst(rmse),
        "nrmse": lst(rmse / pv.sqrt()),
        "r2": lst(1 - sse / sst),
        "correlation": _correlations(mean, t, sst),
        "mean_z": zn.mean(0).tolist(),
        "mean_z2": z2.mean(0).tolist(),
        "mean_contraction": lst(contraction.mean(0)),
        "z_p_value": p_z.tolist(),
        "z2_p_value": p_z2.tolist(),
        "passed_per_parameter": ok,
        "passed": all(ok),
        "level": level,
        "posterior_mean": lst(mean),
        "posterior_std": lst(std),
        "z_score": lst(z),
        "contraction": lst(contraction),
        "truth": lst(t),
        "prior_variance": lst(pv),
    }


def _prior_variance(prior_variance: Any, t: Tensor) -> Tensor:
    """``(D,)`` prior variances (default: the variance of the truth); non-positive ones become NaN."""
    if prior_variance is None:
        pv = t.var(0)
    else:
        pv = to_tensor(prior_variance, "prior_variance", "recovery", torch.float64).detach().to(t.device).reshape(-1)
        if pv.shape != t.shape[1:]:
            raise ValueError(f"recovery: prior_variance must have shape ({t.shape[1]},), got {tuple(pv.shape)}")
        check_finite(pv, "prior_variance", "recovery")
    return torch.where(pv > 0, pv, torch.full_like(pv, torch.nan))


def _calibration_p_values(z: np.ndarray, z2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided CLT p-values of ``E[z] = 0`` and ``E[z^2] = 1`` per parameter (NaN -> 0)."""
    k = z.shape[0]
    se_z = z.std(0, ddof=1) / np.sqrt(k)
    se_z2 = z2.std(0, ddof=1) / np.sqrt(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_z = 2 * stats.norm.sf(np.abs(z.mean(0)) / se_z)
        p_z2 = 2 * stats.norm.sf(np.abs(z2.mean(0) - 1) / se_z2)
    return np.nan_to_num(p_z, nan=0.0), np.nan_to_num(p_z2, nan=0.0)


def _correlations(mean: Tensor, t: Tensor, sst: Tensor) -> list[float]:
    """Correlation of posterior mean and truth per parameter (NaN where either is constant)."""
    return [float(np.corrcoef(mean[:, d].cpu().numpy(), t[:, d].cpu().numpy())[0, 1])
            if float(sst[d]) > 0 and float(mean[:, d].std()) > 0 else float("nan") for d in range(t.shape[1])]
