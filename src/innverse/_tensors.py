"""Conversion and checks of user inputs given as torch tensors, numpy arrays or nested lists.

The one place where the library turns what a user passes (tensor, array, list) into a tensor and
says clearly what is wrong with it. Everything that accepts data (estimators, posteriors,
diagnostics, tasks) goes through :func:`to_tensor` and :func:`check_finite`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["check_finite", "invalid_rows", "to_tensor"]


def to_tensor(value: Any, name: str, owner: str, dtype: torch.dtype | None = None) -> Tensor:
    """A real floating tensor from a tensor, numpy array or nested list (integers are converted).

    Tensors are not copied unless ``dtype`` asks for a conversion.

    Args:
        value: the input.
        name: what it is (for messages), e.g. ``"theta"``.
        owner: who asks (for messages), e.g. ``"fit_posterior"``.
        dtype: convert to this dtype; default: keep floating dtypes, integers become the default dtype.

    Raises:
        TypeError: booleans, complex numbers, strings or other objects.
    """
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{owner}: {name} must be a torch tensor or numpy array, got {type(value).__name__}") from err
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{owner}: {name} must hold real numbers, got {type(value).__name__} of numpy dtype "
                            f"{arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{owner}: {name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(dtype or torch.get_default_dtype())
    return t.to(dtype) if dtype is not None else t


def check_finite(t: Tensor, name: str, owner: str) -> None:
    """Raise a ValueError naming the first rows of ``t`` that hold NaN or Inf."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten() if t.dim() else torch.zeros(1)
        raise ValueError(f"{owner}: {name} contains NaN or Inf ({int(bad.sum())} values; rows {rows[:10].tolist()}"
                         f"{'...' if len(rows) > 10 else ''})")


def invalid_rows(x: Tensor, padded: bool) -> Tensor:
    """Boolean ``(B,)``: rows of ``x (B, *event)`` that hold +-Inf or NaN other than whole-row padding.

    With ``padded`` (sets and series ``(B, N, F)``) a row of the last-but-one axis that is
    entirely NaN is padding, and a batch item without any valid row is invalid.
    """
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=x.device)
    if not padded:
        return ~torch.isfinite(x).reshape(x.shape[0], -1).all(1)
    nan = torch.isnan(x)
    pad = nan.all(-1)
    partial = (nan.any(-1) & ~pad).reshape(x.shape[0], -1).any(1)
    inf = torch.isinf(x).reshape(x.shape[0], -1).any(1)
    empty = pad.reshape(x.shape[0], -1).all(1)
    return partial | inf | empty
