r"""Deep ensembles of amortized posteriors: an equal-weight mixture and the members' disagreement.

.. math::
    q(\theta \mid x) = \frac1k \sum_{i=1}^k q_i(\theta \mid x),

with the members trained independently (different seeds: initial weights, validation split,
data order). The mixture is never narrower than its members, which guards against the
overconfidence of a single network at small budgets; where the members disagree (their means
far apart relative to their widths) the posterior is uncertain for epistemic reasons — more
simulations would change it.

References:
    Lakshminarayanan, Pritzel, Blundell. "Simple and Scalable Predictive Uncertainty Estimation
    using Deep Ensembles". NeurIPS 2017.
    Hermans, Delaunoy, Rozet, Wehenkel, Begy, Louppe. "A Trust Crisis in Simulation-Based
    Inference? Your Posterior Approximations Can Be Unfaithful". TMLR 2022.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.conditional import check_count
from .posterior import Posterior
from .process_pool import check_started, orphan_safe_executor

__all__ = ["EnsemblePosterior", "fit_ensemble"]


class EnsemblePosterior:
    """An equal-weight mixture of trained posteriors, with the same contract as :class:`Posterior`.

    ``sample(n, x)``: ``(n, D)`` for one observation, ``(n, k, D)`` for ``k``; ``log_prob(theta,
    x)`` broadcasts as :meth:`Posterior.log_prob`.

    Args:
        members: the posteriors (same parameter dimension and data shape).
    """

    def __init__(self, members: Sequence[Posterior]) -> None:
        members = list(members)
        if not members:
            raise ValueError("EnsemblePosterior: needs at least one member")
        first = members[0]
        for i, m in enumerate(members):
            if not isinstance(m, Posterior):
                raise TypeError(f"EnsemblePosterior: member {i} is a {type(m).__name__}, not a Posterior")
            if m.theta_dim != first.theta_dim or m.x_shape != first.x_shape:
                raise ValueError(f"EnsemblePosterior: member {i} has theta_dim {m.theta_dim} and x_shape {m.x_shape}, "
                                 f"member 0 {first.theta_dim} and {first.x_shape}")
        self.members = members

    @property
    def theta_dim(self) -> int:
        return self.members[0].theta_dim

    @property
    def x_shape(self) -> tuple[int, ...]:
        return self.members[0].x_shape

    @property
    def prior(self) -> Any:
        return self.members[0].prior

    def sample(self, n: int, x: Any, generator: torch.Generator | None = None, seed: int | None = None) -> Tensor:
        """``n`` draws of the mixture per observation: each draw comes from a member chosen uniformly."""
        n = check_count("EnsemblePosterior.sample", n)
        if generator is None:
            generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        k = len(self.members)
        choice = torch.randint(0, k, (n,), generator=generator)
        parts = [m.sample(max(1, int((choice == i).sum())), x, generator=generator) for i, m in enumerate(self.members)]
        out = torch.empty(n, *parts[0].shape[1:], dtype=parts[0].dtype)
        for i, part in enumerate(parts):
            rows = (choice == i).nonzero().flatten()
            out[rows] = part[:len(rows)]
        return out

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor:
        """:math:`\\log \\frac1k \\sum_i q_i(\\theta \\mid x)`, shapes as :meth:`Posterior.log_prob`."""
        lps = torch.stack([m.log_prob(theta, x, outside=outside) for m in self.members])
        return torch.logsumexp(lps, 0) - math.log(len(self.members))

    def disagreement(self, x: Any, n: int = 1000, seed: int = 0) -> Tensor:
        """Epistemic uncertainty per observation and parameter: variance of the members' means over their mean variance.

        ``(D,)`` for one observation, ``(k, D)`` for ``k``. Near 0 the members agree; values of
        order 1 or more mean they disagree by about their own widths (train with more
        simulations, or do not trust details of the posterior at this observation).
        """
        draws = torch.stack([m.sample(n, x, seed=seed + i) for i, m in enumerate(self.members)])  # (k, n, ..., D)
        means, variances = draws.mean(1), draws.var(1)
        return means.var(0) / variances.mean(0).clamp_min(1e-300)


def _fit_member(job: tuple[dict[str, Any], str]) -> str:
    """Train one member in a worker process and save it to a file (no pickled model crosses processes)."""
    kwargs, path = job
    from .. import save
    from .fit import fit_posterior

    torch.set_num_threads(1)
    data = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    save(fit_posterior(**data), path)
    return path


def _member_files(options: dict[str, Any], i: int) -> dict[str, Any]:
    """``options`` with member ``i``'s own checkpoint and log paths (``<stem>.member<i><suffix>``)."""
    out = dict(options)
    for key in ("checkpoint", "log_path"):
        if out.get(key) is not None:
            path = Path(out[key])
            out[key] = path.with_name(f"{path.stem}.member{i}{path.suffix}")
    return out


def fit_ensemble(theta: Any, x: Any, members: int = 5, *, workers: int = 0, seed: int = 0,
                 **options: Any) -> EnsemblePosterior:
    """Train ``members`` posteriors with :func:`~innverse.amortized.fit_posterior` (seeds ``seed + i``) and mix them.

    Args:
        theta, x: training pairs (in memory), as for ``fit_posterior``.
        members: ensemble size (>= 1).
        workers: train in this many processes at once (0: one after the other in this process);
            each worker uses one torch thread.
        seed: seed of member 0.
        options: further keyword arguments of ``fit_posterior`` (``prior``, ``flow``, ``training``, ...).
            A ``checkpoint`` or ``log_path`` is given to member ``i`` as ``<stem>.member<i><suffix>``
            next to the path, so members neither overwrite nor resume each other's files.

    Raises:
        ValueError: ``members`` below 1.
        RuntimeError: worker processes that die while starting (a script that calls this at top
            level, without ``if __name__ == "__main__":``) or while training a member (killed, out of
            memory); the message says which.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"fit_ensemble: members must be an int >= 1, got {members!r}")
    from .. import load
    from .fit import fit_posterior

    options = {**options, "progress": False}
    if workers <= 1:
        return EnsemblePosterior([fit_posterior(theta, x, seed=seed + i, **_member_files(options, i))
                                  for i in range(members)])
    arrays = {"theta": np.asarray(theta), "x": np.asarray(x)}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [({**arrays, **_member_files(options, i), "seed": seed + i},
                 os.path.join(tmp, f"member{i}.safetensors")) for i in range(members)]
        with orphan_safe_executor(workers) as pool:   # a killed caller leaves no workers training on
            check_started(pool, "fit_ensemble (fit_posterior with ensemble=k or budget=\"accurate\")", "spawn",
                          "pass workers=0 to fit_ensemble")
            futures: list = []
            try:
                futures += [pool.submit(_fit_member, job) for job in jobs]
                paths = [f.result() for f in futures]
            except BrokenProcessPool as err:
                done = sum(f.done() and not f.cancelled() and f.exception() is None for f in futures)
                raise RuntimeError(
                    f"fit_ensemble: a worker process died while training a member ({done} of {members} members "
                    f"had finished): it was killed from outside or ran out of memory (each worker holds a copy of "
                    f"the {len(arrays['theta'])} training pairs); train fewer members at once (workers=) or one after "
                    f"the other (workers=0)") from err
        return EnsemblePosterior([load(Path(p)) for p in paths])
