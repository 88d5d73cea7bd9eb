"""Adapter from innverse modules to :class:`torch.distributions.Transform`."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Transform, constraints

from .module import AbstractInvertible

__all__ = ["TorchTransform"]


class TorchTransform(Transform):
    """Wraps an invertible module (with a fixed condition) as a ``torch.distributions.Transform``.

    So innverse blocks plug into ``TransformedDistribution`` and Pyro::

        t = TorchTransform(flow.transform).inv             # latent -> data
        d = TransformedDistribution(Independent(Normal(0, 1).expand([2]), 1), [t])
        d.log_prob(x)  # equals flow.log_prob(x)

    ``log_abs_det_jacobian(x, y)`` has shape ``(batch,)``: the module's log-det, already summed
    over the event dimensions (``event_dim = len(event_shape)``). The last forward result is
    cached so ``log_abs_det_jacobian`` after a call costs nothing.

    Args:
        module: the invertible module.
        context: condition passed to every call (batch-broadcast is the caller's job), or None.
    """

    bijective = True

    def __init__(self, module: AbstractInvertible, context: Tensor | None = None, cache_size: int = 1) -> None:
        super().__init__(cache_size=cache_size)
        self.module = module
        self.context = context
        self._last: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, len(self.module.event_shape))

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, len(self.module.output_shape))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TorchTransform) and other.module is self.module and other.context is self.context

    def __hash__(self) -> int:
        return id(self)

    def _flat(self, t: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, torch.Size]:
        batch = t.shape[: t.dim() - len(shape)]
        return t.reshape(-1, *shape), batch

    def _call(self, x: Tensor) -> Tensor:
        xf, batch = self._flat(x, self.module.event_shape)
        y, ld = self.module(xf, self.context)
        y = y.reshape(*batch, *self.module.output_shape)
        self._last = (x, y, ld.reshape(batch))
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        yf, batch = self._flat(y, self.module.output_shape)
        x, ld = self.module.inverse(yf, self.context)
        x = x.reshape(*batch, *self.module.event_shape)
        self._last = (x, y, -ld.reshape(batch))
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        if self._last is not None and self._last[0] is x and self._last[1] is y:
            return self._last[2]
        xf, batch = self._flat(x, self.module.event_shape)
        _, ld = self.module(xf, self.context)
        return ld.reshape(batch)
