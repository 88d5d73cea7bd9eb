"""A normalizing flow: an invertible module plus a base distribution."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import constraints

from .conditional import broadcast_value
from .distributions import AbstractBase, StandardNormal
from .flow_distribution import FlowDistribution, SampleShape, as_sample_shape
from .module import AbstractInvertible, Context

__all__ = ["Flow", "FlowDistribution"]


def _sample_shape(sample_shape: SampleShape) -> torch.Size:
    """The number or shape of samples, checked (``sample(n, c)``: the count comes first)."""
    if isinstance(sample_shape, Tensor) or hasattr(sample_shape, "__array__"):
        raise TypeError(f"Flow.sample: expected the number of samples first, got a {type(sample_shape).__name__}; "
                        "the order is sample(n, condition)")
    try:
        shape = as_sample_shape(sample_shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Flow.sample: n must be a positive int or a shape, got {sample_shape!r}") from err
    if isinstance(sample_shape, int) and sample_shape < 1:
        raise ValueError(f"Flow.sample: n must be a positive int, got {sample_shape!r}")
    return shape


def _autocast_output(t: Tensor) -> bool:
    """Whether ``t`` has the dtype autocast gives outputs here (a summary network's, under mixed precision)."""
    kind = t.device.type
    return (t.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(kind)
            and torch.get_autocast_dtype(kind) == t.dtype)


def _check_finite(owner: str, what: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).reshape(t.shape[0], -1).any(1).nonzero().flatten()
        raise ValueError(
            f"{owner}: {what} contains NaN or Inf (rows {bad[:10].tolist()}"
            f"{'...' if len(bad) > 10 else ''}); pass validate_args=False to skip this check"
        )


class Flow(nn.Module):
    r"""A (conditional) normalizing flow :math:`p(x \mid c)`.

    The transform maps data to latent space, :math:`z = f(x; h(c))`, so that

    .. math::
        \log p(x \mid c) = \log p_Z(f(x; h(c))) + \log|\det \partial f / \partial x|,

    and samples are :math:`x = f^{-1}(z; h(c))`, :math:`z \sim p_Z`. :math:`h` is an optional
    conditioning network that runs once per batch; its output feeds every conditioned block.

    Follows the library's conditional-density contract (:mod:`innverse.core.conditional`): one
    context ``context_shape`` gives samples ``(n, *event)``, ``k`` contexts ``(k, *context_shape)``
    give ``(n, k, *event)``; ``log_prob(x, c)`` broadcasts ``x (*s, k, *event)`` over the ``k``
    contexts (``x (k, *event)``: row ``i`` under context ``i``, the training case). Sample counts
    may be shapes, as in ``torch.distributions``: ``sample((a, b))`` gives ``(a, b, *event)``.
    Calling the flow fixes its context and returns a ``torch.distributions.Distribution``
    (:class:`FlowDistribution`, zuko's convention): ``flow(c).sample((n,))``,
    ``flow(c).log_prob(x)``, ``pyro.sample("x", flow(c))``, ``flow()`` for an unconditional flow.

    Args:
        transform: the invertible module ``f`` (data -> latent).
        base: base distribution over ``transform.output_shape`` (default standard normal).
        context_net: optional network ``h`` applied to the context before the transform; it may
            return a list of tensors for a :class:`Graph` with several condition inputs.
        context_shape: shape of one raw context sample; required with ``context_net``, else taken
            from ``transform``.
        validate_args: check inputs and contexts for NaN/Inf (one pass over the data); shape
            checks always run.
        chunk_size: large batches are pushed through the transform in chunks of this many rows
            (activations of a chunk stay in cache, which is markedly faster on CPUs for sampling
            and evaluation); ``None`` disables chunking. Results do not depend on it; the default
            was chosen with ``benchmarks/maf_sampling.py``.
    """

    def __init__(self, transform: AbstractInvertible, base: AbstractBase | None = None,
                 context_net: nn.Module | Callable[[Tensor], Tensor] | None = None,
                 context_shape: tuple[int, ...] | None = None, validate_args: bool = True,
                 chunk_size: int | None = 4096) -> None:
        super().__init__()
        if not isinstance(transform, AbstractInvertible):
            raise TypeError(f"Flow: transform must be an invertible module, got {type(transform).__name__}")
        self.transform = transform
        self.base = StandardNormal(transform.output_shape) if base is None else base
        if self.base.event_shape != transform.output_shape:
            raise ValueError(
                f"Flow: base distribution has event shape {self.base.event_shape} but the "
                f"transform outputs {transform.output_shape}"
            )
        self.context_net = context_net
        if context_net is not None and context_shape is None:
            raise ValueError("Flow: context_shape is required when a context_net is given")
        if context_net is None and context_shape is not None and tuple(context_shape) != transform.context_shape:
            raise ValueError(
                f"Flow: context_shape {tuple(context_shape)} differs from the transform's "
                f"{transform.context_shape}"
            )
        self.context_shape = tuple(context_shape) if context_shape is not None else transform.context_shape
        self.validate_args = validate_args
        self.chunk_size = chunk_size

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.transform.event_shape

    @property
    def conditional(self) -> bool:
        return self.transform.conditional

    @property
    def batch_shape(self) -> torch.Size:
        """``()``: a flow without a fixed context is one distribution (``flow(c)`` has the contexts' batch shape)."""
        return torch.Size()

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape: SampleShape) -> FlowDistribution:
        """Independent copies of an unconditional flow with batch shape ``batch_shape`` (a ``FlowDistribution``)."""
        return FlowDistribution(self, None, batch_shape)

    # -- contexts -------------------------------------------------------------------------------
    def _check_raw_context(self, context: Tensor | None, what: str = "context") -> None:
        if not self.conditional:
            if context is not None:
                raise ValueError("Flow: this flow is unconditional, but a context was given")
            return
        if context is None:
            raise ValueError(f"Flow: this flow is conditional; expected a context of shape "
                             f"(batch, *{self.context_shape})")
        if not isinstance(context, Tensor) or not context.is_floating_point():
            raise ValueError(f"Flow: expected a floating-point context tensor, got "
                             f"{getattr(context, 'dtype', type(context).__name__)}")
        if self.context_shape is not None and tuple(context.shape[1:]) != self.context_shape and (
                tuple(context.shape) != self.context_shape):
            raise ValueError(f"Flow: expected a context of shape (batch, *{self.context_shape}) or "
                             f"{self.context_shape}, got {tuple(context.shape)}")
        self._check_dtype(what, context)
        if self.validate_args:
            _check_finite("Flow", what, context)

    def _check_dtype(self, what: str, t: Tensor) -> None:
        """A tensor of another floating dtype than the flow's would fail deep inside torch: say so here."""
        want = self.base.dtype
        if t.dtype != want and self.context_net is None and not _autocast_output(t):
            raise ValueError(f"Flow: {what} has dtype {t.dtype} but the flow computes in {want}; convert the data "
                             f"(.to({want})) or the flow (.to({t.dtype}))")

    def embed(self, context: Tensor | None) -> Context:
        """Apply the conditioning network (if any) to a batch of raw contexts."""
        if context is None or self.context_net is None:
            return context
        return self.context_net(context)

    def _chunks(self, rows: int) -> list[slice]:
        size = self.chunk_size
        if size is None or rows <= size:
            return [slice(None)]
        return [slice(i, min(i + size, rows)) for i in range(0, rows, size)]

    @staticmethod
    def _rows(c: Context, sl: slice | Tensor) -> Context:
        if c is None or isinstance(c, Tensor):
            return None if c is None else c[sl]
        return [t[sl] for t in c]

    def _run(self, direction: str, v: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        """Run the transform (``forward`` or ``inverse``) over ``v`` in row chunks."""
        fn = getattr(self.transform, direction)
        pieces = self._chunks(v.shape[0])
        if len(pieces) == 1:
            return fn(v, c, log_det=log_det)
        outs = [fn(v[sl], self._rows(c, sl), log_det=log_det) for sl in pieces]
        y = torch.cat([o[0] for o in outs])
        return y, (torch.cat([o[1] for o in outs]) if log_det else None)

    # -- densities ------------------------------------------------------------------------------
    def _contexts(self, context: Tensor | None) -> tuple[Tensor | None, tuple[int, ...]]:
        """Contexts as a batch ``(k, *context_shape)`` and their batch shape (``()`` for a single context)."""
        self._check_raw_context(context)
        if context is None or self.context_shape is None or context.dim() > len(self.context_shape):
            return context, (() if context is None else (context.shape[0],))
        return context.unsqueeze(0), ()

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of ``x (*s, *batch, *event)`` given contexts of batch shape ``batch`` -> ``(*s, *batch)``."""
        ctx, batch = self._contexts(context)
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ValueError(f"Flow.log_prob: expected x as a floating-point tensor, got "
                             f"{getattr(x, 'dtype', type(x).__name__)}")
        self._check_dtype("x", x)
        if ctx is not None and x.dim() == len(self.event_shape) + 1 and x.shape[0] != ctx.shape[0] and batch:
            raise ValueError(f"Flow.log_prob: x has batch size {x.shape[0]} but the context has {ctx.shape[0]}")
        rows, index, shape = broadcast_value("Flow.log_prob", x, self.event_shape, batch, "x", "context")
        if self.validate_args:
            _check_finite("Flow.log_prob", "x", rows)
        if rows.shape[0] == 0:          # an empty batch has an empty answer (its blocks never see it)
            return rows.new_zeros(shape)
        emb = self.embed(ctx)
        if ctx is not None and rows.shape[0] != ctx.shape[0]:
            emb = self._rows(emb, index)
        z, log_det = self._run("forward", rows, emb, True)
        return (self.base.log_prob(z) + log_det).reshape(shape)

    def forward(self, context: Tensor | None = None) -> FlowDistribution:
        """The distribution given contexts ``(*batch, *context_shape)`` (none for an unconditional flow)."""
        return FlowDistribution(self, context)

    # -- sampling -------------------------------------------------------------------------------
    def _expanded(self, n: int, context: Tensor | None) -> tuple[int, Context]:
        """Embed ``k`` contexts once, then repeat them ``n`` times (rows ordered ``(n, k)``)."""
        if context is None:
            return n, None
        k = context.shape[0]
        emb = self.embed(context)

        def rep(t: Tensor) -> Tensor:
            return t.repeat(n, *([1] * (t.dim() - 1)))

        return n * k, (rep(emb) if isinstance(emb, Tensor) else [rep(t) for t in emb])

    @staticmethod
    def _shaped(shape: torch.Size, batch: tuple[int, ...], *tensors: Tensor) -> list[Tensor]:
        """Rows ``(n * k, ...)`` as ``(*shape, *batch, ...)``."""
        return [t.reshape((*shape, *batch, *t.shape[1:])) for t in tensors]

    def _draw(self, sample_shape: SampleShape, context: Tensor | None, generator: torch.Generator | None,
              log_det: bool) -> tuple[torch.Size, tuple[int, ...], Tensor, Tensor | None]:
        shape = _sample_shape(sample_shape)
        ctx, batch = self._contexts(context)
        m, emb = self._expanded(math.prod(shape), ctx)
        z = self.base.rsample(m, generator)
        x, ld = self._run("inverse", z, emb, log_det)
        return shape, batch, x, (self.base.log_prob(z) - ld if log_det else None)

    def rsample_and_log_prob(self, sample_shape: SampleShape, context: Tensor | None = None,
                             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Reparametrised samples and their log-densities: ``(*sample_shape, *batch, *event)`` and ``(*sample_shape, *batch)``.

        ``batch`` is ``()`` without a context or for a single one, ``(k,)`` for ``k`` contexts.
        """
        shape, batch, x, lp = self._draw(sample_shape, context, generator, True)
        x, lp = self._shaped(shape, batch, x, lp)  # type: ignore[arg-type]
        return x, lp

    def rsample(self, sample_shape: SampleShape, context: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Reparametrised samples: ``(n, *event)``, or ``(n, k, *event)`` for ``k`` contexts (``n`` may be a shape)."""
        shape, batch, x, _ = self._draw(sample_shape, context, generator, False)
        return self._shaped(shape, batch, x)[0]

    @torch.no_grad()
    def sample(self, sample_shape: SampleShape, context: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Samples without gradient; shapes as :meth:`rsample`."""
        return self.rsample(sample_shape, context, generator)

    @torch.no_grad()
    def sample_and_log_prob(self, sample_shape: SampleShape, context: Tensor | None = None,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.rsample_and_log_prob(sample_shape, context, generator)
