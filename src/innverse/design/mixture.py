r"""RoPE's calibrated posterior: for a batch of real observations, a transport-weighted mixture of NPE posteriors.

With the fine-tuned summary network :math:`h_o`, the trained NPE :math:`q(\theta \mid h)` and a
bank of simulations with summaries :math:`h_k = h^\star(x_k^{\mathrm{sim}})`, :math:`k = 1..m`,
a batch of real observations :math:`x_1..x_K` is matched to the bank by the entropic transport
plan :math:`P^\star` (:func:`~innverse.design.transport.transport_plan`) for the cost
:math:`C_{jk} = \lVert (h_o(x_j) - h_k) / s \rVert^2` (:math:`s`: per-feature spread of the
bank's summaries), and each real observation's posterior is

.. math::
    \tilde q(\theta \mid x_j) = \sum_{k=1}^m w_{jk}\, q(\theta \mid h_k), \qquad
    w_{jk} = P^\star_{jk} / \textstyle\sum_l P^\star_{jl},

a proper density (a convex combination of normalised flows). The components are kept, largest
first, until their weights reach :math:`1 - 10^{-3}` and renormalised; where that takes more
than ``max_components``, the mixture is thinned to ``max_components`` slots by systematic
resampling of the weights (unbiased, tails kept in proportion). The method is transductive: the plan, hence the posterior of :math:`x_j`, depends
on the batch it comes with. The calibration pairs join every batch with their out-of-fold
summaries (:func:`~innverse.design.rope`): with ``epsilon="auto"`` the entropic scale
:math:`\varepsilon` is chosen per batch from ``epsilons`` (multiples of the median cost between
simulated summaries) by the calibration pairs' log posterior densities of their true parameters
(``selection``), and even a single real observation gets a well-posed batch.

References:
    Wehenkel, Gamella, Sener, Behrmann, Sapiro, Jacobsen, Cuturi. "Addressing Misspecification
    in Simulation-based Inference through Data-driven Calibration". ICML 2025.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._tensors import to_tensor
from ..amortized import Posterior, PosteriorEstimator
from ..amortized.embedding import ObservationEmbedding
from ..amortized.inputs import check_x
from ..core.conditional import broadcast_value, check_count
from .transport import TransportPlan, transport_plan

__all__ = ["RoPEPosterior", "CalibrationRows", "EPSILONS"]

#: default grid of entropic scales, in units of the median cost between simulated summaries
EPSILONS = (0.01, 0.03, 0.1, 0.3, 1.0)
_CHUNK = 1 << 16


def _components(w: Tensor, most: int, tolerance: float) -> tuple[Tensor, Tensor]:
    """Bank rows ``(k, K)`` and weights ``(k, K)`` of each row's mixture, ``K <= most``.

    The largest weights reaching ``1 - tolerance`` when they are at most ``most``; otherwise
    ``most`` systematic-resampling draws (slot ``i`` takes the component whose cumulative weight
    first exceeds ``(i + 1/2) / most``), merged into counts: an unbiased thinning that keeps
    the tails in proportion, where cutting them would make the mixture over-confident.
    """
    vals, idx = w.sort(1, descending=True)
    needed = ((vals.cumsum(1) - vals) < 1 - tolerance).sum(1)
    k = w.shape[0]
    index = torch.zeros(k, min(most, w.shape[1]), dtype=torch.long)
    weights = torch.zeros(index.shape, dtype=torch.float64)
    positions = (torch.arange(most, dtype=torch.float64) + 0.5) / most
    for j in range(k):
        n = int(needed[j])
        if n <= most:
            index[j, :n], weights[j, :n] = idx[j, :n], vals[j, :n] / vals[j, :n].sum()
            continue
        cdf = vals[j].cumsum(0)
        picks = torch.searchsorted(cdf / cdf[-1], positions).clamp_max(w.shape[1] - 1)
        slots, counts = torch.unique(picks, return_counts=True)
        index[j, :len(slots)], weights[j, :len(slots)] = idx[j, slots], counts.to(torch.float64) / most
    size = int((weights > 0).sum(1).max())
    return index[:, :size], weights[:, :size]


@dataclass(frozen=True)
class CalibrationRows:
    """Out-of-fold summaries of the calibration observations ``(n, C)`` and ``log q(theta_i | h_k)`` ``(n, m)``."""

    summaries: Tensor
    log_q: Tensor


@dataclass
class _Batch:
    x: Tensor
    index: Tensor        # (k, K) bank rows
    log_w: Tensor        # (k, K) log weights (-inf: unused slot)
    plan: TransportPlan
    selection: dict[str, Any] = field(default_factory=dict)


class RoPEPosterior:
    r"""Transport-weighted mixture of NPE posteriors for real observations (see the module docstring).

    Follows the conditional-density contract: ``sample(n, x)`` -> ``(n, D)`` / ``(n, k, D)`` and
    ``log_prob(theta, x)`` broadcasting like ``torch.distributions``; the transport plan of the
    last batch is cached, so sampling and scoring the same batch solve it once.

    Args:
        estimator: the trained NPE.
        embedding: the fine-tuned summary network :math:`h_o` (with the NPE's standardisation).
        bank: simulated summaries :math:`h_k` ``(m, C)``.
        calibration: the calibration pairs' rows (needed for ``epsilon="auto"``), or None.
        epsilon: ``"auto"`` or a multiple of the median simulated cost.
        unbalanced: :math:`\tau` as a multiple of the median simulated cost (semi-unbalanced), or None (balanced).
        epsilons: the grid searched by ``"auto"``.
        max_components: most mixture components kept per observation.
        mass_tolerance: components are kept, largest first, until their weights reach ``1 - mass_tolerance``.
        selection: how ``"auto"`` picks epsilon from the calibration rows' log posterior densities
            :math:`\ell_i(\varepsilon)`: ``"best"``, the highest mean; ``"one_se"`` (default), the largest
            :math:`\varepsilon` whose paired difference to the best,
            :math:`\bar d = \overline{\ell(\varepsilon) - \ell(\varepsilon_{best})}`, is within one
            standard error, :math:`\bar d \ge -\mathrm{sd}(d)/\sqrt n` (Breiman's one-standard-error rule:
            among scales the calibration set cannot tell apart, the smoothest plan, which guards against
            an over-confident choice made by noise).
    """

    def __init__(self, estimator: PosteriorEstimator, embedding: ObservationEmbedding, bank: Tensor,
                 calibration: CalibrationRows | None = None, epsilon: float | str = "auto",
                 unbalanced: float | None = None, epsilons: tuple[float, ...] = EPSILONS,
                 max_components: int = 256, mass_tolerance: float = 1e-3, selection: str = "one_se") -> None:
        if epsilon == "auto" and calibration is None:
            raise ValueError("RoPEPosterior: epsilon='auto' needs the calibration rows; give a number instead")
        if epsilon != "auto" and not (isinstance(epsilon, (int, float)) and epsilon > 0):
            raise ValueError(f"RoPEPosterior: epsilon must be 'auto' or a positive number, got {epsilon!r}")
        self.estimator, self.embedding = estimator.eval(), embedding.eval()
        self.bank = bank.detach()
        self.calibration = calibration
        self.epsilon, self.unbalanced, self.epsilons = epsilon, unbalanced, tuple(epsilons)
        self.max_components = int(max_components)
        if selection not in ("one_se", "best"):
            raise ValueError(f"RoPEPosterior: selection must be 'one_se' or 'best', got {selection!r}")
        self.selection = selection
        if not 0 <= mass_tolerance < 1:
            raise ValueError(f"RoPEPosterior: mass_tolerance must be in [0, 1), got {mass_tolerance}")
        self.mass_tolerance = float(mass_tolerance)
        self._spread = self.bank.to(torch.float64).std(0).clamp_min(1e-12)
        sub = self._whiten(self.bank[:1000])
        self.cost_scale = float(torch.cdist(sub, sub).square().median())
        self._cache: _Batch | None = None
        #: how it was built (filled by :func:`~innverse.design.rope`)
        self.report: dict[str, Any] = {}

    # -- properties ----------------------------------------------------------------------------------
    @property
    def theta_dim(self) -> int:
        return self.estimator.theta_dim

    @property
    def x_shape(self) -> tuple[int, ...]:
        return self.estimator.x_shape

    @property
    def prior(self):
        return self.estimator.prior

    @property
    def last_selection(self) -> dict[str, Any]:
        """How the last batch's plan was chosen: ``epsilon`` and, when automatic, the calibration LPP per grid value."""
        return {} if self._cache is None else dict(self._cache.selection)

    def fine_tuned_npe(self) -> Posterior:
        """The NPE read through the fine-tuned summary network, :math:`q(\\theta \\mid h_o(x))` (no transport; an ablation)."""
        est = copy.deepcopy(self.estimator)
        est.embedding = copy.deepcopy(self.embedding)
        return Posterior(est)

    def _calibration_plan(self, owner: str) -> TransportPlan:
        if self.calibration is None:
            raise ValueError(f"RoPEPosterior.{owner}: this posterior was built without calibration rows")
        return self._select(self._cost(self.calibration.summaries), 0)[0]

    @torch.inference_mode()
    def calibration_log_prob(self) -> Tensor:
        """``log q(theta_i | x_i)`` of the calibration pairs under the plan of their out-of-fold summaries alone
        (``epsilon`` as chosen for that batch): out-of-fold scores of the transport posterior, ``(n,)``."""
        plan = self._calibration_plan("calibration_log_prob")
        return torch.logsumexp(plan.weights.log() + self.calibration.log_q, 1)

    @torch.inference_mode()
    def calibration_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from each calibration pair's transport posterior (the plan of :meth:`calibration_log_prob`),
        ``(n, pairs, D)``."""
        n = check_count("RoPEPosterior.calibration_sample", n)
        plan = self._calibration_plan("calibration_sample")
        index, weights = _components(plan.weights, self.max_components, self.mass_tolerance)
        return self._draw(index, weights.log(), n, generator)

    def _draw(self, index: Tensor, log_w: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` draws per row of the mixtures ``(index, log_w)`` over the bank: ``(n, rows, D)``."""
        k = index.shape[0]
        comp = torch.multinomial(log_w.exp(), n, replacement=True, generator=generator)            # (k, n)
        rows = index.gather(1, comp).reshape(-1)
        h = self.bank[rows].to(self._dtype())
        out = torch.cat([self.estimator.sample_given_summaries(1, h[i:i + _CHUNK], generator)[0]
                         for i in range(0, h.shape[0], _CHUNK)])
        return out.reshape(k, n, self.theta_dim).transpose(0, 1)

    # -- the plan --------------------------------------------------------------------------------------
    def _whiten(self, h: Tensor) -> Tensor:
        return h.to(torch.float64) / self._spread

    def _cost(self, h: Tensor) -> Tensor:
        return torch.cdist(self._whiten(h), self._whiten(self.bank)).square()

    def _solve(self, cost: Tensor, eps: float) -> TransportPlan:
        tau = None if self.unbalanced is None else self.unbalanced * self.cost_scale
        return transport_plan(cost, eps * self.cost_scale, unbalanced=tau)

    def _select(self, cost: Tensor, k: int) -> tuple[TransportPlan, dict[str, Any]]:
        """The plan at the fixed epsilon, or the one chosen on the calibration rows (see the class docstring)."""
        if self.epsilon != "auto":
            return self._solve(cost, float(self.epsilon)), {"epsilon": float(self.epsilon)}
        assert self.calibration is not None
        plans: dict[float, TransportPlan] = {}
        rows: dict[float, Tensor] = {}
        for eps in self.epsilons:
            try:
                plans[eps] = self._solve(cost, eps)
            except ValueError:          # not converged at this scale: skip it
                continue
            rows[eps] = torch.logsumexp(plans[eps].weights[k:].log() + self.calibration.log_q, 1)
        if not plans:
            raise ValueError(f"RoPEPosterior: no epsilon in {self.epsilons} gave a converged plan")
        best = max(rows, key=lambda e: float(rows[e].mean()))
        chosen = best
        if self.selection == "one_se":
            n = rows[best].shape[0]
            for eps in sorted(rows, reverse=True):
                diff = rows[eps] - rows[best]
                if eps > best and float(diff.mean()) >= -float(diff.std()) / n**0.5:
                    chosen = eps
                    break
        return plans[chosen], {"epsilon": chosen, "best_lpp_epsilon": best,
                               "calibration_lpp": {e: float(r.mean()) for e, r in rows.items()}}

    @torch.inference_mode()
    def _batch(self, xt: Tensor) -> _Batch:
        if self._cache is not None and self._cache.x.shape == xt.shape and torch.equal(self._cache.x, xt):
            return self._cache
        h = torch.cat([self.embedding(xt[i:i + 4096]) for i in range(0, xt.shape[0], 4096)])
        k = h.shape[0]
        if self.calibration is not None:
            h = torch.cat([h, self.calibration.summaries.to(h)])
        plan, selection = self._select(self._cost(h), k)
        index, weights = _components(plan.weights[:k], self.max_components, self.mass_tolerance)
        self._cache = _Batch(xt.clone(), index, weights.log(), plan, selection)
        return self._cache

    def plan(self, x: Any) -> TransportPlan:
        """The transport plan for a batch of real observations (rows: the batch, then the calibration rows)."""
        xt, _ = check_x(x, self.x_shape, "RoPEPosterior.plan", self.estimator.variable_size, self._dtype())
        return self._batch(xt).plan

    def _dtype(self) -> torch.dtype:
        return self.estimator.standardization.shift.dtype

    # -- the contract ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, n: int, x: Any, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples per real observation: ``(n, D)`` for one, ``(n, k, D)`` for ``k`` (inside the prior's support)."""
        n = check_count("RoPEPosterior.sample", n)
        xt, single = check_x(x, self.x_shape, "RoPEPosterior.sample", self.estimator.variable_size, self._dtype())
        b = self._batch(xt)
        out = self._draw(b.index, b.log_w, n, generator)
        return out[:, 0] if single else out

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor:
        """Mixture log-density, broadcast over observations like ``torch.distributions`` (see :class:`~innverse.amortized.Posterior`)."""
        if outside not in ("error", "-inf"):
            raise ValueError(f"RoPEPosterior.log_prob: outside must be 'error' or '-inf', got {outside!r}")
        xt, single = check_x(x, self.x_shape, "RoPEPosterior.log_prob", self.estimator.variable_size, self._dtype())
        t = to_tensor(theta, "theta", "RoPEPosterior.log_prob", self._dtype())
        flat, obs, shape = broadcast_value("RoPEPosterior.log_prob", t, (self.theta_dim,),
                                           () if single else (xt.shape[0],), "theta", "observation")
        if not torch.isfinite(flat).all():
            raise ValueError("RoPEPosterior.log_prob: theta contains NaN or Inf")
        inside = self.estimator.support.inside(flat)
        if outside == "error" and not inside.all():
            rows = (~inside).nonzero().flatten()[:10].tolist()
            raise ValueError(f"RoPEPosterior.log_prob: theta rows {rows} lie outside the prior's support; pass "
                             "outside='-inf' to get -inf instead")
        b = self._batch(xt)
        return self._mixture_log_prob(flat, obs, inside, b).reshape(shape)

    @torch.inference_mode()
    def _mixture_log_prob(self, flat: Tensor, obs: Tensor, inside: Tensor, b: _Batch) -> Tensor:
        size = b.index.shape[1]
        out = torch.full((flat.shape[0],), -math.inf, dtype=torch.float64)
        step = max(1, _CHUNK // size)
        for i in range(0, flat.shape[0], step):
            ok = inside[i:i + step]
            if not ok.any():
                continue
            th, j = flat[i:i + step][ok], obs[i:i + step][ok]
            h = self.bank[b.index[j].reshape(-1)].to(self._dtype())
            lq = self.estimator.flow.log_prob(th.repeat_interleave(size, 0), h).reshape(-1, size).to(torch.float64)
            out[i:i + step][ok] = torch.logsumexp(lq + b.log_w[j], 1)
        return out
