"""The contract of an inverse-problem task: a prior over hidden x and a forward process y = s(x)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["AbstractInverseTask", "check_batch", "as_observations"]


def check_batch(owner: str, t: Tensor, dim: int, what: str) -> Tensor:
    """Check that ``t`` is a floating-point ``(batch, dim)`` tensor; return it as float64."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{owner}: expected {what} as a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{owner}: expected a floating-point {what}, got dtype {t.dtype}")
    if t.dim() != 2 or t.shape[1] != dim:
        raise ValueError(f"{owner}: expected {what} of shape (batch, {dim}), got {tuple(t.shape)}")
    return t.to(torch.float64)


def as_observations(owner: str, y_obs: Tensor, y_dim: int) -> tuple[Tensor, bool]:
    """Normalise one observation ``(y_dim,)`` or ``k`` of them ``(k, y_dim)`` to ``(k, y_dim)``.

    Returns the batch and whether a single observation was given (so a posterior's ``sample``
    returns ``(n, x_dim)`` for one observation and ``(n, k, x_dim)`` for ``k``).
    """
    if not isinstance(y_obs, Tensor):
        raise TypeError(f"{owner}: expected y_obs as a torch.Tensor, got {type(y_obs).__name__}")
    if not y_obs.is_floating_point():
        raise TypeError(f"{owner}: expected a floating-point y_obs, got dtype {y_obs.dtype}")
    if y_obs.dim() == 1 and y_obs.shape[0] == y_dim:
        return y_obs[None], True
    if y_obs.dim() == 2 and y_obs.shape[1] == y_dim and y_obs.shape[0] > 0:
        return y_obs, False
    raise ValueError(f"{owner}: expected y_obs of shape ({y_dim},) or (k, {y_dim}), "
                     f"got {tuple(y_obs.shape)}")


class AbstractInverseTask:
    r"""An inverse problem: hidden parameters :math:`x \sim p(x)`, observation :math:`y = s(x)`.

    The forward process :math:`s` is known and loses information (``y_dim < x_dim`` or
    non-injective), so :math:`p(x \mid y)` is a genuine distribution, possibly multimodal.
    Everything works in float64 on the CPU; samples are drawn through an explicit
    ``torch.Generator`` so that every experiment is reproducible.

    Names follow the inverse-problem literature (Ardizzone et al. 2019): ``x`` are the hidden
    parameters and ``y`` the observations (the simulation-based-inference tasks,
    :class:`~innverse.tasks.AbstractTask`, call them ``theta`` and ``x``); and the forward
    process here is deterministic, so a task also provides :meth:`simulate` for re-simulation.

    Subclasses set ``name``, ``x_dim``, ``y_dim``, ``parameter_names`` and implement
    :meth:`sample_prior`, :meth:`simulate` and :meth:`config`. A task whose observation is not a
    deterministic function of x (the 8-modes toy, whose label comes from the mixture component)
    also overrides :meth:`sample_joint`. Tasks with a closed-form posterior override
    :meth:`reference_posterior`; the others get theirs from
    :func:`innverse.tasks.abc_reference`.
    """

    name: str = "abstract"
    x_dim: int = 0
    y_dim: int = 0
    parameter_names: tuple[str, ...] = ()
    observation_names: tuple[str, ...] = ()

    # -- to implement ---------------------------------------------------------------------------
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the prior, shape ``(n, x_dim)``, float64."""
        raise NotImplementedError

    def simulate(self, x: Tensor) -> Tensor:
        """The forward process :math:`s(x)`: ``(batch, x_dim) -> (batch, y_dim)``, float64.

        Defined for every real ``x`` (not only prior draws), so that posterior samples of any
        model can be re-simulated; where the process is undefined the row is NaN.
        """
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The task's defining constants (JSON-serialisable); part of every cache key."""
        raise NotImplementedError

    # -- provided -------------------------------------------------------------------------------
    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` joint draws ``(x, y)`` with ``x ~ p(x)``, ``y = s(x)``."""
        n = self._check_n(n)
        x = self.sample_prior(n, generator)
        return x, self.simulate(x)

    def reference_posterior(self, y_obs: Tensor, n: int,
                            generator: torch.Generator | None = None) -> Tensor:
        """Exact posterior samples where a closed form exists (``(n, x_dim)`` or ``(n, k, x_dim)``)."""
        raise NotImplementedError(f"{type(self).__name__}: no closed-form posterior; use "
                                  "innverse.tasks.abc_reference")

    def check_x(self, x: Tensor) -> Tensor:
        """Validate a batch of parameters ``(batch, x_dim)``; returns it as float64."""
        return check_batch(type(self).__name__, x, self.x_dim, "x")

    def check_y(self, y: Tensor) -> Tensor:
        """Validate a batch of observations ``(batch, y_dim)``; returns it as float64."""
        return check_batch(type(self).__name__, y, self.y_dim, "y")

    def _check_n(self, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{type(self).__name__}: the number of samples must be a positive int, "
                             f"got {n!r}")
        return n

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
