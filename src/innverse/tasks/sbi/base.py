r"""The simulation-based-inference task: prior, stochastic simulator, fixed observations, references.

An SBI task is a Bayesian model :math:`p(\theta)\,p(x \mid \theta)` given by a prior (a
``torch.distributions.Distribution``) and a stochastic simulator with a tractable likelihood,
plus ``num_observations`` fixed observations :math:`x_i \sim p(x \mid \theta_i)`,
:math:`\theta_i \sim p(\theta)`, each drawn from its own documented seed, and samples from the
exact posterior :math:`p(\theta \mid x_i)` for each of them (analytic where the posterior is
known, otherwise from the validated MCMC sampler of :mod:`~innverse.tasks.sbi.mcmc`), cached on
disk (:mod:`innverse.tasks.cache`).

Concrete tasks subclass :class:`AbstractSBITask` and implement the hooks ``_make_prior``,
``_simulate``, ``_log_likelihood`` and ``_sample_reference``; everything a user calls (argument
checks, seeded prior draws, observations, caching) is written once here.
"""

from __future__ import annotations

import abc
import os
import zlib
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..._tensors import to_tensor
from ...amortized.prior_sampling import sample_with_generator
from ..base import AbstractTask
from ..cache import load_reference, reference_cache_dir, reference_path, save_references

__all__ = ["AbstractSBITask"]

_FLOATS = (torch.float32, torch.float64)


class AbstractSBITask(AbstractTask):
    """Base class of the SBI benchmark tasks: :class:`~innverse.tasks.AbstractTask` with SBI names.

    Parameters are ``theta`` (``theta_dim`` of them), observations ``x`` (``x_shape``).

    Class attributes set by every task: ``name``, ``theta_dim``, ``x_shape`` (shape of one
    simulation), ``parameter_names``, ``observation_seeds`` (one per observation) and
    ``reference_version`` (bumped whenever the reference sampler changes, so stale caches are
    never read). ``reference_key`` names the cache folder (tasks that share a posterior, such as
    SLCP with and without distractors, share it); ``batched_reference`` makes a cache miss
    compute the references of all observations in one vectorised run; ``set_valued`` marks
    tasks whose data are sets padded with NaN rows to ``x_shape[0]`` rows.

    Args:
        dtype: floating dtype of the prior, the observations and the reference samples
            (``torch.float32`` by default, or ``torch.float64``).
    """

    theta_dim: int
    x_shape: tuple[int, ...]
    observation_seeds: tuple[int, ...]
    reference_version: str = "1"
    reference_key: str | None = None
    batched_reference: bool = False
    set_valued: bool = False
    num_observations: int = 10

    def __init__(self, dtype: torch.dtype = torch.float32):
        if dtype not in _FLOATS:
            raise TypeError(f"{type(self).__name__}: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        self.prior: Distribution = self._make_prior(dtype, True)
        self._prior64 = self._make_prior(torch.float64, False)
        self._observed: dict[int, tuple[Tensor, Tensor]] = {}

    # ----------------------------------------------------------------- hooks for subclasses
    @abc.abstractmethod
    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        """The prior in ``dtype``; ``validate_args=False`` gives -inf (not an error) off-support.

        It must be one that :func:`~innverse.amortized.priors.sample_with_generator` can draw from.
        """

    @abc.abstractmethod
    def _simulate(self, theta: Tensor, generator: torch.Generator | None, **options) -> Tensor:
        """Simulations ``(n, *x_shape)`` in ``theta``'s dtype for checked ``theta (n, theta_dim)``."""

    @abc.abstractmethod
    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log p(x | theta)``, shape ``(n,)``, for checked ``theta (n, D)``, ``x (n, *x_shape)``."""

    @abc.abstractmethod
    def _sample_reference(
        self, indices: tuple[int, ...], n: int, generator: torch.Generator
    ) -> tuple[list[Tensor], list[dict]]:
        """``n`` float64 posterior samples and a diagnostics dict for each observation index."""

    # ----------------------------------------------------------------- the task protocol
    @property
    def parameter_dim(self) -> int:
        return self.theta_dim

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def config(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype).removeprefix("torch.")}

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` prior draws ``(n, theta_dim)`` in the task's dtype, reproducible via ``generator``."""
        n = self._check_count(n, "sample_prior")
        self._check_generator(generator, "sample_prior")
        return sample_with_generator(self.prior, n, generator)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
        """Draw one simulation per parameter vector: ``theta (n, theta_dim) -> x (n, *x_shape)``.

        Deterministic given ``generator`` (a ``torch.Generator`` on ``theta``'s device; ``None``
        uses torch's global generator). The output has ``theta``'s dtype. Task-specific
        ``options`` (e.g. ``count`` for set-valued tasks) are documented on each task.
        """
        theta = self._check_theta(theta, "simulate")
        self._check_generator(generator, "simulate")
        return self._simulate(theta, generator, **options)

    def __call__(self, theta: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
        """Same as :meth:`simulate`."""
        return self.simulate(theta, generator, **options)

    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` joint draws ``(theta (n, theta_dim), x (n, *x_shape))`` from one ``generator``."""
        theta = self.sample_prior(n, generator)
        return theta, self._simulate(theta, generator)

    # ----------------------------------------------------------------- likelihood and observations
    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Exact ``log p(x | theta)``, shape ``(n,)``.

        Args:
            theta: ``(n, theta_dim)``.
            x: one observation of shape ``x_shape`` (broadcast to all ``n``) or a batch
                ``(n, *x_shape)``; set-valued tasks also take unpadded sets ``(k, *x_shape[1:])``.
        """
        theta = self._check_theta(theta, "log_likelihood")
        x = self._check_x(x, theta.shape[0], theta.dtype, "log_likelihood")
        return self._log_likelihood(theta, x)

    def log_joint(self, theta: Tensor, x: Tensor) -> Tensor:
        """Unnormalised log posterior ``log p(x | theta) + log p(theta)`` (-inf off the support)."""
        theta = self._check_theta(theta, "log_joint")
        x = self._check_x(x, theta.shape[0], theta.dtype, "log_joint")
        log_prior = self._prior64.log_prob(theta.to(torch.float64)).to(theta.dtype)
        inside = torch.isfinite(log_prior)
        safe = torch.where(inside[:, None], theta, self._prior64.mean.to(theta))
        return torch.where(inside, self._log_likelihood(safe, x) + log_prior, -torch.inf)

    def observation(self, i: int) -> Tensor:
        """The ``i``-th fixed observation (0-based), shape ``x_shape``, in the task's dtype."""
        return self._observed_pair(self._check_index(i))[1].to(self.dtype)

    def true_parameters(self, i: int) -> Tensor:
        """The parameters ``(theta_dim,)`` that generated :meth:`observation` ``(i)``."""
        return self._observed_pair(self._check_index(i))[0].to(self.dtype)

    def reference_posterior(self, i: int, n: int = 10_000, cache_dir: str | os.PathLike | None = None) -> Tensor:
        """``n`` samples ``(n, theta_dim)`` from the exact posterior ``p(theta | observation(i))``.

        Read from the cache (see :mod:`innverse.tasks.cache`) when present; otherwise computed
        with a fixed seed (so the result does not depend on the cache), written atomically and
        returned. Tasks with ``batched_reference`` compute all observations on a miss.
        """
        i = self._check_index(i)
        n = self._check_count(n, "reference_posterior")
        root = reference_cache_dir(cache_dir)
        key = self.reference_key or self.name
        cached = load_reference(reference_path(root, key, i, n, self.reference_version), (n, self.theta_dim))
        if cached is None:
            indices = tuple(range(self.num_observations)) if self.batched_reference else (i,)
            tag = "all" if self.batched_reference else str(i)
            seed = zlib.crc32(f"{key}|{n}|{tag}|{self.reference_version}".encode())
            samples = save_references(root, key, n, self.reference_version, indices, seed, self._sample_reference)
            cached = samples[indices.index(i)].numpy()
        return torch.from_numpy(cached).to(self.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, theta_dim={self.theta_dim}, "
                f"x_shape={self.x_shape}, dtype={self.dtype})")

    # ----------------------------------------------------------------- helpers
    def _observed_pair(self, i: int) -> tuple[Tensor, Tensor]:
        if i not in self._observed:
            generator = torch.Generator().manual_seed(self.observation_seeds[i])
            theta = sample_with_generator(self._prior64, 1, generator)
            x = self._simulate(theta, generator)
            self._observed[i] = (theta[0], x[0])
        return self._observed[i]

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.num_observations:
            raise ValueError(f"{self.name}: observation index must be an int in "
                             f"[0, {self.num_observations}), got {i!r}")
        return i

    def _check_theta(self, theta: Any, where: str) -> Tensor:
        theta = self._check_parameters(theta, "theta", f"{self.name}.{where}")
        if theta.dtype not in _FLOATS:
            raise TypeError(f"{self.name}.{where}: theta must be float32 or float64, got {theta.dtype}")
        return theta

    def _check_x(self, x: Any, n: int, dtype: torch.dtype, where: str) -> Tensor:
        x = to_tensor(x, "x", f"{self.name}.{where}")
        if x.dtype not in _FLOATS:
            raise TypeError(f"{self.name}.{where}: x must be float32 or float64, got {x.dtype}")
        k = len(self.x_shape)
        if x.dim() == k:
            x = x.unsqueeze(0)
        if x.dim() != k + 1 or x.shape[0] not in (1, n) or not self._sample_shape_ok(x.shape[1:]):
            expected = f"{self.x_shape} or (n={n}, *{self.x_shape})"
            if self.set_valued:
                expected += f"; sets may have fewer than {self.x_shape[0]} rows"
            raise ValueError(f"{self.name}.{where}: x must have shape {expected}, got {tuple(x.shape)}")
        if self.set_valued and x.shape[1] < self.x_shape[0]:
            pad = x.new_full((x.shape[0], self.x_shape[0] - x.shape[1], *self.x_shape[1:]), torch.nan)
            x = torch.cat([x, pad], 1)
        return x.to(dtype).expand(n, *self.x_shape)

    def _sample_shape_ok(self, shape: torch.Size) -> bool:
        if tuple(shape) == self.x_shape:
            return True
        return (self.set_valued and tuple(shape[1:]) == self.x_shape[1:]
                and 1 <= shape[0] <= self.x_shape[0])
