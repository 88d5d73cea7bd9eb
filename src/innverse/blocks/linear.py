"""Linear invertible blocks: ActNorm, permutations, orthogonal mixing, LU-decomposed maps."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context

__all__ = ["ActNorm", "RandomPermutation", "Orthogonal", "LULinear", "InvertibleConv1x1"]


def _check_layout(block: AbstractInvertible) -> None:
    if len(block.event_shape) not in (1, 3):
        raise ValueError(f"{type(block).__name__}: expected a vector (D,) or image (C, H, W) "
                         f"event shape, got {block.event_shape}")


def _spatial(block: AbstractInvertible) -> int:
    return math.prod(block.event_shape[1:])


def _mix(x: Tensor, w: Tensor) -> Tensor:
    """Apply a (D, D) matrix to dim 1 of a vector batch or an image batch."""
    if x.dim() == 2:
        return F.linear(x, w)
    return F.conv2d(x, w[:, :, None, None])


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-feature/per-channel vector to broadcast against ``x``."""
    return v if x.dim() == 2 else v.reshape(1, -1, *([1] * (x.dim() - 2)))


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None:
        return generator
    if seed is not None:
        return torch.Generator().manual_seed(seed)
    return None


class ActNorm(AbstractInvertible):
    r"""Per-feature (per-channel) affine normalisation with data-dependent initialisation.

    .. math::
        y = x \odot e^{s} + b,\qquad \log|\det J| = (H W)\textstyle\sum_i s_i .

    On the first forward call in training mode, ``s`` and ``b`` are set so that the output of that
    batch has zero mean and unit variance per feature/channel; the ``initialized`` buffer
    records that this happened (it is saved with the state dict). A channel that is constant over
    that batch keeps scale 1.

    References:
        Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """

    def __init__(self, event_shape: int | SequenceABC[int], data_init: bool = True, eps: float = 1e-6) -> None:
        super().__init__(event_shape)
        _check_layout(self)
        c = self.event_shape[0]
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("initialized", torch.tensor(not data_init))
        self.eps = eps

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = [0, *list(range(2, x.dim()))]
        mean = x.mean(dims)
        std = x.std(dims) if x.shape[0] * _spatial(self) > 1 else torch.ones_like(mean)
        # a channel constant over the batch (a blank border pixel, an injective zero padding) keeps scale 1:
        # 1 / eps would blow up any later input that is not constant there, and squash it in the inverse
        std = torch.where(std > self.eps, std, torch.ones_like(std))
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.bias.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        if self.training and not bool(self.initialized):
            self._initialize(x)
        y = x * _bcast(torch.exp(self.log_scale), x) + _bcast(self.bias, x)
        ld = (self.log_scale.sum() * _spatial(self)).expand(x.shape[0]) if log_det else None
        return y, ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        x = (y - _bcast(self.bias, y)) * _bcast(torch.exp(-self.log_scale), y)
        ld = (-self.log_scale.sum() * _spatial(self)).expand(y.shape[0]) if log_det else None
        return x, ld


class RandomPermutation(AbstractInvertible):
    r"""A fixed random permutation of features (channels for images): :math:`y = x_{\pi}`.

    Log-det 0. The permutation is a buffer (saved with the state dict).

    Args:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        seed / generator: source of the permutation (default: torch's global generator).
        permutation: an explicit permutation instead of a random one.
    """

    def __init__(self, event_shape: int | SequenceABC[int], seed: int | None = None,
                 generator: torch.Generator | None = None, permutation: SequenceABC[int] | Tensor | None = None) -> None:
        super().__init__(event_shape)
        _check_layout(self)
        d = self.event_shape[0]
        if permutation is None:
            perm = torch.randperm(d, generator=_generator(seed, generator))
        else:
            perm = torch.as_tensor(permutation, dtype=torch.long)
            if perm.shape != (d,) or not torch.equal(perm.sort().values, torch.arange(d)):
                raise ValueError(f"RandomPermutation: {perm.tolist()} is not a permutation of {d} elements")
        self.register_buffer("permutation", perm)
        self.register_buffer("inverse_permutation", torch.argsort(perm))

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return x.index_select(1, self.permutation), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return y.index_select(1, self.inverse_permutation), None


class Orthogonal(AbstractInvertible):
    r"""Fixed random orthogonal mixing of features (a "soft permutation"): :math:`y = Q x`.

    :math:`Q` is drawn uniformly (Haar measure) as the sign-corrected Q factor of the QR
    decomposition of a fixed Gaussian matrix (a buffer, saved with the state dict). Q is
    recomputed in the working dtype, so it is orthogonal to that dtype's precision and
    :math:`\log|\det J| = 0`, inverse :math:`x = Q^\top y`. For images it is a fixed 1x1
    convolution.

    References:
        Ardizzone et al. "Guided Image Generation with Conditional Invertible Neural Networks". 2019.
    """

    def __init__(self, event_shape: int | SequenceABC[int], seed: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(event_shape)
        _check_layout(self)
        d = self.event_shape[0]
        raw = torch.randn(d, d, generator=_generator(seed, generator), dtype=torch.float64)
        self.register_buffer("raw", raw.to(torch.get_default_dtype()))
        self._cache: tuple[tuple, Tensor] | None = None

    def matrix(self) -> Tensor:
        """The orthogonal matrix Q (cached until the buffer changes)."""
        key = (self.raw.dtype, self.raw.device, self.raw._version, self.raw.data_ptr())
        if self._cache is None or self._cache[0] != key:
            q, r = torch.linalg.qr(self.raw)
            self._cache = (key, q * torch.sign(torch.diagonal(r)))
        return self._cache[1]

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return _mix(x, self.matrix()), None

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return _mix(y, self.matrix().T), None


class LULinear(AbstractInvertible):
    r"""Learnable invertible linear map in LU form; on images, GLOW's invertible 1x1 convolution.

    .. math::
        W = P L (U + \mathrm{diag}(\sigma \odot e^{v})),\qquad y = W x + b,\qquad
        \log|\det J| = (H W) \textstyle\sum_i v_i,

    with P a fixed permutation, L unit lower triangular, U strictly upper triangular and
    :math:`\sigma` fixed signs. The inverse uses two triangular solves. Initialised at a random
    rotation (P, L, U from its LU decomposition), so it starts volume-preserving.

    References:
        Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    """

    def __init__(self, event_shape: int | SequenceABC[int], bias: bool = True, seed: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(event_shape)
        _check_layout(self)
        d = self.event_shape[0]
        a = torch.randn(d, d, generator=_generator(seed, generator), dtype=torch.float64)
        q, _ = torch.linalg.qr(a)
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        dt = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dt))
        self.register_buffer("sign", torch.sign(diag).to(dt))
        self.register_buffer("lower_mask", torch.tril(torch.ones(d, d, dtype=dt), -1))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dt))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dt))
        self.log_diag = nn.Parameter(torch.log(diag.abs()).to(dt))
        self.bias = nn.Parameter(torch.zeros(d, dtype=dt)) if bias else None

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix :math:`W = P L U`."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        y = _mix(x, self.weight())
        if self.bias is not None:
            y = y + _bcast(self.bias, x)
        ld = (self.log_diag.sum() * _spatial(self)).expand(x.shape[0]) if log_det else None
        return y, ld

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        lower, upper = self._factors()
        if self.bias is not None:
            y = y - _bcast(self.bias, y)
        # W^{-1} = U^{-1} L^{-1} P^T, computed by triangular solves on the identity (D x D only).
        eye = torch.eye(lower.shape[0], dtype=y.dtype, device=y.device)
        inv = torch.linalg.solve_triangular(
            upper, torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True), upper=True
        ) @ self.perm.T
        x = _mix(y, inv)
        ld = (-self.log_diag.sum() * _spatial(self)).expand(y.shape[0]) if log_det else None
        return x, ld


#: GLOW's name for :class:`LULinear` applied to images.
InvertibleConv1x1 = LULinear
