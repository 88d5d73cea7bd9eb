"""Registry of the SBI tasks: :func:`get_task` by name, :data:`TASKS` and the standard :data:`SBI_TASKS`."""

from __future__ import annotations

import torch

from .base import AbstractSBITask
from .bernoulli_glm import BernoulliGLM, BernoulliGLMRaw
from .gaussian_iid import GaussianIID
from .gaussian_linear import GaussianLinear, GaussianLinearUniform
from .gaussian_mixture import GaussianMixture
from .lotka_volterra import LotkaVolterra, LotkaVolterraSeries
from .sir import SIR
from .slcp import SLCP, SLCPDistractors
from .two_moons import TwoMoons

__all__ = ["SBI_TASKS", "TASKS", "get_task"]

_REGISTRY: dict[str, type[AbstractSBITask]] = {
    cls.name: cls
    for cls in (TwoMoons, SLCP, SLCPDistractors, GaussianLinear, GaussianLinearUniform, GaussianMixture,
                BernoulliGLM, BernoulliGLMRaw, SIR, LotkaVolterra, GaussianIID, LotkaVolterraSeries)
}

#: The tasks of Lueckmann et al. (2021) implemented here, in the paper's order.
SBI_TASKS: tuple[str, ...] = ("two_moons", "slcp", "slcp_distractors", "gaussian_linear",
                              "gaussian_linear_uniform", "gaussian_mixture", "bernoulli_glm",
                              "bernoulli_glm_raw", "sir", "lotka_volterra")

#: Every registered task: :data:`SBI_TASKS` plus the set-valued and time-series tasks.
TASKS: tuple[str, ...] = tuple(_REGISTRY)


def get_task(name: str, dtype: torch.dtype = torch.float32) -> AbstractSBITask:
    """A fresh instance of the task called ``name`` (one of :data:`TASKS`) in ``dtype``."""
    if name not in _REGISTRY:
        raise ValueError(f"get_task: unknown task {name!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name](dtype=dtype)
