"""Calling posteriors, priors and simulators the way the diagnostics need: batched, checked, chunked.

The posterior protocol (any object with these methods, innverse's or a peer's):

* ``sample(n, x)``: ``x`` a batch of ``k`` observations ``(k, *x_shape)`` -> ``(n, k, D)``
  (one observation of shape ``x_shape`` -> ``(n, D)``);
* optionally ``log_prob(theta, x)``: ``theta (n, k, D)`` with ``x (k, *x_shape)`` -> ``(n, k)``
  (one observation: ``theta (n, D)`` -> ``(n,)``).

A prior is a ``torch.distributions.Distribution`` with event shape ``(D,)``; a simulator is a
callable ``theta (m, D) -> x (m, *x_shape)`` returning a tensor or array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._tensors import to_tensor

__all__ = ["simulate", "posterior_sample", "posterior_log_prob", "prior_variance"]


def _numeric(out: Any) -> Any:
    """Boolean outcomes as 0/1 (the simulation store reads them so too); anything else unchanged."""
    if isinstance(out, Tensor) and out.dtype == torch.bool:
        return out.to(torch.uint8)
    if isinstance(out, np.ndarray) and out.dtype == np.bool_:
        return out.astype(np.uint8)
    return out


def _output(out: Any, what: str) -> Tensor:
    """A called object's output as a detached real tensor; errors name ``check`` and ``what``."""
    return to_tensor(out, what, "check").detach()


def simulate(simulator: Callable[[Tensor], Any], theta: Tensor) -> tuple[Tensor, Tensor, int]:
    """Run ``simulator`` on ``theta (m, D)``; drop rows with non-finite output.

    Returns:
        ``(theta_kept, x_kept, dropped)``.
    """
    x = _output(_numeric(simulator(theta)), "the simulator's output")
    if x.dim() == 0 or x.shape[0] != theta.shape[0]:
        raise ValueError(f"check: the simulator returned shape {tuple(x.shape)} for {theta.shape[0]} "
                         "parameter sets; expected (m, *x_shape) with one row per parameter set")
    ok = torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
    return theta[ok.to(theta.device)], x[ok], int((~ok).sum())


def _chunks(k: int, per_call: int) -> list[slice]:
    return [slice(i, min(k, i + per_call)) for i in range(0, k, per_call)]


def posterior_sample(posterior: Any, n: int, x: Tensor, theta_dim: int, max_rows: int = 1 << 20) -> Tensor:
    """``(n, k, D)`` samples for ``k`` observations, ``max_rows // n`` observations per call."""
    if not callable(getattr(posterior, "sample", None)):
        raise TypeError(f"check: the posterior ({type(posterior).__name__}) has no sample(n, x) method")
    k = x.shape[0]
    out = []
    for sl in _chunks(k, max(1, max_rows // n)):
        s = _output(posterior.sample(n, x[sl]), "posterior.sample's output")
        m = sl.stop - sl.start
        if tuple(s.shape) != (n, m, theta_dim):
            raise ValueError(f"check: posterior.sample({n}, x) with x of shape {tuple(x[sl].shape)} "
                             f"returned {tuple(s.shape)}; expected ({n}, {m}, {theta_dim})")
        out.append(s.to(torch.float64))
    return torch.cat(out, 1)


def _log_prob_call(posterior: Any, theta: Tensor, x: Tensor) -> Tensor:
    """One batched call; falls back to flattened rows for objects like ``Flow.log_prob(theta, c)``."""
    n, m, _ = theta.shape
    try:
        lp = _output(posterior.log_prob(theta, x), "posterior.log_prob's output")
        if tuple(lp.shape) == (n, m):
            return lp
        first: Exception = ValueError(f"check: posterior.log_prob(theta {tuple(theta.shape)}, x) returned "
                                      f"{tuple(lp.shape)}; expected ({n}, {m})")
    except (ValueError, RuntimeError, TypeError) as err:
        first = err
    try:
        flat_x = x.repeat(n, *([1] * (x.dim() - 1)))
        lp = _output(posterior.log_prob(theta.reshape(n * m, -1), flat_x), "posterior.log_prob's output")
        if lp.numel() == n * m:
            return lp.reshape(n, m)
    except (ValueError, RuntimeError, TypeError):
        pass
    raise first


def posterior_log_prob(posterior: Any, theta: Tensor, x: Tensor, max_rows: int = 1 << 20) -> Tensor:
    """``(n, k)`` log-densities of ``theta (n, k, D)`` given ``x (k, ...)``, batched over observations."""
    n, k, _ = theta.shape
    out = []
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    with torch.no_grad():
        for sl in _chunks(k, max(1, max_rows // n)):
            out.append(_log_prob_call(posterior, theta[:, sl].to(dtype), x[sl]).to(torch.float64))
    return torch.cat(out, 1)


def prior_variance(prior: torch.distributions.Distribution, fallback: Tensor) -> Tensor:
    """The prior's variance if the distribution knows it, else the variance of ``fallback``."""
    try:
        v = prior.variance.detach().to(torch.float64).reshape(-1)
        if v.shape == fallback.shape[1:] and bool(torch.isfinite(v).all()):
            return v
    except (NotImplementedError, AttributeError, RuntimeError):
        pass
    return fallback.to(torch.float64).var(0)
