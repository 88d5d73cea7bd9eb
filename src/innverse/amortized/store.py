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

Layout: datasets ``theta (capacity, D)`` and ``x (capacity, *x_shape)`` (float32 by default,
NaN-padded sets), attribute ``progress = [rows, batches_done, exceptions, nonfinite]`` and JSON
attributes with the simulation settings (``settings``) and error messages (``errors``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["SimulationStore", "StoreBatches"]

FORMAT = "innverse.SimulationStore"
VERSION = 1


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
        mode: ``"r"`` (read) or ``"a"`` (read and append).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"SimulationStore: mode must be 'r' or 'a', got {mode!r}")
        h5py = _h5py()
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"SimulationStore: no store at {self.path}; create one with SimulationStore.create")
        try:
            self._f = h5py.File(self.path, "r+" if mode == "a" else "r")
        except OSError as err:
            raise ValueError(f"SimulationStore: cannot open {self.path} as HDF5 ({err})") from err
        if self._f.attrs.get("format") != FORMAT or "theta" not in self._f or "x" not in self._f:
            self._f.close()
            raise ValueError(f"SimulationStore: {self.path} is not an innverse simulation store")
        if int(self._f.attrs.get("version", 0)) > VERSION:
            self._f.close()
            raise ValueError(f"SimulationStore: {self.path} has format version {self._f.attrs['version']}, newer "
                             f"than this innverse supports ({VERSION})")
        self.mode = mode
        self._theta = self._f["theta"]
        self._x = self._f["x"]

    @classmethod
    def create(cls, path: str | os.PathLike, theta_dim: int, x_shape: tuple[int, ...] | list[int],
               chunk_rows: int = 1024, dtype: str = "float32", capacity: int = 0,
               overwrite: bool = False) -> SimulationStore:
        """Create an empty store (``x_shape`` fixes the set / series capacity for padded data).

        Args:
            theta_dim: parameters per row.
            x_shape: shape of one observation (for sets: ``(max elements, features)``).
            chunk_rows: rows per HDF5 chunk (the unit of shuffled reading).
            dtype: ``"float32"`` or ``"float64"``.
            capacity: rows to allocate up front (grows automatically).
            overwrite: replace an existing file.
        """
        h5py = _h5py()
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"SimulationStore.create: {path} exists; open it or pass overwrite=True")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"SimulationStore.create: dtype must be 'float32' or 'float64', got {dtype!r}")
        x_shape = tuple(int(s) for s in x_shape)
        if theta_dim < 1 or not x_shape or min(x_shape) < 1 or chunk_rows < 1:
            raise ValueError(f"SimulationStore.create: invalid sizes theta_dim={theta_dim}, x_shape={x_shape}, "
                             f"chunk_rows={chunk_rows}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.creating")
        with h5py.File(tmp, "w") as f:
            for name, shape in (("theta", (theta_dim,)), ("x", x_shape)):
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                f.create_dataset(name, shape=(capacity, *shape), maxshape=(None, *shape), dtype=dtype,
                                 chunks=(chunk_rows, *shape), fillvalue=np.nan, dcpl=dcpl)
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["progress"] = np.zeros(4, dtype=np.int64)
            f.attrs["settings"] = "{}"
            f.attrs["errors"] = "{}"
        os.replace(tmp, path)
        return cls(path, "a")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> SimulationStore:
        return cls(path, mode)

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
        """Error messages of failed simulations and their counts."""
        return self._json_attr("errors")

    def set_settings(self, settings: dict[str, Any]) -> None:
        self._writable()
        self._f.attrs["settings"] = json.dumps(settings)
        self._f.flush()

    def set_errors(self, errors: dict[str, int]) -> None:
        self._writable()
        self._f.attrs["errors"] = json.dumps(errors)
        self._f.flush()

    def _writable(self) -> None:
        if self.mode != "a":
            raise ValueError(f"SimulationStore: {self.path} is open read-only; open it with mode='a'")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, theta: np.ndarray | Tensor, x: np.ndarray | Tensor, batches_done: int | None = None,
               exceptions: int = 0, nonfinite: int = 0) -> None:
        """Append rows and commit them (write, flush, advance the committed count, flush).

        Sets with fewer rows than the store's capacity are NaN-padded; more rows is an error.
        ``batches_done`` / ``exceptions`` / ``nonfinite`` update the simulation progress.
        """
        self._writable()
        th = np.asarray(theta.detach().cpu() if isinstance(theta, Tensor) else theta)
        xs = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)
        m = th.shape[0]
        if th.ndim != 2 or th.shape[1] != self.theta_dim:
            raise ValueError(f"SimulationStore.append: theta must be (rows, {self.theta_dim}), got {th.shape}")
        if xs.shape[0] != m:
            raise ValueError(f"SimulationStore.append: theta has {m} rows, x has {xs.shape[0]}")
        xs = self._fit_shape(xs)
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
            out = np.full((xs.shape[0], *target), np.nan, dtype=xs.dtype)
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
        return torch.from_numpy(self._theta[start:stop]), torch.from_numpy(self._x[start:stop])

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
            tb, xb = self._theta[lo:hi], self._x[lo:hi]
            th[order[sel]] = tb[sorted_rows[sel] - lo]
            xs[order[sel]] = xb[sorted_rows[sel] - lo]
        return torch.from_numpy(th), torch.from_numpy(xs)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> SimulationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SimulationStore({str(self.path)!r}, rows={self.rows}, theta_dim={self.theta_dim}, "
                f"x_shape={self.x_shape})")


class StoreBatches:
    """Shuffled minibatches from a store without loading it: shuffled chunk order + in-buffer shuffle.

    Each epoch permutes the store's chunks, reads ``buffer_chunks`` of them at a time (contiguous
    reads), keeps the selected rows, shuffles them together and yields minibatches; leftovers carry
    over to the next buffer. Implements the :class:`~innverse.train.BatchSource` protocol.

    Args:
        store: an open :class:`SimulationStore`.
        rows: committed row indices to draw from (e.g. the training split); default all.
        batch_size: rows per batch.
        buffer_chunks: chunks mixed together per shuffle buffer.
    """

    def __init__(self, store: SimulationStore, rows: np.ndarray | None = None, batch_size: int = 128,
                 buffer_chunks: int = 8, shuffle: bool = True) -> None:
        self.store = store
        total = store.rows
        sel = np.arange(total) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        if sel.size == 0:
            raise ValueError("StoreBatches: no rows selected")
        if sel.min() < 0 or sel.max() >= total:
            raise ValueError(f"StoreBatches: rows must lie in [0, {total})")
        self.mask = np.zeros(total, dtype=bool)
        self.mask[sel] = True
        self.count = int(sel.size)
        self.batch_size = int(batch_size)
        self.buffer_chunks = int(buffer_chunks)
        self.shuffle = shuffle
        c = store.chunk_rows
        self.chunks = np.unique(sel // c)

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def epoch(self, index: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        c = self.store.chunk_rows
        order = self.chunks[torch.randperm(len(self.chunks), generator=generator).numpy()] if self.shuffle else self.chunks
        carry_t: Tensor | None = None
        carry_x: Tensor | None = None
        for i in range(0, len(order), self.buffer_chunks):
            parts_t, parts_x = [] if carry_t is None else [carry_t], [] if carry_x is None else [carry_x]
            for blk in order[i:i + self.buffer_chunks]:
                lo, hi = int(blk) * c, min((int(blk) + 1) * c, self.store.rows)
                th, xs = self.store.read(lo, hi)
                keep = torch.from_numpy(self.mask[lo:hi])
                parts_t.append(th[keep])
                parts_x.append(xs[keep])
            t_all, x_all = torch.cat(parts_t), torch.cat(parts_x)
            if self.shuffle:
                perm = torch.randperm(t_all.shape[0], generator=generator)
                t_all, x_all = t_all[perm], x_all[perm]
            full = (t_all.shape[0] // self.batch_size) * self.batch_size
            for j in range(0, full, self.batch_size):
                yield t_all[j:j + self.batch_size], x_all[j:j + self.batch_size]
            carry_t, carry_x = t_all[full:], x_all[full:]
        if carry_t is not None and carry_t.shape[0]:
            yield carry_t, carry_x  # type: ignore[misc]
