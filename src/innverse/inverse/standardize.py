"""Per-feature standardisation saved with a model: u = (v - mean) / std and back."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Standardizer"]


class Standardizer(nn.Module):
    r"""Affine whitening per feature, :math:`u = (v - \mu) / \sigma`, with :math:`\mu, \sigma` buffers.

    Starts as the identity; :meth:`fit` sets :math:`\mu, \sigma` from data. Features with
    (near-)zero spread keep :math:`\sigma = 1` so that constant inputs pass through unchanged
    rather than being divided by zero. The buffers are saved with the state dict, so a trained
    model works on raw units after loading.

    Args:
        features: number of features D.
        name: what the features are (used in error messages).
    """

    def __init__(self, features: int, name: str = "features") -> None:
        super().__init__()
        self.features, self.name = int(features), name
        self.register_buffer("mean", torch.zeros(self.features))
        self.register_buffer("std", torch.ones(self.features))

    @torch.no_grad()
    def fit(self, data: Tensor, min_std: float = 1e-8) -> Standardizer:
        """Set mean and standard deviation from ``data`` of shape ``(N, D)``, ``N >= 2``."""
        if data.dim() != 2 or data.shape[1] != self.features or data.shape[0] < 2:
            raise ValueError(f"Standardizer({self.name}): expected data of shape (N >= 2, "
                             f"{self.features}), got {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            raise ValueError(f"Standardizer({self.name}): data contain NaN or Inf")
        std = data.std(0)
        self.mean.copy_(data.mean(0))
        self.std.copy_(torch.where(std > min_std, std, torch.ones_like(std)))
        return self

    def forward(self, v: Tensor) -> Tensor:
        """Standardise: ``(..., D) -> (..., D)``."""
        return (v - self.mean.to(v)) / self.std.to(v)

    def inverse(self, u: Tensor) -> Tensor:
        """Undo :meth:`forward`."""
        return u * self.std.to(u) + self.mean.to(u)

    def extra_repr(self) -> str:
        return f"features={self.features}, name={self.name!r}"
