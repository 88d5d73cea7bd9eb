"""Simulation store on disk: HDF5 (h5py), chunked, appendable, resumable, read in shuffled minibatches.

Why HDF5 and not zarr: one self-contained file that is easy to copy, archive and open from any
language (h5py, MATLAB, Julia, R, HDFView); a mature, stable format and API (zarr's v2 -> v3
transition changed both); h5py is a single binary wheel with no further dependencies; and
chunked, resizable datasets give everything a simulation store needs. HDF5's known weakness —
a process killed in the middle of a metadata update can leave the file inconsistent — is
designed around here:

* datasets are created with **early space allocation**, so writing rows into already-allocated
  space touches raw data only, never the chunk index;
* capacity grows geometrically by an explicit resize that is **flushed before** any row is
  written into the new space;
* each batch is written, **flushed**, and only then is the committed row count (a fixed-size
  attribute, rewritten in place) advanced and flushed again.

A run killed at any point therefore reopens with every committed batch intact; rows of the
batch in flight lie beyond the committed count and are overwritten on resume.

One writer at a time: opening a store for appending takes its writer lock
(:mod:`~innverse.amortized.store_lock`); a second writer, or a reader while a writer is at work,
gets a :class:`StoreBusyError` naming the holder (or waits for it, given a ``timeout``).

Layout: datasets ``theta (capacity, D)`` and ``x (capacity, *x_shape)`` (float32 by default,
NaN-padded sets), attribute ``progress = [rows, batches_done, exceptions, nonfinite]``, JSON
attributes with the simulation settings (``settings``) and error messages (``errors``), and the
identity of the simulator that fills it (``simulator``, ``module:function``).

The error messages are committed with their batch. Since version 2 the ``errors`` attribute holds
``{"committed": {message: count}, "pending": {"batches_done": b, "errors": {message: count}}}``:
:meth:`append` writes the counts after its batch as ``pending`` *before* it advances the progress,
and ``pending`` counts only once the progress has reached ``b``. A run killed between the two
writes therefore neither loses the messages of a committed batch nor counts those of the batch it
will redo. (Version 1 wrote the plain ``{message: count}`` after the progress, and a kill between
the two lost one batch's messages; such files are still read.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .store_batches import StoreBatches
from .store_format import FORMAT, VERSION, check_sizes, write_empty
from .store_lock import StoreBusyError, StoreLock, check_not_writing

__all__ = ["SimulationStore", "StoreBatches", "StoreBusyError"]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("SimulationStore needs h5py: pip install 'innverse[store]'") from err
    return h5py


class SimulationStore:
    """An HDF5 file of simulated ``(theta, x)`` pairs.

    Create with :meth:`create`, reopen with :meth:`open` (or the constructor). Rows are committed
    batch by batch with :meth:`append`; :attr:`rows` counts committed rows only.

    Args:
        path: the ``.h5`` file.
        mode: ``"r"`` (read) or ``"a"`` (read and append; takes the store's writer lock until
            :meth:`close`).
        timeout: seconds to wait while another process writes the store (default: do not wait).

    Raises:
        FileNotFoundError: no file at ``path``.
        StoreBusyError: (a ``BlockingIOError``) another process writes the store, or another
            program holds the file open with HDF5's own lock; the message names the holder.
        PermissionError: ``mode="a"`` on a file that is not writable.
        ValueError: the file is not an innverse simulation store (or from a newer version).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r", *, timeout: float = 0.0) -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"SimulationStore: mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"SimulationStore: no store at {path}; create one with SimulationStore.create")
        if mode == "a" and not os.access(path, os.W_OK):
            raise PermissionError(f"SimulationStore: {path} is not writable; open it with mode='r'")
        if mode == "a":
            lock = StoreLock.acquire(path, timeout)
        else:
            check_not_writing(path, timeout)
            lock = None
        self._attach(path, mode, lock)

    def _attach(self, path: Path, mode: str, lock: StoreLock | None) -> None:
        """Open the HDF5 file (the writer lock, if any, already held) and check that it is a store."""
        self.path, self.mode, self._lock = path, mode, lock
        try:
            try:
                self._f = _h5py().File(self.path, "r+" if mode == "a" else "r")
            except OSError as err:
                if "unable to lock file" in str(err).lower():
                    raise StoreBusyError(f"SimulationStore: {self.path} is held open by another program "
                                         f"(HDF5 file lock: {err}); close it there first") from err
                raise ValueError(f"SimulationStore: cannot open {self.path} as HDF5 ({err})") from err
            try:
                self._check_layout()
            except (KeyError, OSError, RuntimeError, TypeError, IndexError) as err:  # h5py on damaged metadata
                raise ValueError(f"SimulationStore: {self.path} is damaged ({type(err).__name__}: {err})") from err
        except BaseException:
            if getattr(self, "_f", None) is not None and self._f.id.valid:
                self._f.close()
            if lock is not None:
                lock.release()
            raise

    def _check_layout(self) -> None:
        """A foreign or damaged file (attributes or datasets out of shape) is refused when opened, not read
        wrongly."""
        if self._f.attrs.get("format") != FORMAT or "theta" not in self._f or "x" not in self._f:
            raise ValueError(f"SimulationStore: {self.path} is not an innverse simulation store")
        if int(self._f.attrs.get("version", 0)) > VERSION:
            raise ValueError(f"SimulationStore: {self.path} has format version {self._f.attrs['version']}, "
                             f"newer than this innverse supports ({VERSION})")
        self._theta, self._x = self._f["theta"], self._f["x"]
        progress = self._f.attrs.get("progress")
        ok = (isinstance(progress, np.ndarray) and progress.shape == (4,) and progress.dtype.kind == "i"
              and self._theta.ndim == 2 and self._x.ndim >= 2 and self._theta.shape[0] == self._x.shape[0]
              and 0 <= int(progress[0]) <= self._theta.shape[0] and (progress >= 0).all())
        if not ok:
            raise ValueError(f"SimulationStore: {self.path} is damaged (its row count or datasets are inconsistent)")
        for name in ("settings", "errors"):
            try:
                value = self._json_attr(name)
                ok = isinstance(value, dict) and (name != "errors" or _committed_errors(value, 0) is not None)
            except (ValueError, TypeError, KeyError):
                ok = False
            if not ok:
                raise ValueError(f"SimulationStore: {self.path} is damaged (its {name!r} attribute is not a JSON "
                                 "object)")

    @classmethod
    def create(cls, path: str | os.PathLike, theta_dim: int, x_shape: tuple[int, ...] | list[int],
               chunk_rows: int = 1024, dtype: str = "float32", capacity: int = 0,
               overwrite: bool = False, simulator: str | None = None) -> SimulationStore:
        """Create an empty store (``x_shape`` fixes the set / series capacity for padded data).

        The new store is open for appending, its writer lock held. Nothing is left at ``path``
        (nor beside it) when creation fails.

        Args:
            theta_dim: parameters per row.
            x_shape: shape of one observation (for sets: ``(max elements, features)``).
            chunk_rows: rows per HDF5 chunk (the unit of shuffled reading).
            dtype: ``"float32"`` or ``"float64"``.
            capacity: rows to allocate up front (grows automatically).
            overwrite: replace an existing file.
            simulator: the identity of the simulator that fills it
                (:func:`~innverse.amortized.simulation.simulator_name`); recorded by
                :func:`~innverse.amortized.simulate` when left out.
        """
        h5py = _h5py()
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"SimulationStore.create: {path} exists; open it or pass overwrite=True")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"SimulationStore.create: dtype must be 'float32' or 'float64', got {dtype!r}")
        x_shape = check_sizes(theta_dim, x_shape, chunk_rows, capacity)
        if simulator is not None and not isinstance(simulator, str):
            raise TypeError(f"SimulationStore.create: simulator must be a string (module:function), "
                            f"got {type(simulator).__name__}")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = StoreLock.acquire(path)
        try:
            if path.exists() and not overwrite:  # created by another process meanwhile
                raise FileExistsError(f"SimulationStore.create: {path} exists; open it or pass overwrite=True")
            write_empty(h5py, path, theta_dim, x_shape, chunk_rows, dtype, capacity, simulator)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store = cls.__new__(cls)
        store._attach(path, "a", lock)
        return store


    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *, timeout: float = 0.0) -> SimulationStore:
        return cls(path, mode, timeout=timeout)

    # -- metadata --------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Committed rows."""
        return int(self._f.attrs["progress"][0])

    def __len__(self) -> int:
        return self.rows

    @property
    def theta_dim(self) -> int:
        return int(self._theta.shape[1])

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._x.shape[1:])

    @property
    def chunk_rows(self) -> int:
        return int(self._x.chunks[0])

    @property
    def dtype(self) -> np.dtype:
        """The dtype rows are stored in (values it cannot represent count as failed simulations)."""
        return self._x.dtype

    @property
    def simulator(self) -> str | None:
        """Identity (``module:function``) of the simulator that filled the store; ``None`` if not recorded."""
        value = self._f.attrs.get("simulator")
        return str(value) if value else None

    def set_simulator(self, name: str) -> None:
        """Record the identity of the simulator that fills the store."""
        self._writable()
        self._f.attrs["simulator"] = str(name)
        self._f.flush()

    @property
    def progress(self) -> dict[str, int]:
        """Simulation progress: committed ``rows``, ``batches_done``, ``exceptions``, ``nonfinite``."""
        p = self._f.attrs["progress"]
        return {"rows": int(p[0]), "batches_done": int(p[1]), "exceptions": int(p[2]), "nonfinite": int(p[3])}

    def _json_attr(self, name: str) -> dict[str, Any]:
        return json.loads(self._f.attrs.get(name, "{}"))

    @property
    def settings(self) -> dict[str, Any]:
        """Settings of the simulation run that fills the store (seed, batch size, ...)."""
        return self._json_attr("settings")

    @property
    def errors(self) -> dict[str, int]:
        """Error messages of failed simulations in committed batches, and their counts."""
        return _committed_errors(self._json_attr("errors"), self.progress["batches_done"])

    def set_settings(self, settings: dict[str, Any]) -> None:
        self._writable()
        self._f.attrs["settings"] = json.dumps(settings)
        self._f.flush()

    def set_errors(self, errors: dict[str, int]) -> None:
        """Replace the error messages of the committed batches."""
        self._writable()
        self._write_errors({"committed": _message_counts(errors, "set_errors"), "pending": None})

    def _write_errors(self, state: dict[str, Any]) -> None:
        self._f.attrs["errors"] = json.dumps(state)
        if int(self._f.attrs.get("version", 1)) < VERSION:
            self._f.attrs["version"] = VERSION
        self._f.flush()

    def _writable(self) -> None:
        if self.mode != "a":
            raise ValueError(f"SimulationStore: {self.path} is open read-only; open it with mode='a'")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, theta: np.ndarray | Tensor, x: np.ndarray | Tensor, batches_done: int | None = None,
               exceptions: int = 0, nonfinite: int = 0, errors: dict[str, int] | None = None) -> None:
        """Append rows and commit them (write, flush, advance the committed count, flush).

        Sets with fewer rows than the store's capacity are NaN-padded; more rows is an error.
        ``batches_done`` / ``exceptions`` / ``nonfinite`` update the simulation progress. ``errors``,
        the message counts once this batch is in (it needs ``batches_done``), is committed with it.
        Rows are checked before anything is written: finite values the store's dtype cannot hold (they
        would be stored as Inf) are an error.
        """
        self._writable()
        if errors is not None and batches_done is None:
            raise ValueError("SimulationStore.append: errors are committed with a batch; pass batches_done too")
        pending = None if errors is None else {"batches_done": int(batches_done),
                                               "errors": _message_counts(errors, "append")}
        th, xs = _numbers(theta, "theta"), _numbers(x, "x")
        m = th.shape[0] if th.ndim else 0
        if th.ndim != 2 or th.shape[1] != self.theta_dim:
            raise ValueError(f"SimulationStore.append: theta must be (rows, {self.theta_dim}), got {th.shape}")
        if xs.ndim == 0 or xs.shape[0] != m:
            raise ValueError(f"SimulationStore.append: theta has {m} rows, x has shape {xs.shape}")
        xs = _stored_as(self._fit_shape(xs), self.dtype, "x")
        th = _stored_as(th, self.dtype, "theta")
        start = self.rows
        if m:
            needed = start + m
            if needed > self._x.shape[0]:
                new = max(needed, 2 * self._x.shape[0], self.chunk_rows)
                self._theta.resize(new, axis=0)
                self._x.resize(new, axis=0)
                self._f.flush()
            self._theta[start:start + m] = th
            self._x[start:start + m] = xs
            self._f.flush()
        if pending is not None:  # written before the commit below, and counted only once it is made
            self._write_errors({"committed": self.errors, "pending": pending})
        p = self._f.attrs["progress"].copy()
        p[0] = start + m
        if batches_done is not None:
            p[1] = batches_done
        p[2] += exceptions
        p[3] += nonfinite
        self._f.attrs.modify("progress", p)
        self._f.flush()

    def _fit_shape(self, xs: np.ndarray) -> np.ndarray:
        target = self.x_shape
        if xs.shape[1:] == target:
            return xs
        padded = len(target) >= 2 and xs.ndim == len(target) + 1 and xs.shape[2:] == target[1:]
        if padded and xs.shape[1] < target[0]:
            out = np.full((xs.shape[0], *target), np.nan, dtype=np.result_type(xs.dtype, np.float32))
            out[:, :xs.shape[1]] = xs
            return out
        if padded:
            raise ValueError(f"SimulationStore.append: sets of {xs.shape[1]} rows exceed the store's capacity "
                             f"{target[0]}; create the store with a larger x_shape[0]")
        raise ValueError(f"SimulationStore.append: x must be (rows, *{target}), got {xs.shape}")

    # -- reading ---------------------------------------------------------------------------------
    def read(self, start: int = 0, stop: int | None = None) -> tuple[Tensor, Tensor]:
        """Committed rows ``[start, stop)`` as tensors ``(theta, x)``."""
        stop = self.rows if stop is None else min(stop, self.rows)
        return self._block(start, stop)

    def _block(self, lo: int, hi: int) -> tuple[Tensor, Tensor]:
        try:
            return torch.from_numpy(self._theta[lo:hi]), torch.from_numpy(self._x[lo:hi])
        except OSError as err:  # h5py: a damaged chunk
            raise ValueError(f"SimulationStore: cannot read rows {lo}..{hi} of {self.path}; the file is "
                             f"damaged ({err})") from err

    def read_rows(self, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """Arbitrary committed rows (read chunk by chunk; order follows ``rows``)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows):
            raise IndexError(f"SimulationStore.read_rows: rows must lie in [0, {self.rows})")
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        th = np.empty((rows.size, self.theta_dim), dtype=self._theta.dtype)
        xs = np.empty((rows.size, *self.x_shape), dtype=self._x.dtype)
        c = self.chunk_rows
        for blk in np.unique(sorted_rows // c):
            lo, hi = blk * c, min((blk + 1) * c, self.rows)
            sel = (sorted_rows >= lo) & (sorted_rows < hi)
            tb, xb = self._block(lo, hi)
            th[order[sel]] = tb.numpy()[sorted_rows[sel] - lo]
            xs[order[sel]] = xb.numpy()[sorted_rows[sel] - lo]
        return torch.from_numpy(th), torch.from_numpy(xs)

    def close(self) -> None:
        """Close the file and release the writer lock (idempotent)."""
        f = getattr(self, "_f", None)
        if f is not None and f.id.valid:
            f.close()
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> SimulationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SimulationStore({str(self.path)!r}, rows={self.rows}, theta_dim={self.theta_dim}, "
                f"x_shape={self.x_shape})")


def _numbers(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"SimulationStore.append: {name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _stored_as(arr: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """``arr`` in the store's dtype; finite values it cannot hold (stored as Inf) are an error."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype)
    lost = (np.isfinite(arr) & ~np.isfinite(out)).reshape(len(arr), -1).any(1)
    if lost.any():
        rows = np.nonzero(lost)[0]
        raise ValueError(f"SimulationStore.append: {name} rows {rows[:10].tolist()} hold finite values beyond the "
                         f"{np.dtype(dtype).name} range of the store; they would be stored as Inf")
    return out


def _message_counts(errors: Any, where: str) -> dict[str, int]:
    """``errors`` checked to be a mapping of messages to counts."""
    ok = isinstance(errors, dict) and all(isinstance(k, str) and isinstance(v, int | np.integer)
                                          and not isinstance(v, bool) and v >= 0 for k, v in errors.items())
    if not ok:
        raise ValueError(f"SimulationStore.{where}: errors must map messages (str) to counts (int >= 0), "
                         f"got {errors!r}")
    return {k: int(v) for k, v in errors.items()}


def _committed_errors(raw: dict[str, Any], batches_done: int) -> dict[str, int]:
    """The message counts of the committed batches, from either layout of the ``errors`` attribute.

    Raises ``KeyError``/``TypeError``/``ValueError`` on a malformed attribute."""
    if all(isinstance(v, int) for v in raw.values()):  # version 1: the counts themselves
        return dict(raw)
    if set(raw) != {"committed", "pending"}:
        raise KeyError(f"errors attribute with keys {sorted(raw)}")
    pending = raw["pending"]
    if pending is not None and batches_done >= int(pending["batches_done"]):
        return _message_counts(pending["errors"], "errors")
    return _message_counts(raw["committed"], "errors")
