"""On-disk cache of reference posterior samples: location, keys, atomic writes.

Reference samples are stored as plain ``.npy`` arrays (float64, shape ``(n, theta_dim)``, read
back with ``allow_pickle=False``) next to a ``.json`` file with the sampler's diagnostics. The
file name encodes everything the samples depend on::

    <root>/<task key>/obs<i>_n<n>_v<version>.npy

Root directory, in order of precedence: the ``cache_dir`` argument; ``$INNVERSE_CACHE/references``
when the environment variable ``INNVERSE_CACHE`` is set (it names innverse's cache root, shared
with other caches); ``~/.cache/innverse/references``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._files import atomic_write

__all__ = ["reference_cache_dir", "reference_path", "save_reference", "load_reference"]


def reference_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding reference posterior samples (see the module docstring)."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("INNVERSE_CACHE")
    if root:
        return Path(root) / "references"
    return Path.home() / ".cache" / "innverse" / "references"


def reference_path(root: Path, key: str, index: int, n: int, version: str) -> Path:
    """Path of the ``.npy`` file for task ``key``, observation ``index``, ``n`` samples."""
    return root / key / f"obs{index}_n{n}_v{version}.npy"


def _atomic_write(path: Path, write) -> None:
    atomic_write(path, write, shared=True)  # cached references are shared data


def save_reference(path: Path, samples: np.ndarray, diagnostics: dict) -> None:
    """Write ``samples`` to ``path`` and ``diagnostics`` to ``path.with_suffix('.json')``.

    Both files are written to a temporary file in the same directory and moved into place with
    ``os.replace``, so a reader never sees a half-written file; the JSON is written first, so an
    existing ``.npy`` always has its diagnostics.
    """
    payload = json.dumps(diagnostics, indent=1, sort_keys=True).encode()
    _atomic_write(path.with_suffix(".json"), lambda handle: handle.write(payload))
    _atomic_write(path, lambda handle: np.save(handle, np.ascontiguousarray(samples, dtype=np.float64)))


def load_reference(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached samples at ``path``, or ``None`` if absent, unreadable or of the wrong shape."""
    if not path.is_file():
        return None
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if samples.shape != shape or not np.isfinite(samples).all():
        return None
    return samples
