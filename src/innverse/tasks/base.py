r"""The task protocol: what every benchmark problem offers, SBI task or inverse problem alike.

A task is a Bayesian model, a prior :math:`p(\text{parameters})` and a simulator
:math:`p(\text{observation} \mid \text{parameters})`, with reference posterior samples to
compare an estimator against. Two families implement :class:`AbstractTask`:

* :class:`~innverse.tasks.AbstractSBITask` (``innverse.tasks.sbi``): the simulation-based
  inference benchmarks (Lueckmann et al. 2021), a stochastic simulator with a tractable
  likelihood, ten fixed observations and cached exact or MCMC reference posteriors;
* :class:`~innverse.tasks.AbstractInverseTask` (``innverse.tasks.inverse``): inverse problems
  (Ardizzone et al. 2019, Kruse et al. 2021), a deterministic forward process that loses
  information, with closed-form or rejection-ABC reference posteriors for any observation.

Each family keeps its literature's names, which readers of those papers (and the README
examples and benchmarks) use; the protocol itself speaks of *parameters* and *observations*:

=====================  =========================  ==========================
protocol               SBI tasks                  inverse problems
=====================  =========================  ==========================
parameters             ``theta``                  ``x``
``parameter_dim``      ``theta_dim``              ``x_dim``
observations           ``x``                      ``y``
``observation_shape``  ``x_shape``                ``(y_dim,)``
=====================  =========================  ==========================

Both families also name the parameters (``parameter_names``), draw from the prior and the joint
through an explicit ``torch.Generator`` (``sample_prior(n, generator)``,
``sample_joint(n, generator)``), simulate (``simulate(parameters, generator=None)``; a
deterministic forward process ignores the generator), describe their settings as a JSON-ready
dict (``config()``) and cache reference posteriors on disk (:mod:`innverse.tasks.cache`). How a
reference posterior is asked for follows the family: an SBI task has it for each of its fixed
observations, ``reference_posterior(i, n)``; an inverse problem for any observation,
``reference_posterior(y_obs, n, generator)`` where a closed form exists, else through
:func:`~innverse.tasks.abc_reference`.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from .._tensors import to_tensor
from ..core.conditional import check_count

__all__ = ["AbstractTask"]


class AbstractTask(abc.ABC):
    """A benchmark problem: prior, simulator, joint samples and reference posteriors (see the module docstring).

    Class attributes set by every task: ``name`` (registry and cache key) and
    ``parameter_names`` (one per parameter).
    """

    name: str
    parameter_names: tuple[str, ...] = ()

    @property
    @abc.abstractmethod
    def parameter_dim(self) -> int:
        """Number of parameters ``D`` (``theta_dim`` of SBI tasks, ``x_dim`` of inverse problems)."""

    @property
    @abc.abstractmethod
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation (``x_shape`` of SBI tasks, ``(y_dim,)`` of inverse problems)."""

    @abc.abstractmethod
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` prior draws ``(n, parameter_dim)``, reproducible through ``generator``."""

    @abc.abstractmethod
    def simulate(self, parameters: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One observation per parameter vector: ``(n, parameter_dim) -> (n, *observation_shape)``."""

    @abc.abstractmethod
    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` joint draws ``(parameters (n, D), observations (n, *observation_shape))``."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The settings that distinguish instances of the task class (JSON-serialisable; part of cache keys)."""

    # ----------------------------------------------------------------- checks shared by the families
    def _check_count(self, n: Any, where: str) -> int:
        return check_count(f"{self.name}.{where}", n)

    def _check_generator(self, generator: Any, where: str) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{self.name}.{where}: generator must be a torch.Generator or None, "
                            f"got {type(generator).__name__}")

    def _check_parameters(self, value: Any, name: str, owner: str, dtype: torch.dtype | None = None) -> Tensor:
        """``value`` as a real tensor of shape ``(n, parameter_dim)`` (converted to ``dtype`` if given)."""
        return self._check_rows(value, name, owner, self.parameter_dim, dtype)

    @staticmethod
    def _check_rows(value: Any, name: str, owner: str, width: int, dtype: torch.dtype | None = None) -> Tensor:
        """``value`` as a real tensor of shape ``(n, width)`` (converted to ``dtype`` if given)."""
        t = to_tensor(value, name, owner, dtype)
        if t.dim() != 2 or t.shape[1] != width:
            raise ValueError(f"{owner}: {name} must have shape (n, {width}), got {tuple(t.shape)}")
        return t
