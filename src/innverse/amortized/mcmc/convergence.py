r"""MCMC convergence diagnostics: rank-normalised split-:math:`\hat R` and bulk effective sample size.

For draws ``(C chains, S iterations)`` of one scalar quantity:

* Split: each chain is cut in half, giving :math:`M = 2C` chains of :math:`N = \lfloor S/2 \rfloor`.
* Rank normalisation: pooled ranks :math:`r` are mapped to
  :math:`z = \Phi^{-1}((r - 3/8) / (MN + 1/4))`, making the diagnostics robust to heavy tails.
* :math:`\hat R = \sqrt{\widehat{\mathrm{var}}^+ / W}` with :math:`W` the mean within-chain
  variance, :math:`B/N` the variance of chain means and
  :math:`\widehat{\mathrm{var}}^+ = \tfrac{N-1}{N} W + B/N`. :func:`split_rhat` returns the
  maximum of the bulk value (on :math:`z`) and the tail value (on the rank-normalised folded
  draws :math:`|x - \mathrm{median}(x)|`).
* Bulk ESS: multi-chain autocorrelations
  :math:`\hat\rho_t = 1 - (W - \overline{\gamma_t}) / \widehat{\mathrm{var}}^+` of :math:`z`,
  summed with Geyer's initial monotone positive-pair sequence,
  :math:`\mathrm{ESS} = MN / (-1 + 2\sum_k P_k)`.

References:
    Vehtari, Gelman, Simpson, Carpenter, Bürkner, "Rank-normalization, folding, and localization:
    an improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16 (2021);
    Geyer, "Practical Markov chain Monte Carlo", Statistical Science 7 (1992).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["split_rhat", "bulk_ess"]


def _split(draws: np.ndarray) -> np.ndarray:
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] < 4:
        raise ValueError(f"convergence diagnostics need draws of shape (chains, iterations >= 4), "
                         f"got {draws.shape}")
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, -half:]], 0)


def _rank_normalise(draws: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(draws, method="average").reshape(draws.shape)
    return special.ndtri((ranks - 0.375) / (draws.size + 0.25))


def _rhat(z: np.ndarray) -> float:
    n = z.shape[1]
    within = z.var(1, ddof=1).mean()
    between = n * z.mean(1).var(ddof=1)
    if within <= 0:
        return float("nan")
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def split_rhat(draws: np.ndarray) -> float:
    """Rank-normalised split-:math:`\\hat R` (max of bulk and tail) of ``draws (chains, iterations)``."""
    split = _split(draws)
    folded = np.abs(split - np.median(split))
    return max(_rhat(_rank_normalise(split)), _rhat(_rank_normalise(folded)))


def _autocovariance(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    size = 2 ** int(np.ceil(np.log2(2 * n)))
    centred = x - x.mean(-1, keepdims=True)
    spectrum = np.fft.rfft(centred, size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[..., :n] / n


def bulk_ess(draws: np.ndarray) -> float:
    """Bulk effective sample size of ``draws (chains, iterations)`` (rank-normalised, split chains)."""
    z = _rank_normalise(_split(draws))
    m, n = z.shape
    acov = _autocovariance(z)
    within = acov[:, 0].mean() * n / (n - 1)
    var_plus = within * (n - 1) / n + z.mean(1).var(ddof=1)
    rho = 1.0 - (within - acov.mean(0)) / var_plus
    rho[0] = 1.0
    total, previous = 0.0, np.inf
    for k in range(0, n - 1, 2):
        pair = rho[k] + rho[k + 1]
        if pair <= 0:
            break
        pair = min(pair, previous)  # initial monotone sequence
        total += pair
        previous = pair
    tau = max(-1.0 + 2.0 * total, 1.0 / np.log10(m * n))
    return float(m * n / tau)
