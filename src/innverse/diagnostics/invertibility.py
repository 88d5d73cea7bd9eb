"""Invertibility diagnostics: round-trip errors, local Lipschitz constants, exploding inverses."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence as SequenceABC
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..core.flow import Flow
from ..core.module import AbstractInvertible, Context
from .block_walk import block_tolerance, leaves, residual_lipschitz
from .lipschitz import local_lipschitz
from .result import json_safe

__all__ = ["InvertibilityWarning", "BlockInvertibility", "InvertibilityReport", "check_invertibility"]

_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


class InvertibilityWarning(UserWarning):
    """An invertible network's inverse is numerically unstable (exploding inverse, round-trip error)."""


@dataclass
class BlockInvertibility:
    """Worst case of one block over all probe points (data and latent samples).

    Errors are relative, :math:`\\lVert a - b\\rVert_\\infty / \\max(1, \\lVert b\\rVert_\\infty)`;
    ``error_ratio`` is the worst error divided by its allowance (> 1 fails). ``kind`` is what
    errors call the block (e.g. ``AffineCoupling`` for a :class:`~innverse.blocks.Coupling` made
    by that factory).
    """

    name: str
    kind: str
    exact_inverse: bool
    forward_inverse_error: float
    inverse_forward_error: float
    error_ratio: float
    tolerance: float | None
    lipschitz_forward: float
    lipschitz_inverse: float
    condition: float
    certified_lipschitz: tuple[float, float] | None
    stable: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class InvertibilityReport:
    """Result of :func:`check_invertibility`; ``to_dict()`` is JSON-safe."""

    stable: bool
    reasons: list[str]
    dtype: str
    rtol: float
    max_condition: float
    data: dict[str, Any] | None
    samples: list[dict[str, Any]]
    lipschitz_forward: float
    lipschitz_inverse: float
    condition: float
    blocks: list[BlockInvertibility]
    worst_block: str | None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def summary(self) -> str:
        head = (f"invertibility: {'stable' if self.stable else 'UNSTABLE'}  Lip(f) ~ {self.lipschitz_forward:.3g}, "
                f"Lip(f^-1) ~ {self.lipschitz_inverse:.3g}, condition ~ {self.condition:.3g}")
        lines = [head] + [f"  ! {r}" for r in self.reasons]
        for b in self.blocks:
            lines.append(f"  {b.name:<28} {b.kind:<18} err {max(b.forward_inverse_error, b.inverse_forward_error):.2e}"
                         f" (x{b.error_ratio:.2g} of allowed)  Lip {b.lipschitz_forward:.3g}/{b.lipschitz_inverse:.3g}"
                         + ("" if b.stable else "  UNSTABLE"))
        return "\n".join(lines)


def _rel_err(a: Tensor, b: Tensor) -> Tensor:
    """Per-row relative error; non-finite rows give ``inf``."""
    err = (a - b).flatten(1).abs().amax(1) / b.flatten(1).abs().amax(1).clamp_min(1.0)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))


def _take(c: Context, idx: Tensor) -> Context:
    if c is None:
        return None
    if isinstance(c, Tensor):
        return c[idx]
    return [t[idx] for t in c]


def _round_trips(f: AbstractInvertible, x: Tensor, c: Context) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row forward->inverse and inverse->forward errors, and the outputs ``y = f(x)``."""
    with torch.no_grad():
        y = f.forward(x, c, log_det=False)[0]
        fi = _rel_err(f.inverse(y, c, log_det=False)[0], x)
        iff = _rel_err(f.forward(f.inverse(y, c, log_det=False)[0], c, log_det=False)[0], y)
    return fi, iff, y


def _lipschitz(f: AbstractInvertible, x: Tensor, y: Tensor, c: Context, iters: int, seed: int) -> tuple[Tensor, Tensor]:
    fwd = local_lipschitz(lambda t: f.forward(t, c, log_det=False)[0], x, iterations=iters, seed=seed)
    inv = local_lipschitz(lambda t: f.inverse(t, c, log_det=False)[0], y, iterations=iters, seed=seed + 1)
    return fwd, inv


def _finite_max(t: Tensor) -> float:
    return float(t.max()) if t.numel() and bool(torch.isfinite(t).all()) else math.inf


@dataclass(frozen=True)
class _Settings:
    """What one check runs with, defaults resolved."""

    dtype: torch.dtype
    device: torch.device
    rows: int                    # rows of the condition; latent probes reuse them cyclically
    samples: int                 # latent probes per scale
    scales: tuple[float, ...]
    points: int                  # Lipschitz probe points
    iterations: int              # power iterations
    rtol: float
    max_condition: float
    seed: int


def _probe_rows(x: Tensor | None, c: Context) -> int:
    if x is not None:
        return x.shape[0]
    if c is None:
        return 1
    return c.shape[0] if isinstance(c, Tensor) else c[0].shape[0]


def check_invertibility(module: AbstractInvertible | Flow, x: Tensor | None = None, c: Context = None, *,
                        samples: int = 256, latent_scales: SequenceABC[float] = (1.0, 2.0),
                        lipschitz_points: int = 32, power_iterations: int = 20, rtol: float | None = None,
                        max_condition: float | None = None, per_block: bool = True, warn: bool = True,
                        seed: int = 0) -> InvertibilityReport:
    r"""Check that an invertible module (or a flow's transform) inverts stably.

    Probes: the given data ``x`` (with condition ``c``) and ``samples`` latent points
    :math:`z \sim N(0, s^2 I)` for each ``s`` in ``latent_scales`` (``s > 1`` probes inputs
    outside the training data, where exploding inverses appear). Reported:

    * round-trip errors :math:`f^{-1}(f(x)) - x` and :math:`f(f^{-1}(y)) - y` (relative,
      :math:`\lVert\cdot\rVert_\infty / \max(1, \lVert\cdot\rVert_\infty)`), on data and samples;
    * local Lipschitz constants :math:`\sigma_{\max}(J_f(x))`, :math:`\sigma_{\max}(J_{f^{-1}}(y))`
      by power iteration (:func:`~innverse.diagnostics.lipschitz.local_lipschitz`) on
      ``lipschitz_points`` probes, and the local condition number (their product per point);
    * the same per leaf block of a :class:`~innverse.Sequence` / :class:`~innverse.Graph`.

    Unstable when anything is non-finite, when a round-trip error exceeds its allowance, or
    when the condition number exceeds ``max_condition``. Allowances: ``rtol`` (default 1e-4 in
    float32, 1e-10 in float64) for exact inverses. A block with ``exact_inverse = False`` is
    judged against its own tolerance :math:`\tau` (``block.solver.tolerance_for(dtype)``, or
    ``block.tolerance``): :math:`f(f^{-1}(y))` within :math:`\tau` (the solver's residual
    criterion) and :math:`f^{-1}(f(x))` within :math:`\sqrt{d}\,\tau/(1 - L)` scaled by
    :math:`\max(1,\lVert y\rVert_\infty)/\max(1,\lVert x\rVert_\infty)`, with :math:`L` from the
    block's ``lipschitz_bound()`` (the Lipschitz bound of its residual branch; without one,
    :math:`1/(1-L)` is taken as 10), which also gives certified bounds
    :math:`\mathrm{Lip}(f) \le 1 + L`, :math:`\mathrm{Lip}(f^{-1}) \le 1/(1-L)`. For the whole
    module the allowance is ``rtol`` plus ten times the largest block allowance.

    Emits an :class:`InvertibilityWarning` when unstable (``warn=True``). The module is put in
    evaluation mode during the check and restored afterwards.

    Args:
        module: an :class:`~innverse.core.AbstractInvertible` or a :class:`~innverse.Flow`
            (its transform; ``c`` is passed through its context network).
        x: data ``(B, *event_shape)``; optional.
        c: condition(s) for ``x``; required for a conditional module (rows are reused for the
            latent probes).
        max_condition: default :math:`0.01/\varepsilon` (8e4 in float32, 4.5e13 in float64):
            round-off amplified to 1%.

    References:
        Behrmann, Vicol, Wang, Grosse, Jacobsen. "Understanding and Mitigating Exploding
        Inverses in Invertible Neural Networks". AISTATS 2021.
    """
    f = module.transform if isinstance(module, Flow) else module
    if not isinstance(f, AbstractInvertible):
        raise TypeError(f"check_invertibility: expected an invertible module or a Flow, got {type(module).__name__}")
    if isinstance(module, Flow) and c is not None:
        with torch.no_grad():
            c = module.embed(c)
    if f.conditional and c is None:
        raise ValueError("check_invertibility: the module is conditional; pass its condition c")
    if x is not None and not isinstance(x, Tensor):
        raise TypeError(f"check_invertibility: x must be a tensor, got {type(x).__name__}")
    param = next(f.parameters(), None)
    dtype = x.dtype if x is not None else (param.dtype if param is not None else torch.get_default_dtype())
    device = x.device if x is not None else (param.device if param is not None else torch.device("cpu"))
    settings = _Settings(dtype, device, _probe_rows(x, c), samples, tuple(latent_scales), lipschitz_points,
                         power_iterations, _RTOL.get(dtype, 1e-2) if rtol is None else float(rtol),
                         0.01 / torch.finfo(dtype).eps if max_condition is None else float(max_condition), seed)
    was_training = f.training
    f.eval()
    try:
        report = _check(f, x, c, settings, per_block)
    finally:
        f.train(was_training)
    if warn and report.reasons:
        warnings.warn(InvertibilityWarning("numerically unstable inverse: " + " | ".join(report.reasons)),
                      stacklevel=2)
    return report


def _data_errors(f: AbstractInvertible, x: Tensor, c: Context) -> dict[str, Any]:
    fi, iff, _ = _round_trips(f, x, c)
    return {"points": x.shape[0], "forward_inverse_error": _finite_max(fi),
            "forward_inverse_error_mean": float(fi.mean()), "inverse_forward_error": _finite_max(iff)}


def _latent_probes(f: AbstractInvertible, c: Context,
                   s: _Settings) -> tuple[list[dict[str, Any]], list[tuple[Tensor, Context]]]:
    """Round trips from latent samples ``z ~ N(0, scale^2 I)``: a row per scale, and the finite inverses."""
    gen = torch.Generator().manual_seed(s.seed)
    rows, probes = [], []
    for scale in s.scales:
        z = scale * torch.randn((s.samples, *f.output_shape), generator=gen, dtype=s.dtype).to(s.device)
        cs = _take(c, torch.arange(s.samples, device=s.device) % s.rows)
        with torch.no_grad():
            xs = f.inverse(z, cs, log_det=False)[0]
            back = f.forward(xs, cs, log_det=False)[0]
        iff, finite = _rel_err(back, z), torch.isfinite(xs.flatten(1)).all(1)
        fi = _round_trips(f, xs[finite], _take(cs, finite))[0] if bool(finite.any()) else torch.zeros(0)
        rows.append({"scale": float(scale), "points": s.samples, "nonfinite_inverse": int((~finite).sum()),
                     "inverse_forward_error": _finite_max(iff), "forward_inverse_error": _finite_max(fi)})
        probes.append((xs[finite], _take(cs, finite)))
    return rows, probes


def _concat(probes: list[tuple[Tensor, Context]], c: Context) -> tuple[Tensor, Context]:
    px = torch.cat([p for p, _ in probes])
    if c is None:
        return px, None
    if isinstance(c, Tensor):
        return px, torch.cat([pc for _, pc in probes])  # type: ignore[misc]
    return px, [torch.cat(parts) for parts in zip(*[pc for _, pc in probes])]  # type: ignore[misc]


def _spread(rows: int, points: int, device: torch.device) -> Tensor:
    """Indices of ``min(points, rows)`` probe rows spread evenly over ``rows``."""
    return torch.linspace(0, rows - 1, min(points, rows)).round().long().to(device)


def _reasons(data: dict[str, Any] | None, sample_rows: list[dict[str, Any]], allow: float, lip: tuple[Tensor, Tensor],
             blocks: list[BlockInvertibility], s: _Settings) -> list[str]:
    """Why the module is unstable (empty: stable)."""
    reasons = []
    lf, li = lip
    cond = _finite_max(lf * li)
    worst = [data["forward_inverse_error"], data["inverse_forward_error"]] if data else []
    worst += [r[k] for r in sample_rows for k in ("forward_inverse_error", "inverse_forward_error")]
    if any(r["nonfinite_inverse"] for r in sample_rows):
        reasons.append("the inverse returned NaN/Inf for some latent samples "
                       f"({[r['nonfinite_inverse'] for r in sample_rows]} at scales {list(s.scales)})")
    if max(worst) > allow:
        reasons.append(f"round-trip error {max(worst):.3g} exceeds the allowed {allow:.3g}")
    if not cond <= s.max_condition:
        reasons.append(f"local condition number {cond:.3g} exceeds {s.max_condition:.3g} "
                       f"(Lip(f) ~ {_finite_max(lf):.3g}, Lip(f^-1) ~ {_finite_max(li):.3g})")
    bad = [b for b in blocks if not b.stable]
    if bad:
        reasons.append(f"{len(bad)} unstable block(s): " + "; ".join(f"{b.name} ({', '.join(b.reasons)})"
                                                                     for b in bad[:3]))
    return reasons


def _check(f: AbstractInvertible, x: Tensor | None, c: Context, s: _Settings, per_block: bool) -> InvertibilityReport:
    data = None if x is None else _data_errors(f, x, c)
    sample_rows, probes = _latent_probes(f, c, s)
    px, pc = _concat(([] if x is None else [(x, c)]) + probes, c)
    found = _blocks(f, px, pc, s) if per_block else []
    blocks = [b for b, _ in found]
    allow = s.rtol + 10 * max([a for _, a in found] or [0.0])
    # Lipschitz and condition of the whole module, on a spread of probe points.
    pick = _spread(px.shape[0], s.points, s.device)
    with torch.no_grad():
        py = f.forward(px[pick], _take(pc, pick), log_det=False)[0]
    lf, li = _lipschitz(f, px[pick], py, _take(pc, pick), s.iterations, s.seed)
    reasons = _reasons(data, sample_rows, allow, (lf, li), blocks, s)
    worst_block = max(blocks, key=lambda b: (b.error_ratio, b.condition)).name if blocks else None
    return InvertibilityReport(not reasons, reasons, str(s.dtype).replace("torch.", ""), s.rtol, s.max_condition,
                               data, sample_rows, _finite_max(lf), _finite_max(li), _finite_max(lf * li), blocks,
                               worst_block)


def _blocks(f: AbstractInvertible, px: Tensor, pc: Context, s: _Settings) -> list[tuple[BlockInvertibility, float]]:
    """Per-leaf reports, each with the block's relative tolerance allowance (0 for exact inverses)."""
    return [_block(leaf.name, leaf.block, leaf.x, leaf.c, s) for leaf in leaves(f, px, pc)]


def _block(name: str, b: AbstractInvertible, xb: Tensor, cb: Context, s: _Settings) -> tuple[BlockInvertibility, float]:
    """One leaf's report on its (finite) probe inputs, and its tolerance allowance."""
    finite = torch.isfinite(xb.flatten(1)).all(1)
    xb, cb = xb[finite], _take(cb, finite)
    fi, iff, yb = _round_trips(b, xb, cb)
    tol, lip_g = block_tolerance(b, s.dtype), residual_lipschitz(b)
    allow_fi, allow_if = torch.full_like(fi, s.rtol), torch.full_like(iff, s.rtol)
    tol_allowance = 0.0
    if not b.exact_inverse:
        tau = tol if tol is not None else 1e-3
        amp = 1.0 / (1.0 - lip_g) if lip_g is not None and lip_g < 1 else 10.0
        ratio = yb.flatten(1).abs().amax(1).clamp_min(1) / xb.flatten(1).abs().amax(1).clamp_min(1)
        tol_allowance = math.sqrt(math.prod(b.event_shape)) * tau * amp
        allow_fi, allow_if = allow_fi + tol_allowance * ratio, allow_if + tau
    err_ratio = float(torch.cat([fi / allow_fi, iff / allow_if]).max()) if fi.numel() else 0.0
    pick = _spread(xb.shape[0], s.points, xb.device)
    lf, li = _lipschitz(b, xb[pick], yb[pick], _take(cb, pick), s.iterations, s.seed)
    cond = _finite_max(lf * li)
    certified = None if lip_g is None else (1 + lip_g, 1 / (1 - lip_g) if lip_g < 1 else math.inf)
    reasons = []
    if not bool(finite.all()):
        reasons.append(f"{int((~finite).sum())} non-finite inputs")
    if not err_ratio <= 1.0:
        reasons.append(f"round-trip error {float(torch.cat([fi, iff]).max()):.3g} is {err_ratio:.3g}x the allowed")
    if not cond <= s.max_condition:
        reasons.append(f"condition number {cond:.3g}")
    return BlockInvertibility(name, b.name, bool(b.exact_inverse), _finite_max(fi), _finite_max(iff), err_ratio, tol,
                              _finite_max(lf), _finite_max(li), cond, certified, not reasons, reasons), tol_allowance
