r"""Batched adaptive ODE solver: Dormand–Prince 5(4) with a step size per trajectory.

Solves :math:`\dot y = f(t, y; p)` for a batch of initial values and parameters at once, each
trajectory with its own step size, returning the solution at given output times. Per step
(Butcher tableau of Dormand & Prince 1980, first-same-as-last):

.. math::
    k_i = f\Big(t + c_i h,\; y + h\sum_{j<i} a_{ij} k_j\Big), \quad
    y_{n+1} = y_n + h\sum_i b_i k_i, \quad
    e = h\sum_i (b_i - \hat b_i) k_i,

accepted when :math:`\|e / (\mathrm{atol} + \mathrm{rtol}\max(|y_n|, |y_{n+1}|))\|_{\mathrm{RMS}}
\le 1`, with the new step :math:`h \cdot \min(5, \max(0.2, 0.9\,\mathrm{err}^{-1/5}))`. Steps are
shortened to land exactly on output times (the unshortened size is kept for the next step), so
no interpolation error enters the outputs. Trajectories that finish drop out of the batch;
a trajectory that needs more than ``max_steps`` steps or turns non-finite is returned as NaN
(a failed simulation), never silently truncated.

References:
    Dormand, Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 6 (1980);
    Hairer, Nørsett, Wanner, "Solving Ordinary Differential Equations I", 2nd ed., II.4-II.5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["solve_ode"]

_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B_HAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b - bh for b, bh in zip(_B, _B_HAT))

Rhs = Callable[[Tensor, Tensor, Tensor], Tensor]


def _tableau(dtype: torch.dtype) -> tuple[list[Tensor], Tensor, Tensor]:
    rows = [torch.tensor(a, dtype=dtype)[None] for a in _A]
    return rows, torch.tensor(_B, dtype=dtype)[None], torch.tensor(_E, dtype=dtype)[None]


def _step(f: Rhs, t: Tensor, y: Tensor, h: Tensor, k1: Tensor, p: Tensor,
          tableau: tuple[list[Tensor], Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    # stages stacked in one (7, B*m) matrix so every linear combination is one matmul
    rows, b, e = tableau
    shape = y.shape
    ks = y.new_empty(7, y.numel())
    ks[0] = k1.reshape(-1)
    hh = h[:, None]
    for i in range(1, 7):
        yi = y + hh * (rows[i] @ ks[:i]).reshape(shape)
        ks[i] = f(t + _C[i] * h, yi, p).reshape(-1)
    y_new = y + hh * (b @ ks).reshape(shape)
    err = hh * (e @ ks).reshape(shape)
    return y_new, err, ks[6].reshape(shape)


def solve_ode(f: Rhs, y0: Tensor, params: Tensor, t_eval: Tensor, *, t0: float = 0.0, rtol: float = 1e-7,
              atol: float = 1e-10, first_step: float = 1e-2, max_steps: int = 20_000) -> Tensor:
    """Solve a batch of ODEs in float64 and return the states at ``t_eval``.

    Args:
        f: right-hand side ``f(t (B,), y (B, m), params (B, P)) -> (B, m)``, vectorised.
        y0: initial states ``(B, m)``.
        params: parameters ``(B, P)`` passed to ``f`` row by row.
        t_eval: strictly increasing output times ``(T,)``, all ``>= t0``.
        rtol, atol: relative and absolute error tolerances of each step.
        first_step: initial step size.
        max_steps: accepted-plus-rejected step budget per trajectory before it is declared failed.

    Returns:
        ``(B, T, m)`` float64; rows of failed trajectories are NaN.
    """
    times = t_eval.to(torch.float64)
    if times.dim() != 1 or bool((times[1:] <= times[:-1]).any()) or float(times[0]) < t0:
        raise ValueError(f"solve_ode: t_eval must be strictly increasing 1-D times >= t0={t0}, got {t_eval}")
    tableau = _tableau(torch.float64)
    y = y0.to(torch.float64).clone()
    p = params.to(torch.float64)
    batch, m = y.shape
    end = times.numel()
    out = torch.full((batch, end, m), torch.nan, dtype=torch.float64)
    # state of the still-running trajectories, compacted whenever some finish
    ids = torch.arange(batch)
    t = torch.full((batch,), float(t0), dtype=torch.float64)
    h = torch.full((batch,), float(first_step), dtype=torch.float64)
    nxt = torch.zeros(batch, dtype=torch.long)
    steps = torch.zeros(batch, dtype=torch.long)
    if float(times[0]) == t0:
        out[:, 0] = y
        nxt += 1
    k1 = f(t, y, p)
    while ids.numel():
        target = times[nxt.clamp_max(end - 1)]
        clipped = t + h >= target
        hs = torch.where(clipped, target - t, h)
        y_new, err, k_new = _step(f, t, y, hs, k1, p, tableau)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        norm = (err / scale).square().mean(1).sqrt()
        ok = (norm <= 1.0) & torch.isfinite(y_new).all(1)
        factor = torch.clamp(0.9 * norm.clamp_min(1e-10) ** -0.2, 0.2, 5.0).nan_to_num(0.2)
        h = torch.where(ok & clipped, torch.maximum(h, hs * factor), hs * factor)
        t = torch.where(ok, torch.where(clipped, target, t + hs), t)
        y = torch.where(ok[:, None], y_new, y)
        k1 = torch.where(ok[:, None], k_new, k1)
        steps += 1
        landed = ok & clipped
        if bool(landed.any()):
            out[ids[landed], nxt[landed]] = y[landed]
            nxt = nxt + landed.long()
        done = nxt >= end
        failed = ~done & ((steps >= max_steps) | ~torch.isfinite(h) | (h <= 0))
        if bool(failed.any()):
            out[ids[failed]] = torch.nan
        keep = ~(done | failed)
        if not bool(keep.all()):
            ids, t, y, h, k1, p, nxt, steps = (a[keep] for a in (ids, t, y, h, k1, p, nxt, steps))
    return out
