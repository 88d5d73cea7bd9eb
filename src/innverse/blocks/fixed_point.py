r"""Iterative inversion of :math:`y = x + g(x)` with :math:`\mathrm{Lip}(g) < 1`, and its gradient.

The inverse is the unique fixed point of the contraction :math:`T(x) = y - g(x)` (Banach), found by

* ``"fixed_point"``: :math:`x_{k+1} = T(x_k)`; the error shrinks by :math:`\mathrm{Lip}(g)` per step;
* ``"anderson"``: Anderson acceleration (type II, memory ``m``) of the same iteration;
* ``"newton"``: :math:`x \leftarrow x - (I + J_g(x))^{-1}(x + g(x) - y)` with brute-force
  Jacobians (small events only), falling back per sample to a fixed-point step whenever the
  Newton step does not reduce the residual.

The residual :math:`r = x + g(x) - y` is measured for the returned point; the iteration stops
when :math:`\|r_b\|_\infty \le \mathrm{tol}\cdot\max(1, \|y_b\|_\infty)` for every sample ``b``.
With :math:`L = \mathrm{Lip}(g) < 1`, :math:`\|x - x^*\|_2 \le \|r\|_2 / (1 - L)`
(reported as ``error_bound``). If the tolerance is not reached within ``max_iterations`` the
solver raises :class:`FixedPointError` or warns with :class:`FixedPointWarning` — it never
returns an unconverged point silently.

Gradients of the inverse use the implicit function theorem: with
:math:`\bar x = \partial\mathcal L / \partial x`, the adjoint :math:`a = (I + J_g)^{-\top}\bar x`
solves the fixed point :math:`a = \bar x - J_g^\top a` (same contraction), and then
:math:`\partial\mathcal L/\partial y = a`, :math:`\partial\mathcal L/\partial\theta = -a^\top \partial_\theta g`.

References:
    Behrmann et al. "Invertible Residual Networks". ICML 2019;
    Walker, Ni. "Anderson acceleration for fixed-point iterations". SIAM J. Numer. Anal. 2011;
    Bai, Kolter, Koltun. "Deep Equilibrium Models". NeurIPS 2019.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .logdet import jacobian

__all__ = ["FixedPointError", "FixedPointResult", "FixedPointSolver", "FixedPointWarning", "METHODS"]

METHODS = ("fixed_point", "anderson", "newton")
_DEFAULT_TOL = {torch.float64: 1e-11, torch.float32: 1e-5}


class FixedPointWarning(RuntimeWarning):
    """The iterative inverse stopped before reaching its tolerance (``on_failure="warn"``)."""


class FixedPointError(RuntimeError):
    """The iterative inverse did not reach its tolerance; ``.result`` says how far it got."""

    def __init__(self, message: str, result: FixedPointResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class FixedPointResult:
    """Report of one inversion.

    Attributes:
        iterations: number of updates of the iterate.
        residual: :math:`\\max_b \\|x_b + g(x_b) - y_b\\|_\\infty` at the returned point.
        tolerance: the (relative) tolerance that was asked for.
        converged: whether every sample met the tolerance.
        method: the solver's method.
        error_bound: :math:`\\max_b \\|r_b\\|_2 / (1 - L)`, a bound on the 2-norm error of ``x``
            given the Lipschitz bound ``L`` (``inf`` if ``L >= 1``, ``nan`` if ``L`` is unknown).
    """

    iterations: int
    residual: float
    tolerance: float
    converged: bool
    method: str
    error_bound: float = math.nan


@dataclass
class FixedPointSolver:
    """Settings of the iterative inverse of a residual block.

    Args:
        tolerance: relative tolerance on the residual; default ``1e-11`` in float64, ``1e-5``
            in float32 and ``1e-2`` in half precision.
        max_iterations: cap on the number of updates.
        method: ``"fixed_point"``, ``"anderson"`` or ``"newton"`` (events of at most
            ``newton_max_features`` elements).
        on_failure: ``"raise"`` (:class:`FixedPointError`) or ``"warn"`` (:class:`FixedPointWarning`).
        memory: Anderson memory ``m``.
    """

    tolerance: float | None = None
    max_iterations: int = 1000
    method: str = "fixed_point"
    on_failure: str = "raise"
    memory: int = 5
    newton_max_features: int = 1024

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"FixedPointSolver: method must be one of {METHODS}, got {self.method!r}")
        if self.on_failure not in ("raise", "warn"):
            raise ValueError(f"FixedPointSolver: on_failure must be 'raise' or 'warn', got {self.on_failure!r}")
        if self.max_iterations < 1:
            raise ValueError(f"FixedPointSolver: max_iterations must be >= 1, got {self.max_iterations}")
        if self.tolerance is not None and not self.tolerance > 0:
            raise ValueError(f"FixedPointSolver: tolerance must be positive, got {self.tolerance}")
        if self.memory < 1:
            raise ValueError(f"FixedPointSolver: memory must be >= 1, got {self.memory}")

    def tolerance_for(self, dtype: torch.dtype) -> float:
        """The tolerance used for tensors of ``dtype``."""
        return self.tolerance if self.tolerance is not None else _DEFAULT_TOL.get(dtype, 1e-2)

    # -- solving ------------------------------------------------------------------------------------
    def solve(self, g: Callable[[Tensor], Tensor], y: Tensor, owner: str,
              lipschitz: float | None = None) -> tuple[Tensor, FixedPointResult]:
        """Solve ``x + g(x) = y`` (no graph is recorded); ``owner`` names the block in messages."""
        tol = self.tolerance_for(y.dtype)
        scale = y.flatten(1).abs().amax(1).clamp_min(1.0)
        with torch.no_grad():
            if self.method == "newton":
                d = y[0].numel()
                if d > self.newton_max_features:
                    raise ValueError(f"{owner}: method='newton' needs brute-force Jacobians; the event has "
                                     f"{d} > newton_max_features={self.newton_max_features} elements; "
                                     "use method='anderson'")
                x, iterations, r = _newton(g, y, scale, tol, self.max_iterations)
            else:
                def step(x: Tensor) -> Tensor:
                    return y - g(x)
                run = _picard if self.method == "fixed_point" else _anderson
                x, iterations, r = run(step, y, scale, tol, self.max_iterations, self.memory)
        return x, self._report(owner, r, scale, tol, iterations, lipschitz, "inverse")

    def solve_adjoint(self, vjp: Callable[[Tensor], Tensor], grad: Tensor, owner: str) -> Tensor:
        """Solve :math:`a + J^\\top a = \\bar x` for the gradient of the inverse."""
        tol = self.tolerance_for(grad.dtype)
        scale = grad.flatten(1).abs().amax(1).clamp_min(torch.finfo(grad.dtype).tiny)

        def step(a: Tensor) -> Tensor:
            return grad - vjp(a)

        run = _anderson if self.method == "anderson" else _picard
        a, iterations, r = run(step, grad, scale, tol, self.max_iterations, self.memory)
        self._report(owner, r, scale, tol, iterations, None, "gradient of the inverse")
        return a

    def _report(self, owner: str, r: Tensor, scale: Tensor, tol: float, iterations: int,
                lipschitz: float | None, what: str) -> FixedPointResult:
        res = r.flatten(1).abs().amax(1)
        converged = bool((res <= tol * scale).all())
        bound = math.nan
        if lipschitz is not None:
            bound = float(r.flatten(1).norm(dim=1).max()) / (1.0 - lipschitz) if lipschitz < 1 else math.inf
        result = FixedPointResult(iterations, float(res.max()), tol, converged, self.method, bound)
        if not converged:
            msg = (f"{owner}: the fixed-point {what} did not converge in {iterations} iterations "
                   f"({self.method}): residual {result.residual:.3e} > tolerance {tol:.1e} x "
                   f"max(1, |y|); Lipschitz bound {lipschitz if lipschitz is not None else 'unknown'}. "
                   "Increase max_iterations, use method='anderson', or lower the block's coeff")
            if self.on_failure == "raise":
                raise FixedPointError(msg, result)
            warnings.warn(msg, FixedPointWarning, stacklevel=4)
        return result


def _done(r: Tensor, scale: Tensor, tol: float) -> bool:
    return bool((r.flatten(1).abs().amax(1) <= tol * scale).all())


def _picard(step: Callable[[Tensor], Tensor], x: Tensor, scale: Tensor, tol: float, max_iter: int,
            memory: int) -> tuple[Tensor, int, Tensor]:
    for it in range(max_iter + 1):
        tx = step(x)
        r = x - tx
        if _done(r, scale, tol) or it == max_iter:
            return x, it, r
        x = tx
    raise AssertionError("unreachable")


def _anderson(step: Callable[[Tensor], Tensor], x0: Tensor, scale: Tensor, tol: float, max_iter: int,
              memory: int) -> tuple[Tensor, int, Tensor]:
    b, shape = x0.shape[0], x0.shape
    xs = x0.new_zeros(b, memory, x0[0].numel())
    fs = torch.zeros_like(xs)
    x = x0.flatten(1)
    fx = step(x0).flatten(1)
    r = x - fx
    if _done(r, scale, tol) or max_iter == 0:
        return x.reshape(shape), 0, r.reshape(shape)
    xs[:, 0], fs[:, 0] = x, fx
    for k in range(1, max_iter + 1):
        n = min(k, memory)
        res = fs[:, :n] - xs[:, :n]                                    # (B, n, D)
        h = res @ res.transpose(1, 2)                                  # (B, n, n)
        reg = 1e-10 * h.diagonal(dim1=1, dim2=2).mean(1).clamp_min(torch.finfo(h.dtype).tiny)
        h = h + reg[:, None, None] * torch.eye(n, dtype=h.dtype, device=h.device)
        alpha = torch.linalg.solve(h, torch.ones(b, n, 1, dtype=h.dtype, device=h.device))[..., 0]
        alpha = alpha / alpha.sum(1, keepdim=True)
        x = (alpha[:, None] @ fs[:, :n])[:, 0]
        fx = step(x.reshape(shape)).flatten(1)
        r = x - fx
        if not torch.isfinite(r).all():
            break
        if _done(r, scale, tol):
            return x.reshape(shape), k, r.reshape(shape)
        xs[:, k % memory], fs[:, k % memory] = x, fx
    return x.reshape(shape), k, r.reshape(shape)


def _newton(g: Callable[[Tensor], Tensor], y: Tensor, scale: Tensor, tol: float,
            max_iter: int) -> tuple[Tensor, int, Tensor]:
    b, d = y.shape[0], y[0].numel()
    eye = torch.eye(d, dtype=y.dtype, device=y.device)
    x, prev_x, prev_r = y, None, None
    for it in range(max_iter + 1):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            gx = g(xr)
            r = (xr + gx - y).detach()
            if prev_r is not None:
                # Safeguard: where Newton did not reduce the residual, take a fixed-point step instead.
                worse = r.flatten(1).norm(dim=1) > prev_r.flatten(1).norm(dim=1)
                if worse.any():
                    mask = worse.reshape(-1, *([1] * (y.dim() - 1)))
                    x = torch.where(mask, prev_x - prev_r, x)
                    xr = x.detach().requires_grad_(True)
                    gx = g(xr)
                    r = (xr + gx - y).detach()
            if _done(r, scale, tol) or it == max_iter:
                return x.detach(), it, r
            jac = jacobian(gx, xr)
        step = torch.linalg.solve(eye + jac, r.reshape(b, d, 1))[..., 0]
        prev_x, prev_r = x.detach(), r
        x = (x - step.reshape(y.shape)).detach()
    raise AssertionError("unreachable")
