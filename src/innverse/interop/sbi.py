"""sbi: an sbi posterior under innverse's contract (:func:`from_sbi`), an innverse posterior under sbi's (:func:`to_sbi`).

The two libraries read a leading dimension of size one differently. innverse's contract
(:mod:`innverse.core.conditional`): ``sample(n, x)`` gives ``(n, D)`` for one observation
``x_shape`` and ``(n, k, D)`` for a batch ``(k, *x_shape)``, so ``(1, *x_shape)`` is a batch of
one. sbi's ``sample(sample_shape, x)`` takes a single observation with or without a leading
dimension of one and refuses more (``sample_batched`` is for batches). Each adapter translates
exactly, so :func:`innverse.diagnostics.check` runs on an sbi posterior and sbi's ``run_sbc`` /
``run_tarp`` run on an innverse one. Neither imports sbi: both call the methods the other side
documents.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..amortized.posterior import sample_shape_of
from ..core.conditional import broadcast_value

__all__ = ["SBICompatiblePosterior", "SBIPosterior", "from_sbi", "to_sbi"]

#: keyword arguments of sbi's sampling methods that mean nothing for an innverse posterior, whose
#: samples need no rejection (they never leave the prior's support)
_SBI_SAMPLE_OPTIONS = ("show_progress_bars", "max_sampling_batch_size", "reject_outside_prior", "max_sampling_time",
                       "return_partial_on_timeout", "sample_with")


def _as_tensor(value: Any, dtype: torch.dtype, owner: str, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{owner}: {name} must be a tensor or an array of numbers, got {type(value).__name__}") from err


class SBIPosterior:
    """An sbi posterior (``DirectPosterior``, ``MCMCPosterior``, ...) under innverse's conditional-density contract.

    ``sample(n, x)`` -> ``(n, D)`` for one observation, ``(n, k, D)`` for ``k`` (sbi's ``sample``
    and ``sample_batched``); ``log_prob(theta (*s, k, D), x (k, ...))`` -> ``(*s, k)`` (sbi's
    ``log_prob`` and ``log_prob_batched``). ``x=None`` uses the sbi posterior's default x.

    Args:
        posterior: the sbi posterior.
        x_shape: shape of one observation (default: the estimator's ``condition_shape``).
        sample_kwargs / log_prob_kwargs: passed to sbi's sampling / density methods (e.g.
            ``{"norm_posterior": False}`` skips sbi's leakage correction).
    """

    def __init__(self, posterior: Any, x_shape: tuple[int, ...] | None = None,
                 sample_kwargs: dict[str, Any] | None = None, log_prob_kwargs: dict[str, Any] | None = None) -> None:
        for method in ("sample", "sample_batched", "log_prob", "set_default_x"):
            if not callable(getattr(posterior, method, None)):
                raise TypeError(f"from_sbi: posterior must be an sbi posterior (with {method}()), got "
                                f"{type(posterior).__name__}")
        if x_shape is None:
            x_shape = getattr(getattr(posterior, "posterior_estimator", None), "condition_shape", None)
        if x_shape is None:
            raise ValueError(f"from_sbi: cannot tell the shape of one observation from this {type(posterior).__name__};"
                             " pass x_shape=(...)")
        self.posterior, self.x_shape = posterior, tuple(int(s) for s in x_shape)
        self.sample_kwargs = {"show_progress_bars": False, **(sample_kwargs or {})}
        self.log_prob_kwargs = dict(log_prob_kwargs or {})

    @property
    def prior(self) -> Any:
        return getattr(self.posterior, "prior", None)

    def set_default_x(self, x: Any) -> SBIPosterior:
        """Set the sbi posterior's default observation; returns the adapter (chainable)."""
        self.posterior.set_default_x(x)
        return self

    def _x(self, x: Any, owner: str) -> tuple[Tensor, bool]:
        if x is None:
            x = getattr(self.posterior, "default_x", None)
            if x is None:
                raise ValueError(f"{owner}: x is None and the sbi posterior has no default x; pass x=... or call "
                                 "set_default_x(x_o) on the sbi posterior (or on this adapter)")
            return x.reshape(self.x_shape), True
        xt = _as_tensor(x, torch.float32, owner, "x")
        if tuple(xt.shape) == self.x_shape:
            return xt, True
        if xt.dim() == len(self.x_shape) + 1 and tuple(xt.shape[1:]) == self.x_shape and xt.shape[0] > 0:
            return xt, False
        raise ValueError(f"{owner}: expected x as one observation {self.x_shape} or a batch (k, *{self.x_shape}), got "
                         f"shape {tuple(xt.shape)}")

    def sample(self, sample_shape: int | tuple[int, ...], x: Any = None) -> Tensor:
        """``(*s, D)`` samples for one observation, ``(*s, k, D)`` for ``k`` (``sample_shape`` = ``n`` or ``s``)."""
        shape = sample_shape_of("from_sbi(...).sample", sample_shape)
        xt, single = self._x(x, "from_sbi(...).sample")
        n = (shape.numel(),)  # sbi flattens the sample dimensions; restore them
        if single:
            s = self.posterior.sample(n, x=xt, **self.sample_kwargs)
        else:
            s = self.posterior.sample_batched(n, x=xt, **self.sample_kwargs)
        return s.reshape(*shape, *s.shape[1:])

    def log_prob(self, theta: Any, x: Any = None) -> Tensor:
        """``log q(theta | x)``: ``theta (*s, D)`` -> ``(*s)`` for one observation, ``(*s, k, D)`` -> ``(*s, k)`` for ``k``."""
        owner = "from_sbi(...).log_prob"
        xt, single = self._x(x, owner)
        t = _as_tensor(theta, torch.float32, owner, "theta")
        if t.dim() < 1:
            raise ValueError(f"{owner}: expected theta of shape (*sample, D), got a scalar")
        dim = t.shape[-1]
        if single:
            lead = t.shape[:-1]
            lp = self.posterior.log_prob(t.reshape(-1, dim), x=xt, **self.log_prob_kwargs)
            return lp.reshape(lead)
        rows, _, shape = broadcast_value(owner, t, (dim,), (xt.shape[0],), "theta", "observation")
        flat = rows.reshape(-1, xt.shape[0], dim)
        if not callable(getattr(self.posterior, "log_prob_batched", None)):
            raise TypeError(f"{owner}: this {type(self.posterior).__name__} has no log_prob_batched(); score one "
                            "observation at a time")
        return self.posterior.log_prob_batched(flat, x=xt, **self.log_prob_kwargs).reshape(shape)


def from_sbi(posterior: Any, *, x_shape: tuple[int, ...] | None = None, sample_kwargs: dict[str, Any] | None = None,
             log_prob_kwargs: dict[str, Any] | None = None) -> SBIPosterior:
    """An sbi posterior as an innverse posterior (see :class:`SBIPosterior`), e.g. for :func:`innverse.diagnostics.check`.

    Raises:
        TypeError: not an sbi posterior.
        ValueError: the observation shape cannot be read off (pass ``x_shape``).
    """
    return SBIPosterior(posterior, x_shape, sample_kwargs, log_prob_kwargs)


class SBICompatiblePosterior:
    """An innverse posterior with sbi's ``NeuralPosterior`` interface and semantics.

    As sbi (0.27) does: ``sample(sample_shape, x)`` for one observation (``x_shape`` or
    ``(1, *x_shape)``) -> ``(N, D)`` with ``N`` the number of elements of ``sample_shape`` (sbi
    flattens the sample dimensions); more observations are an error (use ``sample_batched``).
    ``log_prob(theta (N, D), x)`` -> ``(N,)`` (``theta (D,)`` -> ``(1,)``), ``-inf`` outside the
    prior's support. ``sample_batched(sample_shape, x (B, ...))`` -> ``(N, B, D)``;
    ``log_prob_batched(theta (*s, B, D), x)`` -> ``(*s, B)`` (``(1, B)`` for ``theta (B, D)``).
    sbi's sampling options (progress bars, rejection
    settings) are accepted and have nothing to do: samples never leave the prior's support, so
    the density needs no leakage correction either (``norm_posterior`` is accepted and moot).
    """

    def __init__(self, posterior: Any) -> None:
        for attr in ("sample_batched", "log_prob_batched", "x_shape"):
            if not hasattr(posterior, attr):
                raise TypeError(f"to_sbi: expected an innverse Posterior (with {attr}), got {type(posterior).__name__}")
        self.posterior = posterior
        self._x: Tensor | None = None

    @property
    def prior(self) -> Any:
        return self.posterior.prior

    @property
    def device(self) -> torch.device:
        return self.posterior.device

    @property
    def default_x(self) -> Tensor | None:
        return self._x

    @default_x.setter
    def default_x(self, x: Any) -> None:
        self.set_default_x(x)

    def set_default_x(self, x: Any) -> SBICompatiblePosterior:
        """As sbi: store ``x`` with a batch dimension; returns the posterior (chainable)."""
        self._x = self._batch(x, "to_sbi(...).set_default_x")
        return self

    def to(self, device: str | torch.device) -> SBICompatiblePosterior:
        self.posterior.to(device)
        if self._x is not None:
            self._x = self._x.to(self.posterior.device)
        return self

    def _batch(self, x: Any, owner: str) -> Tensor:
        """``x`` as a batch ``(B, *x_shape)`` (sbi's ``reshape_to_batch_event``)."""
        shape = tuple(self.posterior.x_shape)
        xt = _as_tensor(x, torch.float32, owner, "x")
        if tuple(xt.shape) == shape:
            return xt.unsqueeze(0)
        if xt.dim() == len(shape) + 1 and tuple(xt.shape[1:]) == shape:
            return xt
        raise ValueError(f"{owner}: expected x of shape {shape} or (batch, *{shape}), got {tuple(xt.shape)}")

    def _one(self, x: Any, owner: str) -> Tensor:
        if x is None:
            if self._x is None:
                raise ValueError(f"{owner}: context `x` needed when a default has not been set; pass x or call "
                                 ".set_default_x(x_o)")
            xt = self._x
        else:
            xt = self._batch(x, owner)
        if xt.shape[0] != 1:
            raise ValueError(f"{owner}: supports only batchsize == 1, got {xt.shape[0]} observations; use "
                             ".sample_batched() / .log_prob_batched() for several")
        return xt[0]

    @staticmethod
    def _options(kwargs: dict[str, Any], owner: str, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"{owner}: unexpected keyword arguments {unknown}")
        if kwargs.get("track_gradients"):
            raise ValueError(f"{owner}: track_gradients=True is not supported (an innverse posterior evaluates "
                             "densities without gradients)")

    def sample(self, sample_shape: Any = (), x: Any = None, **kwargs: Any) -> Tensor:
        self._options(kwargs, "to_sbi(...).sample", _SBI_SAMPLE_OPTIONS)
        n = torch.Size(sample_shape).numel()
        return self.posterior.sample((n,), self._one(x, "to_sbi(...).sample"))

    def sample_batched(self, sample_shape: Any, x: Any, **kwargs: Any) -> Tensor:
        self._options(kwargs, "to_sbi(...).sample_batched", _SBI_SAMPLE_OPTIONS)
        n = torch.Size(sample_shape).numel()
        return self.posterior.sample_batched((n,), self._batch(x, "to_sbi(...).sample_batched"))

    def log_prob(self, theta: Any, x: Any = None, norm_posterior: bool = True, track_gradients: bool = False,
                 leakage_correction_params: dict[str, Any] | None = None) -> Tensor:
        self._options({"track_gradients": track_gradients}, "to_sbi(...).log_prob", ("track_gradients",))
        t = _as_tensor(theta, torch.float32, "to_sbi(...).log_prob", "theta")
        t = t.unsqueeze(0) if t.dim() == 1 else t
        return self.posterior.log_prob(t, self._one(x, "to_sbi(...).log_prob"), outside="-inf")

    def log_prob_batched(self, theta: Any, x: Any, norm_posterior: bool = True, track_gradients: bool = False,
                         leakage_correction_params: dict[str, Any] | None = None) -> Tensor:
        self._options({"track_gradients": track_gradients}, "to_sbi(...).log_prob_batched", ("track_gradients",))
        t = _as_tensor(theta, torch.float32, "to_sbi(...).log_prob_batched", "theta")
        xt = self._batch(x, "to_sbi(...).log_prob_batched")
        lp = self.posterior.log_prob_batched(t, xt, outside="-inf")
        return lp.unsqueeze(0) if t.dim() == 2 else lp

    def __repr__(self) -> str:
        return f"to_sbi({type(self.posterior).__name__}, x_shape={tuple(self.posterior.x_shape)})"


def to_sbi(posterior: Any) -> SBICompatiblePosterior:
    """An innverse posterior with sbi's interface (see :class:`SBICompatiblePosterior`), e.g. for sbi's ``run_sbc``.

    Raises:
        TypeError: not an innverse posterior.
    """
    return SBICompatiblePosterior(posterior)
