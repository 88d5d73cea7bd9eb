r"""The Gaussian start of an amortized posterior: its head alone, a conditional Gaussian linear in the summaries.

An estimator whose INN starts with a :class:`~innverse.blocks.ContextElementwise` affine head
with a linear + MLP conditioner (``FlowOptions(head="affine", head_linear=True)``) contains a
model that is a conditional Gaussian,

.. math::
    v \mid h \sim \mathcal N\big(\mu(h), \mathrm{diag}\,\sigma(h)^2\big),\qquad
    \mu, \log\sigma \text{ linear in } g = b\tanh(h / b),

as long as the head's MLP part and every later block are still zero (the identity). Fitting
that model first — from the ridge least-squares fit of the parameters on the data, then by
gradient steps on its linear weights alone — and training the whole flow from there guards
near-Gaussian posteriors against the couplings' overfitting at small budgets. This module holds
that model: the head (:func:`gaussian_head`), the flow over it (:func:`gaussian_flow`), the
weights it trains (:func:`gaussian_parameters`) and the least-squares start
(:func:`least_squares_start`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..blocks import AffineTransformer, ContextElementwise
from ..core import Flow
from ..core import Sequence as InvSequence
from ..nets.subnets import LinearSkipMLP
from .estimator import PosteriorEstimator

__all__ = ["RidgeFit", "gaussian_flow", "gaussian_head", "gaussian_parameters", "least_squares_start", "ridge_fit"]

#: relative ridge penalties (lambda / n) searched by leave-one-out error
RIDGE_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def gaussian_head(est: PosteriorEstimator) -> ContextElementwise:
    """The estimator's affine head with a linear conditioner.

    Raises:
        ValueError: the estimator has no such head (``head="none"`` or ``head_linear=False``).
    """
    o = est.flow_options
    if not o.gaussian_head:
        raise ValueError("the Gaussian start needs FlowOptions(head='affine', head_linear=True), got "
                         f"head={o.head!r}, head_linear={o.head_linear}")
    head = est.inn.blocks[0]
    assert isinstance(head, ContextElementwise) and isinstance(head.subnet, LinearSkipMLP)
    assert isinstance(head.transformer, AffineTransformer)
    return head


def gaussian_flow(est: PosteriorEstimator) -> Flow:
    """The flow ``v -> z`` of the head alone (sharing its weights and the estimator's base distribution)."""
    return Flow(InvSequence(gaussian_head(est)), est.inn_flow.base)


def gaussian_parameters(est: PosteriorEstimator) -> list[nn.Parameter]:
    """What the Gaussian stage trains: the head's linear conditioner and the summary network."""
    linear = list(gaussian_head(est).subnet.linear.parameters())
    return linear + ([p for p in est.summary.parameters() if p.requires_grad] if est.summary is not None else [])


@dataclass(frozen=True)
class RidgeFit:
    r"""The least-squares fit :math:`v = A^\top g + c + \varepsilon`: ``coef`` :math:`A` ``(C, D)``, ``intercept`` ``(D,)``,
    residual standard deviations ``sigma`` ``(D,)``, the chosen relative penalty ``ridge`` (lambda / n) and its
    leave-one-out mean squared error."""

    coef: Tensor
    intercept: Tensor
    sigma: Tensor
    ridge: float
    loo_mse: float


def ridge_fit(g: Tensor, v: Tensor) -> RidgeFit:
    """Ridge regression of ``v (n, D)`` on ``g (n, C)`` with the penalty chosen by exact leave-one-out error.

    Computed in float64 on centred data (the intercept is not penalised); the leave-one-out
    residuals :math:`e_i / (1 - H_{ii})` of every penalty on :data:`RIDGE_GRID` and the
    coefficients come from one SVD.
    """
    g, v = g.double(), v.double()
    n = g.shape[0]
    g_mean, v_mean = g.mean(0), v.mean(0)
    gc, vc = g - g_mean, v - v_mean
    u_, sv, vh = torch.linalg.svd(gc, full_matrices=False)
    uy = u_.T @ vc
    best: tuple[float, float, Tensor, Tensor] | None = None
    for rel in RIDGE_GRID:
        shrink = sv.square() / (sv.square() + rel * n)
        resid = vc - u_ @ (shrink[:, None] * uy)
        lev = (u_.square() * shrink).sum(1) + 1.0 / n
        loo = float((resid / (1 - lev).clamp_min(1e-6)[:, None]).square().mean())
        if best is None or loo < best[0]:
            best = (loo, rel, shrink, resid)
    assert best is not None
    loo, rel, shrink, resid = best
    # V diag(s / (s^2 + lambda)) U^T v
    coef = vh.T @ ((shrink / sv.clamp_min(1e-300))[:, None] * uy)
    return RidgeFit(coef, v_mean - g_mean @ coef, resid.square().mean(0).sqrt().clamp_min(1e-6), rel, loo)


@torch.no_grad()
def least_squares_start(est: PosteriorEstimator, v: Tensor, z: Tensor, max_rows: int = 20_000) -> RidgeFit:
    r"""Set the Gaussian head to the ridge least-squares fit of prepared parameters ``v`` on the summaries of ``z``.

    With :math:`g` what the head's linear part sees, fit :math:`v = A^\top g + c + \varepsilon`
    (:func:`ridge_fit`) and set the head to :math:`\mathcal N(A^\top g + c, \mathrm{diag}\,\sigma^2)`
    (:math:`\sigma` = residual sd per parameter): log-scale weights 0 and bias :math:`-\log\sigma`,
    shift :math:`-(A^\top g + c) / \sigma`. Gradient steps then only refine it (e.g. a scale that
    varies with the data).

    Args:
        v, z: prepared training pairs (see :meth:`PosteriorEstimator.prepare`); needs no summary network.
        max_rows: at most this many evenly spaced rows are used (it is only a starting point).

    Raises:
        ValueError: with a summary network, without a Gaussian head, or once the head's MLP part was trained.
    """
    head = gaussian_head(est)
    if est.summary is not None:
        raise ValueError("least_squares_start: needs no summary network (it regresses on the data themselves)")
    if v.shape[0] > max_rows:
        rows = torch.linspace(0, v.shape[0] - 1, max_rows).round().long()
        v, z = v[rows], z[rows]
    subnet, transformer = head.subnet, head.transformer
    fit = ridge_fit(subnet.linear_input(est.embedding.summarize(z).double()), v)
    d = v.shape[1]
    log_scale = -torch.log(fit.sigma)
    if transformer.clamp is not None:
        log_scale = log_scale.clamp(-0.99 * transformer.clamp, 0.99 * transformer.clamp)
    scale = torch.exp(log_scale)  # u = (v - A g - c) e^s
    weight = torch.cat([torch.zeros(d, fit.coef.shape[0], dtype=torch.float64), -(fit.coef.T * scale[:, None])])
    subnet.set_linear(weight, torch.cat([transformer.raw_log_scale(log_scale), -fit.intercept * scale]))
    return fit
