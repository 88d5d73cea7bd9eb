"""Rational-quadratic spline maths, with a hand-written backward pass.

:class:`~innverse.blocks.RationalQuadraticSpline` calls :func:`rq_spline`. The spline is ~50 small
tensor operations; under autograd each one is a graph node, and on a CPU the engine's per-node
overhead (not the arithmetic) dominates a training step of a low-dimensional flow. The function
below records one node instead: its forward runs the same operations without a graph, and its
backward evaluates the closed-form derivatives of the spline, then the knot construction (softmax,
cumulative sum, normalisation) in reverse.

A backward pass that itself has to be differentiable (``create_graph=True``, e.g. Hessian-vector
products) re-runs the plain forward under autograd and differentiates that, so higher derivatives
are exact too.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SplineConfig", "rq_spline"]


class SplineConfig(NamedTuple):
    """Constants of a spline: ``bins`` K, ``bound`` B and the minimum bin width/height/derivative."""

    bins: int
    bound: float
    min_width: float
    min_height: float
    min_derivative: float
    #: softplus(shift) = 1 - min_derivative: zero raw derivatives give unit knot derivatives
    shift: float


class _Saved(NamedTuple):
    # per element (the spline's input shape)
    inside: Tensor
    xi: Tensor
    w: Tensor
    h: Tensor
    s: Tensor
    d0: Tensor
    d1: Tensor
    den: Tensor
    deriv: Tensor
    t: Tensor      # xi (1 - xi)
    curv: Tensor   # d0 + d1 - 2 s
    # per element and knot
    pair: Tensor   # (..., 3, 2) indices of the bin's end knots
    e: Tensor      # (..., 2, K) exp of the clamped raw widths / heights
    raw: Tensor    # (..., 2, K) raw widths / heights (the clamp at +-30 cuts their gradient)
    cum: Tensor    # (..., 2, K) cumulative unnormalised widths / heights
    draw: Tensor   # (..., K - 1) raw interior derivatives + shift


class _Constants(NamedTuple):
    # 0-dim tensors: on CPU an operation between a tensor and a Python number converts the number
    # first and costs about twice as much as one between two tensors (measured, torch 2.13)
    zero: Tensor
    one: Tensor
    two: Tensor
    four: Tensor
    lo: Tensor          # -B
    hi: Tensor          # B
    span: Tensor        # 2B
    min_derivative: Tensor
    shift: Tensor
    floor_ratio: Tensor  # (2, 1): min bin size / (1 - K min bin size), widths and heights


@functools.lru_cache(maxsize=64)
def _constants(cfg: SplineConfig, dtype: torch.dtype, device: torch.device) -> _Constants:
    # made outside inference mode, so the cached tensors can join autograd graphs later
    with torch.inference_mode(False):
        def c(value: float | list[list[float]]) -> Tensor:
            return torch.tensor(value, dtype=dtype, device=device)

        ratio = [[f / (1 - f * cfg.bins)] for f in (cfg.min_width, cfg.min_height)]
        return _Constants(c(0.0), c(1.0), c(2.0), c(4.0), c(-cfg.bound), c(cfg.bound), c(2 * cfg.bound),
                          c(cfg.min_derivative), c(cfg.shift), c(ratio))


def _spline(v: Tensor, theta: Tensor, cfg: SplineConfig, inverse: bool) -> tuple[Tensor, Tensor, _Saved]:
    """The spline (differentiable torch operations): output, elementwise log-derivative (0 outside), saved values."""
    k = cfg.bins
    c = _constants(cfg, v.dtype, v.device)
    inside = v.abs() <= c.hi
    vin = v.clamp(c.lo, c.hi)
    # widths and heights side by side: (..., 2, K). The softmax is written out (torch.softmax over a
    # dimension this short is ~5x slower on CPU); clamping the logits to +-30 keeps exp finite and
    # non-zero without the usual max shift, and changes nothing in practice (a bin e^60 times wider
    # than another is far below the minimum bin size already). Bin j gets the share
    # f + (1 - K f) e_j / sum(e) of the interval, proportional to e_j + sum(e) f / (1 - K f)
    raw = theta[..., :2 * k].unflatten(-1, (2, k))
    e = torch.exp(raw.clamp(-30.0, 30.0))
    sizes = e + e.sum(-1, keepdim=True) * c.floor_ratio
    # dividing by the last cumulative sum normalises and makes the end knots exactly -B and B,
    # whatever the round-off in the sum
    cum = torch.cumsum(sizes, -1)
    knots = torch.addcmul(c.lo, F.pad(cum, (1, 0)), c.span / cum[..., -1:])     # (..., 2, K + 1)
    draw = theta[..., 2 * k:3 * k - 1] + c.shift
    d = F.pad(F.softplus(draw) + c.min_derivative, (1, 1), value=1.0)          # (..., K + 1)
    table = torch.cat([knots, d.unsqueeze(-2)], -2)                              # (..., 3, K + 1)
    # the bin of each element: the number of interior knots (x, or y for the inverse) below it
    idx = (vin.unsqueeze(-1) >= knots[..., 1 if inverse else 0, 1:-1]).sum(-1, keepdim=True)
    pair = torch.cat([idx, idx + 1], -1).unsqueeze(-2).expand(*idx.shape[:-1], 3, 2)
    lo, hi = table.gather(-1, pair).unbind(-1)
    x_k, y_k, d0 = lo.unbind(-1)
    w, h, _ = (hi - lo).unbind(-1)
    d1 = hi[..., 2]
    s = h / w
    curv = d1 + d0 - s - s
    if inverse:
        dy = vin - y_k
        a = h * (s - d0) + dy * curv
        b = h * d0 - dy * curv
        cc = s * dy                     # = -c of the quadratic a xi^2 + b xi + c = 0
        disc = (b.square() + c.four * a * cc).clamp_min(c.zero)
        xi = (cc + cc) / (b + torch.sqrt(disc))
        out = xi * w + x_k
        t = xi * (c.one - xi)
        den = s + curv * t
    else:
        xi = (vin - x_k) / w
        t = xi * (c.one - xi)
        den = s + curv * t
        out = y_k + h * (s * xi.square() + d0 * t) / den
    out = torch.where(inside, out, v)
    deriv = s.square() * (d1 * xi.square() + c.two * s * t + d0 * (c.one - xi).square()) / den.square()
    ld = torch.where(inside, torch.log(deriv), c.zero)
    saved = _Saved(inside, xi, w, h, s, d0, d1, den, deriv, t, curv, pair, e, raw, cum, draw)
    return out, ld, saved


def _backward(g_out: Tensor, g_ld: Tensor, sv: _Saved, cfg: SplineConfig, inverse: bool,
              need_v: bool) -> tuple[Tensor | None, Tensor]:
    """Gradients of ``(out, ld)`` with respect to the input and the raw parameters."""
    inside, xi, w, h, s, d0, d1, den, t = sv.inside, sv.xi, sv.w, sv.h, sv.s, sv.d0, sv.d1, sv.den, sv.t
    c = _constants(cfg, g_out.dtype, g_out.device)
    gy = torch.where(inside, g_out, c.zero)
    gl = torch.where(inside, g_ld, c.zero)
    # inside a bin, with t = xi(1 - xi), q = s xi^2 + d0 t, den = s + (d0 + d1 - 2s) t and
    # m = d1 xi^2 + 2 s t + d0 (1 - xi)^2:  y = y_k + h q / den,  dy/dx = s^2 m / den^2 =: D.
    # Partial derivatives of y and of L = log D, with xi, s, h, d0, d1, y_k independent:
    om = c.one - xi
    xi2, om2 = xi.square(), om.square()
    u = om - xi                        # dt/dxi
    q = s * xi2 + d0 * t
    m = d1 * xi2 + c.two * s * t + d0 * om2
    hd2 = h / den.square()
    y_s = hd2 * (xi2 * den - q * (c.one - t - t))
    y_h = q / den
    y_d0 = hd2 * t * (den - q)
    y_d1 = -hd2 * q * t
    two_t_den = (t + t) / den
    l_xi = c.two * (d1 * xi + s * u - d0 * om) / m - c.two * sv.curv * u / den
    l_s = c.two / s + (t + t) / m - c.two * (c.one - t - t) / den
    l_d0 = om2 / m - two_t_den
    l_d1 = xi2 / m - two_t_den
    if inverse:
        # x = x_k + w xi with xi defined implicitly by y(xi) = v: dxi/dp = -(dy/dp) / (w D)
        a = (gy * w + gl * l_xi) / (w * sv.deriv)
        g_vin, cy = a, -a
    else:
        # xi = (v - x_k) / w, dy/dxi = w D
        g_xi = gy * w * sv.deriv + gl * l_xi
        g_vin, cy = g_xi / w, gy
    g_s = cy * y_s + gl * l_s
    g_h = cy * y_h + g_s / w           # s = h / w
    g_w = -g_s * s / w
    if inverse:
        g_w = g_w + gy * xi
        g_xk = gy - g_w
    else:
        g_w = g_w - g_vin * xi
        g_xk = -g_vin - g_w
    g_d0 = cy * y_d0 + gl * l_d0
    g_d1 = cy * y_d1 + gl * l_d1
    # to the knot table (..., 3, K + 1): rows x, y, derivative; columns the bin's two end knots
    g_pair = torch.stack([g_xk, g_w, cy - g_h, g_h, g_d0, g_d1], -1).unflatten(-1, (3, 2))
    g_table = torch.zeros(*sv.pair.shape[:-1], cfg.bins + 1, dtype=g_out.dtype,
                          device=g_out.device).scatter_(-1, sv.pair, g_pair)
    # knots = -B + 2B cum_j / cum_K: back through the normalisation, the cumulative sum and the
    # bin sizes e_j + r sum(e)
    total = sv.cum[..., -1:]
    g_cum = g_table[..., :2, 1:] * (c.span / total)
    g_cum[..., -1:] -= (g_cum * sv.cum).sum(-1, keepdim=True) / total
    rc = torch.cumsum(g_cum, -1)
    g_sizes = rc[..., -1:] - rc + g_cum
    g_e = g_sizes + g_sizes.sum(-1, keepdim=True) * c.floor_ratio
    g_raw = torch.where(sv.raw.abs() > 30.0, c.zero, g_e * sv.e)
    g_draw = g_table[..., 2, 1:-1] * torch.sigmoid(sv.draw)
    g_theta = torch.cat([g_raw.flatten(-2), g_draw], -1)
    g_v = torch.where(inside, g_vin, g_out) if need_v else None
    return g_v, g_theta


class _SplineFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, theta: Tensor, cfg: SplineConfig, inverse: bool) -> tuple[Tensor, Tensor]:
        out, ld, saved = _spline(v, theta, cfg, inverse)
        ctx.cfg, ctx.inverse = cfg, inverse
        ctx.save_for_backward(v, theta, *saved)
        return out, ld

    @staticmethod
    def backward(ctx: Any, g_out: Tensor, g_ld: Tensor) -> tuple[Tensor | None, ...]:
        v, theta, *rest = ctx.saved_tensors
        need_v, need_theta = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # differentiable backward requested (create_graph=True): differentiate the plain forward
            wrt = [t for t, need in ((v, need_v), (theta, need_theta)) if need]
            with torch.enable_grad():
                out, ld, _ = _spline(v, theta, ctx.cfg, ctx.inverse)
                grads = iter(torch.autograd.grad((out, ld), wrt, (g_out, g_ld), create_graph=True,
                                                 allow_unused=True))
            return (next(grads) if need_v else None, next(grads) if need_theta else None, None, None)
        g_v, g_theta = _backward(g_out, g_ld, _Saved(*rest), ctx.cfg, ctx.inverse, need_v)
        extra = theta.shape[-1] - g_theta.shape[-1]   # parameters after the spline's own (not used here)
        if extra:
            g_theta = F.pad(g_theta, (0, extra))
        return g_v, (g_theta if need_theta else None), None, None


def rq_spline(v: Tensor, theta: Tensor, cfg: SplineConfig, inverse: bool) -> tuple[Tensor, Tensor]:
    """Spline ``v -> (out, log|d out / d v|)`` elementwise, identity outside ``[-B, B]``.

    ``theta (*v.shape, P)``, P >= 3K - 1: K raw widths, K raw heights, K - 1 raw interior
    derivatives (entries after these are ignored).
    """
    if torch.is_grad_enabled() and (v.requires_grad or theta.requires_grad):
        return _SplineFunction.apply(v, theta, cfg, inverse)
    out, ld, _ = _spline(v, theta, cfg, inverse)
    return out, ld
