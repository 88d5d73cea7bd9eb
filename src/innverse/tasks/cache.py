"""On-disk cache of reference posterior samples, for both task families: location, keys, atomic writes.

Root directory, in order of precedence: the caller's ``cache_dir`` / ``cache_path`` argument;
``$INNVERSE_CACHE/<kind>`` when the environment variable ``INNVERSE_CACHE`` is set (it names
innverse's cache root, shared with other caches); ``~/.cache/innverse/<kind>``. Two kinds:

* ``references/``: the SBI tasks' reference posteriors, plain ``.npy`` arrays (float64, shape
  ``(n, theta_dim)``, read back with ``allow_pickle=False``) next to a ``.json`` file with the
  sampler's diagnostics. The file name encodes everything the samples depend on::

      <root>/references/<task key>/obs<i>_n<n>_v<version>.npy

* ``abc/``: the inverse problems' rejection-ABC references, one ``.npz`` per call, named by the
  task and a hash of everything the result depends on (see :func:`~innverse.tasks.abc_reference`).

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a reader never sees a half-written file; unreadable or malformed files read
as absent (and are recomputed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._files import atomic_write

__all__ = ["cache_root", "load_arrays", "load_reference", "reference_cache_dir", "reference_path",
           "save_arrays", "save_references"]

ReferenceSampler = Callable[[tuple[int, ...], int, torch.Generator], tuple[list[Tensor], list[dict]]]


def cache_root(kind: str, override: str | os.PathLike | None = None) -> Path:
    """The folder of one kind of cache: ``override``, else ``$INNVERSE_CACHE/<kind>``, else ``~/.cache/innverse/<kind>``."""
    if override is not None:
        return Path(override)
    env = os.environ.get("INNVERSE_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "innverse") / kind


def _write(path: Path, write) -> None:
    atomic_write(path, write)  # cached references are shared data


# ----------------------------------------------------------------- SBI references: .npy + .json
def reference_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the SBI tasks' reference posterior samples (see the module docstring)."""
    return cache_root("references", cache_dir)


def reference_path(root: Path, key: str, index: int, n: int, version: str) -> Path:
    """Path of the ``.npy`` file for task ``key``, observation ``index``, ``n`` samples."""
    return root / key / f"obs{index}_n{n}_v{version}.npy"


def save_reference(path: Path, samples: np.ndarray, diagnostics: dict) -> None:
    """Write ``samples`` to ``path`` and ``diagnostics`` to ``path.with_suffix('.json')``.

    The JSON is written first, so an existing ``.npy`` always has its diagnostics.
    """
    payload = json.dumps(diagnostics, indent=1, sort_keys=True).encode()
    _write(path.with_suffix(".json"), lambda handle: handle.write(payload))
    _write(path, lambda handle: np.save(handle, np.ascontiguousarray(samples, dtype=np.float64)))


def save_references(root: Path, key: str, n: int, version: str, indices: tuple[int, ...], seed: int,
                    sample: ReferenceSampler) -> list[Tensor]:
    """Run ``sample(indices, n, generator)`` from ``seed``, cache every result with its cost, return the samples."""
    start, cpu = time.perf_counter(), time.process_time()
    samples, diagnostics = sample(indices, n, torch.Generator().manual_seed(seed))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    for index, s, d in zip(indices, samples, diagnostics):
        d.update(task=key, index=index, n=n, version=version, seed=seed, seconds_for_all_indices=seconds,
                 cpu_seconds_for_all_indices=cpu, indices_computed=list(indices))
        save_reference(reference_path(root, key, index, n, version), s.numpy(), d)
    return samples


def load_reference(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached samples at ``path``, or ``None`` if absent, unreadable, non-finite or of the wrong shape."""
    if not path.is_file():
        return None
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if samples.shape != shape or not np.isfinite(samples).all():
        return None
    return samples


# ----------------------------------------------------------------- ABC references: .npz
def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays to the ``.npz`` file ``path``, atomically."""
    _write(path, lambda handle: np.savez(handle, **arrays))


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of the ``.npz`` file ``path``, or ``None`` if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (OSError, ValueError, KeyError):
        return None
