r"""Invertible residual blocks (i-ResNet / Residual Flow): :math:`y = x + g(x; c)` with Lip(g) < 1."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence as SequenceABC
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context
from ..nets.lipschitz import LipschitzConvNet, LipschitzMLP
from .fixed_point import FixedPointResult, FixedPointSolver
from .logdet import AbstractLogDetEstimator, AutoLogDet

__all__ = ["ResidualBlock", "log_det_estimator", "lipschitz_bounds"]


class ResidualBlock(AbstractInvertible):
    r"""Invertible residual block :math:`y = x + g(x; c)` with a spectrally normalised :math:`g`.

    .. math::
        y = x + g(x; c),\qquad \mathrm{Lip}_x(g) \le \textstyle\prod_i \|W_i\| \le c^L < 1,\qquad
        \log|\det J| = \log\det(I + J_g(x)) = \sum_{k\ge1} \tfrac{(-1)^{k+1}}{k}\mathrm{tr}(J_g^k).

    * ``g`` is a :class:`~innverse.nets.lipschitz.LipschitzMLP` for vectors ``(D,)`` or a
      :class:`~innverse.nets.lipschitz.LipschitzConvNet` for images ``(C, H, W)``, each linear /
      conv layer normalised to operator norm ``coeff``, LipSwish between. A condition is
      concatenated to the input of ``g`` (a vector condition is broadcast over pixels; an image
      condition ``(C', H, W)`` is concatenated along channels); Lipschitz continuity in ``x``
      is unaffected.
    * **Inverse**: the fixed point :math:`x = y - g(x; c)` by the block's
      :class:`~innverse.blocks.fixed_point.FixedPointSolver` (tolerance, iteration cap,
      optional Anderson or Newton acceleration; raises or warns on non-convergence). The report
      of the last inversion is ``block.last_inverse`` (iterations, residual, error bound). The
      inverse is differentiable by implicit differentiation (first order).
    * **Log-det**: computed by ``block.estimator``, an
      :class:`~innverse.blocks.logdet.AbstractLogDetEstimator`. The default
      :class:`~innverse.blocks.logdet.AutoLogDet` is exact (brute-force Jacobian) in eval mode
      for events of at most 64 elements and the unbiased Russian-roulette estimator with the
      memory-saving Neumann gradient otherwise (always in training). Select another per call
      with :func:`log_det_estimator` (a context manager over any module) or set
      ``block.estimator``. The inverse's log-det is minus the estimate at the solution.

    Args:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        context_shape: ``(C,)`` (any event) or ``(C', H, W)`` (images), or None.
        hidden: hidden widths / channels of ``g`` (default ``(128, 128)`` / ``(64, 64)``).
        coeff: per-layer spectral bound ``c < 1``.
        kernel_size: first/last kernel of the conv net.
        spectral: ``"auto"``, ``"exact"`` or ``"power"`` normalisation (see
            :mod:`innverse.nets.spectral`).
        n_power_iterations: power steps per weight update in training.
        net: a custom ``g`` (input: ``x`` and condition concatenated along dim 1; output shaped
            like ``x``); it must provide ``lipschitz_bound() -> float`` and its Lipschitz
            constant below 1 is the caller's responsibility.
        estimator: log-det estimator (default :class:`~innverse.blocks.logdet.AutoLogDet`).
        solver: inverse settings (default :class:`~innverse.blocks.fixed_point.FixedPointSolver`).

    References:
        Behrmann, Grathwohl, Chen, Duvenaud, Jacobsen. "Invertible Residual Networks". ICML 2019;
        Chen, Behrmann, Duvenaud, Jacobsen. "Residual Flows for Invertible Generative Modeling".
        NeurIPS 2019.
    """

    exact_inverse = False

    def __init__(self, event_shape: int | SequenceABC[int], context_shape: int | SequenceABC[int] | None = None,
                 hidden: SequenceABC[int] | None = None, coeff: float = 0.97, kernel_size: int = 3,
                 spectral: str = "auto", n_power_iterations: int = 1, net: nn.Module | None = None,
                 estimator: AbstractLogDetEstimator | None = None, solver: FixedPointSolver | None = None) -> None:
        super().__init__(event_shape, context_shape)
        name = type(self).__name__
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"{name}: expected a vector (D,) or image (C, H, W) event shape, got {self.event_shape}")
        if not 0.0 < coeff < 1.0:
            raise ValueError(f"{name}: coeff must be in (0, 1) for the block to be invertible, got {coeff}")
        if estimator is not None and not isinstance(estimator, AbstractLogDetEstimator):
            raise TypeError(f"{name}: estimator must be an AbstractLogDetEstimator, got {type(estimator).__name__}")
        if solver is not None and not isinstance(solver, FixedPointSolver):
            raise TypeError(f"{name}: solver must be a FixedPointSolver, got {type(solver).__name__}")
        self._broadcast = False
        ctx = 0
        if self.context_shape is not None:
            ctx = self.context_shape[0]
            if len(self.context_shape) == 1:
                self._broadcast = len(self.event_shape) == 3
            elif len(self.event_shape) == 1 or self.context_shape[1:] != self.event_shape[1:]:
                raise ValueError(f"{name}: the context must be a vector (C,) or, for images, (C', H, W) "
                                 f"with H, W = {self.event_shape[1:]}; got {self.context_shape}")
        self.coeff = float(coeff)
        if net is None:
            d = self.event_shape[0]
            if len(self.event_shape) == 1:
                net = LipschitzMLP(d + ctx, d, (128, 128) if hidden is None else hidden, coeff,
                                   spectral, n_power_iterations)
            else:
                net = LipschitzConvNet(d + ctx, d, self.event_shape[1:], (64, 64) if hidden is None else hidden,
                                       kernel_size, coeff, spectral, n_power_iterations)
        elif not callable(getattr(net, "lipschitz_bound", None)):
            raise TypeError(f"{name}: a custom net must provide lipschitz_bound() -> float; "
                            f"{type(net).__name__} does not")
        self.net = net
        self.estimator: AbstractLogDetEstimator = AutoLogDet() if estimator is None else estimator
        self.solver = FixedPointSolver() if solver is None else solver
        #: report of the most recent inversion (None before the first one)
        self.last_inverse: FixedPointResult | None = None

    # -- the residual branch ------------------------------------------------------------------------
    def g(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The residual branch :math:`g(x; c)`."""
        h = x
        if c is not None:
            if self._broadcast:
                c = c[:, :, None, None].expand(-1, -1, *x.shape[2:])
            h = torch.cat([x, c.to(x.dtype)], 1)
        out = self.net(h)
        if out.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: the network must output the input's shape "
                             f"{tuple(x.shape)}, got {tuple(out.shape)}")
        return out

    def lipschitz_bound(self) -> float:
        """Current bound on :math:`\\mathrm{Lip}_x(g)` (exact layer norms, certified for convs)."""
        return float(self.net.lipschitz_bound())

    def _needs_graph(self, x: Tensor, c: Tensor | None) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad or (c is not None and c.requires_grad)
            or any(p.requires_grad for p in self.net.parameters()))

    def _g_and_log_det(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        if torch.is_inference_mode_enabled():
            raise RuntimeError(f"{type(self).__name__}: the log-det needs autograd (vector-Jacobian "
                               "products); use torch.no_grad() instead of torch.inference_mode()")
        create_graph = self._needs_graph(x, c)
        with torch.enable_grad():
            xr = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            gx = self.g(xr, c)
            ld = self.estimator(gx, xr, create_graph=create_graph, training=self.training)
        if not create_graph:
            return gx.detach(), ld.detach()
        return gx, ld

    # -- protocol -----------------------------------------------------------------------------------
    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        if not log_det:
            return x + self.g(x, c), None  # type: ignore[arg-type]
        gx, ld = self._g_and_log_det(x, c)  # type: ignore[arg-type]
        return x + gx, ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        name = type(self).__name__
        x_star, result = self.solver.solve(lambda x: self.g(x, c), y, name, self.lipschitz_bound())  # type: ignore[arg-type]
        self.last_inverse = result
        if self._needs_graph(y, c):  # type: ignore[arg-type]
            # One more contraction step attaches x to (y, c, θ); the hook turns the incoming
            # gradient into the adjoint (I + J)^{-T} grad, making the gradient exact.
            # The hook sits on an internal tensor so that gradients taken w.r.t. the returned x
            # (by the log-det below, or by the caller) are not transformed.
            attached = y - self.g(x_star, c)  # type: ignore[arg-type]
            attached.register_hook(self._implicit_gradient(x_star, c))  # type: ignore[arg-type]
            x = attached.view_as(attached)
        else:
            with torch.no_grad():
                x = y - self.g(x_star, c)  # type: ignore[arg-type]
        if not log_det:
            return x, None
        _, ld = self._g_and_log_det(x, c)  # type: ignore[arg-type]
        return x, -ld

    def _implicit_gradient(self, x_star: Tensor, c: Tensor | None):
        def hook(grad: Tensor) -> Tensor:
            if torch.is_grad_enabled():
                raise RuntimeError(f"{type(self).__name__}: the inverse supports first-order gradients "
                                   "only (backward with create_graph=True is not supported)")
            with torch.enable_grad():
                xr = x_star.detach().requires_grad_(True)
                gx = self.g(xr, None if c is None else c.detach())

                def vjp(a: Tensor) -> Tensor:
                    (out,) = torch.autograd.grad(gx, xr, a, retain_graph=True, allow_unused=True)
                    return torch.zeros_like(a) if out is None else out

                return self.solver.solve_adjoint(vjp, grad, type(self).__name__)

        return hook

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, coeff={self.coeff}, estimator={self.estimator!r}"


@contextmanager
def log_det_estimator(module: nn.Module, estimator: AbstractLogDetEstimator) -> Iterator[None]:
    """Use ``estimator`` in every :class:`ResidualBlock` inside ``module`` for the ``with`` body.

    Example::

        with log_det_estimator(flow, ExactLogDet()):
            nll = -flow.log_prob(x_test).mean()

    Raises ``ValueError`` when ``module`` contains no residual block.
    """
    if not isinstance(estimator, AbstractLogDetEstimator):
        raise TypeError(f"log_det_estimator: expected an AbstractLogDetEstimator, got {type(estimator).__name__}")
    blocks = [m for m in module.modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise ValueError(f"log_det_estimator: {type(module).__name__} contains no ResidualBlock")
    saved = [b.estimator for b in blocks]
    for b in blocks:
        b.estimator = estimator
    try:
        yield
    finally:
        for b, e in zip(blocks, saved):
            b.estimator = e


def lipschitz_bounds(module: nn.Module) -> dict[str, float]:
    """Current Lipschitz bound of every :class:`ResidualBlock` inside ``module``, by module name.

    A block is invertible when its bound is below 1; ``max(bounds.values())`` is the guard to
    check after training.
    """
    return {name: m.lipschitz_bound() for name, m in module.named_modules() if isinstance(m, ResidualBlock)}
