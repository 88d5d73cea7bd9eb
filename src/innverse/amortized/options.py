"""Architecture options of the amortized posterior's conditional INN, and the INN they build."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..blocks import (
    AffineTransformer,
    ContextElementwise,
    ContinuousFlow,
    RationalQuadraticSpline,
    VelocityField,
)
from ..blocks.support import INTERVAL_MAPS
from ..core import AbstractInvertible
from ..core import Sequence as InvSequence
from ..flows import COUPLINGS, coupling_flow
from ..nets.sets import ACTIVATIONS
from ..nets.subnets import mlp_constructor

__all__ = ["FlowOptions", "build_inn"]


@dataclass
class FlowOptions:
    """Architecture of the conditional INN (see :func:`innverse.flows.coupling_flow`)."""

    #: ``"spline"``, ``"affine"``, ``"additive"``, ``"gin"`` couplings, masked autoregressive
    #: blocks ``"autoregressive"`` (affine, MAF) / ``"autoregressive_spline"``, or
    #: ``"flow_matching"``: one :class:`~innverse.blocks.ContinuousFlow` trained by flow matching
    #: (FMPE; ``hidden`` are its velocity network's widths, ``steps`` its Runge-Kutta steps)
    coupling: str = "spline"
    blocks: int = 6
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    bins: int = 8
    bound: float = 4.0
    #: spline couplings put a conditional affine map (log-scale clamped at ``clamp``) in front of the spline
    spline_affine: bool = False
    permutation: str = "random"
    actnorm: bool = False
    clamp: float = 2.0
    activation: str = "relu"
    seed: int = 0
    #: conditional elementwise affine map applied first (data side): ``u = v e^{s(h)} + t(h)``
    head: str = "affine"
    head_clamp: float = 7.0
    #: the head's conditioner is linear + MLP (:class:`~innverse.nets.LinearSkipMLP`), so the
    #: head alone can be a conditional Gaussian linear in the summaries (see
    #: :mod:`innverse.amortized.gaussian_start`)
    head_linear: bool = True
    #: soft bound ``b tanh(h / b)`` on the standardised summaries the linear part sees (None: off)
    head_input_bound: float | None = 10.0
    #: Runge-Kutta steps of a ``"flow_matching"`` flow between noise and parameters
    steps: int = 32
    #: map of parameters bounded on both sides by the prior to the real line, ``"linear"`` (affine in
    #: the middle of the box, Gaussian tails at the bounds), ``"probit"`` or ``"logit"``
    #: (:class:`~innverse.blocks.SupportTransform` has the figures; files saved before the option read
    #: as logit, files saved before ``"linear"`` name their map)
    support_interval: str = "linear"
    #: half-width :math:`L` of the ``"linear"`` map's flat part; ``None``: ``fit_posterior`` sets it from the
    #: number of training simulations (:func:`~innverse.blocks.half_width_for`: 2 up to 10^4, 4 from
    #: 10^5), and an estimator built directly uses 2 (:class:`~innverse.blocks.SupportTransform` has the figures)
    support_half_width: float | None = None

    def __post_init__(self) -> None:
        self.hidden = [int(h) for h in self.hidden]
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"FlowOptions: activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.coupling not in (*COUPLINGS, "flow_matching"):
            raise ValueError(f"FlowOptions: coupling must be one of {(*COUPLINGS, 'flow_matching')}, "
                             f"got {self.coupling!r}")
        if self.support_interval not in INTERVAL_MAPS:
            raise ValueError(f"FlowOptions: support_interval must be one of {INTERVAL_MAPS}, "
                             f"got {self.support_interval!r}")
        if self.support_half_width is not None:
            if not (isinstance(self.support_half_width, (int, float)) and not isinstance(self.support_half_width, bool)
                    and math.isfinite(self.support_half_width) and self.support_half_width > 0):
                raise ValueError(f"FlowOptions: support_half_width must be a positive finite number or None, "
                                 f"got {self.support_half_width!r}")
            self.support_half_width = float(self.support_half_width)
        if self.head not in ("affine", "none"):
            raise ValueError(f"FlowOptions: head must be 'affine' or 'none', got {self.head!r}")

    @property
    def gaussian_head(self) -> bool:
        """Whether the INN starts with a head that alone is a conditional Gaussian (linear conditioner)."""
        return self.head == "affine" and self.head_linear and not self.flow_matching

    @property
    def flow_matching(self) -> bool:
        """Whether the INN is a continuous flow trained by flow matching (FMPE) rather than by likelihood."""
        return self.coupling == "flow_matching"


def build_inn(theta_dim: int, context_features: int, o: FlowOptions) -> InvSequence:
    """The conditional INN ``v -> z`` given summaries ``(C,)``: [affine head] then ``o.blocks`` blocks.

    With one parameter couplings cannot split, so every block is a :class:`ContextElementwise`
    conditioned on the summaries alone. The head is a conditional location-scale map: the blocks
    after it see parameters standardised by the posterior's own (learned) location and scale, so
    splines keep their resolution however much the posterior contracts relative to the prior.
    """
    act = ACTIVATIONS[o.activation]
    blocks: list[AbstractInvertible]
    if o.flow_matching:  # the field is conditioned on the summaries directly; no head, no couplings
        field = VelocityField(theta_dim, context_features, tuple(o.hidden))
        return InvSequence(ContinuousFlow(theta_dim, context_features, field, steps=o.steps))
    if theta_dim >= 2:
        blocks = list(coupling_flow(theta_dim, context_features, blocks=o.blocks, hidden=o.hidden,
                                    coupling=o.coupling, permutation=o.permutation, actnorm=o.actnorm,
                                    clamp=o.clamp, bins=o.bins, bound=o.bound, spline_affine=o.spline_affine,
                                    activation=act, seed=o.seed).transform)
    else:
        sub = mlp_constructor(o.hidden, act)
        blocks = [ContextElementwise(1, RationalQuadraticSpline(o.bins, o.bound) if "spline" in o.coupling
                                     else AffineTransformer(o.clamp), context_features, sub) for _ in range(o.blocks)]
    if o.head == "affine":
        head_sub = mlp_constructor(o.hidden, act, linear_skip=o.head_linear, input_bound=o.head_input_bound)
        blocks.insert(0, ContextElementwise(theta_dim, AffineTransformer(o.head_clamp), context_features, head_sub,
                                            name="GaussianHead" if o.head_linear else "AffineHead"))
    return InvSequence(blocks)
