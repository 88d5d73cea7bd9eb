"""Running one batch of a simulator: calling conventions, per-batch seeds, failure accounting.

A simulator is any callable ``simulator(theta) -> x`` over a batch of parameters ``(B, D)``,
returning a batch ``(B, *x_shape)`` as a numpy array or torch tensor, or a list of ``B`` arrays
of different lengths (sets / series, NaN-padded here). Randomness is controlled per batch by
the first keyword the simulator accepts:

* ``generator=``: a seeded ``torch.Generator``;
* ``rng=``: a seeded ``numpy.random.Generator``;
* ``seed=``: an int;
* none of these: numpy's and torch's global RNGs are seeded for the call (and restored
  afterwards when running in-process).

This module only uses numpy arrays across process boundaries (no shared memory, no sockets).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["batch_seed", "calling_style", "run_batch", "BatchResult", "pad_rows", "invalid_mask", "same_simulator",
           "simulator_name"]

Simulator = Callable[..., Any]


def batch_seed(master: int, *keys: int) -> int:
    """A 63-bit seed derived from ``master`` and ``keys`` (independent streams per key, via SeedSequence)."""
    state = np.random.SeedSequence(entropy=int(master), spawn_key=tuple(int(k) for k in keys)).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF)


def simulator_name(simulator: Simulator) -> str:
    """The simulator's identity as ``module:qualified.name`` (what a store records it was filled by).

    A bound method is named by its class (``pkg.tasks:TwoMoons.simulate``), a ``functools.partial``
    by the function it wraps, a callable object by its class.
    """
    f = simulator
    while isinstance(f, functools.partial):
        f = f.func
    owner = getattr(f, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType) and hasattr(f, "__name__"):
        cls = owner if isinstance(owner, type) else type(owner)
        return f"{cls.__module__}:{cls.__qualname__}.{f.__name__}"
    if not hasattr(f, "__qualname__"):
        f = type(f)
    return f"{getattr(f, '__module__', None) or '?'}:{f.__qualname__}"


def same_simulator(recorded: str | None, name: str) -> bool:
    """Whether a store that records ``recorded`` may be filled by the simulator named ``name``.

    Equal names agree, and so does an unrecorded one; a name recorded from a script run as
    ``__main__`` agrees with the same function imported from its module.
    """
    if recorded is None or recorded == name:
        return True
    module, _, qualname = recorded.partition(":")
    return module in ("__main__", "__mp_main__") and qualname == name.partition(":")[2]


def calling_style(simulator: Simulator) -> str:
    """``"generator"``, ``"rng"``, ``"seed"`` or ``"global"``: how the simulator takes its randomness."""
    if not callable(simulator):
        raise TypeError(f"simulate: the simulator must be callable, got {type(simulator).__name__}")
    try:
        params = inspect.signature(simulator).parameters
    except (TypeError, ValueError):
        return "global"
    for name in ("generator", "rng", "seed"):
        p = params.get(name)
        if p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            return name
    return "global"


def pad_rows(items: list[np.ndarray], rows: int | None = None) -> np.ndarray:
    """Stack arrays ``(n_i, *rest)`` into ``(B, max n_i, *rest)``, padding with whole NaN rows."""
    if not items:
        raise ValueError("pad_rows: nothing to stack")
    rest = items[0].shape[1:]
    for a in items:
        if a.ndim < 1 or a.shape[1:] != rest:
            raise ValueError(f"pad_rows: every item must have shape (n, *{rest}), got {a.shape}")
    n = max(a.shape[0] for a in items) if rows is None else rows
    out = np.full((len(items), n, *rest), np.nan, dtype=np.result_type(*items, np.float32))
    for i, a in enumerate(items):
        if a.shape[0] > n:
            raise ValueError(f"pad_rows: an item has {a.shape[0]} rows, more than the capacity {n}")
        out[i, :a.shape[0]] = a
    return out


def invalid_mask(x: np.ndarray) -> np.ndarray:
    """Rows ``(B,)`` with Inf, or NaN other than whole-row padding (``x.ndim >= 3``), or no valid row."""
    flat_bad = ~np.isfinite(x).reshape(x.shape[0], -1).all(1)
    if x.ndim < 3:
        return flat_bad
    nan = np.isnan(x)
    pad = nan.reshape(*x.shape[:2], -1).all(-1)
    partial = (nan.reshape(*x.shape[:2], -1).any(-1) & ~pad).any(1)
    inf = np.isinf(x).reshape(x.shape[0], -1).any(1)
    empty = pad.all(1)
    return partial | inf | empty


def _as_array(out: Any, b: int) -> np.ndarray:
    if isinstance(out, (list, tuple)):
        if len(out) != b:
            raise ValueError(f"simulator returned {len(out)} items for {b} parameter sets")
        return pad_rows([np.asarray(o.detach().cpu() if isinstance(o, torch.Tensor) else o, dtype=np.float64)
                         for o in out])
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    arr = np.asarray(out)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"simulator returned an array of dtype {arr.dtype}; expected real numbers")
    if arr.ndim < 1 or arr.shape[0] != b:
        raise ValueError(f"simulator returned shape {arr.shape} for {b} parameter sets; expected ({b}, ...)")
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr


def _call(simulator: Simulator, theta: np.ndarray, seed: int, style: str, theta_format: str,
          in_process: bool) -> np.ndarray:
    arg: Any = torch.from_numpy(theta) if theta_format == "torch" else theta
    if style == "generator":
        return _as_array(simulator(arg, generator=torch.Generator().manual_seed(seed)), len(theta))
    if style == "rng":
        return _as_array(simulator(arg, rng=np.random.default_rng(seed)), len(theta))
    if style == "seed":
        return _as_array(simulator(arg, seed=seed), len(theta))
    np_state = np.random.get_state() if in_process else None  # noqa: NPY002 - the documented fallback
    with torch.random.fork_rng(devices=[], enabled=in_process):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        try:
            return _as_array(simulator(arg), len(theta))
        finally:
            if np_state is not None:
                np.random.set_state(np_state)  # noqa: NPY002


def _message(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


@dataclass
class BatchResult:
    """Outcome of one batch: the kept rows' data, which rows were kept, and what failed."""

    index: int
    x: np.ndarray | None          # (kept, *shape) or None when nothing was kept
    kept: np.ndarray              # bool (B,)
    exceptions: int = 0
    nonfinite: int = 0
    errors: Counter = field(default_factory=Counter)


def _in_dtype(x: np.ndarray, theta: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``x`` converted to ``dtype``, and the rows ``(B,)`` whose finite values (of ``x`` or ``theta``) it
    cannot hold: a float64 value beyond the float32 maximum is Inf once stored, so it is a failure."""
    with np.errstate(over="ignore", invalid="ignore"):
        xs = x.astype(dtype, copy=False)
        ts = theta.astype(dtype, copy=False)
    lost = (np.isfinite(x) & ~np.isfinite(xs)).reshape(len(x), -1).any(1)
    lost |= (np.isfinite(theta) & ~np.isfinite(ts)).reshape(len(theta), -1).any(1)
    return xs, lost


def run_batch(simulator: Simulator, theta: np.ndarray, seed: int, index: int, style: str,
              theta_format: str = "torch", retry_rows: bool = True, in_process: bool = True,
              dtype: np.dtype | str = "float32") -> BatchResult:
    """Simulate one batch; on an exception retry row by row (each row with its own derived seed).

    Rows whose simulation raised are counted in ``exceptions``; rows with Inf or non-padding NaN
    in ``nonfinite``, and so are rows with finite values that ``dtype`` (the dtype the data are
    stored in) cannot represent (e.g. ``|x| > 3.4e38`` for float32, which would be stored as
    Inf); all are dropped. The kept rows' data are returned in ``dtype``. Never raises for
    simulator failures.
    """
    b = theta.shape[0]
    errors: Counter = Counter()
    exceptions = 0
    try:
        x = _call(simulator, theta, seed, style, theta_format, in_process)
    except Exception as err:
        errors[_message(err)] += 1
        if not retry_rows or b == 1:
            return BatchResult(index, None, np.zeros(b, bool), exceptions=b, errors=errors)
        rows: list[np.ndarray | None] = []
        for i in range(b):
            try:
                rows.append(_call(simulator, theta[i:i + 1], batch_seed(seed, i), style, theta_format, in_process)[0])
            except Exception as row_err:
                errors[_message(row_err)] += 1
                exceptions += 1
                rows.append(None)
        good = [r for r in rows if r is not None]
        if not good:
            return BatchResult(index, None, np.zeros(b, bool), exceptions=b, errors=errors)
        if good[0].ndim >= 2:
            stacked = pad_rows(good)
        else:
            try:
                stacked = np.stack(good)
            except ValueError as err:
                errors[_message(err)] += len(good)
                return BatchResult(index, None, np.zeros(b, bool), exceptions=b, errors=errors)
        ok_rows = np.array([r is not None for r in rows])
        x = np.full((b, *stacked.shape[1:]), np.nan, dtype=stacked.dtype)
        x[ok_rows] = stacked
        kept = ok_rows.copy()
    else:
        kept = np.ones(b, bool)
    invalid = invalid_mask(x) & kept
    x, lost = _in_dtype(x, theta, np.dtype(dtype))
    lost &= kept & ~invalid
    if invalid.any():
        errors["non-finite output (NaN/Inf)"] += int(invalid.sum())
    if lost.any():
        name = np.dtype(dtype).name
        errors[f"output or parameters beyond the {name} range (|value| > {np.finfo(dtype).max:.3g}), "
               f"Inf once stored as {name}"] += int(lost.sum())
    kept &= ~(invalid | lost)
    nonfinite = int((invalid | lost).sum())
    return BatchResult(index, x[kept] if kept.any() else None, kept, exceptions, nonfinite, errors)
