"""Atomic, pickle-free checkpoints: ``torch.save`` of plain state dicts, ``torch.load(weights_only=True)``."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write_bytes

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write_bytes"]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save a checkpoint (nested dicts/lists of tensors, numbers and strings) atomically.

    A run killed while writing leaves the previous checkpoint intact.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: nothing is unpickled).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the file is not a readable checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"load_checkpoint: {path} is not a valid checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or "format" not in state:
        raise ValueError(f"load_checkpoint: {path} is not an innverse training checkpoint")
    return state
