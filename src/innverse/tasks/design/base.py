r"""Generated tasks for experimental design and misspecification: a box prior and a torch simulator.

Two kinds implement :class:`~innverse.tasks.AbstractTask` here:

* :class:`AbstractDesignTask`: a prior :math:`\theta \sim U(\prod_i [l_i, h_i])` and a
  simulator :math:`x \sim p(x \mid \theta)` whose instances differ by a *measurement setup*
  (the bands of a camera, the signals of a monitor), so that setups can be compared by the
  posteriors they give (:func:`innverse.design.compare`);
* :class:`AbstractMisspecifiedTask`: a simulator and a *reality* that adds an effect the
  simulator lacks (friction, reporting delays, sensor drift), with labelled real pairs
  :math:`(\theta_i, x_i^{\mathrm{real}})` for calibration and testing (:func:`innverse.design.rope`).

Everything is computed in float64 and returned in the task's dtype (float32 by default);
randomness comes from an explicit ``torch.Generator`` (``None``: torch's global generator).
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from ...amortized.priors import box_uniform
from ..base import AbstractTask

__all__ = ["AbstractDesignTask", "AbstractMisspecifiedTask", "normal"]

F64 = torch.float64


def normal(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Standard normal noise ``shape`` in float64 from ``generator``."""
    return torch.randn(shape, generator=generator, dtype=F64)


class AbstractDesignTask(AbstractTask):
    """A generated task: named parameters with a box-uniform prior and a batched torch simulator.

    Subclasses set ``name``, ``parameter_names`` and ``bounds`` (one ``(low, high)`` per
    parameter) and implement :attr:`observation_shape`, :meth:`_simulate` (float64 in, float64
    out) and :meth:`config`.

    Args:
        dtype: dtype of the parameters and observations returned.
    """

    bounds: tuple[tuple[float, float], ...] = ()

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{type(self).__name__}: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype

    @property
    def parameter_dim(self) -> int:
        return len(self.bounds)

    @property
    def low(self) -> Tensor:
        return torch.tensor([b[0] for b in self.bounds], dtype=F64)

    @property
    def high(self) -> Tensor:
        return torch.tensor([b[1] for b in self.bounds], dtype=F64)

    @property
    def prior(self) -> Distribution:
        """The box-uniform prior, ``Independent(Uniform(low, high), 1)`` in the task's dtype."""
        return box_uniform(self.low.to(self.dtype), self.high.to(self.dtype))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_count(n, "sample_prior")
        self._check_generator(generator, "sample_prior")
        u = torch.rand((n, self.parameter_dim), generator=generator, dtype=F64)
        return (self.low + (self.high - self.low) * u).to(self.dtype)

    def simulate(self, parameters: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One observation per parameter row: ``(n, D) -> (n, *observation_shape)``, in ``parameters``' dtype."""
        self._check_generator(generator, "simulate")
        theta = self._check_parameters(parameters, "parameters", f"{self.name}.simulate")
        return self._simulate(theta.to(F64), generator).to(theta.dtype if theta.is_floating_point() else self.dtype)

    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        theta = self.sample_prior(self._check_count(n, "sample_joint"), generator)
        return theta, self.simulate(theta, generator)

    @abc.abstractmethod
    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        """The simulator on float64 parameters ``(n, D)`` -> float64 observations."""

    def __call__(self, parameters: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.simulate(parameters, generator)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class AbstractMisspecifiedTask(AbstractDesignTask):
    r"""A simulator and a reality it does not fully describe, with labelled real pairs.

    :meth:`simulate` is the model an NPE is trained on; :meth:`simulate_real` is the stand-in
    for real measurements: the same parameters, plus an effect the model lacks, drawn afresh for
    every observation (it is a nuisance, not a parameter). :meth:`sample_real` draws labelled
    pairs :math:`(\theta_i, x_i^{\mathrm{real}})`, :math:`\theta_i` from the prior: a calibration
    set or a held-out test set, depending on the generator's seed.
    """

    def simulate_real(self, parameters: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Real observations of ``parameters (n, D)``: the simulator plus the unmodelled effect."""
        self._check_generator(generator, "simulate_real")
        theta = self._check_parameters(parameters, "parameters", f"{self.name}.simulate_real")
        return self._simulate_real(theta.to(F64), generator).to(theta.dtype if theta.is_floating_point()
                                                                else self.dtype)

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` labelled real pairs ``(theta (n, D), x_real (n, *observation_shape))``, theta from the prior."""
        theta = self.sample_prior(self._check_count(n, "sample_real"), generator)
        return theta, self.simulate_real(theta, generator)

    @abc.abstractmethod
    def _simulate_real(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        """Reality on float64 parameters ``(n, D)`` -> float64 observations."""

    def config(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype).replace("torch.", "")}
