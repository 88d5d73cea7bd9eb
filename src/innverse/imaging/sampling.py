r"""Sampling helpers for (conditional) image flows: temperature, best-of-k, variance maps, interpolation, style transfer.

All take a :class:`~innverse.core.Flow` ``p(x | c)`` with data-to-latent transform
:math:`z = f(x; h(c))`; its conditioning network :math:`h` runs once per call.

* :func:`sample_images`: :math:`x = f^{-1}(T z; h(c))`, :math:`z \sim p_Z`, at temperature :math:`T`
  (latent norm scaling; :math:`T < 1` trades diversity for typicality, Kingma & Dhariwal 2018);
* :func:`best_of_k` and :func:`variance_map`: the best sample by RMS error to a reference and the
  per-pixel sample variance (Ardizzone et al. 2020's diversity measures);
* :func:`encode` / :func:`decode`, :func:`interpolate` (linear or spherical paths between two
  latents) and :func:`transfer_style` (encode under one condition, decode under another:
  :math:`x' = f^{-1}(f(x; h(c_1)); h(c_2))`).

References:
    Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018;
    Ardizzone et al. "Conditional Invertible Neural Networks for Diverse Image-to-Image
    Translation". GCPR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core import Flow
from ..core.conditional import as_conditions, check_count
from ..core.module import Context
from .checks import check_images

__all__ = ["BestOfK", "best_of_k", "decode", "encode", "interpolate", "sample_images", "transfer_style",
           "variance_map"]


def _repeat(emb: Context, n: int) -> Context:
    def rep(t: Tensor) -> Tensor:
        return t.repeat(n, *([1] * (t.dim() - 1)))

    if emb is None:
        return None
    return rep(emb) if isinstance(emb, Tensor) else [rep(t) for t in emb]


def _check_x(owner: str, flow: Flow, x: Tensor, name: str = "images") -> None:
    if len(flow.event_shape) == 3:
        check_images(owner, x, flow.event_shape, name)
    elif not isinstance(x, Tensor) or tuple(x.shape[1:]) != flow.event_shape:
        raise ValueError(f"{owner}: expected {name} of shape (batch, *{flow.event_shape}), "
                         f"got {tuple(getattr(x, 'shape', ()))}")


def _row_conditions(owner: str, flow: Flow, condition: Tensor | None, rows: int) -> Context:
    """Embedded conditions for ``rows`` rows: one condition (repeated) or one per row."""
    if not flow.conditional:
        if condition is not None:
            raise ValueError(f"{owner}: the flow is unconditional, but a condition was given")
        return None
    cond, single = as_conditions(owner, condition, flow.context_shape)
    if single:
        return _repeat(flow.embed(cond), rows)
    if cond.shape[0] != rows:
        raise ValueError(f"{owner}: {rows} rows but {cond.shape[0]} conditions; give one condition "
                         f"{flow.context_shape} or one per row")
    return flow.embed(cond)


def encode(flow: Flow, x: Tensor, condition: Tensor | None = None) -> Tensor:
    """Latents :math:`z = f(x; h(c))` of images ``x (B, *event)`` (one condition, or one per image)."""
    _check_x("encode", flow, x)
    return flow.transform(x, _row_conditions("encode", flow, condition, x.shape[0]), log_det=False)[0]


def decode(flow: Flow, z: Tensor, condition: Tensor | None = None) -> Tensor:
    """Images :math:`x = f^{-1}(z; h(c))` of latents ``z (B, D)`` (one condition, or one per latent)."""
    emb = _row_conditions("decode", flow, condition, z.shape[0])
    return flow.transform.inverse(z, emb, log_det=False)[0]


@torch.no_grad()
def sample_images(flow: Flow, n: int, condition: Tensor | None = None, *, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """``n`` samples at ``temperature``: ``(n, *event)`` for one condition (or none), ``(n, k, *event)`` for ``k``."""
    n = check_count("sample_images", n)
    if not temperature >= 0:
        raise ValueError(f"sample_images: temperature must be >= 0, got {temperature}")
    k, batch, emb = 1, (), None
    if flow.conditional:
        cond, single = as_conditions("sample_images", condition, flow.context_shape)
        k, batch = cond.shape[0], (() if single else (cond.shape[0],))
        emb = _repeat(flow.embed(cond), n)
    elif condition is not None:
        raise ValueError("sample_images: the flow is unconditional, but a condition was given")
    z = flow.base.sample(n * k, generator) * temperature
    x = flow.transform.inverse(z, emb, log_det=False)[0]
    return x.reshape(n, *batch, *flow.event_shape)


@dataclass(frozen=True)
class BestOfK:
    """The best of ``n`` samples per reference: ``best (*batch, *event)``, ``rms (*batch)``, ``index (*batch)``, ``all_rms (n, *batch)``."""

    best: Tensor
    rms: Tensor
    index: Tensor
    all_rms: Tensor


def best_of_k(samples: Tensor, reference: Tensor, event_dims: int = 3) -> BestOfK:
    r"""The sample closest to ``reference`` in RMS error, per reference.

    :math:`\mathrm{RMS}_j = \sqrt{\mathrm{mean}((x_j - x^*)^2)}` over the ``event_dims`` trailing
    dimensions; ``samples (n, *batch, *event)``, ``reference (*batch, *event)``.
    """
    if samples.dim() != reference.dim() + 1 or tuple(samples.shape[1:]) != tuple(reference.shape):
        raise ValueError(f"best_of_k: expected samples (n, *{tuple(reference.shape)}) for a reference of shape "
                         f"{tuple(reference.shape)}, got {tuple(samples.shape)}")
    dims = tuple(range(samples.dim() - event_dims, samples.dim()))
    all_rms = (samples - reference).square().mean(dims).sqrt()
    rms, index = all_rms.min(0)
    idx = index.reshape(1, *index.shape, *([1] * event_dims)).expand(1, *samples.shape[1:])
    return BestOfK(samples.gather(0, idx)[0], rms, index, all_rms)


def variance_map(samples: Tensor) -> Tensor:
    """Per-pixel sample variance over dim 0 (``n - 1`` denominator), averaged over channels.

    ``samples (n, *batch, C, H, W) -> (*batch, H, W)``.
    """
    if samples.dim() < 4 or samples.shape[0] < 2:
        raise ValueError(f"variance_map: expected at least 2 samples of images (n, *batch, C, H, W), "
                         f"got shape {tuple(samples.shape)}")
    return samples.var(0).mean(-3)


def _path(z0: Tensor, z1: Tensor, t: Tensor, spherical: bool) -> Tensor:
    t = t[:, None]
    if spherical:
        cos = (z0 * z1).sum() / (z0.norm() * z1.norm())
        omega = torch.arccos(cos.clamp(-1.0, 1.0))
        if float(omega) > 1e-4:
            return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    return (1 - t) * z0 + t * z1


@torch.no_grad()
def interpolate(flow: Flow, a: Tensor, b: Tensor, steps: int = 8, condition: Tensor | None = None, *,
                spherical: bool = True) -> Tensor:
    r"""Images along a path between the latents of ``a`` and ``b`` (both ``event``-shaped), decoded under ``condition``.

    Linear :math:`z_t = (1-t) z_a + t z_b` or spherical
    :math:`z_t = [\sin((1-t)\omega) z_a + \sin(t\omega) z_b] / \sin\omega`,
    :math:`\cos\omega = \langle z_a, z_b\rangle / (|z_a||z_b|)`, for ``steps`` values of
    :math:`t \in [0, 1]`: ``(steps, *event)``; the ends reproduce ``a`` and ``b``.
    """
    if steps < 2:
        raise ValueError(f"interpolate: steps must be >= 2, got {steps}")
    z = encode(flow, torch.stack([a, b]), condition)
    t = torch.linspace(0, 1, steps, dtype=z.dtype, device=z.device)
    return decode(flow, _path(z[0], z[1], t, spherical), condition)


@torch.no_grad()
def transfer_style(flow: Flow, x: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """Encode ``x (B, *event)`` under ``source`` and decode under ``target`` (one condition or one per image)."""
    return decode(flow, encode(flow, x, source), target)
