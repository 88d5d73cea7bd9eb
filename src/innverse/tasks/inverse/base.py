r"""The inverse-problem task: a prior over hidden parameters x and a known forward process y = s(x)."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from ..._tensors import to_tensor
from ...core.conditional import split_condition
from ..base import AbstractTask

__all__ = ["AbstractInverseTask", "split_observations"]


class AbstractInverseTask(AbstractTask):
    r"""An inverse problem: hidden parameters :math:`x \sim p(x)`, observation :math:`y = s(x)`.

    The forward process :math:`s` is known and loses information (``y_dim < x_dim`` or
    non-injective), so :math:`p(x \mid y)` is a genuine distribution, possibly multimodal.
    Everything works in float64 on the CPU; samples are drawn through an explicit
    ``torch.Generator`` so that every experiment is reproducible.

    Names follow the inverse-problem literature (Ardizzone et al. 2019): ``x`` are the hidden
    parameters (``x_dim``) and ``y`` the observations (``y_dim``); the protocol's
    ``parameter_dim`` is ``x_dim`` and its ``observation_shape`` is ``(y_dim,)`` (see
    :class:`~innverse.tasks.AbstractTask`; the SBI tasks call the same things ``theta`` and ``x``).

    Subclasses set ``name``, ``x_dim``, ``y_dim``, ``parameter_names`` and implement
    :meth:`sample_prior`, :meth:`simulate` (the forward process is deterministic; it may leave
    out the ``generator`` argument) and :meth:`config`. A task whose observation is not a
    deterministic function of x (the 8-modes toy, whose label comes from the mixture component)
    overrides :meth:`sample_joint`. Tasks with a closed-form posterior override
    :meth:`reference_posterior`; the others get theirs from :func:`innverse.tasks.abc_reference`.
    """

    name: str = "abstract"
    x_dim: int = 0
    y_dim: int = 0
    observation_names: tuple[str, ...] = ()

    @property
    def parameter_dim(self) -> int:
        return self.x_dim

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.y_dim,)

    @abc.abstractmethod
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the prior, shape ``(n, x_dim)``, float64."""

    @abc.abstractmethod
    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The forward process :math:`s(x)`: ``(batch, x_dim) -> (batch, y_dim)``, float64.

        Defined for every real ``x`` (not only prior draws), so that posterior samples of any
        model can be re-simulated; where the process is undefined the row is NaN. Deterministic:
        ``generator`` is not used.
        """

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The task's defining constants (JSON-serialisable); part of every cache key."""

    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` joint draws ``(x, y)`` with ``x ~ p(x)``, ``y = s(x)``."""
        x = self.sample_prior(self._check_count(n, "sample_joint"), generator)
        return x, self.simulate(x)

    def reference_posterior(self, y_obs: Tensor, n: int,
                            generator: torch.Generator | None = None) -> Tensor:
        """Exact posterior samples where a closed form exists: ``(n, x_dim)`` for one y, ``(n, *batch, x_dim)`` for many."""
        raise NotImplementedError(f"{type(self).__name__}: no closed-form posterior; use "
                                  "innverse.tasks.abc_reference")

    def check_x(self, x: Any) -> Tensor:
        """Validate a batch of parameters ``(batch, x_dim)``; returns it as float64."""
        return self._check_parameters(x, "x", type(self).__name__, torch.float64)

    def check_y(self, y: Any) -> Tensor:
        """Validate a batch of observations ``(batch, y_dim)``; returns it as float64."""
        return self._check_rows(y, "y", type(self).__name__, self.y_dim, torch.float64)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def split_observations(owner: str, y_obs: Any, y_dim: int) -> tuple[Tensor, tuple[int, ...]]:
    """``y_obs`` of shape ``(*batch, y_dim)`` as float64 ``(k, y_dim)``, ``k >= 1``, and ``batch``.

    The conditional-density convention (:func:`~innverse.core.conditional.split_condition`): one
    observation ``(y_dim,)`` has batch shape ``()``, ``k`` of them ``(k, y_dim)`` batch ``(k,)``.
    """
    ys, batch = split_condition(owner, to_tensor(y_obs, "y_obs", owner, torch.float64), (y_dim,), "y_obs")
    if ys.shape[0] == 0:
        raise ValueError(f"{owner}: y_obs holds no observation, got shape {tuple(ys.shape)}")
    return ys, batch
