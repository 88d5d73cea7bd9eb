"""A flow with its context fixed, as a ``torch.distributions.Distribution`` (zuko's ``flow(c)`` convention)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["FlowDistribution"]

SampleShape = int | tuple[int, ...] | list[int] | torch.Size


def as_sample_shape(sample_shape: SampleShape) -> torch.Size:
    """``n`` or a shape as a ``torch.Size`` (``()`` is one draw without a sample dimension)."""
    if isinstance(sample_shape, bool) or isinstance(sample_shape, Tensor):
        raise TypeError(f"expected a sample shape (an int or a tuple of ints), got {type(sample_shape).__name__}")
    if isinstance(sample_shape, int):
        sample_shape = (sample_shape,)
    shape = torch.Size(sample_shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"the sample shape must not be negative, got {tuple(shape)}")
    return shape


class FlowDistribution(Distribution):
    """``flow(context)``: the flow's density given fixed contexts, usable wherever a torch distribution is.

    The context's leading dimensions are the batch shape: ``sample(sample_shape)`` returns
    ``(*sample_shape, *batch_shape, *event_shape)`` and ``log_prob(value)`` broadcasts ``value
    (*s, *batch_shape, *event_shape)`` to ``(*s, *batch_shape)``, as ``torch.distributions`` do. It is
    reparametrised (``rsample``), so it serves as a variational family (e.g. a Pyro guide), and
    calling it draws a sample, as Pyro's primitives expect of a distribution; Pyro broadcasts only
    its own distributions over plates and vectorised particles, so inside plates use
    :func:`innverse.interop.pyro_flow` (the same distribution as a Pyro ``TorchDistribution``). ``mean``, ``variance``
    and ``entropy`` have no closed form for a flow: estimate them from samples.

    Args:
        flow: the :class:`~innverse.core.Flow`.
        context: ``None`` (unconditional flow) or contexts ``(*batch, *context_shape)``.
        batch_shape: for an unconditional flow, a batch of independent copies (see :meth:`expand`).
    """

    has_rsample = True
    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, flow: Flow, context: Tensor | None = None, batch_shape: SampleShape = ()) -> None:
        self.flow, self.context = flow, context
        if context is not None and not isinstance(context, Tensor):
            raise TypeError(f"FlowDistribution: expected the context as a torch.Tensor, got {type(context).__name__}")
        if context is None:
            if flow.conditional:
                raise ValueError("FlowDistribution: this flow is conditional; give a context, flow(context)")
            batch = as_sample_shape(batch_shape)
        else:
            cshape = flow.context_shape or ()
            if context.dim() < len(cshape) or tuple(context.shape[context.dim() - len(cshape):]) != tuple(cshape):
                raise ValueError(f"FlowDistribution: expected contexts of shape (*batch, {', '.join(map(str, cshape))}),"
                                 f" got {tuple(context.shape)}")
            batch = context.shape[:context.dim() - len(cshape)]
        super().__init__(batch, torch.Size(flow.event_shape), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, len(self.event_shape))

    def _flat_context(self) -> Tensor | None:
        if self.context is None:
            return None
        return self.context.reshape(math.prod(self.batch_shape), *self.flow.context_shape)  # type: ignore[misc]

    def rsample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> Tensor:
        """Reparametrised draws ``(*sample_shape, *batch_shape, *event_shape)``."""
        shape = as_sample_shape(sample_shape)
        n, k = math.prod(shape), math.prod(self.batch_shape)
        if n * k == 0:
            return torch.zeros(*shape, *self.batch_shape, *self.event_shape, dtype=self.flow.base.dtype,
                               device=self.flow.base.device)
        ctx = self._flat_context()
        x = self.flow.rsample(n * (k if ctx is None else 1), ctx, generator)
        return x.reshape((*shape, *self.batch_shape, *self.event_shape))

    def sample(self, sample_shape: SampleShape = (), generator: torch.Generator | None = None) -> Tensor:
        """Draws without gradient, shaped as :meth:`rsample`."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def __call__(self, sample_shape: SampleShape = ()) -> Tensor:
        return self.rsample(sample_shape)

    @property
    def event_dim(self) -> int:
        return len(self.event_shape)

    def score_parts(self, value: Tensor, *args: Any, **kwargs: Any) -> Any:
        """For Pyro's inference (``pyro.sample("z", flow(c))``): see :func:`innverse.interop.score_parts`."""
        from ..interop.pyro import score_parts

        return score_parts(self, value, *args, **kwargs)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of ``value (*s, *batch_shape, *event_shape)``, shape ``(*s, *batch_shape)``."""
        if not isinstance(value, Tensor):
            raise TypeError(f"FlowDistribution.log_prob: expected the value as a torch.Tensor, got {type(value).__name__}")
        tail = len(self.batch_shape) + len(self.event_shape)
        lead = value.shape[:value.dim() - tail] if value.dim() >= tail else None
        if lead is None or tuple(value.shape[value.dim() - tail:]) != (*self.batch_shape, *self.event_shape):
            # broadcast what can be (e.g. a single value against every batch member), as torch distributions do
            try:
                value = value.expand(*value.shape[:max(value.dim() - tail, 0)], *self.batch_shape, *self.event_shape)
            except RuntimeError as err:
                raise ValueError(f"FlowDistribution.log_prob: a value of shape {tuple(value.shape)} does not broadcast "
                                 f"with batch_shape {tuple(self.batch_shape)} and event_shape "
                                 f"{tuple(self.event_shape)}; expected (*sample, "
                                 f"{', '.join(map(str, (*self.batch_shape, *self.event_shape)))})") from err
            lead = value.shape[:value.dim() - tail]
        k = math.prod(self.batch_shape)
        flat = value.reshape(*lead, k, *self.event_shape)
        ctx = self._flat_context()
        if ctx is None:
            lp = self.flow.log_prob(flat.reshape(-1, *self.event_shape))
        else:
            lp = self.flow.log_prob(flat, ctx)
        return lp.reshape((*lead, *self.batch_shape))

    def expand(self, batch_shape: SampleShape, _instance: Any = None) -> FlowDistribution:
        """The same distribution with a larger batch shape (contexts broadcast; independent copies without one)."""
        batch = as_sample_shape(batch_shape)
        if self.context is None:
            return FlowDistribution(self.flow, None, batch)
        cshape = tuple(self.flow.context_shape or ())
        try:
            context = self.context.expand(*batch, *cshape)
        except RuntimeError as err:
            raise ValueError(f"FlowDistribution.expand: cannot expand batch_shape {tuple(self.batch_shape)} to "
                             f"{tuple(batch)} (sizes other than 1 must match the trailing dimensions)") from err
        return FlowDistribution(self.flow, context)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("FlowDistribution: a flow's mean has no closed form; estimate it from samples, "
                                  "e.g. d.sample((10_000,)).mean(0)")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError("FlowDistribution: a flow's variance has no closed form; estimate it from samples")

    def entropy(self) -> Tensor:
        raise NotImplementedError("FlowDistribution: a flow's entropy has no closed form; estimate -log_prob of samples")

    def __repr__(self) -> str:
        return (f"FlowDistribution(batch_shape={tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)}, "
                f"flow={type(self.flow.transform).__name__})")
