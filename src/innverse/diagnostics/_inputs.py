"""Samples as the diagnostics take them: finite ``(n, d)`` tensors, built on :mod:`innverse._tensors`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._tensors import check_finite, to_tensor

__all__ = ["as_samples", "paired_samples"]


def as_samples(x: Any, name: str, owner: str, *, min_rows: int = 2, dtype: torch.dtype | None = None) -> Tensor:
    """Samples as a finite, detached ``(n, d)`` tensor; a 1-D input of length ``n`` is read as ``(n, 1)``.

    Raises:
        TypeError: ``x`` is not a tensor/array of real numbers.
        ValueError: wrong number of dimensions, NaN/Inf values, or fewer than ``min_rows`` rows.
    """
    t = to_tensor(x, name, owner, dtype).detach()
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{owner}: {name} must have shape (n, d), got {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{owner}: {name} has zero features, shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{owner}: {name} needs at least {min_rows} samples, got {t.shape[0]}")
    check_finite(t, name, owner)
    return t


def paired_samples(a: Any, b: Any, owner: str, *, min_rows: int = 2,
                   dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Two sample sets ``(n, d)`` and ``(m, d)`` with the same ``d``, same dtype and device."""
    ta = as_samples(a, "a", owner, min_rows=min_rows, dtype=dtype)
    tb = as_samples(b, "b", owner, min_rows=min_rows, dtype=dtype)
    if ta.shape[1] != tb.shape[1]:
        raise ValueError(
            f"{owner}: a and b must have the same number of features, got a {tuple(ta.shape)} "
            f"and b {tuple(tb.shape)}"
        )
    dt = torch.promote_types(ta.dtype, tb.dtype)
    return ta.to(dt), tb.to(device=ta.device, dtype=dt)
