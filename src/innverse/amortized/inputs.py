"""Conversion and validation of parameters and observations given as torch tensors or numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["to_tensor", "check_theta", "check_x", "invalid_rows"]


def to_tensor(value: Any, name: str, owner: str, dtype: torch.dtype | None = None) -> Tensor:
    """A real floating tensor from a tensor, numpy array or nested list (integers are converted).

    Raises:
        TypeError: booleans, complex numbers, strings or objects.
    """
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{owner}: {name} must be a torch tensor or numpy array, got {type(value).__name__}") from err
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{owner}: {name} must hold real numbers, got numpy dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{owner}: {name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(dtype or torch.get_default_dtype())
    return t.to(dtype) if dtype is not None else t


def invalid_rows(x: Tensor, event_dims: int, padded: bool) -> Tensor:
    """Boolean ``(B,)``: rows that contain +-inf or NaN other than whole-row padding.

    ``x`` has shape ``(B, *event)``; with ``padded`` (sets and series ``(B, N, F)``) a row of the
    last-but-one axis that is entirely NaN is padding, and a batch item without any valid row is
    invalid too.
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


def check_theta(theta: Any, theta_dim: int, owner: str, dtype: torch.dtype | None = None) -> tuple[Tensor, bool]:
    """``theta`` as ``(B, D)`` (a single vector ``(D,)`` becomes ``(1, D)``); returns ``(tensor, was_single)``."""
    t = to_tensor(theta, "theta", owner, dtype)
    single = t.dim() == 1
    if single:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[1] != theta_dim:
        raise ValueError(f"{owner}: expected theta of shape (batch, {theta_dim}) or ({theta_dim},), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        rows = (~torch.isfinite(t).all(1)).nonzero().flatten()[:10].tolist()
        raise ValueError(f"{owner}: theta contains NaN or Inf in rows {rows}")
    return t, single


def check_x(x: Any, x_shape: tuple[int, ...], owner: str, variable_size: bool,
            dtype: torch.dtype | None = None) -> tuple[Tensor, bool]:
    """Observations as ``(k, *x_shape)``; one observation ``x_shape`` becomes ``(1, *x_shape)``.

    With ``variable_size`` (sets / series ``x_shape = (N, F)``), any number of rows is accepted
    (one observation ``(m, F)`` or a batch ``(k, m, F)``) and whole rows of NaN are padding.

    Returns:
        ``(tensor, was_single)``.

    Raises:
        ValueError: wrong shape, or NaN / Inf other than padding.
        TypeError: not real numbers.
    """
    t = to_tensor(x, "x", owner, dtype)
    n_event = len(x_shape)
    if variable_size:
        ok_single = t.dim() == n_event and t.shape[-1] == x_shape[-1] and tuple(t.shape[1:-1]) == x_shape[1:-1]
        ok_batch = t.dim() == n_event + 1 and t.shape[-1] == x_shape[-1] and tuple(t.shape[2:-1]) == x_shape[1:-1]
        expected = f"one observation (m, {x_shape[-1]}) or a batch (k, m, {x_shape[-1]}) with any m"
    else:
        ok_single = tuple(t.shape) == x_shape
        ok_batch = t.dim() == n_event + 1 and tuple(t.shape[1:]) == x_shape
        expected = f"one observation {x_shape} or a batch (k, *{x_shape})"
    if not (ok_single or ok_batch):
        raise ValueError(f"{owner}: expected x as {expected}, got shape {tuple(t.shape)}")
    single = ok_single
    if single:
        t = t.unsqueeze(0)
    bad = invalid_rows(t, n_event, variable_size)
    if bad.any():
        rows = bad.nonzero().flatten()[:10].tolist()
        what = "Inf, partly-NaN rows or no valid row" if variable_size else "NaN or Inf"
        raise ValueError(f"{owner}: observations {rows} contain {what}"
                         + ("" if variable_size else " (NaN padding is only allowed with a set or series summary network)"))
    return t, single
