"""The trained posterior: batched sampling, densities, MAP and summaries for any observation."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .._tensors import to_tensor
from ..core.conditional import broadcast_value
from ..train import History
from .estimator import PosteriorEstimator
from .fit_report import FitReport
from .inputs import check_x

__all__ = ["Posterior", "check_device"]

SampleShape = int | tuple[int, ...] | list[int] | torch.Size


def check_device(device: str | torch.device, owner: str, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, or a clear error naming the argument.

    Raises:
        TypeError: not a string or ``torch.device``.
        ValueError: not a device name, a device type this machine lacks (``"cuda"`` without a GPU),
            an index past the devices present, or ``"meta"`` (which computes nothing).
    """
    if isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{owner}: {name}={device!r} is not a device (expected e.g. 'cpu', 'cuda', 'cuda:1', "
                             "'mps')") from err
    elif isinstance(device, torch.device):
        dev = device
    else:
        raise TypeError(f"{owner}: {name} must be a string or a torch.device, got {type(device).__name__}")
    if dev.type == "meta":
        raise ValueError(f"{owner}: {name}={device!r}: the meta device holds no data; use 'cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{owner}: {name}={device!r}, but CUDA is not available here (torch {torch.__version__}"
                             f", CUDA build {torch.version.cuda}); use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{owner}: {name}={device!r}, but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"{owner}: {name}={device!r} is not usable on this machine: {err}") from err
    return dev


def sample_shape_of(owner: str, sample_shape: Any) -> torch.Size:
    """``n`` (a positive int) or a shape (tuple of ints >= 0) as a ``torch.Size``."""
    if isinstance(sample_shape, Tensor) or hasattr(sample_shape, "__array__"):
        raise TypeError(f"{owner}: expected the number of samples first, got a {type(sample_shape).__name__}; the "
                        "order is sample(n, condition)")
    if isinstance(sample_shape, int) and not isinstance(sample_shape, bool) and sample_shape >= 1:
        return torch.Size((sample_shape,))
    if isinstance(sample_shape, tuple | list) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sample_shape):
        return torch.Size(sample_shape)
    raise ValueError(f"{owner}: n must be a positive int or a shape (a tuple of ints >= 0), got {sample_shape!r}")


class Posterior:
    r"""Amortized posterior :math:`q(\theta \mid x)` for any observation ``x``, from a trained estimator.

    Follows the library's conditional-density contract (:mod:`innverse.core.conditional`):
    ``sample(n, x)`` and ``log_prob(theta, x)``, batched over observations like
    ``torch.distributions`` (the observations' leading dimension is the batch). Inputs may be
    torch tensors or numpy arrays; outputs are torch tensors on the posterior's :attr:`device`.
    One observation has the training data's per-sample shape ``x_shape``; ``k`` observations
    are ``(k, *x_shape)`` (for set / series summaries the number of rows may differ from
    training). ``n`` may be a shape: ``sample((a, b), x)`` gives ``(a, b, D)``.

    The sbi names work too: ``sample((n,), x=x_o)``, ``set_default_x(x_o)`` then ``sample(n)``,
    ``sample_batched``, ``log_prob_batched``, ``.to(device)``. One difference is deliberate:
    an observation ``(1, *x_shape)`` is a batch of one here (samples ``(n, 1, D)``), as
    everywhere in innverse, where sbi's ``sample`` reads it as one observation (``(n, D)``).
    :func:`innverse.interop.to_sbi` gives this posterior with sbi's semantics exactly (for
    sbi's ``run_sbc`` / ``run_tarp``).

    Args:
        estimator: a trained :class:`PosteriorEstimator`.
        report: how it was trained (:class:`FitReport`), if known.
        chunk_size: rows per internal chunk when sampling (bounds memory; ~65k is cache friendly).
    """

    def __init__(self, estimator: PosteriorEstimator, report: FitReport | None = None, chunk_size: int = 65536) -> None:
        if not isinstance(estimator, PosteriorEstimator):
            raise TypeError(f"Posterior: expected a PosteriorEstimator, got {type(estimator).__name__}")
        if report is not None and not isinstance(report, FitReport):
            raise TypeError(f"Posterior: expected a FitReport as report, got {type(report).__name__}")
        self.estimator = estimator.eval()
        #: how the posterior was trained (data, resolved options, stages, candidate flows), or None
        self.report = report
        self.chunk_size = int(chunk_size)
        self.detector: Any = None
        self._default: tuple[Tensor, bool] | None = None

    @property
    def history(self) -> History | None:
        """The kept flow's training history (epochs, losses), if known."""
        return None if self.report is None else self.report.history

    @classmethod
    def from_state(cls, config: dict[str, Any], state_dict: dict[str, Tensor], **kwargs: Any) -> Posterior:
        """Rebuild from :meth:`config` and the estimator's ``state_dict`` (no pickle involved)."""
        est = PosteriorEstimator.from_config(config)
        est.load_state_dict(state_dict)
        return cls(est, **kwargs)

    def attach_detector(self, detector: Any) -> None:
        """Warn from :meth:`sample` / :meth:`log_prob` when observations look unlike the simulations.

        ``detector`` is any object with ``flags(summaries) -> bool (k,)`` (e.g.
        :class:`innverse.diagnostics.SummaryOutlierDetector` fitted on :attr:`reference_summaries`);
        ``None`` removes it.
        """
        if detector is not None and not callable(getattr(detector, "flags", None)):
            raise TypeError(f"Posterior.attach_detector: expected an object with flags(summaries), got "
                            f"{type(detector).__name__}")
        self.detector = detector.to(self.device) if isinstance(detector, nn.Module) else detector

    def _warn_outliers(self, h: Tensor) -> None:
        if self.detector is None:
            return
        flags = torch.as_tensor(self.detector.flags(h)).reshape(-1)
        if flags.any():
            idx = flags.nonzero().flatten()
            warnings.warn(f"Posterior: observation(s) {idx[:10].tolist()}{'...' if len(idx) > 10 else ''} "
                          f"({len(idx)} of {len(flags)}) lie far outside the simulated training data (summary-space "
                          "outlier test); the posterior there is an extrapolation — check the model for "
                          "misspecification", RuntimeWarning, stacklevel=3)

    # -- properties ------------------------------------------------------------------------------
    @property
    def prior(self):
        return self.estimator.prior

    @property
    def theta_dim(self) -> int:
        return self.estimator.theta_dim

    @property
    def x_shape(self) -> tuple[int, ...]:
        return self.estimator.x_shape

    @property
    def device(self) -> torch.device:
        """Where the networks compute and where samples and densities are returned."""
        return self.estimator.standardization.shift.device

    @property
    def reference_summaries(self) -> Tensor:
        """Summaries of (up to 2000) training observations, ``(m, C)``, for misspecification checks."""
        return self.estimator.reference_summaries

    def config(self) -> dict[str, Any]:
        return self.estimator.config()

    def _dtype(self) -> torch.dtype:
        return self.estimator.standardization.shift.dtype

    def _x(self, x: Any, owner: str) -> tuple[Tensor, bool]:
        """Observations as ``(k, *x_shape)`` on the device (``x=None``: the default observation)."""
        if x is None:
            if self._default is None:
                raise ValueError(f"{owner}: x is None and no default observation is set; pass x or call "
                                 "set_default_x(x) first")
            return self._default
        xt, single = check_x(x, self.x_shape, owner, self.estimator.variable_size, self._dtype())
        return xt.to(self.device), single

    @torch.no_grad()
    def _summaries(self, x: Tensor) -> Tensor:
        step = max(1, self.chunk_size // 16)
        return torch.cat([self.estimator.embedding(x[i:i + step]) for i in range(0, x.shape[0], step)])

    # -- sbi-style conveniences ------------------------------------------------------------------
    @property
    def default_x(self) -> Tensor | None:
        """The observation(s) used when ``x`` is omitted (:meth:`set_default_x`), or None."""
        if self._default is None:
            return None
        xt, single = self._default
        return xt[0] if single else xt

    def set_default_x(self, x: Any) -> Posterior:
        """Use ``x`` (one observation or a batch) whenever ``x`` is omitted; returns the posterior (chainable)."""
        self._default = self._x(x, "Posterior.set_default_x")
        return self

    def to(self, device: str | torch.device) -> Posterior:
        """Move the networks, the default observation and the detector to ``device``; returns the posterior.

        Raises:
            ValueError: a device that does not exist here (e.g. ``"cuda"`` on a machine without one).
        """
        dev = check_device(device, "Posterior.to")
        self.estimator.to(dev)
        if self._default is not None:
            self._default = (self._default[0].to(dev), self._default[1])
        if isinstance(self.detector, nn.Module):
            self.detector.to(dev)
        return self

    # -- public API ------------------------------------------------------------------------------
    def summaries(self, x: Any) -> Tensor:
        """Summary-network output for observations: ``(C,)`` for one, ``(k, C)`` for ``k``."""
        xt, single = self._x(x, "Posterior.summaries")
        h = self._summaries(xt)
        return h[0] if single else h

    def _generator(self, generator: torch.Generator | None, seed: int | None, owner: str) -> torch.Generator | None:
        if generator is None and seed is not None:
            return torch.Generator(self.device).manual_seed(int(seed))
        if generator is not None and generator.device.type != self.device.type:
            raise ValueError(f"{owner}: the generator is on {generator.device} but the posterior on {self.device}; "
                             f"pass torch.Generator({str(self.device)!r}) or seed=")
        return generator

    @torch.no_grad()
    def _draw(self, shape: torch.Size, xt: Tensor, generator: torch.Generator | None) -> Tensor:
        """Samples ``(*shape, k, D)`` for observations ``xt (k, *x_shape)``, in chunks of ``chunk_size`` rows."""
        h = self._summaries(xt)
        self._warn_outliers(h)
        n, k = math.prod(shape), h.shape[0]
        out = torch.empty(n, k, self.theta_dim, dtype=h.dtype, device=h.device)
        obs_step = max(1, min(k, self.chunk_size // max(n, 1)))
        sample_step = max(1, min(n, self.chunk_size // obs_step))
        for j in range(0, k, obs_step):
            hj = h[j:j + obs_step]
            for i in range(0, n, sample_step):
                m = min(sample_step, n - i)
                out[i:i + m, j:j + hj.shape[0]] = self.estimator.sample_given_summaries(m, hj, generator)
        return out.reshape(*shape, k, self.theta_dim)

    def sample(self, sample_shape: SampleShape, x: Any = None, generator: torch.Generator | None = None,
               seed: int | None = None) -> Tensor:
        """Posterior samples: ``(*s, D)`` for one observation, ``(*s, k, D)`` for ``k`` observations.

        Chunked internally (``chunk_size`` rows at a time), so a million samples per call are
        fine. Every sample lies strictly inside the prior's support.

        Args:
            sample_shape: ``n`` (samples per observation) or a shape ``s``.
            x: one observation or a batch of ``k``; ``None``: the default (:meth:`set_default_x`).
            generator / seed: randomness (``seed`` builds a fresh generator on the posterior's device).
        """
        shape = sample_shape_of("Posterior.sample", sample_shape)
        generator = self._generator(generator, seed, "Posterior.sample")
        xt, single = self._x(x, "Posterior.sample")
        out = self._draw(shape, xt, generator)
        return out.select(-2, 0) if single else out

    def sample_batched(self, sample_shape: SampleShape, x: Any = None, generator: torch.Generator | None = None,
                       seed: int | None = None) -> Tensor:
        """Samples for a batch of observations, always ``(*s, k, D)`` (one observation is a batch of one)."""
        shape = sample_shape_of("Posterior.sample_batched", sample_shape)
        generator = self._generator(generator, seed, "Posterior.sample_batched")
        return self._draw(shape, self._x(x, "Posterior.sample_batched")[0], generator)

    def log_prob(self, theta: Any, x: Any = None, outside: str = "-inf") -> Tensor:
        """Posterior log-density, broadcast over observations like ``torch.distributions``.

        Shapes: one observation, ``theta (*s, D)`` -> ``(*s)`` (``(n, D)`` -> ``(n,)``,
        ``(D,)`` -> ``()``); ``k`` observations, ``theta (*s, k, D)`` -> ``(*s, k)`` (``(n, k, D)``
        -> ``(n, k)``; ``(k, D)`` -> ``(k,)``, row ``i`` scored against observation ``i``).

        Args:
            x: the observation(s); ``None``: the default (:meth:`set_default_x`).
            outside: parameters outside the prior's support get ``"-inf"`` (the default, as
                ``torch.distributions`` and sbi), or raise a ValueError naming the rows (``"error"``).
        """
        xt, single = self._x(x, "Posterior.log_prob")
        return self._log_prob(theta, xt, single, outside, "Posterior.log_prob")

    def log_prob_batched(self, theta: Any, x: Any = None, outside: str = "-inf") -> Tensor:
        """Log-densities for a batch of observations: ``theta (*s, k, D)`` -> ``(*s, k)`` (one observation: ``k = 1``)."""
        xt, _ = self._x(x, "Posterior.log_prob_batched")
        return self._log_prob(theta, xt, False, outside, "Posterior.log_prob_batched")

    def _log_prob(self, theta: Any, xt: Tensor, single: bool, outside: str, owner: str) -> Tensor:
        if outside not in ("error", "-inf"):
            raise ValueError(f"{owner}: outside must be '-inf' or 'error', got {outside!r}")
        t = to_tensor(theta, "theta", owner, self._dtype()).to(self.device)
        flat, idx, shape = broadcast_value(owner, t, (self.theta_dim,), () if single else (xt.shape[0],),
                                           "theta", "observation")
        if not torch.isfinite(flat).all():
            rows = (~torch.isfinite(flat).all(1)).nonzero().flatten()[:10].tolist()
            raise ValueError(f"{owner}: theta contains NaN or Inf in rows {rows}")
        support = self.estimator.support
        inside = support.inside(flat)
        if outside == "error" and not inside.all():
            rows = (~inside).nonzero().flatten()[:10].tolist()
            raise ValueError(f"{owner}: theta rows {rows} lie outside the prior's support "
                             f"(lower {support.lower.tolist()}, upper {support.upper.tolist()}); "
                             "pass outside='-inf' to get -inf instead")
        with torch.no_grad():
            h = self._summaries(xt)
            self._warn_outliers(h)
            out = torch.full((flat.shape[0],), -torch.inf, dtype=h.dtype, device=h.device)
            step = self.chunk_size
            for i in range(0, flat.shape[0], step):
                ok = inside[i:i + step]
                if ok.any():
                    out[i:i + step][ok] = self.estimator.flow.log_prob(flat[i:i + step][ok], h[idx[i:i + step][ok]])
        return out.reshape(shape)

    def to_inference_data(self, x_obs: Any, n: int = 1000, **kwargs: Any) -> Any:
        """ArviZ ``InferenceData`` for one observation; see :func:`innverse.interop.to_inference_data`."""
        from ..interop.arviz import to_inference_data

        return to_inference_data(self, x_obs, n, **kwargs)

    def map(self, x: Any = None, n_init: int = 1000, steps: int = 200, lr: float = 0.05,
            seed: int = 0) -> Tensor:
        r"""Maximum a posteriori estimate :math:`\arg\max_\theta \log q(\theta \mid x)`.

        Starts from the best of ``n_init`` posterior samples (by log-density) and refines by
        gradient ascent (Adam) in the unbounded space, where the support constraint vanishes.

        Returns:
            ``(D,)`` for one observation, ``(k, D)`` for ``k``.
        """
        xt, single = self._x(x, "Posterior.map")
        gen = torch.Generator(self.device).manual_seed(int(seed))
        est = self.estimator
        with torch.no_grad():
            h = self._summaries(xt)
            k = h.shape[0]
            samples = self._draw(torch.Size((n_init,)), xt, gen)                 # (n, k, D)
            lp = self._log_prob(samples, xt, False, "-inf", "Posterior.map")     # (n, k)
            best = samples[lp.argmax(0), torch.arange(k, device=samples.device)]  # (k, D)
            v0, _ = est.parameter_map(best, log_det=False)
        h = h.clone()

        def objective(v: Tensor) -> tuple[Tensor, Tensor]:
            # log q(theta | x) = log q_INN(v | h) + log|dv/dtheta| = log q_INN(v | h) - log|dtheta/dv|
            theta, ld_inv = est.parameter_map.inverse(v)
            return est.inn_flow.log_prob(v, h) - ld_inv, theta

        v = v0.clone().requires_grad_(True)
        opt = torch.optim.Adam([v], lr=lr)
        for _ in range(steps):
            (grad,) = torch.autograd.grad(-objective(v)[0].sum(), v)
            v.grad = grad
            opt.step()
        with torch.no_grad():
            final, theta = objective(v)
            result = torch.where((final >= objective(v0)[0]).unsqueeze(-1), theta, best)
        return result[0] if single else result
