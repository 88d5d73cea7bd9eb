"""Pyro: flows as Pyro distributions that broadcast under plates, conditional transforms, ELBO score parts.

Pyro is imported only when one of these functions is called, so ``import innverse`` never needs
it. What to use where:

* a guide over the whole latent space (``AutoNormalizingFlow``): :class:`innverse.core.TorchTransform`
  of the flow's transform, ``.inv`` for the sampling direction; an ``nn.Module``, so the guide
  registers and trains its parameters;
* ``pyro.sample("z", ...)`` in a hand-written guide, inside plates or with
  ``vectorize_particles=True``: :func:`pyro_flow` (``flow(c)`` itself works outside plates only,
  because Pyro broadcasts nothing but its own distributions);
* an amortised guide built from Pyro's ``ConditionalTransformedDistribution``:
  :func:`pyro_conditional_transform`, whose ``.condition(c)`` broadcasts the contexts over the
  particle dimensions.

Example::

    flow = innverse.flows.coupling_flow(2, context_features=2, blocks=4)
    def guide(x):
        pyro.module("flow", flow)
        with pyro.plate("data", len(x)):
            pyro.sample("z", innverse.interop.pyro_flow(flow, x))     # q(z_i | x_i)
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from ..core import Flow, FlowDistribution, TorchTransform
from ..core.module import AbstractInvertible

__all__ = ["pyro_conditional_transform", "pyro_flow", "score_parts"]


def _require_pyro(owner: str) -> Any:
    try:
        import pyro.distributions
    except ImportError as err:
        raise ImportError(f"{owner} needs Pyro (pip install pyro-ppl)") from err
    return pyro.distributions


def score_parts(dist: Distribution, value: Tensor, *args: Any, **kwargs: Any) -> Any:
    """The ELBO ingredients Pyro's inference reads from a site's distribution (its ``ScoreParts``).

    As Pyro's own distributions: a reparametrised distribution contributes its log-density as the
    entropy term and no score function; a non-reparametrised one contributes a score function.

    Raises:
        ImportError: Pyro is not installed (only Pyro calls this).
    """
    from pyro.distributions.score_parts import ScoreParts

    log_prob = dist.log_prob(value, *args, **kwargs)
    if dist.has_rsample:
        return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
    return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)


@functools.cache
def _pyro_classes() -> tuple[type, type]:
    """The two classes that subclass Pyro's bases, defined once, when Pyro is first needed."""
    pdist = _require_pyro("innverse.interop.pyro")
    from pyro.distributions.conditional import ConditionalTransformModule

    class PyroFlowDistribution(pdist.TorchDistribution):  # type: ignore[name-defined, misc]
        """A :class:`~innverse.core.FlowDistribution` as a Pyro ``TorchDistribution``.

        Same batch shape, samples and densities; Pyro's plates and vectorised particles
        broadcast it by :meth:`expand`, which broadcasts the contexts.
        """

        has_rsample = True
        arg_constraints: dict[str, constraints.Constraint] = {}  # noqa: RUF012

        def __init__(self, flow_distribution: FlowDistribution) -> None:
            self.flow_distribution = flow_distribution
            super().__init__(flow_distribution.batch_shape, flow_distribution.event_shape, validate_args=False)

        @property
        def support(self) -> constraints.Constraint:  # type: ignore[override]
            return self.flow_distribution.support

        def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
            return self.flow_distribution.rsample(sample_shape)

        def log_prob(self, value: Tensor) -> Tensor:
            return self.flow_distribution.log_prob(value)

        def expand(self, batch_shape: Any, _instance: Any = None) -> PyroFlowDistribution:
            return PyroFlowDistribution(self.flow_distribution.expand(batch_shape))

        def __repr__(self) -> str:
            return f"PyroFlowDistribution({self.flow_distribution!r})"

    class ConditionalTorchTransform(ConditionalTransformModule):  # type: ignore[misc]
        """An invertible module as Pyro's ``ConditionalTransformModule``: ``.condition(c)`` -> a transform.

        ``.condition(c)`` applies the context network (if any) once to ``c (*batch, *context_shape)``
        and returns a :class:`~innverse.core.TorchTransform` whose contexts broadcast against the
        values' batch dimensions (particles in front included). ``.inv`` (Pyro's) conditions the
        inverse map.
        """

        def __init__(self, module: AbstractInvertible, context_net: nn.Module | None = None,
                     context_shape: tuple[int, ...] | None = None) -> None:
            super().__init__()
            self.module, self.context_net, self.context_shape = module, context_net, context_shape

        def condition(self, context: Tensor) -> TorchTransform:
            if not isinstance(context, Tensor):
                raise TypeError(f"ConditionalTorchTransform.condition: expected the context as a torch.Tensor, got "
                                f"{type(context).__name__}")
            if self.context_net is None:
                return TorchTransform(self.module, context)
            raw = tuple(self.context_shape or ())
            n = context.dim() - len(raw)
            if n < 0 or tuple(context.shape[n:]) != raw:
                raise ValueError(f"ConditionalTorchTransform.condition: expected the context of shape (*batch, "
                                 f"{', '.join(map(str, raw))}), got {tuple(context.shape)}")
            batch = context.shape[:n]
            embedded = self.context_net(context.reshape(-1, *raw))  # once per condition, not per particle
            if isinstance(embedded, Tensor):
                return TorchTransform(self.module, embedded.reshape(*batch, *embedded.shape[1:]))
            return TorchTransform(self.module, [e.reshape(*batch, *e.shape[1:]) for e in embedded])

    return PyroFlowDistribution, ConditionalTorchTransform


def pyro_flow(flow: Flow | FlowDistribution, context: Tensor | None = None) -> Distribution:
    """``flow(context)`` as a Pyro distribution, for ``pyro.sample`` inside plates and vectorised particles.

    Args:
        flow: a :class:`~innverse.core.Flow` (with ``context``) or a ``FlowDistribution`` (``flow(c)``).
        context: contexts ``(*batch, *context_shape)`` (batch shape of the distribution), or None.

    Returns:
        A Pyro ``TorchDistribution`` (class ``PyroFlowDistribution``) with the batch shape of the
        contexts: reparametrised samples ``(*sample, *batch, *event)``, log-densities broadcast as in
        ``torch.distributions``, ``expand`` for Pyro's automatic broadcasting.

    Raises:
        ImportError: Pyro is not installed.
        TypeError: ``flow`` is neither a Flow nor a FlowDistribution.
    """
    if isinstance(flow, Flow):
        flow = flow(context)
    elif not isinstance(flow, FlowDistribution):
        raise TypeError(f"pyro_flow: expected a Flow or a FlowDistribution, got {type(flow).__name__}")
    elif context is not None:
        raise ValueError("pyro_flow: a FlowDistribution has its context already; give context=None")
    return _pyro_classes()[0](flow)


def pyro_conditional_transform(module: AbstractInvertible | Flow) -> nn.Module:
    """Pyro's ``ConditionalTransformModule`` over an invertible module (or a conditional Flow's transform).

    ``t.condition(c)`` returns a :class:`~innverse.core.TorchTransform` whose contexts broadcast over
    the values' leading (particle, plate) dimensions, so guides built from
    ``pyro.distributions.ConditionalTransformedDistribution(base, [t.inv])`` work under
    ``vectorize_particles=True``. For a Flow, its context network (if any) runs once per
    ``condition`` call. Its parameters are the module's, registered by ``pyro.module``.

    Raises:
        ImportError: Pyro is not installed.
        ValueError: the module takes no context.
    """
    context_net, context_shape = None, None
    if isinstance(module, Flow):
        module, context_net, context_shape = module.transform, module.context_net, module.context_shape
    if not isinstance(module, AbstractInvertible):
        raise TypeError(f"pyro_conditional_transform: expected an invertible module or a Flow, got "
                        f"{type(module).__name__}")
    if not module.conditional:
        raise ValueError(f"pyro_conditional_transform: {module.name} takes no context; use "
                         "innverse.core.TorchTransform(module) for an unconditional transform")
    return _pyro_classes()[1](module, context_net, context_shape)
