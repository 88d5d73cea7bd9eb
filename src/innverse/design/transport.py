r"""Entropic optimal transport between real and simulated summaries, balanced or semi-unbalanced (POT).

For a cost matrix :math:`C \in \mathbb R^{k \times m}` (rows: real observations with masses
:math:`a`, columns: simulations with masses :math:`b`), the entropic plan is

.. math::
    P^\star = \arg\min_{P \ge 0,\ P\mathbf 1 = a}\ \langle P, C\rangle
        + \varepsilon\,\mathrm{KL}(P \,\|\, a b^\top) + \tau\,\mathrm{KL}(P^\top \mathbf 1 \,\|\, b),

balanced for :math:`\tau = \infty` (then also :math:`P^\top\mathbf 1 = b`) and
*semi-unbalanced* otherwise: every real observation sends its full mass, but the simulations
may receive more or less than :math:`b` (at a price :math:`\tau`), so that a batch of real
observations need not cover the whole prior. Subtracting a constant from a row (and, when
balanced, from a column) of :math:`C` changes the objective by a constant only, so the cost is
shifted to a zero minimum per row first: the kernel :math:`e^{-C/\varepsilon}` then never
underflows on a whole row. Solved by Sinkhorn scaling in POT (``sinkhorn_stabilized`` when
balanced, the translation-invariant generalised scaling of Séjourné et al. otherwise) on torch
tensors. Very small :math:`\varepsilon` (below about :math:`10^{-3}` of the typical cost)
underflows the kernel and is refused with an error.

References:
    Cuturi. "Sinkhorn distances: lightspeed computation of optimal transport". NeurIPS 2013;
    Chizat, Peyré, Schmitzer, Vialard. "Scaling algorithms for unbalanced optimal transport
    problems". Mathematics of Computation 2018; Séjourné, Vialard, Peyré. "Faster unbalanced
    optimal transport: translation invariant Sinkhorn and 1-D Frank-Wolfe". AISTATS 2022; Flamary et al. "POT: Python Optimal Transport".
    JMLR 2021.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["TransportPlan", "transport_plan", "import_pot"]


def import_pot() -> Any:
    """The POT module, or an ImportError saying how to install it."""
    try:
        import ot
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("innverse.design: optimal transport needs POT; install it with "
                          "pip install 'innverse[design]' (or pip install pot)") from err
    return ot


@dataclass(frozen=True)
class TransportPlan:
    """An entropic transport plan and how well it meets its constraints.

    Attributes:
        plan: ``(k, m)`` float64, the plan :math:`P^\\star`.
        epsilon: entropic regularisation :math:`\\varepsilon` (cost units).
        unbalanced: marginal penalty :math:`\\tau` on the simulations (``None``: balanced).
        row_error: largest relative deviation of the row sums from :math:`a`.
        column_error: largest relative deviation of the column sums from :math:`b` (for a
            semi-unbalanced plan this is not a constraint, only a description).
    """

    plan: Tensor
    epsilon: float
    unbalanced: float | None
    row_error: float
    column_error: float

    @property
    def weights(self) -> Tensor:
        """Row-normalised plan ``(k, m)``: the mixture weights of each real observation over the simulations."""
        return self.plan / self.plan.sum(1, keepdim=True)


def _masses(w: Tensor | None, n: int, name: str) -> Tensor:
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    w = torch.as_tensor(w, dtype=torch.float64)
    if w.shape != (n,) or not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"transport_plan: {name} must be {n} positive finite masses, got shape {tuple(w.shape)}")
    return w / w.sum()


# exempt from the size rule: argument checks and the two solver branches read best in one place.
def transport_plan(cost: Tensor, epsilon: float, *, unbalanced: float | None = None, row_masses: Tensor | None = None,
                   column_masses: Tensor | None = None, max_iter: int = 5000, tol: float = 1e-7) -> TransportPlan:
    """Entropic transport plan for ``cost (k, m)`` (see the module docstring).

    Args:
        cost: non-negative finite costs ``(k, m)``.
        epsilon: entropic regularisation, > 0, in the units of ``cost``.
        unbalanced: :math:`\\tau` > 0 for the semi-unbalanced problem; ``None`` for balanced.
        row_masses, column_masses: :math:`a` ``(k,)`` and :math:`b` ``(m,)`` (default uniform;
            normalised to sum 1).
        max_iter, tol: Sinkhorn iterations and stopping threshold.

    Raises:
        ValueError: bad shapes or values; a plan whose rows miss their masses by more than
            1e-3 (relative), or, when balanced, whose columns miss theirs by more than 1e-2
            (increase ``epsilon`` or ``max_iter``).
    """
    ot = import_pot()
    c = torch.as_tensor(cost).detach().to("cpu", torch.float64)
    if c.dim() != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"transport_plan: cost must be a (k, m) matrix, got shape {tuple(c.shape)}")
    if not torch.isfinite(c).all():
        raise ValueError("transport_plan: cost contains NaN or Inf")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"transport_plan: epsilon must be a positive finite number, got {epsilon!r}")
    if unbalanced is not None and not (isinstance(unbalanced, (int, float)) and unbalanced > 0):
        raise ValueError(f"transport_plan: unbalanced must be a positive number or None, got {unbalanced!r}")
    a, b = _masses(row_masses, c.shape[0], "row_masses"), _masses(column_masses, c.shape[1], "column_masses")
    c = c - c.min(1, keepdim=True).values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is checked below, on the marginals themselves
        if unbalanced is None or not math.isfinite(unbalanced):
            c = c - c.min(0, keepdim=True).values
            plan = ot.sinkhorn(a, b, c, float(epsilon), method="sinkhorn_stabilized", numItermax=max_iter,
                               stopThr=tol)
        else:
            plan = ot.unbalanced.sinkhorn_unbalanced(a, b, c, float(epsilon), reg_m=(math.inf, float(unbalanced)),
                                                     method="sinkhorn_translation_invariant", numItermax=max_iter,
                                                     stopThr=tol)
    plan = torch.as_tensor(plan, dtype=torch.float64)
    if not torch.isfinite(plan).all():
        raise ValueError(f"transport_plan: the Sinkhorn iterations diverged at epsilon={epsilon:g}; increase epsilon")
    row_error = float(((plan.sum(1) - a).abs() / a).max())
    column_error = float(((plan.sum(0) - b).abs() / b).max())
    balanced = unbalanced is None or not math.isfinite(unbalanced)
    if row_error > 1e-3 or (balanced and column_error > 1e-2):
        raise ValueError(f"transport_plan: the plan misses its masses by up to {max(row_error, column_error):.2g} "
                         f"(relative) at "
                         f"epsilon={epsilon:g}; increase epsilon or max_iter")
    return TransportPlan(plan, float(epsilon), None if unbalanced is None else float(unbalanced), row_error,
                         column_error)
