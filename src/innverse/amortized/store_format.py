"""The on-disk layout of a :class:`~innverse.amortized.store.SimulationStore`: checking the sizes of a
new store and writing it, empty, to its place (a temporary file moved into place, so a failed or
killed creation leaves nothing behind)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "check_sizes", "write_empty"]

FORMAT = "innverse.SimulationStore"
VERSION = 2  # 2: error messages committed with their batch (see store.py)


def check_sizes(theta_dim: int, x_shape: Any, chunk_rows: int, capacity: int) -> tuple[int, ...]:
    """``x_shape`` as a tuple of ints, after checking every size of a new store."""
    try:
        shape = tuple(int(s) for s in x_shape)
        ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                 for v in (theta_dim, chunk_rows, capacity, *x_shape))
    except (TypeError, ValueError):
        ok, shape = False, ()
    if not ok or theta_dim < 1 or not shape or min(shape) < 1 or chunk_rows < 1 or capacity < 0:
        raise ValueError(f"SimulationStore.create: invalid sizes theta_dim={theta_dim!r}, x_shape={x_shape!r}, "
                         f"chunk_rows={chunk_rows!r}, capacity={capacity!r} (positive integers; capacity >= 0)")
    return shape


def write_empty(h5py: Any, path: Path, theta_dim: int, x_shape: tuple[int, ...], chunk_rows: int, dtype: str,
                capacity: int, simulator: str | None) -> None:
    """Write an empty store to a temporary file beside ``path``, then move it into place."""
    tmp = path.with_name(f".{path.name}.creating")
    try:
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
            f.attrs["errors"] = '{"committed": {}, "pending": null}'
            if simulator:
                f.attrs["simulator"] = simulator
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
