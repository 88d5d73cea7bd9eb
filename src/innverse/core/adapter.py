"""Adapter from innverse modules to :class:`torch.distributions.Transform` (and so to Pyro)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from .module import AbstractInvertible, Context

__all__ = ["TorchTransform"]


def _batch_of(t: Tensor, shape: tuple[int, ...], owner: str, name: str) -> torch.Size:
    """The leading (batch) dimensions of ``t (*batch, *shape)``."""
    n = len(shape)
    if t.dim() < n or tuple(t.shape[t.dim() - n:]) != tuple(shape):
        raise ValueError(f"{owner}: expected the {name} of shape (*batch, {', '.join(map(str, shape))}), "
                         f"got {tuple(t.shape)}")
    return t.shape[:t.dim() - n]


class TorchTransform(Transform, nn.Module):
    r"""An invertible module (with fixed contexts) as a ``torch.distributions.Transform`` and an ``nn.Module``.

    The transform is :math:`y = f(x; c)` with :math:`\log|\det \partial y / \partial x|` from the
    module, already summed over the event dimensions (``log_abs_det_jacobian`` has the batch
    shape). Being an ``nn.Module`` (like Pyro's ``TransformModule``), its parameters are those of
    the wrapped module, so whatever registers modules sees and trains them: Pyro's
    ``AutoNormalizingFlow``, ``pyro.module``, an optimiser over ``.parameters()``::

        t = TorchTransform(flow.transform).inv              # latent -> data (a module again)
        d = TransformedDistribution(Independent(Normal(0, 1).expand([2]), 1), [t])
        d.log_prob(x)                                       # equals flow.log_prob(x)
        guide = AutoNormalizingFlow(model, lambda dim: TorchTransform(coupling_flow(dim).transform).inv)

    Values may have any batch shape ``(*batch, *event_shape)``. The contexts ``(*cbatch,
    *context_shape)`` broadcast against it like the parameters of a torch distribution, so a
    transform conditioned on ``k`` contexts ``(k, C)`` maps draws ``(particles, k, D)`` (e.g.
    Pyro's vectorised particles) with context ``i`` for column ``i``.

    Args:
        module: the invertible module :math:`f` (for the data -> latent map of a flow, use
            ``.inv`` to get the sampling direction).
        context: contexts passed to every call, or None (a list of tensors for a :class:`Graph`).
        cache_size: 1 caches the last ``(x, y)`` pair (and its log-det), 0 disables the cache.
    """

    bijective = True

    def __init__(self, module: AbstractInvertible, context: Context = None, cache_size: int = 1) -> None:
        if not isinstance(module, AbstractInvertible):
            raise TypeError(f"TorchTransform: expected an invertible module (innverse.core.AbstractInvertible), "
                            f"got {type(module).__name__}; for a Flow pass flow.transform")
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

    @property
    def inv(self) -> TorchTransform:  # type: ignore[override]
        """The inverse map as a ``TorchTransform`` (an ``nn.Module`` sharing the parameters), same contexts."""
        return TorchTransform(self.module.inverted(), self.context, self._cache_size)

    def condition(self, context: Context) -> TorchTransform:
        """The same map with other contexts (the module and its parameters are shared)."""
        return TorchTransform(self.module, context, self._cache_size)

    def with_cache(self, cache_size: int = 1) -> TorchTransform:
        if cache_size == self._cache_size:
            return self
        return TorchTransform(self.module, self.context, cache_size)

    def forward_shape(self, shape: torch.Size | tuple[int, ...]) -> torch.Size:
        n = len(self.module.event_shape)
        return torch.Size((*tuple(shape)[:len(shape) - n], *self.module.output_shape))

    def inverse_shape(self, shape: torch.Size | tuple[int, ...]) -> torch.Size:
        n = len(self.module.output_shape)
        return torch.Size((*tuple(shape)[:len(shape) - n], *self.module.event_shape))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TorchTransform) and other.module is self.module and other.context is self.context

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"TorchTransform({self.module.name}, conditioned={self.context is not None})"

    def _flat(self, t: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Context, torch.Size]:
        """``t (*batch, *shape)`` and the contexts broadcast to a common batch, both flattened to rows."""
        owner = f"TorchTransform({self.module.name})"
        batch = _batch_of(t, shape, owner, "value")
        ctx = self.context
        if ctx is None:
            return t.reshape(-1, *shape), None, batch
        tensors = [ctx] if isinstance(ctx, Tensor) else list(ctx)
        shapes = self.module.context_shapes
        if len(tensors) != len(shapes):
            raise ValueError(f"{owner}: expected {len(shapes)} context tensor(s), got {len(tensors)}")
        cbatches = [_batch_of(c, tuple(s), owner, "context") for c, s in zip(tensors, shapes)]
        try:
            target = torch.broadcast_shapes(batch, *cbatches)
        except RuntimeError as err:
            raise ValueError(f"{owner}: the context's batch shape {tuple(cbatches[0])} does not broadcast with the "
                             f"value's batch shape {tuple(batch)} (value {tuple(t.shape)}, context "
                             f"{tuple(tensors[0].shape)}); give contexts (*batch, *context_shape) whose batch "
                             "dimensions match the value's trailing batch dimensions or are 1") from err
        rows = math.prod(target)
        t = t.expand(*target, *shape).reshape(rows, *shape)
        flat = [c.expand(*target, *s).reshape(rows, *s) for c, s in zip(tensors, shapes)]
        return t, (flat[0] if isinstance(ctx, Tensor) else flat), target

    def _call(self, x: Tensor) -> Tensor:
        xf, c, batch = self._flat(x, self.module.event_shape)
        y, ld = self.module(xf, c)
        y = y.reshape(*batch, *self.module.output_shape)
        self._last = (x, y, ld.reshape(batch))
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        yf, c, batch = self._flat(y, self.module.output_shape)
        x, ld = self.module.inverse(yf, c)
        x = x.reshape(*batch, *self.module.event_shape)
        self._last = (x, y, -ld.reshape(batch))
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """:math:`\\log|\\det \\partial y / \\partial x|` with the batch shape of ``x`` and the contexts."""
        if self._last is not None and self._last[0] is x and self._last[1] is y:
            return self._last[2]
        xf, c, batch = self._flat(x, self.module.event_shape)
        _, ld = self.module(xf, c)
        return ld.reshape(batch)
