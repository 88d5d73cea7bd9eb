"""Masked autoencoder for distribution estimation (MADE): an autoregressive conditioner."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """``y = (W * M) x + b`` with a fixed 0/1 connectivity mask ``M`` (a buffer, saved with the state)."""

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Autoregressive network: output group ``i`` depends only on ``x_{<i}`` and the context.

    For an input :math:`x \in \mathbb R^D` and an optional context :math:`c`, the output has
    ``params * D`` entries ordered as ``params`` chunks of ``D``; entry ``(p, i)`` is a function of
    :math:`(x_1, \dots, x_{i-1}, c)` only. Input ``i`` has degree :math:`i` (1-based), hidden
    units degrees :math:`0 \dots D-1` in turn, and a connection exists from degree :math:`a` to
    hidden degree :math:`b` when :math:`b \ge a` and to output degree :math:`i` when
    :math:`i > b`. Degree-0 units see only the context, so the first feature's parameters are a
    function of the context (not a constant, as in the original MADE with a context added to the
    first layer). The context reaches every hidden unit unmasked.

    ``linear_skip`` adds a direct masked linear path :math:`L x + K c` (strictly lower-triangular
    :math:`L`) to the output, so that one autoregressive affine layer can represent any
    correlated Gaussian exactly; the MLP path learns the nonlinear remainder. With
    ``zero_init`` the last layers start at zero (an autoregressive flow then starts as the identity).

    Args:
        features: ``D``.
        params: number of outputs per feature.
        hidden: widths of the hidden layers.
        context_features: size of the (vector) context, 0 for none.
        activation: hidden activation (a class).
        linear_skip: add the direct masked linear path.
        zero_init: zero the output layers.

    References:
        Germain, Gregor, Murray, Larochelle. "MADE: Masked Autoencoder for Distribution
        Estimation". ICML 2015.
    """

    def __init__(self, features: int, params: int, hidden: Sequence[int] = (64, 64), context_features: int = 0,
                 activation: Callable[[], nn.Module] = nn.ReLU, linear_skip: bool = True,
                 zero_init: bool = True) -> None:
        super().__init__()
        if features < 1 or params < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"MADE: need features >= 1, params >= 1 and non-empty positive hidden widths, "
                             f"got features={features}, params={params}, hidden={tuple(hidden)}")
        self.features, self.params, self.context_features = int(features), int(params), int(context_features)
        d_in = torch.arange(1, features + 1)
        d_out = d_in.repeat(params)
        ctx = self.context_features
        layers: list[nn.Module] = []
        prev = d_in
        degrees = [torch.arange(int(width)) % features for width in hidden]
        # for sequential(): hidden units ordered by degree, and how many of them (degree <= k) feature k needs
        self._degree_order = [torch.argsort(deg, stable=True) for deg in degrees]
        self._needed_units = [[int((deg <= k).sum()) for deg in degrees] for k in range(features)]
        for i, width in enumerate(hidden):
            d_hid = degrees[i]
            mask = (d_hid[:, None] >= prev[None, :]).float()
            if i == 0 and ctx:
                mask = torch.cat([mask, torch.ones(int(width), ctx)], 1)
            layers += [MaskedLinear(mask), activation()]
            prev = d_hid
        last = MaskedLinear((d_out[:, None] > prev[None, :]).float())
        self.net = nn.Sequential(*layers, last)
        self.skip: MaskedLinear | None = None
        if linear_skip:
            mask = (d_out[:, None] > d_in[None, :]).float()
            if ctx:
                mask = torch.cat([mask, torch.ones(len(d_out), ctx)], 1)
            self.skip = MaskedLinear(mask, bias=False)
        if zero_init:
            for layer in (last, self.skip):
                if layer is not None:
                    nn.init.zeros_(layer.weight)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)

    def sequential(self, c: Tensor | None, rows: int) -> _SequentialOutputs:
        """Outputs one feature at a time, for the ``D`` passes of an autoregressive inverse.

        Feature ``k``'s outputs depend on ``x_{<k}`` only, and a hidden unit of degree ``j`` on
        ``x_{<=j}`` only. Instead of ``D`` full passes (every output from every input), pass ``k``
        computes the degree-``k`` hidden units, which no later feature changes, and feature
        ``k``'s rows of the output layer; the context's part of the first and skip layers is
        computed once. All ``D`` passes together do the work of about one forward pass.
        Equal to :meth:`forward` up to round-off (tested), and differentiable.
        """
        if self.context_features and c is None:
            raise ValueError(f"MADE: expected a context of {self.context_features} features, got None")
        return _SequentialOutputs(self, c, rows)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if self.context_features:
            if c is None:
                raise ValueError(f"MADE: expected a context of {self.context_features} features, got None")
            h = torch.cat([x, c], 1)
        else:
            h = x
        out = self.net(h)
        return out if self.skip is None else out + self.skip(h)


class _Units:
    """Hidden units of one layer, feature-major (``(units, rows)``), filled one degree block at a time.

    Without autograd each block is computed straight into one preallocated buffer, so the
    leading units are a contiguous view and nothing is copied; with autograd (a buffer written in
    place would invalidate the inputs saved for the backward pass) the blocks are concatenated.
    """

    def __init__(self, size: int, rows: int, like: Tensor, grad: bool) -> None:
        self.grad = grad
        self.n = 0
        self.data = like.new_empty(0 if grad else size, rows)

    def add(self, bias: Tensor, weight: Tensor | None = None, inputs: Tensor | None = None,
            activation: Callable[[Tensor], Tensor] | None = None) -> None:
        """Append the block ``activation(bias + weight @ inputs)`` (``bias`` alone without inputs)."""
        m = bias.shape[0]
        if self.grad:
            block = bias if inputs is None else torch.addmm(bias, weight, inputs)
            block = block if activation is None else activation(block)
            self.data = torch.cat([self.data, block])
        else:
            out = self.data[self.n:self.n + m]
            if inputs is None:
                out.copy_(bias)
            else:
                torch.addmm(bias, weight, inputs, out=out)
            if type(activation) is nn.ReLU:
                out.relu_()
            elif activation is not None:
                out.copy_(activation(out))
        self.n += m

    def leading(self) -> Tensor:
        return self.data[:self.n]


class _SequentialOutputs:
    """State of :meth:`MADE.sequential`: call with feature ``k`` and the exact ``x_{<k}`` columns.

    A hidden unit of degree ``j`` depends on ``x_{<=j}`` only (1-based inputs; the context aside),
    so once known it never changes. Hidden units are reordered by degree once; pass ``k``
    computes only the block of degree-``k`` units in every layer (from the already known units of
    degree ``<= k`` below) and feature ``k``'s output rows. Over the ``D`` passes this is the
    work of one masked forward pass plus the context's part of the first and skip layers, which
    is computed once. Everything is kept feature-major (``(units, rows)``) so that each new block
    and each leading block of units is a contiguous slice.
    """

    def __init__(self, made: MADE, c: Tensor | None, rows: int) -> None:
        d = made.features
        layers = [m for m in made.net if isinstance(m, MaskedLinear)]
        self.activations = [m for m in made.net if not isinstance(m, MaskedLinear)]
        first, *hidden, last = layers
        device = first.weight.device
        order = [o.to(device) for o in made._degree_order]
        # units of layer l with degree <= k: the leading block of the reordered layer
        self.needed = made._needed_units
        w1 = (first.weight * first.mask)[order[0]]
        b1 = first.bias[order[0]]
        grad = torch.is_grad_enabled()  # (under no_grad, e.g. in Flow.sample, the buffers are written in place)
        self.w1x = w1[:, :d]
        # first-layer pre-activations from the context and bias, (units, rows)
        self.pre = (torch.addmm(b1[:, None], w1[:, d:], c.T) if made.context_features
                    else b1[:, None].expand(-1, rows))
        self.hidden = [((m.weight * m.mask)[o][:, o_prev], m.bias[o][:, None])
                       for m, o, o_prev in zip(hidden, order[1:], order[:-1])]
        like = self.pre
        self.units = [_Units(len(o), rows, like, grad) for o in order]
        self.x = _Units(d, rows, like, grad)  # the known features x_{<k}, one row each
        # feature k's output rows are k, d + k, 2d + k, ...
        self.d = d
        self.w_last = (last.weight * last.mask)[:, order[-1]]
        # the output layer's bias, plus the skip path's context part: (outputs, 1) or (outputs, rows)
        self.b_last = last.bias[:, None]
        self.skip_x: Tensor | None = None
        if made.skip is not None:
            ws = made.skip.weight * made.skip.mask
            self.skip_x = ws[:, :d]
            if made.context_features:
                self.b_last = torch.addmm(self.b_last, ws[:, d:], c.T)

    def __call__(self, k: int, columns: list[Tensor]) -> Tensor:
        """Outputs ``(B, params)`` of feature ``k`` (ordered like :meth:`MADE.forward`'s groups) from ``x_{<k}``."""
        if k > 0:  # feature k - 1 is now known
            self.x.add(columns[k - 1].reshape(1, -1))
        x = self.x.leading()
        n, n_prev = self.needed[k], self.needed[k - 1] if k > 0 else [0] * len(self.units)
        lo, hi = n_prev[0], n[0]
        if hi > lo:
            self.units[0].add(self.pre[lo:hi], self.w1x[lo:hi, :k], x if k > 0 else None, self.activations[0])
        for i, ((w, b), act) in enumerate(zip(self.hidden, self.activations[1:]), 1):
            lo, hi = n_prev[i], n[i]
            if hi > lo:
                below = self.units[i - 1].leading()
                self.units[i].add(b[lo:hi], w[lo:hi, :below.shape[0]], below, act)
        rows = slice(k, None, self.d)
        h = self.units[-1].leading()
        out = torch.addmm(self.b_last[rows], self.w_last[rows, :h.shape[0]], h)
        if self.skip_x is not None and k > 0:
            out = torch.addmm(out, self.skip_x[rows, :k], x)
        return out.T
