"""Candidate measurement setups: a simulator each, or one simulator with a design argument."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution

from ..amortized import sample_with_generator

__all__ = ["Budget", "Setup", "as_setups", "design_setups"]


@dataclass(frozen=True)
class Setup:
    """One candidate measurement setup.

    Attributes:
        name: how tables and plots call it.
        simulator: ``simulator(theta (n, D)[, generator=...]) -> x (n, ...)`` (any style
            :func:`innverse.amortized.simulate` accepts).
        cost: cost of the setup in any unit (for the Pareto front), or ``None``.
        design: the design value, where the setup is one point of a design space (a
            design-conditional posterior is then evaluated at it).
    """

    name: str
    simulator: Callable[..., Any]
    cost: float | None = None
    design: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Setup: name must be a non-empty string, got {self.name!r}")
        if not callable(self.simulator):
            raise TypeError(f"Setup {self.name!r}: simulator must be callable, got {type(self.simulator).__name__}")
        if self.cost is not None and not (isinstance(self.cost, (int, float)) and math.isfinite(self.cost)):
            raise ValueError(f"Setup {self.name!r}: cost must be a finite number or None, got {self.cost!r}")


@dataclass(frozen=True)
class Budget:
    """How much :func:`~innverse.design.compare` spends per setup.

    Attributes:
        simulations: training simulations per setup (one NPE each).
        test_size: held-out simulations the metrics are computed on (shared parameters across setups).
        posterior_samples: posterior samples per held-out observation.
        training: options of the training loop (:class:`~innverse.train.TrainConfig` or a dict),
            passed to :func:`~innverse.amortized.fit_posterior`.
        fit_options: further keyword arguments of :func:`~innverse.amortized.fit_posterior`
            (e.g. ``summary``, ``flow``).
    """

    simulations: int = 10_000
    test_size: int = 300
    posterior_samples: int = 500
    training: Any = None
    fit_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name, low in (("simulations", 100), ("test_size", 20), ("posterior_samples", 20)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"Budget: {name} must be an integer >= {low}, got {v!r}")

    @classmethod
    def coerce(cls, budget: Budget | int | Mapping[str, Any]) -> Budget:
        """A budget from a :class:`Budget`, a number of simulations or a dict of fields."""
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, Mapping):
            return cls(**budget)
        if isinstance(budget, int) and not isinstance(budget, bool):
            return cls(simulations=budget)
        raise TypeError(f"compare: budget must be a Budget, an int (simulations per setup) or a dict, got "
                        f"{type(budget).__name__}")


def design_setups(simulator: Callable[..., Any], designs: Mapping[str, Any],
                  costs: Mapping[str, float] | None = None) -> list[Setup]:
    """Setups from one simulator with a design argument: ``simulator(theta, design=value[, generator=...])``.

    Args:
        simulator: takes the design as the keyword argument ``design``.
        designs: setup name -> design value.
        costs: setup name -> cost (optional; every name or none).
    """
    if not designs:
        raise ValueError("design_setups: designs is empty")
    if costs is not None and set(costs) != set(designs):
        raise ValueError(f"design_setups: costs must name exactly the designs {sorted(designs)}, got {sorted(costs)}")
    return [Setup(name, functools.partial(simulator, design=value), None if costs is None else float(costs[name]),
                  value) for name, value in designs.items()]


def as_setups(setups: Mapping[str, Any] | Sequence[Setup], costs: Mapping[str, float] | None = None) -> list[Setup]:
    """Normalise ``setups`` (a list of :class:`Setup` or a mapping name -> simulator) to a list of setups."""
    if isinstance(setups, Mapping):
        if costs is not None and set(costs) != set(setups):
            raise ValueError(f"compare: costs must name exactly the setups {sorted(setups)}, got {sorted(costs)}")
        out = [s if isinstance(s, Setup) else Setup(name, s, None if costs is None else float(costs[name]))
               for name, s in setups.items()]
    elif isinstance(setups, Sequence) and all(isinstance(s, Setup) for s in setups):
        out = list(setups)
        if costs is not None:
            raise ValueError("compare: give costs inside the Setup objects, not as a separate mapping")
    else:
        raise TypeError(f"compare: setups must be a mapping name -> simulator or a list of Setup, got "
                        f"{type(setups).__name__}")
    if len(out) < 1:
        raise ValueError("compare: needs at least one setup")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"compare: setup names must be unique, got {names}")
    return out


def check_setup_dimensions(setups: Sequence[Setup], prior: Distribution, seed: int = 0) -> dict[str, tuple[int, ...]]:
    """Run every simulator on two prior draws: the observation shape per setup, or a clear error.

    Raises:
        ValueError: a setup whose simulator declares another parameter dimension
            (``parameter_dim`` attribute) or fails on parameters of the prior's dimension.
    """
    dim = int(prior.event_shape[0]) if len(prior.event_shape) == 1 else 1
    theta = sample_with_generator(prior, 2, torch.Generator().manual_seed(seed))
    shapes = {}
    for s in setups:
        declared = getattr(s.simulator, "parameter_dim", getattr(getattr(s.simulator, "func", None), "parameter_dim", None))
        if isinstance(declared, int) and declared != dim:
            raise ValueError(f"compare: setup {s.name!r} simulates {declared} parameters but the prior has {dim}; "
                             "all setups must share the prior's parameters")
        try:
            x = s.simulator(theta)
        except Exception as err:
            raise ValueError(f"compare: setup {s.name!r}: the simulator fails on parameters of shape (2, {dim}) drawn "
                             f"from the prior ({type(err).__name__}: {err}); all setups must share the prior's "
                             "parameters") from err
        shape = tuple(torch.as_tensor(x).shape)
        if len(shape) < 2 or shape[0] != 2 or 0 in shape:
            raise ValueError(f"compare: setup {s.name!r} returns empty observations or not one per parameter row "
                             f"(shape {shape} for parameters of shape (2, {dim}))")
        shapes[s.name] = shape[1:]
    return shapes
