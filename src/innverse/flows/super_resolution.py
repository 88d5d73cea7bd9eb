r"""A super-resolution flow that keeps the observation: the Haar low-pass band is modelled around it.

For the observation :math:`c = \mathrm{avgpool}_f(x) + \sigma\varepsilon` of an image
:math:`x` (``(C, H, W)``, factor :math:`f = 2^k`), :math:`k` orthonormal Haar transforms split
:math:`x` into the low-pass band :math:`L_k = f\,\mathrm{avgpool}_f(x)` and detail bands
:math:`D_1, \dots, D_k` (the transform is orthogonal: :math:`\log|\det J| = 0`). The flow writes

.. math::
    p(x \mid c) = \frac{p_u(u \mid c)}{(f\sigma)^{n_c}}\ \prod_{j=1}^{k} p(D_j \mid L_j, c),
    \qquad u = \frac{L_k - f c}{f \sigma},

with :math:`n_c` the number of pixels of :math:`c`:

* the low-pass band enters through :class:`ObservationResidual`: :math:`u` is the observation
  noise that the band implies, in units of :math:`\sigma`. A flow :math:`p_u` (squeeze, then
  conditional GLOW steps) starts near the standard normal (the likelihood alone) and learns how
  the posterior departs from it: the prior's pull where the noise is not small against the
  images' own variation at that scale;
* each detail band is modelled given the coarser band it refines, :math:`L_j`, and a feature
  map of the condition at its resolution (:class:`~innverse.flows.ConditionCNN` with ``skip``):
  ActNorm and invertible 1x1 convolutions on :math:`D_j`, and affine couplings that transform
  part of :math:`D_j` given :math:`L_j`, the rest of :math:`D_j` and the features (the coarse to
  fine factorisation of Wavelet Flow).

A sample's low-pass band is :math:`f c + f\sigma u`, so it re-degrades to :math:`c + \sigma u`:
consistency with the observation comes from the model's structure, and what is learned is the
detail and how much the posterior shrinks :math:`u`. A general conditional image flow
(:func:`~innverse.flows.image_flow`) has to learn that consistency from data, which takes many
more training images than the details do.

References:
    Yu, Derpanis, Brubaker. "Wavelet Flow: Fast Training of High Resolution Normalizing Flows".
    NeurIPS 2020;
    Lugmayr et al. "SRFlow: Learning the Super-Resolution Space with Normalizing Flow". ECCV 2020.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor, nn

from ..blocks import ActNorm, AffineCoupling, HaarDownsample, InvertibleConv1x1, Squeeze
from ..core import Flow, GraphBuilder
from ..core.graph import Graph
from ..core.module import AbstractInvertible, Context, Shape, as_shape
from ..io.recipes import attach_recipe
from ..nets.subnets import SubnetConstructor, conv_constructor
from .image import _feature_shapes
from .image_conditioning import ConditionCNN, level_resolutions

__all__ = ["ObservationResidual", "super_resolution_flow"]


class ObservationResidual(AbstractInvertible):
    r"""The noise an observation implies, in units of its standard deviation: :math:`u = (x - a\,c) / b`.

    .. math::
        y = \frac{x - a\,c}{b},\qquad x = a\,c + b\,y,\qquad \log|\det J| = -n \log b,

    with the condition :math:`c` of the same shape as :math:`x` and :math:`n` its number of
    elements. In :func:`super_resolution_flow`, :math:`x` is the low-pass band
    :math:`f\,\mathrm{avgpool}_f` of the image, :math:`a = f` and :math:`b = f\sigma`.

    The output is the noise in units of its standard deviation, so its RMS over a batch of real
    pairs is about 1. Far above that (more than ``warn_rms``), the data do not follow the
    observation model (another degradation operator, a larger noise, mismatched pairs): the block
    warns once, since a density and samples built on a wrong observation model would look fine.

    Args:
        event_shape: shape of :math:`x` (and of the condition).
        gain: :math:`a`.
        scale: :math:`b > 0`.
        warn_rms: the batch RMS of :math:`y` above which the block warns (``None``: never).
    """

    warned = False

    def __init__(self, event_shape: int | SequenceABC[int], gain: float, scale: float,
                 warn_rms: float | None = 4.0) -> None:
        shape = as_shape(event_shape, "event_shape")
        super().__init__(shape, context_shape=shape)
        if not (math.isfinite(gain) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"ObservationResidual: gain must be finite and scale finite and > 0, got gain={gain} "
                             f"and scale={scale}")
        self.gain, self.scale, self.warn_rms = float(gain), float(scale), warn_rms

    def _log_det(self, x: Tensor, sign: float) -> Tensor:
        value = -sign * math.prod(self.event_shape) * math.log(self.scale)
        return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        y = (x - self.gain * c) / self.scale  # type: ignore[operator]
        if self.warn_rms is not None and not self.warned and y.numel():
            rms = float(y.detach().square().mean().sqrt())
            if not rms <= self.warn_rms:
                self.warned = True
                warnings.warn(f"{self.name}: the data are {rms:.3g} noise levels (RMS) from the observation model "
                              f"x = {self.gain:g} c + noise of standard deviation {self.scale:g} (expected about 1): "
                              f"check the degradation operator (average pooling by the factor), the noise level "
                              f"and that images and conditions are paired", UserWarning, stacklevel=2)
        return y, (self._log_det(x, 1.0) if log_det else None)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.gain * c + self.scale * y, (self._log_det(y, -1.0) if log_det else None)  # type: ignore[operator]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gain={self.gain:g}, scale={self.scale:g}, warn_rms={self.warn_rms}"


class ObservationFeatures(nn.Module):
    """The conditioning network's feature maps (one per band, then one for the low-pass flow) and the raw condition.

    Args:
        net: ``h(c) -> [f_0, ..., f_k]``.
        shapes: the expected per-sample shapes of ``f_0, ..., f_k``.
    """

    def __init__(self, net: nn.Module, shapes: SequenceABC[Shape]) -> None:
        super().__init__()
        self.net, self.shapes = net, [tuple(s) for s in shapes]

    def forward(self, c: Tensor) -> list[Tensor]:
        out = self.net(c)
        outs = [out] if isinstance(out, Tensor) else list(out)
        if len(outs) != len(self.shapes) or any(tuple(f.shape[1:]) != s for f, s in zip(outs, self.shapes)):
            raise ValueError(f"super_resolution_flow: the condition network returned shapes "
                             f"{[tuple(f.shape[1:]) for f in outs]}, expected {self.shapes}")
        return [*outs, c]


def _detail_steps(b: GraphBuilder, x, channels: int, n: int, subnet: SubnetConstructor, cond, clamp: float,
                  seed: int):
    """``n`` steps on the Haar output ``[L, D]`` that change only ``D``: ActNorm and 1x1 conv on ``D``, then a
    coupling transforming the last half of ``D`` given ``L``, the first half of ``D`` and the features."""
    details = x.shape[0] - channels
    for k in range(n):
        low, d = b.split(x, [channels, details])
        d = b.add(ActNorm(d.shape), d)
        d = b.add(InvertibleConv1x1(d.shape, seed=seed + k), d)
        x = b.merge([low, d])
        x = b.add(AffineCoupling(x.shape, subnet, cond.shape, split=channels + details // 2, clamp=clamp), x, cond)
    return x


def super_resolution_flow(shape: SequenceABC[int], factor: int, noise_std: float, *, blocks_per_level: int = 4,
                          condition_net: nn.Module | None = None, width: int = 32,
                          subnet: SubnetConstructor | None = None, clamp: float = 2.0, seed: int = 0) -> Flow:
    r"""A conditional flow :math:`p(x \mid c)` for :math:`c = \mathrm{avgpool}_f(x) + \sigma\varepsilon` (see the module docstring).

    Args:
        shape: high-resolution image shape ``(C, H, W)``; ``H`` and ``W`` divisible by ``2 * factor``.
        factor: the downsampling factor :math:`f`, a power of two (2, 4, 8, ...).
        noise_std: :math:`\sigma > 0`, the observation noise's standard deviation (pixel units).
        blocks_per_level: steps per detail band and in the low-pass flow.
        condition_net: ``h(c) -> [f_0, ..., f_k]``: a feature map at each detail band's resolution
            :math:`H / 2^{j+1}` (``j = 0..k-1``) and one at :math:`H / 2f` for the low-pass flow;
            default :class:`~innverse.flows.ConditionCNN` with ``levels = k + 1`` and ``skip``.
        width: channels of the default conditioning network's first stage.
        subnet: subnet constructor of the couplings (default ``conv_constructor((64, 64))``).
        clamp: soft bound of the couplings' log-scales.
        seed: seed of the 1x1 convolutions' initial rotations.

    Returns:
        A :class:`~innverse.core.Flow` with the conditional-density contract of
        :func:`~innverse.flows.image_flow`: ``log_prob(x, c)``, ``sample(n, c)``.

    Raises:
        ValueError: a factor that is not a power of two (>= 2), a noise level that is not > 0, or an
            image size that the bands cannot halve (the message names the level and the size).
    """
    arguments = dict(locals())
    shape = as_shape(shape, "shape")
    if not isinstance(factor, int) or factor < 2 or factor & (factor - 1):
        raise ValueError(f"super_resolution_flow: factor must be a power of two >= 2, got {factor!r}")
    if not (isinstance(noise_std, int | float) and math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"super_resolution_flow: noise_std must be a finite number > 0 (the low-pass band is "
                         f"modelled as the observation plus its noise), got {noise_std!r}")
    if not isinstance(blocks_per_level, int) or blocks_per_level < 1:
        raise ValueError(f"super_resolution_flow: blocks_per_level must be an int >= 1, got {blocks_per_level!r}")
    k = factor.bit_length() - 1
    resolutions = level_resolutions(shape, k + 1)   # the bands, then the squeezed low-pass flow
    channels = shape[0]
    cshape = (channels, shape[1] // factor, shape[2] // factor)
    net = condition_net if condition_net is not None else ConditionCNN(cshape, shape, k + 1, width=width, skip=True)
    features = _feature_shapes(net, cshape, resolutions)
    if len(features) != k + 1 or any(len(s) != 3 for s in features):
        raise ValueError(f"super_resolution_flow: the condition network must return {k + 1} feature maps (one per "
                         f"detail band, one for the low-pass flow), got shapes {features}")
    subnet = subnet or conv_constructor((64, 64))
    b = GraphBuilder(shape)
    ports = [b.condition(s) for s in features]
    observed = b.condition(cshape)
    x, latents, s = b.input, [], seed
    for level in range(k):
        x = b.add(HaarDownsample(x.shape), x)
        x = _detail_steps(b, x, channels, blocks_per_level, subnet, ports[level], clamp, s)
        s += blocks_per_level
        x, detail = b.split(x, [channels, x.shape[0] - channels])
        latents.append(detail)
    u = b.add(ObservationResidual(x.shape, gain=factor, scale=factor * noise_std), x, observed)
    u = b.add(Squeeze(u.shape), u)
    for step in range(blocks_per_level):
        u = b.add(ActNorm(u.shape), u)
        u = b.add(InvertibleConv1x1(u.shape, seed=s + step), u)
        u = b.add(AffineCoupling(u.shape, subnet, ports[k].shape, clamp=clamp), u, ports[k])
    graph: Graph = b.build([*latents, u])
    graph.block_name = "super_resolution_flow"
    flow = Flow(graph, context_net=ObservationFeatures(net, features), context_shape=cshape)
    return attach_recipe(flow, "super_resolution_flow", arguments)
