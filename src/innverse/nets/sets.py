"""DeepSet summary network and the NaN-padding convention for sets and sequences.

Variable-size data share one batch tensor ``(B, N, F)``: a set of ``n < N`` elements (or a
series of ``n < N`` steps) fills ``n`` rows and the remaining rows are entirely NaN. A row with
some but not all entries NaN is an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DeepSet", "padding_mask", "masked_mean", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU, "tanh": nn.Tanh,
}


def _activation(name: str, owner: str) -> Callable[[], nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"{owner}: activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def padding_mask(x: Tensor, owner: str = "padding_mask") -> tuple[Tensor, Tensor]:
    """Split NaN-padded data ``(B, N, F)`` into zero-filled values and a validity mask ``(B, N)``.

    Raises:
        ValueError: a row is partly NaN, a set has no valid row, or the data contain +-inf.
    """
    if x.dim() != 3:
        raise ValueError(f"{owner}: expected (batch, elements, features), got shape {tuple(x.shape)}")
    nan = torch.isnan(x)
    pad = nan.all(-1)
    if (nan.any(-1) & ~pad).any():
        rows = (nan.any(-1) & ~pad).any(-1).nonzero().flatten()[:10].tolist()
        raise ValueError(f"{owner}: rows partly NaN in batch items {rows}; only whole rows may be NaN (padding)")
    if torch.isinf(x).any():
        raise ValueError(f"{owner}: input contains +-inf")
    valid = ~pad
    if x.shape[1] > 0 and not valid.any(1).all():
        rows = (~valid.any(1)).nonzero().flatten()[:10].tolist()
        raise ValueError(f"{owner}: batch items {rows} are empty (every row is NaN padding)")
    return torch.where(nan, torch.zeros((), dtype=x.dtype, device=x.device), x), valid


def masked_mean(h: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``h (B, N, H)`` over the valid rows ``valid (B, N)``."""
    w = valid.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def _mlp(widths: Sequence[int], activation: Callable[[], nn.Module], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


class DeepSet(nn.Module):
    r"""Permutation-invariant summary of a set: :math:`s = \rho\big(\mathrm{pool}_{i}\,\phi(x_i),\ \log n\big)`.

    ``pool`` concatenates the masked mean and the masked max of the element embeddings
    :math:`\phi(x_i)`; the log set size :math:`\log n` is appended so that the summary can
    encode how informative the set is (a posterior must contract as ``n`` grows). Padding rows
    (all NaN) are excluded from the pooling, so any set size works, including sizes never seen
    in training.

    Args:
        in_features: features ``F`` per element.
        out_features: size of the summary.
        hidden: width of :math:`\phi` and :math:`\rho` layers.
        phi_layers, rho_layers: number of hidden layers of each MLP.
        activation: ``"relu"``, ``"gelu"``, ``"silu"``, ``"elu"`` or ``"tanh"``.

    Input ``(B, N, F)`` (or one set ``(N, F)``, returned as ``(1, out)``), output ``(B, out_features)``.

    References:
        Zaheer et al. "Deep Sets". NeurIPS 2017.
    """

    #: accepts NaN-padded inputs of any number of rows
    variable_size = True

    def __init__(self, in_features: int, out_features: int = 32, hidden: int = 64, phi_layers: int = 2,
                 rho_layers: int = 2, activation: str = "gelu") -> None:
        super().__init__()
        if in_features < 1 or out_features < 1 or hidden < 1 or phi_layers < 1 or rho_layers < 1:
            raise ValueError("DeepSet: in_features, out_features, hidden and layer counts must be positive")
        act = _activation(activation, "DeepSet")
        self._config = {"in_features": in_features, "out_features": out_features, "hidden": hidden,
                        "phi_layers": phi_layers, "rho_layers": rho_layers, "activation": activation}
        self.in_features = in_features
        self.out_features = out_features
        self.phi = _mlp([in_features] + [hidden] * phi_layers, act, last_activation=True)
        self.rho = _mlp([2 * hidden + 1] + [hidden] * rho_layers + [out_features], act, last_activation=False)

    def config(self) -> dict[str, Any]:
        """JSON description from which :func:`~innverse.nets.summary_from_config` rebuilds the net."""
        return {"type": "deepset", **self._config}

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"DeepSet: expected (batch, elements, {self.in_features}), got {tuple(x.shape)}")
        values, valid = padding_mask(x, "DeepSet")
        h = self.phi(values)
        mean = masked_mean(h, valid)
        neg = torch.finfo(h.dtype).min
        mx = torch.where(valid.unsqueeze(-1), h, torch.full((), neg, dtype=h.dtype, device=h.device)).amax(1)
        count = valid.sum(1, keepdim=True).to(h.dtype)
        return self.rho(torch.cat([mean, mx, torch.log(count)], -1))
