"""Simultaneous confidence bands for the ECDF of values that should be uniform, and the test they define."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .._tensors import check_finite, to_tensor

__all__ = ["ECDFBand", "ecdf_band", "uniformity_test"]


@dataclass(frozen=True)
class ECDFBand:
    r"""A simultaneous band for the ECDF of ``n`` values on a grid of ``points`` cells.

    Attributes:
        n: number of values.
        z: evaluation points :math:`z_i = i / K`, ``i = 1..K-1``.
        lower, upper: band for the ECDF :math:`\hat F(z_i)` (fractions in ``[0, 1]``).
        gamma: the pointwise level :math:`\gamma` that gives simultaneous level ``level``.
        level: simultaneous level :math:`\alpha` (probability that a uniform ECDF leaves the band).
        null_min_p: simulated null distribution of the test statistic (sorted).
        tail: ``(K-1, n+1)`` two-sided binomial tail probability of each count at each point.
    """

    n: int
    z: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gamma: float
    level: float
    null_min_p: np.ndarray
    tail: np.ndarray

    def min_p(self, counts: np.ndarray) -> np.ndarray:
        """Statistic :math:`\\min_i p_i` for ECDF counts ``(..., K-1)``."""
        return np.take_along_axis(self.tail[None], counts.reshape(-1, len(self.z))[:, :, None], 2)[
            ..., 0].min(1).reshape(counts.shape[:-1])

    def p_value(self, min_p: np.ndarray) -> np.ndarray:
        """Monte-Carlo p-value of observed statistics: :math:`(1 + \\#\\{\\text{null} \\le s\\})/(1 + M)`."""
        below = np.searchsorted(self.null_min_p, min_p, side="right")
        return (1.0 + below) / (1.0 + len(self.null_min_p))


def _two_sided_tails(n: int, z: np.ndarray) -> np.ndarray:
    counts = np.arange(n + 1)
    cdf = stats.binom.cdf(counts[None], n, z[:, None])
    sf = stats.binom.sf(counts[None] - 1, n, z[:, None])  # P(C >= c)
    return np.minimum(1.0, 2.0 * np.minimum(cdf, sf))


def ecdf_band(n: int, *, level: float = 0.05, points: int | None = None, simulations: int = 5000,
              seed: int = 0) -> ECDFBand:
    r"""Simultaneous ECDF band for ``n`` i.i.d. uniform values (Säilynoja, Bürkner, Vehtari 2022).

    Under uniformity the ECDF count at :math:`z_i = i/K` is :math:`n\hat F(z_i) \sim
    \mathrm{Bin}(n, z_i)`. With :math:`p_i(c) = \min\{1, 2\min(P(C\le c), P(C\ge c))\}` its
    two-sided tail probability, the band at pointwise level :math:`\gamma` is
    :math:`\{c : p_i(c) \ge \gamma\}` at every :math:`z_i`. :math:`\gamma` is chosen so that a
    uniform ECDF leaves the band anywhere with probability ``level``: it is the ``level``-quantile
    of :math:`\min_i p_i` over ``simulations`` uniform ECDFs (the simulation method of the paper,
    run on multinomial cell counts). The same statistic gives the test's p-value.

    Args:
        n: number of values (>= 2).
        level: simultaneous level :math:`\alpha` in (0, 1).
        points: number of cells :math:`K` (default ``min(n, 100)``, at least 2).
        simulations: Monte-Carlo size :math:`M`.
        seed: seed of the simulation.

    References:
        Säilynoja, Bürkner, Vehtari. "Graphical test for discrete uniformity and its applications
        in goodness-of-fit evaluation and multiple sample comparison". Statistics and Computing 2022.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"ecdf_band: needs at least 2 values, got n={n!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"ecdf_band: level must be in (0, 1), got {level}")
    k = min(int(n), 100) if points is None else int(points)
    if k < 2:
        raise ValueError(f"ecdf_band: points must be >= 2, got {k}")
    if simulations < 100:
        raise ValueError(f"ecdf_band: simulations must be >= 100, got {simulations}")
    z = np.arange(1, k) / k
    tail = _two_sided_tails(int(n), z)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(int(n), np.full(k, 1.0 / k), size=simulations).cumsum(1)[:, :-1]
    band = ECDFBand(int(n), z, z, z, 0.0, level, np.empty(0), tail)
    null = np.sort(band.min_p(counts))
    gamma = float(np.quantile(null, level, method="lower"))
    inside = tail >= gamma
    lower = np.argmax(inside, axis=1) / n
    upper = (n - np.argmax(inside[:, ::-1], axis=1)) / n
    return ECDFBand(int(n), z, lower, upper, gamma, level, null, tail)


def uniformity_test(u: Any, *, level: float = 0.05, band: ECDFBand | None = None, points: int | None = None,
                    simulations: int = 5000, seed: int = 0) -> dict[str, Any]:
    r"""Test that each column of ``u`` (``(n,)`` or ``(n, D)``, values in [0, 1]) is uniform.

    Uses the simultaneous ECDF band of :func:`ecdf_band`. For each column it reports the
    p-value, whether the ECDF stays inside the band, and the largest ECDF deviation
    :math:`\max_z |\hat F(z) - z|` (the Kolmogorov distance, on the band's grid).

    Returns:
        ``{"p_value": [...], "inside_band": [...], "max_deviation": [...], "gamma": float}``.
    """
    t = to_tensor(u, "u", "uniformity_test").detach()
    t = t[:, None] if t.dim() == 1 else t
    if t.dim() != 2:
        raise ValueError(f"uniformity_test: u must have shape (n,) or (n, D), got {tuple(t.shape)}")
    check_finite(t, "u", "uniformity_test")
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError("uniformity_test: values must lie in [0, 1]")
    x = t.double().cpu().numpy()
    band = ecdf_band(x.shape[0], level=level, points=points, simulations=simulations, seed=seed) \
        if band is None else band
    if band.n != x.shape[0]:
        raise ValueError(f"uniformity_test: the band is for n={band.n} values, got {x.shape[0]}")
    counts = (x.T[:, None, :] < band.z[None, :, None]).sum(2)  # (D, K-1)
    min_p = band.min_p(counts)
    dev = np.abs(counts / band.n - band.z[None]).max(1)
    return {
        "p_value": band.p_value(min_p).tolist(),
        "inside_band": (min_p >= band.gamma).tolist(),
        "max_deviation": dev.tolist(),
        "gamma": band.gamma,
    }
