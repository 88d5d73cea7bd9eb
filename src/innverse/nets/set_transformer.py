"""Set transformer summary network: induced set attention (ISAB) and attention pooling (PMA)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .sets import _activation, padding_mask

__all__ = ["SetTransformer", "MultiheadAttentionBlock"]


class MultiheadAttentionBlock(nn.Module):
    r"""MAB: :math:`H = \mathrm{LN}(Q + \mathrm{MHA}(Q, K, K))`, :math:`\mathrm{MAB}(Q, K) = \mathrm{LN}(H + \mathrm{rFF}(H))`.

    ``key_valid (B, Nk)`` marks the keys to attend to (padding keys are ignored).
    """

    def __init__(self, dim: int, heads: int, activation: str = "gelu") -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        act = _activation(activation, "MultiheadAttentionBlock")
        self.ff = nn.Sequential(nn.Linear(dim, dim), act(), nn.Linear(dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, q: Tensor, k: Tensor, key_valid: Tensor | None = None) -> Tensor:
        mask = None if key_valid is None else ~key_valid
        a, _ = self.attention(q, k, k, key_padding_mask=mask, need_weights=False)
        h = self.norm1(q + a)
        return self.norm2(h + self.ff(h))


class SetTransformer(nn.Module):
    r"""Permutation-invariant set summary with attention between elements.

    .. math::
        Z = \mathrm{ISAB}_L \circ \dots \circ \mathrm{ISAB}_1(W x),\quad
        \mathrm{ISAB}(X) = \mathrm{MAB}(X, \mathrm{MAB}(I, X)),\quad
        s = \rho\big([\mathrm{PMA}_k(Z), \log n]\big),\quad \mathrm{PMA}_k(Z) = \mathrm{MAB}(S, \mathrm{rFF}(Z)),

    with ``inducing`` learned inducing points :math:`I` (cost linear in the set size) and ``seeds``
    learned seed vectors :math:`S`. Padding rows (all NaN) are masked out of every attention as
    keys, so results do not depend on the amount of padding.

    Args:
        in_features: features per element.
        out_features: summary size.
        dim: attention width; heads: attention heads (must divide ``dim``).
        blocks: number of ISAB blocks; inducing: inducing points per ISAB; seeds: PMA seeds.
        activation: feed-forward activation.

    Input ``(B, N, F)`` or one set ``(N, F)``; output ``(B, out_features)``.

    References:
        Lee et al. "Set Transformer: A Framework for Attention-based Permutation-Invariant
        Neural Networks". ICML 2019.
    """

    #: accepts NaN-padded inputs of any number of rows
    variable_size = True

    def __init__(self, in_features: int, out_features: int = 32, dim: int = 64, heads: int = 4,
                 blocks: int = 2, inducing: int = 16, seeds: int = 1, activation: str = "gelu") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SetTransformer: heads ({heads}) must divide dim ({dim})")
        if min(in_features, out_features, dim, heads, blocks, inducing, seeds) < 1:
            raise ValueError("SetTransformer: all sizes must be positive")
        self._config = {"in_features": in_features, "out_features": out_features, "dim": dim, "heads": heads,
                        "blocks": blocks, "inducing": inducing, "seeds": seeds, "activation": activation}
        self.in_features = in_features
        self.out_features = out_features
        act = _activation(activation, "SetTransformer")
        self.embed = nn.Linear(in_features, dim)
        self.inducing = nn.ParameterList([nn.Parameter(torch.randn(inducing, dim) / dim**0.5) for _ in range(blocks)])
        self.mab_in = nn.ModuleList([MultiheadAttentionBlock(dim, heads, activation) for _ in range(blocks)])
        self.mab_out = nn.ModuleList([MultiheadAttentionBlock(dim, heads, activation) for _ in range(blocks)])
        self.seeds = nn.Parameter(torch.randn(seeds, dim) / dim**0.5)
        self.pool_ff = nn.Sequential(nn.Linear(dim, dim), act())
        self.pool = MultiheadAttentionBlock(dim, heads, activation)
        self.head = nn.Sequential(nn.Linear(seeds * dim + 1, dim), act(), nn.Linear(dim, out_features))

    def config(self) -> dict[str, Any]:
        """JSON description from which :func:`~innverse.nets.summary_from_config` rebuilds the net."""
        return {"type": "set_transformer", **self._config}

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"SetTransformer: expected (batch, elements, {self.in_features}), got {tuple(x.shape)}")
        values, valid = padding_mask(x, "SetTransformer")
        b = x.shape[0]
        z = self.embed(values)
        for ind, mab_in, mab_out in zip(self.inducing, self.mab_in, self.mab_out):
            h = mab_in(ind.expand(b, -1, -1), z, valid)   # inducing points attend to valid elements
            z = mab_out(z, h)                               # elements attend to the inducing summary
        pooled = self.pool(self.seeds.expand(b, -1, -1), self.pool_ff(z), valid)
        count = valid.sum(1, keepdim=True).to(z.dtype)
        return self.head(torch.cat([pooled.flatten(1), torch.log(count)], -1))
