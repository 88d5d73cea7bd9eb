"""Bijection from a box-shaped support (a prior's) to unbounded space, per component."""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.module import AbstractInvertible, Context

__all__ = ["SupportTransform", "INTERVAL_MAPS", "half_width_for"]

#: maps of components bounded on both sides
INTERVAL_MAPS = ("probit", "logit", "linear")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: ``interval="linear"``: the default half-width :math:`L` of the flat part of the density of :math:`u` under a
#: uniform prior. Files saved before the half-width was an option read with it, so it must not change.
LINEAR_HALF_WIDTH = 2.0
#: ``fit_posterior``'s half-width grows from ``LINEAR_HALF_WIDTH`` at this many training simulations ...
HALF_WIDTH_GROWTH_START = 10_000
#: ... log-linearly to this one at ten times as many (``half_width_for``)
WIDE_HALF_WIDTH = 4.0
#: the inverse of the ``"linear"`` map's CDF: Newton steps on its log from a closed-form start (three reach
#: float64's precision over :math:`q \in [10^{-30}, 1/2]`; one more is kept as a margin)
_NEWTON_STEPS = 4


def _psi(x: Tensor) -> Tensor:
    r"""The antiderivative of the standard normal CDF, :math:`\psi(x) = x\Phi(x) + \varphi(x)` (float64).

    As :math:`\max(x, 0) + \psi(-|x|)`, with :math:`\psi(-t) = e^{-t^2/2}\big(1/\sqrt{2\pi} -
    t\,\mathrm{erfcx}(t/\sqrt 2)/2\big)`: ``ndtr`` loses all its digits in the left tail, where the
    Newton steps of the ``"linear"`` map's inverse need them.
    """
    t = x.abs()
    tail = torch.exp(-0.5 * t.square()) * (math.exp(-_HALF_LOG_2PI) - 0.5 * t * torch.special.erfcx(t / math.sqrt(2)))
    return x.clamp_min(0.0) + tail


def _linear_cdf(w: Tensor, half: float) -> Tensor:
    r"""CDF of :math:`U(-L, L) + N(0, 1)` at :math:`w \le 0`: :math:`(\psi(w + L) - \psi(w - L)) / 2L`."""
    return (_psi(w + half) - _psi(w - half)) / (2 * half)


def _linear_log_density(u: Tensor, half: float) -> Tensor:
    r"""Log-density of :math:`U(-L, L) + N(0, 1)`: :math:`\log\big(\Phi(u + L) - \Phi(u - L)\big) - \log 2L`,
    evaluated at :math:`-|u|` (it is symmetric) where the difference keeps its relative precision."""
    w = -u.abs()
    a, b = torch.special.log_ndtr(w + half), torch.special.log_ndtr(w - half)
    return a + torch.log1p(-torch.exp(b - a)) - math.log(2 * half)


def _linear_quantile(q: Tensor, half: float) -> Tensor:
    r"""The :math:`w \le 0` with :math:`F(w) = q` for :math:`q \in [10^{-30}, 1/2]` (float64).

    Newton steps on :math:`g(w) = \log F(w) - \log q`, then one Newton step on :math:`F` that carries
    the gradient (:math:`\partial w / \partial q = 1 / f(w)`). :math:`g` is increasing and concave
    (:math:`F` is log-concave, as the convolution of log-concave densities), so from a start left of
    the root the steps rise monotonically to it, and from a start right of it the first step lands
    left of it. The start is closed-form, from bounds on :math:`2L\,F(w) = \psi(w + L) - \psi(w - L)`:
    in the tails (:math:`q \le 1/4L`), :math:`\Phi^{-1}(2Lq) - L`, left of the root since
    :math:`\psi(t) \le \Phi(t)` for :math:`t \le 0`; in the middle, :math:`2Lq - L`, right of it since
    :math:`2L\,F(w) \ge w + L` for :math:`w \le 0`. This replaced twelve bisection steps before the
    Newton steps, at the same precision in about half the time.
    """
    with torch.no_grad():
        tail = torch.special.ndtri((2 * half * q).clamp(max=0.5)) - half
        w = torch.where(q <= 1 / (4 * half), tail, 2 * half * q - half)
        for _ in range(_NEWTON_STEPS):
            cdf = _linear_cdf(w, half)
            w = (w - cdf / torch.exp(_linear_log_density(w, half)) * torch.log(cdf / q)).clamp(-half - 40.0, 0.0)
        cdf, density = _linear_cdf(w, half), torch.exp(_linear_log_density(w, half))
    return w - (cdf - q) / density


# component kinds
_REAL, _LOWER, _UPPER, _INTERVAL = 0, 1, 2, 3


def half_width_for(simulations: int | None) -> float:
    """The ``"linear"`` map's half-width :math:`L` that ``fit_posterior`` uses for ``simulations`` training pairs.

    ``LINEAR_HALF_WIDTH`` (2) up to ``HALF_WIDTH_GROWTH_START`` (10^4) pairs, ``WIDE_HALF_WIDTH``
    (4) from ten times as many, log-linear in between; 2 where the number is not known (``None``: online
    training). A wider flat part leaves less of a posterior that piles against a bound in the map's
    Gaussian tail, which the flow must extrapolate; with few pairs the narrower one is better
    (:class:`SupportTransform` has the figures).
    """
    if simulations is None:
        return LINEAR_HALF_WIDTH
    if isinstance(simulations, bool) or not isinstance(simulations, numbers.Integral) or simulations < 0:
        raise ValueError(f"half_width_for: simulations must be a non-negative int or None, got {simulations!r}")
    decades = math.log10(max(simulations, 1) / HALF_WIDTH_GROWTH_START)
    return LINEAR_HALF_WIDTH + (WIDE_HALF_WIDTH - LINEAR_HALF_WIDTH) * min(max(decades, 0.0), 1.0)


class SupportTransform(AbstractInvertible):
    r"""Elementwise bijection :math:`u = T(\theta)` from the box :math:`\prod_i (a_i, b_i)` to :math:`\mathbb R^D`.

    Per component, by the kind of bound:

    * unbounded: :math:`u = \theta`;
    * interval :math:`(a, b)`, ``interval="probit"`` (default): :math:`u = \Phi^{-1}\frac{\theta - a}{b - a}`,
      :math:`\theta = a + (b - a)\,\Phi(u)`,
      :math:`\log|\partial\theta/\partial u| = \log(b - a) + \log\varphi(u)`; ``interval="logit"``:
      :math:`u = \mathrm{logit}\,\frac{\theta - a}{b - a}`, :math:`\theta = a + (b - a)\,\sigma(u)`,
      :math:`\log|\partial\theta/\partial u| = \log(b - a) + \log\sigma(u) + \log\sigma(-u)`;
      ``interval="linear"``: :math:`\theta = a + (b - a)\,F_L(u)` with :math:`F_L` the CDF of
      :math:`U(-L, L) + N(0, 1)` (``innverse.blocks.support.LINEAR_HALF_WIDTH`` :math:`= L`),
      :math:`F_L(u) = (\psi(u + L) - \psi(u - L)) / 2L`, :math:`\psi(x) = x\Phi(x) + \varphi(x)`,
      :math:`\log|\partial\theta/\partial u| = \log(b - a) + \log(\Phi(u + L) - \Phi(u - L)) - \log 2L`;
      :math:`u = F_L^{-1}` by Newton steps from a closed-form start (float64). Affine in the middle of the box, Gaussian tails at
      the bounds; probit is its limit :math:`L \to 0`;
    * lower bound :math:`a`: :math:`u = \log(\theta - a)`, :math:`\theta = a + e^u`,
      :math:`\log|\partial\theta/\partial u| = u`;
    * upper bound :math:`b`: :math:`u = \log(b - \theta)`, :math:`\theta = b - e^u`,
      :math:`\log|\partial\theta/\partial u| = u`.

    The maps run in float64 and :meth:`inverse` clamps its result into the open box in the
    output dtype, so a sample never lands on or beyond a bound through round-off (``sigmoid``
    saturates to exactly 1 in float32 for ``u > 17``, ``ndtr`` in float64 for ``u > 8.3``). Densities: :math:`\log p_\theta(\theta) =
    \log p_u(T(\theta)) + \log|\partial u/\partial\theta|`. As a block of a flow over
    parameters it comes first, so that the flow's samples never leave the box.

    Which map: a posterior whose density stays positive up to a bound (a truncated Gaussian at
    the edge of a uniform prior, the common case) has Gaussian tails in probit (and linear)
    space, which a flow with a Gaussian base represents, but exponential (logistic) tails in logit
    space, which it does not. Measured with ``fit_posterior``'s defaults (C2ST, mean of 5
    observations, lower is better): on the 10-D Gaussian-linear task with a uniform prior, 10^3 /
    10^4 simulations, logit .662 / .629, probit .605 / .595. Inside the box the probit bends
    every posterior that is not narrow against the box, so the affine head's conditional Gaussian
    no longer fits it and the couplings must learn the bend from the pairs: the linear map keeps
    the middle of the box (nearly) affine, and ``fit_posterior`` uses it by default. Against the
    probit (two training seeds on the Gaussian-linear-uniform task at 10^4): Gaussian linear
    uniform .601 / .605 -> .579 / .578 at 10^4, .619 -> .597 at 10^3; SLCP .836 -> .827 and
    .961 -> .955; two moons .576 -> .570 and .700 -> .705; Gaussian mixture .586 -> .586 and
    .700 -> .697; SLCP with 92 distractors .924 -> .928 at 10^4.

    Args:
        lower, upper: bounds ``(D,)``, ``-inf`` / ``+inf`` where a side is unbounded.
        interval: the map of components bounded on both sides, ``"probit"``, ``"logit"`` or ``"linear"``.
        half_width: :math:`L` of the ``"linear"`` map (ignored by the others). How much of a posterior
            that piles against a bound lies in the map's Gaussian tail grows as :math:`L` shrinks,
            and a flow extrapolates that tail. On the 10-D Gaussian-linear task with a uniform prior
            (``fit_posterior``'s defaults, 20 observations, C2ST): at 10^5 simulations L = 2, 3, 4,
            6, 8 score .542, .536, .534, .540, .547, and the held-out KL falls from .080 to .036
            nats from L = 2 to 4; at 10^4, L = 2, 3, 4, 6 score .609, .630, .614, .619 (standard
            error about .012), with the held-out KL .250 at L = 2 and .201 at L = 4. On sbibm's
            observations at 10^3, L = 4 scores .639 against .605, and on SLCP at 10^4 .869 against
            .856; two moons and the Gaussian mixture are level. On sbibm's observations at 10^5, L = 4
            against 2: Gaussian-linear-uniform .529 against .534 (under sbibm's metric .506 against
            .515), two moons .514 / .517, Gaussian mixture .518 / .515, SLCP .691 / .688; at 3 x 10^4
            the rule's L = 2.95 against 2: SLCP .760 / .781, two moons .533 / .531, and on 20 fresh
            Gaussian-linear-uniform observations .575 / .581. ``fit_posterior`` therefore takes
            :math:`L` from the number of simulations (:func:`~innverse.blocks.half_width_for`: 2 up to 10^4, 4 from
            10^5); the default here stays 2.
    """

    def __init__(self, lower: Tensor, upper: Tensor, interval: str = "probit",
                 half_width: float = LINEAR_HALF_WIDTH) -> None:
        lower = torch.as_tensor(lower, dtype=torch.float64).reshape(-1)
        upper = torch.as_tensor(upper, dtype=torch.float64).reshape(-1)
        if lower.shape != upper.shape or lower.numel() == 0:
            raise ValueError(f"SupportTransform: lower {tuple(lower.shape)} and upper {tuple(upper.shape)} must be "
                             "non-empty and of the same shape")
        if not (upper > lower).all():
            raise ValueError(f"SupportTransform: need upper > lower, got {lower.tolist()} and {upper.tolist()}")
        if interval not in INTERVAL_MAPS:
            raise ValueError(f"SupportTransform: interval must be one of {INTERVAL_MAPS}, got {interval!r}")
        if not (math.isfinite(half_width) and half_width > 0):
            raise ValueError(f"SupportTransform: half_width must be a positive finite number, got {half_width!r}")
        super().__init__(lower.shape[0])
        self.interval = interval
        self.half_width = float(half_width)
        lo_f, hi_f = torch.isfinite(lower), torch.isfinite(upper)
        kind = torch.full(lower.shape, _REAL, dtype=torch.long)
        kind[lo_f & ~hi_f] = _LOWER
        kind[~lo_f & hi_f] = _UPPER
        kind[lo_f & hi_f] = _INTERVAL
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)
        self.register_buffer("kind", kind)
        self._bounded = bool((kind != _REAL).any())

    @property
    def features(self) -> int:
        return self.lower.shape[0]

    @property
    def bounded(self) -> bool:
        """Whether any component has a finite bound (else the transform is the identity)."""
        return self._bounded

    def _geometry(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Masks of the interval, lower- and upper-bounded components, and finite stand-ins for the bounds."""
        interval, low, up = self.kind == _INTERVAL, self.kind == _LOWER, self.kind == _UPPER
        lo = torch.where(torch.isfinite(self.lower), self.lower, 0.0)
        hi = torch.where(torch.isfinite(self.upper), self.upper, 1.0)
        return interval, low, up, lo, hi, torch.where(interval, hi - lo, 1.0)

    def inside(self, theta: Tensor) -> Tensor:
        """Boolean ``(...)``: whether each row ``(..., D)`` is finite and lies in the closed box.

        The one definition of the support, shared by every check and by the bijection: a value
        exactly on a finite bound (float32 uniform draws land on ``low`` about 5 times in
        :math:`10^8`) is inside, and :meth:`forward` maps it to a finite ``u`` at the input
        dtype's resolution.
        """
        t = theta.to(torch.float64)
        return ((t >= self.lower) & (t <= self.upper)).all(-1) & torch.isfinite(t).all(-1)

    def _forward(self, theta: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        """``theta (B, D)`` inside the box -> ``(u, log|du/dtheta|)``."""
        if not self.bounded:
            return theta, None
        t = theta.to(torch.float64)
        interval, low, up, lo, hi, width = self._geometry()
        # A value on a bound (float32 uniform draws can hit ``low`` exactly) maps to a finite u
        # at the input dtype's resolution rather than to -inf.
        eps, tiny = torch.finfo(theta.dtype).eps, torch.finfo(theta.dtype).tiny
        p = ((t - lo) / width).clamp(eps, 1.0 - eps)
        u_int = self._interval_forward(t, p, lo, hi, width, eps)
        u_low = torch.log((t - lo).clamp_min(tiny))
        u_up = torch.log((hi - t).clamp_min(tiny))
        u = torch.where(interval, u_int, torch.where(low, u_low, torch.where(up, u_up, t)))
        if not log_det:
            return u.to(theta.dtype), None
        # log|du/dtheta| = -log|dtheta/du|
        ld = torch.where(interval, -self._interval_log_det(u, width), torch.where(low | up, -u, 0.0)).sum(-1)
        return u.to(theta.dtype), ld.to(theta.dtype)

    def _interval_forward(self, t: Tensor, p: Tensor, lo: Tensor, hi: Tensor, width: Tensor, eps: float) -> Tensor:
        """``u`` of the interval map at ``t`` (float64), ``p`` its clamped position in the box."""
        if self.interval == "probit":
            return torch.special.ndtri(p)
        if self.interval == "logit":
            return torch.log(p) - torch.log1p(-p)
        # the nearer bound's side, measured from that bound (1 - p would lose the digits near the upper one)
        upper = p > 0.5
        q = torch.where(upper, ((hi - t) / width).clamp(eps, 0.5), p.clamp(max=0.5))
        w = _linear_quantile(q, self.half_width)
        return torch.where(upper, -w, w)

    def _interval_log_det(self, u: Tensor, width: Tensor) -> Tensor:
        r"""Log-Jacobian of the interval map, elementwise (float64): :math:`\log|\partial\theta/\partial u|`."""
        if self.interval == "probit":
            return torch.log(width) - 0.5 * u.square() - _HALF_LOG_2PI
        if self.interval == "logit":
            return torch.log(width) + F.logsigmoid(u) + F.logsigmoid(-u)
        return torch.log(width) + _linear_log_density(u, self.half_width)

    def _interval_unit(self, v: Tensor, lo: Tensor, hi: Tensor, width: Tensor) -> Tensor:
        """``theta`` of the interval map at ``v`` (float64)."""
        if self.interval == "probit":
            return lo + width * torch.special.ndtr(v)
        if self.interval == "logit":
            return lo + width * torch.sigmoid(v)
        q = _linear_cdf(-v.abs(), self.half_width)   # measured from the nearer bound
        return torch.where(v > 0, hi - width * q, lo + width * q)

    def _inverse(self, u: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        """``u (B, D)`` -> ``(theta, log|dtheta/du|)``; ``theta`` strictly inside the box."""
        if not self.bounded:
            return u, None
        v = u.to(torch.float64)
        interval, low, up, lo, hi, width = self._geometry()
        ev = torch.exp(v)
        t_int = self._interval_unit(v, lo, hi, width)
        t = torch.where(interval, t_int, torch.where(low, lo + ev, torch.where(up, hi - ev, v)))
        if not log_det:
            return self.clamp_inside(t.to(u.dtype)), None
        ld = torch.where(interval, self._interval_log_det(v, width), torch.where(low | up, v, 0.0)).sum(-1)
        return self.clamp_inside(t.to(u.dtype)), ld.to(u.dtype)

    def clamp_inside(self, theta: Tensor) -> Tensor:
        """Clamp into the open box, one representable step inside each finite bound, in ``theta.dtype``."""
        lo = self.lower.to(theta.dtype)
        hi = self.upper.to(theta.dtype)
        lo_in = torch.nextafter(lo, torch.full_like(lo, float("inf")))
        hi_in = torch.nextafter(hi, torch.full_like(hi, -float("inf")))
        lo_in = torch.where(torch.isfinite(lo), lo_in, -torch.finfo(theta.dtype).max)
        hi_in = torch.where(torch.isfinite(hi), hi_in, torch.finfo(theta.dtype).max)
        return torch.maximum(torch.minimum(theta, hi_in), lo_in)
