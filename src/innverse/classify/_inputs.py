"""Checks of what users pass to the classifiers and scores: inputs, labels, scores, models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._tensors import check_finite, to_tensor

__all__ = ["as_inputs", "as_labels", "as_scores", "batched_log_prob", "check_fraction", "model_dtype"]


def as_inputs(owner: str, x: Any, event_shape: tuple[int, ...] | None = None, name: str = "X",
              dtype: torch.dtype | None = None) -> Tensor:
    """``x`` as a finite floating tensor ``(N, *event_shape)`` (any event shape when ``event_shape`` is None).

    Raises:
        TypeError: not real numbers.
        ValueError: wrong shape, no rows, NaN or Inf.
    """
    t = to_tensor(x, name, owner, dtype)
    if t.dim() < 2:
        raise ValueError(f"{owner}: expected {name} of shape (N, *event) with one row per input, got shape "
                         f"{tuple(t.shape)}")
    if event_shape is not None and tuple(t.shape[1:]) != tuple(event_shape):
        raise ValueError(f"{owner}: expected {name} of shape (N, {', '.join(map(str, event_shape))}) as in "
                         f"training, got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{owner}: {name} has no rows")
    check_finite(t, name, owner)
    return t


def as_labels(owner: str, y: Any, classes: int | None = None, name: str = "y") -> tuple[Tensor, bool]:
    """Integer class labels as a long tensor ``(k,)`` and whether a single label (a scalar) was given.

    Floating labels are accepted when they hold whole numbers. With ``classes`` every label must
    lie in ``0 .. classes - 1``.

    Raises:
        TypeError: booleans, strings or non-integral numbers.
        ValueError: more than one dimension, no labels, or a label outside the class range.
    """
    if isinstance(y, bool) or (isinstance(y, Tensor) and y.dtype == torch.bool):
        raise TypeError(f"{owner}: expected integer class labels {name}, got booleans")
    if isinstance(y, Tensor):
        t = y.detach()
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{owner}: expected integer class labels {name}, got {type(y).__name__} of dtype "
                            f"{arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr)).reshape(arr.shape)  # ascontiguousarray makes 0-d 1-d
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise TypeError(f"{owner}: expected integer class labels {name}, got non-integral values")
    elif t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{owner}: expected integer class labels {name}, got dtype {t.dtype}")
    if t.dim() > 1:
        raise ValueError(f"{owner}: expected {name} as one label or a 1-D array of labels, got shape {tuple(t.shape)}")
    single = t.dim() == 0
    t = t.reshape(-1).long()
    if t.numel() == 0:
        raise ValueError(f"{owner}: {name} holds no labels")
    if classes is not None and (int(t.min()) < 0 or int(t.max()) >= classes):
        bad = t[(t < 0) | (t >= classes)]
        raise ValueError(f"{owner}: class labels {name} must lie in 0..{classes - 1}, got {sorted(set(bad.tolist()))[:10]}")
    if classes is None and int(t.min()) < 0:
        raise ValueError(f"{owner}: class labels {name} must be >= 0, got {int(t.min())}")
    return t, single


def as_scores(owner: str, scores: Any, name: str) -> Tensor:
    """Scores as a finite 1-D float64 tensor with at least one entry."""
    if scores is None:
        raise ValueError(f"{owner}: {name} is required, got None")
    t = to_tensor(scores, name, owner, torch.float64).detach()
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{owner}: expected {name} as a non-empty 1-D array of scores, got shape {tuple(t.shape)}")
    check_finite(t, name, owner)
    return t


def check_fraction(owner: str, name: str, value: Any, low_open: bool = True) -> float:
    """``value`` as a float in ``(0, 1)`` (``[0, 1)`` when ``low_open`` is False)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0 < value < 1 if low_open else 0 <= value < 1)
    if not ok:
        raise ValueError(f"{owner}: {name} must be in {'(0, 1)' if low_open else '[0, 1)'}, got {value!r}")
    return float(value)


def model_dtype(model: Any) -> torch.dtype:
    """The dtype of a module's first floating parameter or buffer (default dtype otherwise)."""
    if isinstance(model, torch.nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.get_default_dtype()


def batched_log_prob(owner: str, model: Any, x: Any, batch_size: int = 4096) -> Tensor:
    """``model.log_prob(x)`` (or ``model(x)`` for a callable) in batches, without gradient -> ``(N,)``.

    ``model`` is anything with ``log_prob(x) -> (B,)``: a :class:`~innverse.core.Flow`, a
    :class:`~innverse.classify.LatentMixtureINN`, an :class:`~innverse.classify.IBINNClassifier`
    or a user's own density.
    """
    fn: Callable[[Tensor], Tensor]
    if hasattr(model, "log_prob"):
        fn = model.log_prob
    elif callable(model):
        fn = model
    else:
        raise TypeError(f"{owner}: expected a model with log_prob(x) (a Flow, a classifier or any density), got "
                        f"{type(model).__name__}")
    t = as_inputs(owner, x, dtype=model_dtype(model) if isinstance(model, torch.nn.Module) else None)
    with torch.no_grad():
        out = torch.cat([fn(t[i:i + batch_size]).reshape(-1) for i in range(0, t.shape[0], batch_size)])
    if out.shape[0] != t.shape[0]:
        raise ValueError(f"{owner}: the model's log_prob returned {out.shape[0]} values for {t.shape[0]} inputs")
    return out
