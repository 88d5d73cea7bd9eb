r"""Stacking two posteriors for real data: the linear pool whose weight maximises out-of-fold log density.

RoPE's transport-weighted mixture (:class:`~innverse.design.mixture.RoPEPosterior`) is calibrated
from a few labelled real pairs on, but, being a mixture over several simulations, it is wider than
need be once the calibration set is large; the NPE fine-tuned on the calibration pairs alone
(:func:`~innverse.design.finetune.fine_tune_posterior`) is sharp but over-confident while they are
few. Their linear pool

.. math::
    \tilde q(\theta \mid x) = w\, q_{\mathrm{RoPE}}(\theta \mid x) + (1 - w)\, q_{\mathrm{FT}}(\theta \mid x)

is a proper density for any :math:`w \in [0, 1]`; stacking (Yao et al. 2018) picks
:math:`w` to maximise :math:`\sum_i \log \tilde q(\theta_i \mid x_i)` over the calibration pairs,
each scored by components that did not train on it (cross-fitting), so the weight rewards what
generalises. The objective is concave in :math:`w` and flat near its maximum; among the weights
within one standard error of the maximum, :func:`~innverse.design.rope` takes the one whose pooled
marginal PIT values are best calibrated on the same pairs (:func:`stacking_weight`).

References:
    Yao, Vehtari, Simpson, Gelman. "Using Stacking to Average Bayesian Predictive Distributions".
    Bayesian Analysis 13(3), 2018.
    Ranjan, Gneiting. "Combining probability forecasts". Journal of the Royal Statistical Society
    B 72(1), 2010.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor

from ..core.conditional import check_count

__all__ = ["StackedPosterior", "central_acauc", "stacking_weight"]


class _Density(Protocol):
    theta_dim: int

    def sample(self, n: int, x: Any, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor: ...


#: credibility levels of the central intervals whose coverage :func:`stacking_weight` checks
LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def central_acauc(pit: Tensor) -> Tensor:
    """Signed coverage gap of central intervals per parameter from PIT values ``(..., n, D)``: the mean over
    :data:`LEVELS` of (share of pairs inside the central interval of that level) minus the level, ``(..., D)``.
    Negative: intervals too narrow (over-confident)."""
    levels = torch.tensor(LEVELS, dtype=torch.float64)
    inside = ((pit.to(torch.float64)[..., None] - 0.5).abs() <= levels / 2).to(torch.float64)   # (..., n, D, L)
    return (inside.mean(-3) - levels).mean(-1)


def stacking_weight(log_p: Tensor, log_q: Tensor, cdf_p: Tensor | None = None, cdf_q: Tensor | None = None,
                    grid: int = 201, selection: str = "best") -> float:
    r"""The weight :math:`w \in [0, 1]` of ``p`` in the pool, from out-of-fold scores of the same pairs.

    Args:
        log_p, log_q: ``(n,)`` log densities of the pairs' true parameters under each component.
        cdf_p, cdf_q: ``(n, D)`` each component's marginal CDF at the true parameters (PIT values;
            needed for ``"calibrated"``).
        grid: weights tried, evenly spaced on ``[0, 1]``.
        selection: ``"best"``, the :math:`w` maximising :math:`\sum_i \ell_i(w)`,
            :math:`\ell_i(w) = \log(w\, p_i + (1 - w)\, q_i)`; ``"calibrated"``, among the weights
            whose paired difference to the best, :math:`\bar d = \overline{\ell(w) - \ell(w_{best})}`, is
            within one standard error (:math:`\bar d \ge -\mathrm{sd}(d)/\sqrt n`), the one whose pooled PIT
            values :math:`w F_p + (1 - w) F_q` give central intervals with the smallest mean absolute coverage
            gap (:func:`central_acauc`; the higher log density on a tie). The log density is flat near its
            maximum, and the flat stretch holds both an over-confident end (a component trained on few
            pairs) and over-dispersed middles (a linear pool of calibrated posteriors that disagree is
            wider than either; Ranjan and Gneiting 2010): coverage tells them apart.

    Raises:
        ValueError: vectors of different or zero length, NaN, an unknown ``selection``, missing or
            misshapen CDFs for ``"calibrated"``.
    """
    if selection not in ("best", "calibrated"):
        raise ValueError(f"stacking_weight: selection must be 'best' or 'calibrated', got {selection!r}")
    if log_p.shape != log_q.shape or log_p.dim() != 1 or log_p.numel() == 0:
        raise ValueError(f"stacking_weight: expected two equally long non-empty vectors, got shapes "
                         f"{tuple(log_p.shape)} and {tuple(log_q.shape)}")
    if torch.isnan(log_p).any() or torch.isnan(log_q).any():
        raise ValueError("stacking_weight: the log densities contain NaN")
    w = torch.linspace(0, 1, grid, dtype=torch.float64)[:, None]
    a, b = log_p.to(torch.float64)[None], log_q.to(torch.float64)[None]
    with torch.no_grad():
        rows = torch.logaddexp(w.log() + a, (1 - w).log() + b)          # (grid, n)
    best = int(rows.mean(1).argmax())
    if selection == "best":
        return float(w[best, 0])
    n = log_p.shape[0]
    if cdf_p is None or cdf_q is None or cdf_p.shape != cdf_q.shape or cdf_p.dim() != 2 or cdf_p.shape[0] != n:
        raise ValueError(f"stacking_weight: selection='calibrated' needs cdf_p and cdf_q of shape ({n}, D), got "
                         f"{None if cdf_p is None else tuple(cdf_p.shape)} and {None if cdf_q is None else tuple(cdf_q.shape)}")
    d = rows - rows[best]
    within = (d.mean(1) >= -d.std(1).nan_to_num(0.0) / n ** 0.5).nonzero().flatten()
    ww = w[within, 0][:, None, None]
    pit = ww * cdf_p.to(torch.float64) + (1 - ww) * cdf_q.to(torch.float64)                    # (W, n, D)
    gap = central_acauc(pit).abs().mean(-1)                                                         # (W,)
    # the smallest coverage gap (to 1e-9), then the higher mean log density
    order = sorted(range(len(within)), key=lambda i: (round(float(gap[i]), 9), -float(rows[within[i]].mean())))
    return float(w[int(within[order[0]]), 0])


class StackedPosterior:
    """The linear pool ``weight * first + (1 - weight) * second`` of two conditional densities for the same data.

    Follows the conditional-density contract of its components: ``sample(n, x)`` ->
    ``(n, D)`` / ``(n, k, D)``, ``log_prob(theta, x)`` broadcasting like ``torch.distributions``.

    Args:
        first, second: the components (``sample(n, x, generator)``, ``log_prob(theta, x, outside)``).
        weight: the first's share, in ``[0, 1]``.
        names: labels of the components for reports.
    """

    def __init__(self, first: _Density, second: _Density, weight: float,
                 names: tuple[str, str] = ("first", "second")) -> None:
        if not 0.0 <= float(weight) <= 1.0:
            raise ValueError(f"StackedPosterior: weight must be in [0, 1], got {weight!r}")
        if first.theta_dim != second.theta_dim:
            raise ValueError(f"StackedPosterior: the components' parameter dimensions differ ({first.theta_dim} "
                             f"and {second.theta_dim})")
        self.first, self.second, self.weight, self.names = first, second, float(weight), names
        #: how it was built (filled by :func:`~innverse.design.rope`)
        self.report: dict[str, Any] = {}

    @property
    def theta_dim(self) -> int:
        return self.first.theta_dim

    def __getattr__(self, name: str) -> Any:
        # x_shape, prior, last_selection, plan, ... of the transport part; only called for missing attributes
        if name in ("first", "second"):
            raise AttributeError(name)
        return getattr(self.first, name)

    def sample(self, n: int, x: Any, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws per observation; each comes from the first component with probability ``weight``."""
        n = check_count("StackedPosterior.sample", n)
        if self.weight == 1.0:
            return self.first.sample(n, x, generator=generator)
        if self.weight == 0.0:
            return self.second.sample(n, x, generator=generator)
        a = self.first.sample(n, x, generator=generator)
        b = self.second.sample(n, x, generator=generator)
        pick = torch.rand(a.shape[:-1], generator=generator, dtype=torch.float64) < self.weight
        return torch.where(pick[..., None], a, b.to(a))

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor:
        r""":math:`\log(w\, q_1 + (1 - w)\, q_2)`, shapes as the components'."""
        if self.weight == 1.0:
            return self.first.log_prob(theta, x, outside=outside)
        if self.weight == 0.0:
            return self.second.log_prob(theta, x, outside=outside)
        a = self.first.log_prob(theta, x, outside=outside).to(torch.float64)
        b = self.second.log_prob(theta, x, outside=outside).to(torch.float64)
        return torch.logaddexp(a + math.log(self.weight), b + math.log1p(-self.weight))
