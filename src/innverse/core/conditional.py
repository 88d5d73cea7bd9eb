"""The conditional-density contract: ``sample(n, condition)`` and ``log_prob(value, condition)``.

Every conditional model of the library follows it — flows, amortized posteriors, conditional
INNs, the split-latent INN (sampling only) and the later classifiers and image models — and so
does every diagnostic that consumes one. Shapes follow ``torch.distributions`` broadcasting, with
the condition's leading dimensions as the batch shape:

* one condition (shape ``condition_shape``): batch shape ``()``;
  ``sample(n, c) -> (n, *event)``, ``log_prob(value (*s, *event), c) -> (*s)``;
* ``k`` conditions ``(k, *condition_shape)``: batch shape ``(k,)``;
  ``sample(n, c) -> (n, k, *event)``, ``log_prob(value (*s, k, *event), c) -> (*s, k)``;
  ``value (k, *event)`` is scored row by row against the ``k`` conditions.

The helpers here implement that bookkeeping once: :func:`split_condition` flattens the
conditions, :func:`broadcast_value` pairs every value row with the index of its condition.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["ConditionalDensity", "as_conditions", "broadcast_value", "check_count", "split_condition"]


@runtime_checkable
class ConditionalDensity(Protocol):
    """A conditional distribution :math:`q(\\text{value} \\mid \\text{condition})` (see the module docstring)."""

    def sample(self, n: int, condition: Any = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws per condition: ``(n, *batch, *event)``."""
        ...

    def log_prob(self, value: Any, condition: Any = None) -> Tensor:
        """Log-density of ``value (*sample, *batch, *event)`` -> ``(*sample, *batch)``."""
        ...


def check_count(owner: str, n: Any) -> int:
    """``n`` as a positive int, or a clear error (``sample(n, condition)``: the count comes first)."""
    if isinstance(n, Tensor) or hasattr(n, "__array__"):
        raise TypeError(f"{owner}: expected the number of samples first, got a {type(n).__name__}; the order is "
                        "sample(n, condition)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{owner}: n must be a positive int, got {n!r}")
    return n


def split_condition(owner: str, condition: Tensor, condition_shape: tuple[int, ...],
                    name: str = "condition") -> tuple[Tensor, tuple[int, ...]]:
    """Flatten ``condition (*batch, *condition_shape)`` to ``(k, *condition_shape)`` and return ``batch``.

    Raises:
        ValueError: the trailing dimensions are not ``condition_shape``.
    """
    n_event = len(condition_shape)
    if condition.dim() < n_event or tuple(condition.shape[condition.dim() - n_event:]) != tuple(condition_shape):
        raise ValueError(f"{owner}: expected the {name} as {tuple(condition_shape)} (one) or (k, "
                         f"{', '.join(map(str, condition_shape))}) (k of them), got shape {tuple(condition.shape)}")
    batch = tuple(condition.shape[:condition.dim() - n_event])
    return condition.reshape(math.prod(batch), *condition_shape), batch


def as_conditions(owner: str, condition: Any, condition_shape: tuple[int, ...],
                  name: str = "condition") -> tuple[Tensor, bool]:
    """One condition ``condition_shape`` or ``k`` of them ``(k, *condition_shape)`` as ``(k, *condition_shape)``.

    Returns the batch and whether a single condition was given (so ``sample`` returns
    ``(n, *event)`` for one and ``(n, k, *event)`` for ``k``).

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: any other shape (including more than one batch dimension).
    """
    if not isinstance(condition, Tensor):
        raise TypeError(f"{owner}: expected the {name} as a torch.Tensor, got {type(condition).__name__}")
    if not condition.is_floating_point():
        raise TypeError(f"{owner}: expected a floating-point {name}, got dtype {condition.dtype}")
    flat, batch = split_condition(owner, condition, condition_shape, name)
    if len(batch) > 1 or flat.shape[0] == 0:
        raise ValueError(f"{owner}: expected the {name} as {tuple(condition_shape)} (one) or (k, "
                         f"{', '.join(map(str, condition_shape))}) (k of them), got shape {tuple(condition.shape)}")
    return flat, not batch


def broadcast_value(owner: str, value: Tensor, event_shape: tuple[int, ...], batch_shape: tuple[int, ...],
                    name: str = "value", condition: str = "condition") -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Pair the rows of ``value (*sample, *batch, *event)`` with their conditions.

    Returns:
        ``(rows, index, out_shape)``: ``rows (m, *event)``, ``index (m,)`` the flat condition
        index of each row, and the output shape ``(*sample, *batch)`` of the log-densities.

    Raises:
        ValueError: ``value`` does not end in ``(*batch, *event)``.
    """
    tail = (*batch_shape, *event_shape)
    if value.dim() < len(tail) or tuple(value.shape[value.dim() - len(tail):]) != tail:
        want = "(*sample, " + ", ".join(map(str, tail)) + ")"
        given = f"one {condition}" if not batch_shape else f"{condition}s of batch shape {batch_shape}"
        raise ValueError(f"{owner}: expected {name} of shape {want} for {given}, got shape {tuple(value.shape)}")
    out_shape = tuple(value.shape[:value.dim() - len(event_shape)])
    k = math.prod(batch_shape)
    rows = value.reshape(-1, *event_shape)
    index = torch.arange(k, device=value.device).repeat(rows.shape[0] // max(k, 1))
    return rows, index, out_shape
