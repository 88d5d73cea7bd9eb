"""sbibm's own observations and reference posterior samples, read from its package files (wheel or directory).

The published sbibm table (Lueckmann et al. 2021) scores every algorithm on 10 fixed observations
per task against reference posterior samples that the ``sbibm`` package ships
(``sbibm/tasks/<task>/files/num_observation_<k>/{observation.csv, true_parameters.csv,
reference_posterior_samples.csv.bz2}``). Scoring innverse on the same files makes its C2ST
directly comparable with the published figures. The files are read straight from the wheel, so
sbibm (which pins an old sbi) need not be installed::

    pip download sbibm==1.1.0 --no-deps -d /tmp/sbibm     # one 18 MB wheel

Whether innverse's simulator of a task is sbibm's is checked, not assumed: :func:`typicality`
places the log-likelihood of sbibm's observation among those of fresh simulations from innverse's
simulator at sbibm's true parameters (an observation atypical there would mean the two simulators
differ).
"""

from __future__ import annotations

import bz2
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

#: tasks whose files the sbibm package ships (bernoulli_glm_raw and slcp_distractors have none)
SHIPPED = ("two_moons", "slcp", "gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "bernoulli_glm",
           "sir", "lotka_volterra")


class SbibmFiles:
    """Observations, true parameters and reference samples of sbibm's tasks (``k`` = 1..10, as sbibm numbers them).

    Args:
        path: the sbibm wheel (``.whl``) or a directory holding the ``sbibm`` package.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_file():
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self.path)
        elif (self.path / "sbibm" / "tasks").is_dir():
            self._zip = None
        else:
            raise FileNotFoundError(f"SbibmFiles: {self.path} is neither an sbibm wheel nor a directory holding "
                                    f"sbibm/tasks (get the wheel with: pip download sbibm==1.1.0 --no-deps -d DIR)")

    def _read(self, task: str, k: int, name: str) -> bytes:
        if task not in SHIPPED:
            raise ValueError(f"SbibmFiles: sbibm ships no files for {task!r}; it does for {SHIPPED}")
        if not 1 <= k <= 10:
            raise ValueError(f"SbibmFiles: observation numbers run from 1 to 10, got {k}")
        member = f"sbibm/tasks/{task}/files/num_observation_{k}/{name}"
        data = self._zip.read(member) if self._zip is not None else (self.path / member).read_bytes()
        return bz2.decompress(data) if name.endswith(".bz2") else data

    def _table(self, task: str, k: int, name: str) -> torch.Tensor:
        values = np.loadtxt(io.StringIO(self._read(task, k, name).decode()), delimiter=",", skiprows=1, ndmin=2)
        return torch.from_numpy(values)

    def observation(self, task: str, k: int) -> torch.Tensor:
        """sbibm's observation ``k`` as one flat vector (float64)."""
        return self._table(task, k, "observation.csv")[0]

    def true_parameters(self, task: str, k: int) -> torch.Tensor:
        return self._table(task, k, "true_parameters.csv")[0]

    def reference(self, task: str, k: int, n: int | None = None) -> torch.Tensor:
        """The first ``n`` (default all, 10,000) reference posterior samples ``(n, theta_dim)``."""
        samples = self._table(task, k, "reference_posterior_samples.csv.bz2")
        return samples if n is None else samples[:n]


@torch.no_grad()
def typicality(task, theta: torch.Tensor, x_o: torch.Tensor, n: int = 2000, seed: int = 0) -> float:
    """Fraction of innverse's simulations at ``theta`` whose log-likelihood is at most that of ``x_o``.

    Near 0 (or exactly 0) means ``x_o`` is far less likely under innverse's simulator than its own
    draws: the simulators differ. A consistent observation gives a value spread over (0, 1).
    """
    theta = theta.to(task.dtype)[None].expand(n, -1).contiguous()
    sims = task.simulate(theta, torch.Generator().manual_seed(seed))
    own = task.log_likelihood(theta, sims)
    observed = task.log_likelihood(theta[:1], x_o.to(task.dtype).reshape(task.x_shape))
    return float((own <= observed).double().mean())
