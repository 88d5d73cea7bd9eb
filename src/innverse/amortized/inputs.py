"""Validation of the parameters and observations a posterior is given (shapes, finiteness, padding)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._tensors import invalid_rows, to_tensor

__all__ = ["check_theta", "check_x"]


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
    elif t.shape[0] == 0:
        raise ValueError(f"{owner}: expected x as {expected}, got an empty batch of shape {tuple(t.shape)}")
    bad = invalid_rows(t, variable_size)
    if bad.any():
        rows = bad.nonzero().flatten()[:10].tolist()
        what = "Inf, partly-NaN rows or no valid row" if variable_size else "NaN or Inf"
        raise ValueError(f"{owner}: observations {rows} contain {what}"
                         + ("" if variable_size else " (NaN padding is only allowed with a set or series summary network)"))
    return t, single
