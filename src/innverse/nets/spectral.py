r"""Spectrally normalised linear and convolutional layers with a Lipschitz constant ``<= coeff``.

Both layers rescale their weight as

.. math::
    \tilde W = W / \max(1, \hat\sigma(W) / c),

so the operator norm of the layer is at most ``c`` (up to the accuracy of :math:`\hat\sigma`).
:math:`\hat\sigma` is either the exact largest singular value (``mode="exact"``, differentiable
through an SVD; for convolutions a certified upper bound, see :class:`SpectralConv2d`) or a
power-iteration estimate :math:`u^\top W v` whose iterates ``u``, ``v`` live in buffers
(``mode="power"``, saved with the state dict).

Power iterates are refreshed whenever the weight has changed since the last refresh (an optimiser
step, ``load_state_dict``, ``.to()``): ``n_power_iterations`` steps in training mode (the usual
one step per optimiser step), iterations to convergence in eval mode, so evaluation never uses a
stale estimate. Between refreshes the layer is a fixed function, which an iterative inverse
relies on.

References:
    Miyato et al. "Spectral Normalization for Generative Adversarial Networks". ICLR 2018;
    Behrmann et al. "Invertible Residual Networks". ICML 2019;
    Sedghi, Gupta, Long. "The Singular Values of Convolutional Layers". ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AbstractSpectralLayer", "SpectralLinear", "SpectralConv2d", "MODES"]

MODES = ("auto", "exact", "power")


def _normalize(t: Tensor, eps: float = 1e-12) -> Tensor:
    return t / t.norm().clamp_min(eps)


class AbstractSpectralLayer(nn.Module):
    """Shared machinery: coefficient, mode, power-iteration buffers and their refresh schedule."""

    weight: nn.Parameter
    u: Tensor
    v: Tensor

    def __init__(self, coeff: float, mode: str, n_power_iterations: int, eval_tolerance: float,
                 eval_max_iterations: int) -> None:
        super().__init__()
        name = type(self).__name__
        if not 0.0 < coeff:
            raise ValueError(f"{name}: coeff must be positive, got {coeff}")
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}")
        if n_power_iterations < 1:
            raise ValueError(f"{name}: n_power_iterations must be >= 1, got {n_power_iterations}")
        self.coeff = float(coeff)
        self.n_power_iterations = int(n_power_iterations)
        self.eval_tolerance = float(eval_tolerance)
        self.eval_max_iterations = int(eval_max_iterations)
        self._synced: tuple | None = None
        self._cache: tuple | None = None  # (key, normalised weight, its norm) for graph-free use

    # -- to implement -----------------------------------------------------------------------------
    def _apply_weight(self, x: Tensor, w: Tensor) -> Tensor:
        raise NotImplementedError

    def _apply_transpose(self, y: Tensor, w: Tensor) -> Tensor:
        raise NotImplementedError

    def exact_norm(self, weight: Tensor | None = None) -> Tensor:
        """Exact (linear) or certified upper bound (conv) of the operator norm of ``weight``."""
        raise NotImplementedError

    @property
    def exact(self) -> bool:
        raise NotImplementedError

    # -- power iteration --------------------------------------------------------------------------
    def _key(self) -> tuple:
        w = self.weight
        return (w._version, w.data_ptr(), w.dtype)

    @torch.no_grad()
    def power_iteration_(self, iterations: int, tolerance: float = 0.0) -> float:
        """Run power iteration on the buffers ``u``, ``v``; return the estimate of sigma.

        Stops early when the estimate changes by less than ``tolerance`` (relative).
        """
        w = self.weight.detach()
        u, v = self.u.to(w.dtype), self.v.to(w.dtype)
        sigma = math.nan
        for _ in range(iterations):
            v = _normalize(self._apply_transpose(u, w))
            wv = self._apply_weight(v, w)
            new = float(wv.norm())
            u = _normalize(wv)
            done = math.isfinite(sigma) and abs(new - sigma) <= tolerance * max(abs(new), 1e-30)
            sigma = new
            if done:
                break
        self.u.copy_(u)
        self.v.copy_(v)
        self._synced = (self._key(), tolerance > 0)
        return sigma

    def _refresh(self) -> None:
        # Training: a few steps per weight change. Eval: converge once per weight change, also
        # when the last training steps already saw these weights.
        if self._synced is not None and self._synced[0] == self._key() and (self.training or self._synced[1]):
            return
        if self.training:
            self.power_iteration_(self.n_power_iterations)
        else:
            self.power_iteration_(self.eval_max_iterations, self.eval_tolerance)

    def sigma(self) -> Tensor:
        r"""The normalising estimate of the operator norm (differentiable in the weight)."""
        if self.exact:
            return self.exact_norm()
        self._refresh()
        # Clones: later in-place refreshes must not invalidate graphs that saved u and v.
        u, v = self.u.clone(), self.v.clone()
        return (u * self._apply_weight(v, self.weight)).sum()

    def normalized_weight(self) -> Tensor:
        r""":math:`W / \max(1, \hat\sigma / c)`.

        Without autograd (e.g. inside an iterative inverse) the result is cached until the
        weight or the power iterates change.
        """
        if torch.is_grad_enabled():
            return self.weight / torch.clamp(self.sigma() / self.coeff, min=1.0)
        if not self.exact:
            self._refresh()
        key = (self._key(), self.u._version, self.v._version)
        if self._cache is None or self._cache[0] != key:
            w = self.weight / torch.clamp(self.sigma() / self.coeff, min=1.0)
            self._cache = (key, w, None)
        return self._cache[1]

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        """Operator norm of the layer as used now: exact, or a certified bound for large convs."""
        w = self.normalized_weight()
        assert self._cache is not None
        if self._cache[2] is None:
            self._cache = (self._cache[0], w, float(self.operator_norm(w)))
        return self._cache[2]

    def operator_norm(self, weight: Tensor) -> Tensor:
        """Largest singular value of the layer's linear map with ``weight`` (or an upper bound)."""
        return self.exact_norm(weight)


class SpectralLinear(AbstractSpectralLayer):
    r"""A linear layer :math:`y = \tilde W x + b` with :math:`\|\tilde W\|_2 \le c`.

    Args:
        in_features, out_features: sizes.
        coeff: the bound ``c`` on the spectral norm.
        bias: learnable bias.
        mode: ``"exact"`` (SVD), ``"power"`` (power iteration), or ``"auto"``: exact when
            ``max(in, out) <= exact_max`` (cheap for small layers), else power.
        n_power_iterations: power steps per weight change in training mode.
        eval_tolerance, eval_max_iterations: convergence of the refresh in eval mode.
    """

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.97, bias: bool = True,
                 mode: str = "auto", n_power_iterations: int = 1, exact_max: int = 64,
                 eval_tolerance: float = 1e-9, eval_max_iterations: int = 1000) -> None:
        super().__init__(coeff, mode, n_power_iterations, eval_tolerance, eval_max_iterations)
        if in_features < 1 or out_features < 1:
            raise ValueError(f"SpectralLinear: sizes must be positive, got ({in_features}, {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        layer = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default initialisation
        self.weight = layer.weight
        self.bias = layer.bias
        self._exact = mode == "exact" or (mode == "auto" and max(in_features, out_features) <= exact_max)
        self.register_buffer("u", _normalize(torch.randn(out_features)))
        self.register_buffer("v", _normalize(torch.randn(in_features)))

    @property
    def exact(self) -> bool:
        return self._exact

    def _apply_weight(self, x: Tensor, w: Tensor) -> Tensor:
        return w @ x

    def _apply_transpose(self, y: Tensor, w: Tensor) -> Tensor:
        return w.T @ y

    def exact_norm(self, weight: Tensor | None = None) -> Tensor:
        return torch.linalg.matrix_norm(self.weight if weight is None else weight, ord=2)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, coeff={self.coeff}, "
                f"mode={'exact' if self.exact else 'power'}")


class SpectralConv2d(AbstractSpectralLayer):
    r"""A stride-1, zero-padded ("same") convolution whose operator norm is at most ``c``.

    The norm is that of the convolution as a linear operator on ``(C_in, H, W)`` images, not of
    the reshaped kernel matrix (which neither bounds nor equals it).

    * ``mode="power"``: power iteration on the convolution operator itself,
      :math:`v \leftarrow K^\top u / \|\cdot\|`, :math:`u \leftarrow K v / \|\cdot\|` with
      ``conv2d`` / ``conv_transpose2d`` on images of the layer's ``input_size``.
    * ``mode="exact"``: a certified upper bound. A zero-padded convolution on ``H x W`` is the
      restriction of the circular convolution on the padded grid ``(H + 2p) x (W + 2p)`` to the
      zero-padded inputs and the central outputs, so its norm is at most that of the circular
      one, which the 2-D DFT diagonalises:
      :math:`\|K\| \le \max_\omega \|\hat K(\omega)\|_2` with
      :math:`\hat K(\omega) \in \mathbb C^{C_{out} \times C_{in}}` the DFT of the kernel
      (Sedghi et al. 2019). Exact for circular convolutions, tight in practice.
    * ``"auto"``: exact when ``C_in * C_out * (H + 2p) * (W + 2p) <= exact_max`` .

    Args:
        in_channels, out_channels, kernel_size: an odd kernel size (``padding = k // 2``).
        input_size: ``(H, W)`` of the images the layer acts on (needed for the operator norm).
        coeff, bias, mode, n_power_iterations, eval_tolerance, eval_max_iterations:
            as :class:`SpectralLinear`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 input_size: SequenceABC[int], coeff: float = 0.97, bias: bool = True,
                 mode: str = "auto", n_power_iterations: int = 1, exact_max: int = 65536,
                 eval_tolerance: float = 1e-9, eval_max_iterations: int = 1000) -> None:
        super().__init__(coeff, mode, n_power_iterations, eval_tolerance, eval_max_iterations)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SpectralConv2d: kernel_size must be odd and positive, got {kernel_size}")
        size = tuple(int(s) for s in input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"SpectralConv2d: input_size must be (H, W), got {tuple(input_size)}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.padding, self.input_size = int(kernel_size), kernel_size // 2, size
        layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=self.padding, bias=bias)
        self.weight = layer.weight
        self.bias = layer.bias
        grid = (size[0] + 2 * self.padding) * (size[1] + 2 * self.padding)
        self._exact = mode == "exact" or (mode == "auto" and in_channels * out_channels * grid <= exact_max)
        self.register_buffer("u", _normalize(torch.randn(1, out_channels, *size)))
        self.register_buffer("v", _normalize(torch.randn(1, in_channels, *size)))

    @property
    def exact(self) -> bool:
        return self._exact

    def _apply_weight(self, x: Tensor, w: Tensor) -> Tensor:
        return F.conv2d(x, w, padding=self.padding)

    def _apply_transpose(self, y: Tensor, w: Tensor) -> Tensor:
        return F.conv_transpose2d(y, w, padding=self.padding)

    def exact_norm(self, weight: Tensor | None = None) -> Tensor:
        w = self.weight if weight is None else weight
        grid = (self.input_size[0] + 2 * self.padding, self.input_size[1] + 2 * self.padding)
        spectrum = torch.fft.fft2(w, s=grid).permute(2, 3, 0, 1)  # (H', W', C_out, C_in)
        return torch.linalg.matrix_norm(spectrum, ord=2).max()

    def operator_norm(self, weight: Tensor, dense_max: int = 1024) -> Tensor:
        """Exact norm of the zero-padded operator for small images (SVD of its dense matrix,
        at most ``dense_max`` inputs), else the certified FFT bound of :meth:`exact_norm`."""
        n = self.in_channels * self.input_size[0] * self.input_size[1]
        if n > dense_max:
            return self.exact_norm(weight)
        basis = torch.eye(n, dtype=weight.dtype, device=weight.device).reshape(n, self.in_channels,
                                                                               *self.input_size)
        matrix = F.conv2d(basis, weight, padding=self.padding).reshape(n, -1)
        return torch.linalg.matrix_norm(matrix, ord=2)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"input_size={self.input_size}, coeff={self.coeff}, mode={'exact' if self.exact else 'power'}")
