"""The posterior estimator: a flow over parameters composed of fixed maps and a conditional INN."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..blocks import Standardization, SupportTransform
from ..blocks.support import LINEAR_HALF_WIDTH
from ..core import Flow
from ..core import Sequence as InvSequence
from ..nets.summaries import summary_from_config
from .embedding import ObservationEmbedding
from .options import FlowOptions, build_inn
from .prior_config import prior_from_config, prior_to_config
from .priors import as_prior, prior_bounds

__all__ = ["FlowOptions", "PosteriorEstimator", "FORMAT_VERSION"]

#: version of :meth:`PosteriorEstimator.config`; version-1 files (innverse 0.1) are read too
FORMAT_VERSION = 2


def _support_of(prior: Distribution | None, theta_dim: int, flow: FlowOptions) -> SupportTransform:
    if prior is None:
        inf = torch.full((theta_dim,), math.inf, dtype=torch.float64)
        return SupportTransform(-inf, inf, flow.support_interval, flow.support_half_width)
    lower, upper = prior_bounds(prior)
    return SupportTransform(lower, upper, flow.support_interval, flow.support_half_width)


#: state-dict names of version-1 files -> names now (prefix rewrites, first match wins)
_V1_NAMES = (("flow.transform.", "flow.transform.blocks.1."), ("support.", "flow.transform.blocks.0.blocks.0."),
             ("theta_shift", "flow.transform.blocks.0.blocks.1.shift"),
             ("theta_scale", "flow.transform.blocks.0.blocks.1.scale"),
             ("x_shift", "embedding.standardization.shift"), ("x_scale", "embedding.standardization.scale"),
             ("x_log", "embedding.log_features"), ("summary.", "embedding.summary."))


def _upgrade_v1_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Rename the tensors of a version-1 state dict (separate standardisation buffers, flow over ``v``)."""
    if prefix + "theta_shift" not in state_dict:
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix):]
        for old, new in _V1_NAMES:
            if name.startswith(old):
                state_dict[prefix + new + name[len(old):]] = state_dict.pop(key)
                break
    if prefix + "embedding.log_features" not in state_dict:  # written before log-scale features existed
        state_dict[prefix + "embedding.log_features"] = torch.zeros_like(module.embedding.log_features)  # type: ignore[union-attr]


class PosteriorEstimator(nn.Module):
    r"""Amortized posterior :math:`q(\theta \mid x)`: a conditional flow over parameters and an observation embedding.

    The flow is the composition of invertible blocks, each in the property suite,

    .. math::
        z = \mathrm{INN}\big(\,(T(\theta) - \mu_u) / \sigma_u \;;\; h\big),\qquad
        h = \mathrm{embedding}(x),\qquad
        \log q(\theta \mid x) = \log \mathcal N(z; 0, I) + \log|\det \partial z / \partial\theta|,

    where :math:`T` (:class:`~innverse.blocks.SupportTransform`) maps the prior's box-shaped
    support to :math:`\mathbb R^D`, :math:`\mu_u, \sigma_u` is a
    :class:`~innverse.blocks.Standardization` fitted on the training parameters, the INN is a
    conditional coupling (or autoregressive) flow, and the embedding
    (:class:`ObservationEmbedding`) standardises the observation and applies the summary
    network. Sampling runs the chain backwards, so samples never leave the support; no
    Jacobian term is written by hand.

    Rebuild without pickle: ``PosteriorEstimator.from_config(est.config())`` followed by
    ``load_state_dict(est.state_dict())`` reproduces ``est`` exactly.

    Args:
        theta_dim: number of parameters ``D``.
        x_shape: shape of one observation.
        prior: the prior (a ``torch.distributions`` object over ``(D,)``), or ``None`` (unbounded).
        summary: summary network ``(B, *x_shape) -> (B, C)`` (``None``: identity); with
            ``variable_size = True`` it accepts NaN-padded sets / series of any size.
        flow: :class:`FlowOptions` or a dict of its fields.
        reference_size: rows of the buffer of reference training summaries.
        x_scaling: how observations are scaled: ``"robust"`` or ``"moments"`` (see
            :class:`ObservationEmbedding`); recorded in :meth:`config`.
    """

    def __init__(self, theta_dim: int, x_shape: tuple[int, ...] | list[int], prior: Distribution | None = None,
                 summary: nn.Module | None = None, flow: FlowOptions | dict[str, Any] | None = None,
                 reference_size: int = 0, x_scaling: str = "robust") -> None:
        super().__init__()
        self.theta_dim = int(theta_dim)
        self.x_shape = tuple(int(s) for s in x_shape)
        if self.theta_dim < 1 or not self.x_shape or min(self.x_shape) < 1:
            raise ValueError(f"PosteriorEstimator: need theta_dim >= 1 and a non-empty x_shape, got "
                             f"{theta_dim} and {tuple(x_shape)}")
        self.prior = None if prior is None else as_prior(prior)
        if self.prior is not None and self.prior.event_shape[0] != self.theta_dim:
            raise ValueError(f"PosteriorEstimator: the prior has {self.prior.event_shape[0]} components but "
                             f"theta_dim is {self.theta_dim}")
        self.flow_options = flow if isinstance(flow, FlowOptions) else FlowOptions(**(flow or {}))
        if self.flow_options.support_half_width is None:   # saved files name the half-width used
            self.flow_options = replace(self.flow_options, support_half_width=LINEAR_HALF_WIDTH)
        self.embedding = ObservationEmbedding(self.x_shape, summary, x_scaling)
        parameter_map = InvSequence(_support_of(self.prior, self.theta_dim, self.flow_options),
                                    Standardization(self.theta_dim, name="Standardization(theta)"))
        self.flow = Flow(InvSequence(parameter_map, build_inn(self.theta_dim, self.context_features, self.flow_options)))
        self.register_buffer("reference_summaries", torch.zeros(int(reference_size), self.context_features))
        self.register_load_state_dict_pre_hook(_upgrade_v1_names)
        # the INN alone as a flow over standardised parameters (training on prepared pairs);
        # kept out of the module tree: its blocks and base belong to ``flow``
        self.__dict__["_inn_flow"] = Flow(self.inn, self.flow.base)

    # -- parts -----------------------------------------------------------------------------------
    @property
    def parameter_map(self) -> InvSequence:
        """The fixed maps :math:`\\theta \\mapsto v = (T(\\theta) - \\mu_u) / \\sigma_u` (support, then standardisation)."""
        return self.flow.transform.blocks[0]  # type: ignore[return-value]

    @property
    def support(self) -> SupportTransform:
        return self.parameter_map.blocks[0]  # type: ignore[return-value]

    @property
    def standardization(self) -> Standardization:
        return self.parameter_map.blocks[1]  # type: ignore[return-value]

    @property
    def inn(self) -> InvSequence:
        """The conditional INN :math:`v \\mapsto z` (head first, see :func:`build_inn`)."""
        return self.flow.transform.blocks[1]  # type: ignore[return-value]

    @property
    def inn_flow(self) -> Flow:
        """The INN as a flow over standardised parameters ``v`` given summaries (what training fits)."""
        return self.__dict__["_inn_flow"]

    @property
    def summary(self) -> nn.Module | None:
        return self.embedding.summary

    @property
    def variable_size(self) -> bool:
        return self.embedding.variable_size

    @property
    def context_features(self) -> int:
        return self.embedding.out_features

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description of the architecture, options, prior and shapes."""
        if self.summary is not None and not callable(getattr(self.summary, "config", None)):
            raise TypeError(f"PosteriorEstimator.config: the summary network {type(self.summary).__name__} has no "
                            "config(); use one of innverse.nets.SUMMARY_NETWORKS or rebuild it yourself and pass "
                            "it to from_config(config, summary=...)")
        prior_cfg: dict[str, Any] | None = None
        if self.prior is not None:
            try:
                prior_cfg = prior_to_config(self.prior)
            except TypeError:
                prior_cfg = None  # an undescribable prior: the support bounds below still rebuild T

        def bound(t: Tensor) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in t.tolist()]

        return {"format": "innverse.PosteriorEstimator", "version": FORMAT_VERSION, "theta_dim": self.theta_dim,
                "x_shape": list(self.x_shape), "prior": prior_cfg,
                "prior_type": None if self.prior is None else type(self.prior).__name__,
                "support": {"lower": bound(self.support.lower), "upper": bound(self.support.upper)},
                "summary": self.embedding.summary_config(), "x_scaling": self.embedding.scaling,
                "flow": asdict(self.flow_options),
                "reference_size": int(self.reference_summaries.shape[0])}

    @classmethod
    def from_config(cls, config: dict[str, Any], summary: nn.Module | None = None,
                    prior: Distribution | None = None) -> PosteriorEstimator:
        """Rebuild an (untrained) estimator from :meth:`config`; then ``load_state_dict``.

        Args:
            config: the dict from :meth:`config` (this version or version 1).
            summary: a summary network to use instead of rebuilding it from the config.
            prior: a prior to use when the config could not describe it.
        """
        if not isinstance(config, dict) or config.get("format") != "innverse.PosteriorEstimator":
            raise ValueError("PosteriorEstimator.from_config: not a PosteriorEstimator config (missing "
                             "format='innverse.PosteriorEstimator')")
        version = config.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"PosteriorEstimator.from_config: config version {version!r} is newer than this "
                             f"innverse supports ({FORMAT_VERSION}); upgrade innverse")
        for key in ("theta_dim", "x_shape", "flow", "reference_size", "support"):
            if key not in config:
                raise ValueError(f"PosteriorEstimator.from_config: missing key {key!r}")
        if prior is None and config.get("prior") is not None:
            prior = prior_from_config(config["prior"])
        if summary is None and config.get("summary") is not None:
            summary = summary_from_config(config["summary"])
        # files written before these options existed
        flow = {"head_linear": False, "head_input_bound": None, "spline_affine": False, "support_interval": "logit",
                "support_half_width": LINEAR_HALF_WIDTH, **config["flow"]}
        # files written before robust scaling existed used the moments
        est = cls(config["theta_dim"], tuple(config["x_shape"]), prior, summary, FlowOptions(**flow),
                  config["reference_size"], config.get("x_scaling", "moments"))
        if prior is None:
            lo = [-math.inf if v is None else v for v in config["support"]["lower"]]
            hi = [math.inf if v is None else v for v in config["support"]["upper"]]
            est.parameter_map.blocks[0] = SupportTransform(torch.tensor(lo, dtype=torch.float64),
                                                           torch.tensor(hi, dtype=torch.float64),
                                                           est.flow_options.support_interval,
                                                           est.flow_options.support_half_width)
        return est

    # -- standardisation -------------------------------------------------------------------------
    @torch.no_grad()
    def fit_standardization(self, theta: Tensor, x: Tensor, log_x: bool | str = "auto") -> None:
        """Fit the parameter standardisation (after the support map) and the observation embedding's.

        Args:
            theta: training parameters ``(B, D)``.
            x: training observations ``(B, *x_shape)``.
            log_x: see :meth:`ObservationEmbedding.fit`.
        """
        u, _ = self.support(theta.to(torch.float64), log_det=False)
        self.standardization.fit(u)
        self.embedding.fit(x, log_x)

    # -- densities and samples -------------------------------------------------------------------
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log q(theta_i | x_i)`` for paired rows ``theta (B, D)``, ``x (B, ...)``; inputs must be valid."""
        return self.flow.log_prob(theta, self.embedding(x))

    @torch.no_grad()
    def prepare(self, theta: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Training pairs in the spaces the networks see: standardised parameters ``v`` and observations ``z``.

        Training :attr:`inn_flow` on prepared pairs (:meth:`prepared_log_prob`) skips the fixed
        maps, whose log-determinant does not depend on any trained weight, at every step.
        """
        dtype = self.standardization.shift.dtype
        v, _ = self.parameter_map(theta.to(dtype), log_det=False)
        return v, self.embedding.standardize(x).to(dtype)

    def prepared_log_prob(self, v: Tensor, z: Tensor) -> Tensor:
        """``log q_INN(v | S(z))`` for prepared pairs (see :meth:`prepare`)."""
        return self.inn_flow.log_prob(v, self.embedding.summarize(z))

    def sample_given_summaries(self, n: int, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples for each of ``k`` summaries ``h (k, C)`` -> ``(n, k, D)`` inside the support."""
        return self.flow.sample(n, h, generator)

    @torch.no_grad()
    def set_reference(self, x: Tensor, batch: int = 4096) -> None:
        """Fill the reference-summary buffer with the summaries of up to ``reference_size`` observations."""
        m = min(self.reference_summaries.shape[0], x.shape[0])
        rows = [self.embedding(x[i:min(i + batch, m)]) for i in range(0, m, batch)]
        if rows:
            self.reference_summaries = torch.cat(rows).to(self.reference_summaries)
