r"""Dequantisation of discrete images: from integer pixels to the continuous input of a flow, with the bound it implies.

Pixels take :math:`K` values :math:`v \in \{0, \dots, K-1\}^D`. A continuous density :math:`p`
on :math:`[0, 1)^D` gives a discrete model :math:`P(v) = \int_{[0,1)^D} p((v + u)/K)\,K^{-D} du`,
and for any noise distribution :math:`q(u \mid v)` on :math:`[0, 1)^D` (Jensen)

.. math::
    \log P(v) \ge \mathbb E_{u \sim q(\cdot \mid v)}\big[\log p_s(s) + \log|\det \partial s/\partial y|
    - \log q(u \mid v)\big] - D \log K,\qquad y = (v + u)/K,\ s = \mathrm{pre}(y),

where the flow models :math:`s`, a fixed bijection of :math:`y` (here the optional
:class:`~innverse.imaging.Logit` with squeeze :math:`\alpha`). Both dequantisers return
``(s, log_weight)`` with ``log_weight`` the bracket's terms besides :math:`\log p_s(s)`, so
``flow.log_prob(s) + log_weight`` is an unbiased estimate of the bound:

* :class:`UniformDequantization`: :math:`q = \mathcal U[0, 1)^D`, :math:`\log q = 0` (Theis et al. 2016);
* :class:`VariationalDequantization`: :math:`q(u \mid v)` is itself a conditional flow,
  :math:`u = \sigma(\eta)`, :math:`\eta \sim q_\eta(\cdot \mid v)`, trained jointly with the model
  (Ho et al. 2019, Flow++), which tightens the bound.

References:
    Theis, van den Oord, Bethge. "A note on the evaluation of generative models". ICLR 2016;
    Ho, Chen, Srinivas, Duan, Abbeel. "Flow++: Improving Flow-Based Generative Models with
    Variational Dequantization and Architecture Design". ICML 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor, nn

from ..core import Flow
from ..core.module import Shape, as_shape
from ..flows.image import image_flow
from ..flows.image_conditioning import ConditionCNN
from ..nets.subnets import conv_constructor
from .checks import check_images
from .logit import Logit

__all__ = ["UniformDequantization", "VariationalDequantization", "check_levels"]


def check_levels(owner: str, v: Tensor, levels: int) -> None:
    """Raise a ValueError unless ``v`` holds integers in ``[0, levels - 1]``."""
    bad = (v != torch.round(v)) | (v < 0) | (v > levels - 1)
    if bool(bad.any()):
        vals = v[bad].flatten()[:5].tolist()
        raise ValueError(f"{owner}: expected integer pixel values in [0, {levels - 1}] (levels={levels}), "
                         f"got e.g. {vals}; pass the raw discrete image, not a rescaled one")


class _Dequantizer(nn.Module):
    """What both dequantisers share: the shape, the number of levels and the fixed preprocessing."""

    name = "dequantization"

    def __init__(self, shape: SequenceABC[int], levels: int, alpha: float | None) -> None:
        super().__init__()
        self.shape: Shape = as_shape(shape, "shape")
        if not isinstance(levels, int) or levels < 2:
            raise ValueError(f"{type(self).__name__}: levels must be an int >= 2, got {levels!r}")
        self.levels = levels
        self.alpha = alpha
        self.preprocess = None if alpha is None else Logit(self.shape, alpha=alpha)
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def _discrete(self, v: Tensor) -> Tensor:
        owner = type(self).__name__
        check_images(owner, v, self.shape)
        v = v.to(self._ref.dtype if not v.is_floating_point() else v.dtype)
        check_levels(owner, v, self.levels)
        return v

    def _model_input(self, v: Tensor, u: Tensor, log_q: Tensor | None) -> tuple[Tensor, Tensor]:
        y = (v + u) / self.levels
        weight = torch.full((v.shape[0],), -self.dims * math.log(self.levels), dtype=y.dtype, device=y.device)
        if log_q is not None:
            weight = weight - log_q
        if self.preprocess is None:
            return y, weight
        s, ld = self.preprocess(y)
        return s, weight + ld

    def to_unit(self, s: Tensor) -> Tensor:
        """Model space back to :math:`y \\in [0, 1]` (undo the preprocessing); any leading dimensions ``(*lead, *shape)``."""
        if s.dim() <= len(self.shape) or tuple(s.shape[-len(self.shape):]) != tuple(self.shape):
            raise ValueError(f"{type(self).__name__}.to_unit: expected samples (*batch, {', '.join(map(str, self.shape))}), "
                             f"got shape {tuple(s.shape)}")
        if self.preprocess is None:
            return s
        lead = s.shape[:s.dim() - len(self.shape)]
        flat = s.reshape(-1, *self.shape) if len(lead) != 1 else s
        return self.preprocess.inverse(flat, log_det=False)[0].reshape(s.shape)

    def quantize(self, s: Tensor) -> Tensor:
        """Model-space samples to discrete pixels :math:`v = \\lfloor K y \\rfloor`, clipped to ``[0, K-1]``."""
        return torch.floor(self.to_unit(s) * self.levels).clamp(0, self.levels - 1)


class UniformDequantization(_Dequantizer):
    r"""Uniform dequantisation :math:`y = (v + u)/K`, :math:`u \sim \mathcal U[0, 1)^D`, optionally logit-preprocessed.

    ``forward(v, generator) -> (s, log_weight)`` with :math:`\log w = \log|\partial s/\partial y| - D \log K`
    (see the module docstring): ``flow.log_prob(s) + log_weight`` is an unbiased estimate of a
    lower bound of :math:`\log P(v)`.

    Args:
        shape: image shape ``(C, H, W)``.
        levels: number of pixel values :math:`K` (256 for 8-bit images).
        alpha: squeeze of the logit preprocessing (``None``: the flow models :math:`y` itself).
    """

    name = "uniform"

    def __init__(self, shape: SequenceABC[int], levels: int = 256, alpha: float | None = 0.05) -> None:
        super().__init__(shape, levels, alpha)

    def forward(self, v: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        v = self._discrete(v)
        u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        return self._model_input(v, u, None)


class VariationalDequantization(_Dequantizer):
    r"""Variational dequantisation: the noise :math:`u \sim q(u \mid v)` comes from a conditional flow.

    :math:`\eta \sim q_\eta(\cdot \mid v)` (a conditional image flow over :math:`\mathbb R^D`
    conditioned on :math:`v / (K - 1) - 1/2`), :math:`u = \sigma(\eta)` through the inverse of a
    plain :class:`~innverse.imaging.Logit`, so
    :math:`\log q(u \mid v) = \log q_\eta(\eta \mid v) - \log|\det \partial u/\partial\eta|`. Its
    parameters are trained with the model's (e.g. :class:`~innverse.imaging.BitsPerDimLoss`);
    samples are reparametrised.

    Args:
        shape: image shape ``(C, H, W)`` (H and W even).
        levels: number of pixel values :math:`K`.
        alpha: squeeze of the logit preprocessing of :math:`y` (``None``: none).
        noise_flow: the conditional flow :math:`q_\eta` with ``context_shape == shape`` (default: a
            one-level :func:`~innverse.flows.image_flow`, two GLOW steps, 32-channel subnets,
            conditioned through a :class:`~innverse.flows.ConditionCNN` of width 16).

    References:
        Ho et al. "Flow++". ICML 2019.
    """

    name = "variational"

    def __init__(self, shape: SequenceABC[int], levels: int = 256, alpha: float | None = 0.05,
                 noise_flow: Flow | None = None) -> None:
        super().__init__(shape, levels, alpha)
        if noise_flow is None:
            net = ConditionCNN(self.shape, self.shape, 1, width=16)
            noise_flow = image_flow(self.shape, net, levels=1, blocks_per_level=2, subnet=conv_constructor((32, 32)),
                                    dense_blocks=0)
        if noise_flow.event_shape != self.shape or noise_flow.context_shape != self.shape:
            raise ValueError(f"VariationalDequantization: the noise flow must model {self.shape} given a condition "
                             f"{self.shape}, got event {noise_flow.event_shape}, condition {noise_flow.context_shape}")
        self.noise_flow = noise_flow
        self.sigmoid = Logit(self.shape, alpha=0.0)

    def forward(self, v: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        v = self._discrete(v)
        eta, log_q_eta = self.noise_flow.rsample_and_log_prob(1, v / (self.levels - 1) - 0.5, generator)
        u, log_du = self.sigmoid.inverse(eta[0])
        return self._model_input(v, u, log_q_eta[0] - log_du)
