"""Observation files in (``.npy``/``.csv``) and posterior samples out (``.npz``/``.csv``/netCDF)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import JobError, UsageError

__all__ = ["SAMPLE_FORMATS", "arviz_available", "read_observations", "write_inference_data", "write_samples"]

SAMPLE_FORMATS = (".npz", ".csv", ".nc")


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def read_observations(path: str | os.PathLike[str], x_shape: Sequence[int]) -> np.ndarray:
    """Read observations for a model whose data have per-sample shape ``x_shape``.

    Accepts one observation (shape ``x_shape``) or a batch ``(k, *x_shape)``; a ``.csv`` holds one
    observation per row (vector data only), with an optional header row.

    Returns:
        float array of shape ``(k, *x_shape)``.

    Raises:
        UsageError: unreadable file, unknown suffix, non-finite values, or the wrong shape.
    """
    path = Path(path)
    x_shape = tuple(int(s) for s in x_shape)
    if not path.is_file():
        raise UsageError(f"observation file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            if len(x_shape) != 1:
                raise UsageError(f"observation file {path}: CSV holds vector observations only; this "
                                 f"model expects observations of shape {_shape(x_shape)}; use .npy")
            rows = [r for r in path.read_text(encoding="utf-8").splitlines() if r.strip()]
            if not rows:
                raise UsageError(f"observation file {path} holds no observations")
            skip = 1 if all(not _is_number(f) for f in rows[0].split(",")) else 0  # a header row
            if skip and len(rows) == 1:
                raise UsageError(f"observation file {path} holds only a header row, no observations")
            data = np.loadtxt(rows[skip:], delimiter=",", ndmin=2)
        else:
            raise UsageError(f"observation file {path}: unknown format {suffix or '(no suffix)'!r}; "
                             "use .npy (numpy.save) or .csv (one observation per row)")
    except UsageError:
        raise
    except (ValueError, EOFError, OSError) as err:  # a damaged, empty or unreadable file
        raise UsageError(f"observation file {path} could not be read as numbers: {err or type(err).__name__}") from err
    if data.dtype.kind not in "fiu":
        raise UsageError(f"observation file {path}: expected numbers, got dtype {data.dtype}")
    data = np.asarray(data, dtype=np.float64)
    if tuple(data.shape) == x_shape:
        data = data[None]
    if tuple(data.shape[1:]) != x_shape:
        raise UsageError(
            f"observation file {path} has shape {_shape(data.shape)}, but this model expects one "
            f"observation of shape {_shape(x_shape)} or a batch of shape {_shape(('k', *x_shape))}")
    if data.shape[0] == 0:
        raise UsageError(f"observation file {path} holds no observations")
    if not np.isfinite(data).all():
        rows = np.nonzero(~np.isfinite(data.reshape(len(data), -1)).all(1))[0]
        raise UsageError(f"observation file {path}: observations {rows[:10].tolist()} contain NaN or Inf")
    huge = (np.abs(data) > np.finfo(np.float32).max).reshape(len(data), -1).any(1)
    if huge.any():  # the model computes in float32, where these are Inf
        raise UsageError(f"observation file {path}: observations {np.nonzero(huge)[0][:10].tolist()} hold values "
                         f"beyond the float32 range (|x| > {np.finfo(np.float32).max:.3g})")
    return data


def _atomic(path: Path, write) -> None:
    """Write ``path`` via a temporary file and ``os.replace``: the file is whole or absent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as err:
        raise UsageError(f"cannot write the samples file {path}: {err.strerror or err}; choose another --out") from err
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise JobError(f"writing the samples file {path} failed: {err.strerror or err}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_samples(path: str | os.PathLike[str], samples: np.ndarray, names: Sequence[str],
                  observations: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write posterior samples ``(n, k, d)`` for ``k`` observations, by the suffix of ``path``.

    ``.npz``: arrays ``samples`` ``(n, k, d)``, ``observations``, ``parameter_names`` (and ``extra``).
    ``.csv``: one row per draw: ``observation, draw, <parameter names...>``.
    (ArviZ netCDF: :func:`write_inference_data`.)
    """
    path = Path(path)
    samples = np.asarray(samples)
    n, k, d = samples.shape
    suffix = path.suffix.lower()
    if suffix == ".npz":
        def w(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, samples=samples, observations=observations,
                                    parameter_names=np.array(list(names)), **(extra or {}))
        _atomic(path, w)
    elif suffix == ".csv":
        obs = np.repeat(np.arange(k), n)
        draw = np.tile(np.arange(n), k)
        table = np.column_stack([obs, draw, samples.transpose(1, 0, 2).reshape(k * n, d)])
        header = ",".join(["observation", "draw", *names])
        fmt = ["%d", "%d"] + ["%.9g"] * d
        _atomic(path, lambda tmp: np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt=fmt))
    else:
        raise UsageError(f"samples file {path}: unknown format {suffix!r}; use one of {SAMPLE_FORMATS}")
    return path


def _import_arviz():
    import warnings

    with warnings.catch_warnings():  # ArviZ announces its refactor with a FutureWarning on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz
    return arviz


def arviz_available() -> bool:
    try:
        _import_arviz()
    except ImportError:
        return False
    return True


def write_inference_data(path: str | os.PathLike[str], model: Any, observations: np.ndarray, n: int,
                         names: Sequence[str], seed: int) -> list[Path]:
    """ArviZ netCDF files of the posterior of each observation (``Posterior.to_inference_data``).

    One file for one observation, else ``<stem>_<i>.nc`` per observation: the draws (split into
    chains), ``log q`` of each draw, the observation and prior draws; the draws are independent of
    those in the ``.npz`` next to it.
    """
    path = Path(path)
    chains = next(c for c in (4, 2, 1) if n % c == 0)
    paths = [path] if len(observations) == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}")
                                                   for i in range(len(observations))]
    for i, (out, x) in enumerate(zip(paths, observations)):
        data = model.to_inference_data(np.asarray(x, dtype=np.float32), n, chains=chains,
                                       parameter_names=list(names), seed=seed + i)
        _atomic(out, lambda tmp, data=data: data.to_netcdf(tmp))
    return paths
