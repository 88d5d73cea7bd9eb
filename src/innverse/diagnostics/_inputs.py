"""Input checks shared by the diagnostics: samples as finite ``(n, d)`` tensors, clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_samples", "as_tensor", "check_finite", "paired_samples"]


def as_tensor(x: Any, name: str, owner: str, dtype: torch.dtype | None = None) -> Tensor:
    """Convert a tensor, numpy array or nested list to a floating-point tensor (no copy if possible)."""
    if isinstance(x, Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{owner}: {name} must be numeric, got {type(x).__name__}: {err}") from err
    else:
        raise TypeError(f"{owner}: {name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{owner}: {name} must be real-valued, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def check_finite(t: Tensor, name: str, owner: str) -> None:
    """Raise a ValueError naming the first non-finite rows of ``t``."""
    bad = ~torch.isfinite(t)
    if bad.any():
        rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten() if t.dim() else torch.zeros(1)
        shown = rows[:5].tolist()
        raise ValueError(
            f"{owner}: {name} contains NaN or Inf ({int(bad.sum())} values; rows {shown}"
            f"{'...' if len(rows) > 5 else ''})"
        )


def as_samples(x: Any, name: str, owner: str, *, min_rows: int = 2, dtype: torch.dtype | None = None) -> Tensor:
    """Samples as a finite ``(n, d)`` tensor; a 1-D input of length ``n`` is read as ``(n, 1)``.

    Raises:
        TypeError: ``x`` is not a tensor/array of real numbers.
        ValueError: wrong number of dimensions, NaN/Inf values, or fewer than ``min_rows`` rows.
    """
    t = as_tensor(x, name, owner, dtype)
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
