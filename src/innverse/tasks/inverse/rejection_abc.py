"""Rejection-ABC reference posteriors: the nearest-y prior simulations, chunked and cached on disk."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..._tensors import check_finite
from ..cache import cache_root, load_arrays, save_arrays
from .base import AbstractInverseTask, split_observations

__all__ = ["ABCReference", "abc_reference", "abc_cache_dir"]

_FORMAT = 1                              # bump when the sampling scheme changes (invalidates caches)
_DISTANCE_BUDGET = 2**24                 # distance-matrix entries per chunk (128 MiB in float64)


def abc_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder of cached ABC references: ``path``, else ``$INNVERSE_CACHE/abc``, else ``~/.cache/innverse/abc``.

    ``INNVERSE_CACHE`` names innverse's cache root, shared with the other caches (e.g. the
    reference posteriors of the simulation-based-inference tasks under ``references/``; see
    :mod:`innverse.tasks.cache`).
    """
    return cache_root("abc", path)


@dataclass(frozen=True)
class ABCReference:
    """Reference posterior samples for ``k`` targets.

    Attributes:
        y_targets: the targets, ``(k, y_dim)``.
        samples: accepted parameters, ``(n_keep, k, x_dim)`` (the project's posterior layout),
            sorted by distance, nearest first.
        distances: their scaled distances :math:`\\lVert (s(x) - y^*) / \\sigma_y \\rVert`,
            ``(n_keep, k)``.
        epsilon: the acceptance radius per target (largest accepted distance), ``(k,)``.
        scale: the per-dimension scale :math:`\\sigma_y` used in the distance, ``(y_dim,)``.
        n_simulations: prior simulations drawn; n_failed: those with a non-finite y (dropped).
    """

    y_targets: Tensor
    samples: Tensor
    distances: Tensor
    epsilon: Tensor
    scale: Tensor
    n_simulations: int
    n_failed: int

    @property
    def acceptance_rate(self) -> float:
        return self.samples.shape[0] / self.n_simulations


def _key(task: AbstractInverseTask, targets: Tensor, n_keep: int, n_simulations: int,
         chunk: int, seed: int) -> str:
    meta = {"format": _FORMAT, "task": task.name, "config": task.config(), "n_keep": n_keep,
            "n_simulations": n_simulations, "chunk": chunk, "seed": seed}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    h.update(np.ascontiguousarray(targets.numpy()).tobytes())
    return h.hexdigest()[:24]


def _load(path: Path, k: int, n_keep: int, x_dim: int) -> dict[str, np.ndarray] | None:
    data = load_arrays(path)                            # unreadable: recompute and overwrite
    if data is None or data.get("samples", np.empty(0)).shape != (n_keep, k, x_dim):
        return None
    return data


def abc_reference(task: AbstractInverseTask, y_targets: Tensor, n_keep: int = 1000,
                  n_simulations: int = 1_000_000, chunk_size: int = 100_000, seed: int = 0,
                  cache: bool = True, cache_path: str | os.PathLike | None = None) -> ABCReference:
    r"""Rejection ABC: for each target keep the ``n_keep`` prior draws whose y is nearest.

    Draw :math:`x_i \sim p(x)`, :math:`y_i = s(x_i)` for :math:`i \le N`, and keep for each
    target :math:`y^*` the ``n_keep`` draws with the smallest
    :math:`d_i = \lVert (y_i - y^*) / \sigma_y \rVert_2`, :math:`\sigma_y` the prior-predictive
    standard deviation (from the first chunk). The kept draws sample
    :math:`p(x \mid \lVert (y - y^*)/\sigma_y \rVert \le \varepsilon)` with :math:`\varepsilon`
    the largest kept distance, which tends to :math:`p(x \mid y^*)` as :math:`N \to \infty`.

    Simulations run in chunks; per chunk only the ``(k, chunk)`` distance matrix and the running
    ``(k, n_keep)`` best are held, so memory does not grow with ``n_simulations`` (the chunk is
    shrunk so that the distance matrix stays under 128 MiB). Results are cached in
    :func:`abc_cache_dir` (``cache_path``) under a hash of the task, its constants, the targets and all
    arguments, written atomically (temporary file + ``os.replace``).

    Args:
        task: the inverse problem.
        y_targets: ``(y_dim,)`` or ``(k, y_dim)`` observations (more batch axes are flattened).
        n_keep: accepted samples per target.
        n_simulations: prior simulations :math:`N` (10^6–10^7 for a good reference).
        chunk_size: simulations per chunk.
        seed: seed of the simulations.
        cache: read and write the on-disk cache.
        cache_path: cache folder (default ``$INNVERSE_CACHE/abc`` or ``~/.cache/innverse/abc``).

    References:
        Pritchard, Seielstad, Perez-Lezaun, Feldman. "Population growth of human Y chromosomes:
        a study of Y chromosome microsatellites". Mol. Biol. Evol. 1999 (rejection ABC);
        Kruse et al. "Benchmarking Invertible Architectures on Inverse Problems". 2021.
    """
    if not isinstance(task, AbstractInverseTask):
        raise TypeError(f"abc_reference: task must be an AbstractInverseTask, got {type(task).__name__}")
    targets = split_observations("abc_reference", y_targets, task.y_dim)[0].detach().cpu().contiguous()
    check_finite(targets, "y_targets", "abc_reference")
    for nm, v in (("n_keep", n_keep), ("n_simulations", n_simulations), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"abc_reference: {nm} must be a positive int, got {v!r}")
    k = targets.shape[0]
    chunk = max(min(chunk_size, _DISTANCE_BUDGET // k), n_keep)
    if n_simulations < chunk or n_simulations < 2 * n_keep:
        raise ValueError(f"abc_reference: n_simulations={n_simulations} must be at least one chunk "
                         f"({chunk}) and 2 x n_keep ({2 * n_keep})")
    path = abc_cache_dir(cache_path) / (
        f"{task.name}-{_key(task, targets, n_keep, n_simulations, chunk, seed)}.npz")
    data = _load(path, k, n_keep, task.x_dim) if cache else None
    if data is None:
        data = _run(task, targets, n_keep, n_simulations, chunk, seed)
        if cache:
            save_arrays(path, data)
    return ABCReference(
        y_targets=targets, samples=torch.from_numpy(data["samples"]),
        distances=torch.from_numpy(data["distances"]), epsilon=torch.from_numpy(data["distances"][-1]),
        scale=torch.from_numpy(data["scale"]), n_simulations=int(data["n_simulations"]),
        n_failed=int(data["n_failed"]))


def _run(task: AbstractInverseTask, targets: Tensor, n_keep: int, n_simulations: int, chunk: int,
         seed: int) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    k = targets.shape[0]
    best_d = torch.full((k, n_keep), math.inf, dtype=torch.float64)
    best_x = torch.full((k, n_keep, task.x_dim), math.nan, dtype=torch.float64)
    scale, failed, done = None, 0, 0
    while done < n_simulations:
        m = min(chunk, n_simulations - done)
        x, y = task.sample_joint(m, gen)
        done += m
        ok = torch.isfinite(y).all(1)
        failed += int((~ok).sum())
        if scale is None:
            scale = y[ok].std(0).clamp_min(1e-12)
        d = torch.cdist(targets / scale, torch.where(ok[:, None], y, 0.0) / scale)   # (k, m)
        d[:, ~ok] = math.inf
        top = min(n_keep, m)
        d_top, idx = d.topk(top, dim=1, largest=False)                             # (k, top)
        cand_d = torch.cat([best_d, d_top], 1)
        cand_x = torch.cat([best_x, x[idx]], 1)
        best_d, pick = cand_d.topk(n_keep, dim=1, largest=False, sorted=True)
        best_x = torch.gather(cand_x, 1, pick[..., None].expand(-1, -1, task.x_dim))
    if not torch.isfinite(best_d).all():
        raise RuntimeError(f"abc_reference: fewer than n_keep={n_keep} finite simulations "
                           f"({failed} of {n_simulations} failed)")
    return {"samples": best_x.transpose(0, 1).contiguous().numpy(),
            "distances": best_d.T.contiguous().numpy(), "scale": scale.numpy(),
            "n_simulations": np.array(n_simulations), "n_failed": np.array(failed)}
