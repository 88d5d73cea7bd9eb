"""The trained posterior: batched sampling, densities, MAP and summaries for any observation."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .._tensors import to_tensor
from ..core.conditional import broadcast_value, check_count
from ..train import History
from .estimator import PosteriorEstimator
from .fit_report import FitReport
from .inputs import check_x

__all__ = ["Posterior"]


class Posterior:
    r"""Amortized posterior :math:`q(\theta \mid x)` for any observation ``x``, from a trained estimator.

    Follows the library's conditional-density contract (:mod:`innverse.core.conditional`):
    ``sample(n, x)`` and ``log_prob(theta, x)``, batched over observations like
    ``torch.distributions`` (the observations' leading dimension is the batch). Inputs may be
    torch tensors or numpy arrays; outputs are torch tensors (call ``.numpy()``). One
    observation has the training data's per-sample shape ``x_shape``; ``k`` observations are
    ``(k, *x_shape)`` (for set / series summaries the number of rows may differ from training).

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
        self.detector = detector

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
    def reference_summaries(self) -> Tensor:
        """Summaries of (up to 2000) training observations, ``(m, C)``, for misspecification checks."""
        return self.estimator.reference_summaries

    def config(self) -> dict[str, Any]:
        return self.estimator.config()

    def _dtype(self) -> torch.dtype:
        return self.estimator.standardization.shift.dtype

    def _x(self, x: Any, owner: str) -> tuple[Tensor, bool]:
        return check_x(x, self.x_shape, owner, self.estimator.variable_size, self._dtype())

    @torch.inference_mode()
    def _summaries(self, x: Tensor) -> Tensor:
        step = max(1, self.chunk_size // 16)
        return torch.cat([self.estimator.embedding(x[i:i + step]) for i in range(0, x.shape[0], step)])

    # -- public API ------------------------------------------------------------------------------
    def summaries(self, x: Any) -> Tensor:
        """Summary-network output for observations: ``(C,)`` for one, ``(k, C)`` for ``k``."""
        xt, single = self._x(x, "Posterior.summaries")
        h = self._summaries(xt)
        return h[0] if single else h

    @torch.inference_mode()
    def sample(self, n: int, x: Any, generator: torch.Generator | None = None, seed: int | None = None) -> Tensor:
        """``n`` posterior samples: ``(n, D)`` for one observation, ``(n, k, D)`` for ``k`` observations.

        Chunked internally (``chunk_size`` rows at a time), so a million samples per call are
        fine. Every sample lies strictly inside the prior's support.

        Args:
            n: samples per observation.
            x: one observation or a batch of ``k``.
            generator / seed: randomness (``seed`` builds a fresh generator).
        """
        n = check_count("Posterior.sample", n)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        xt, single = self._x(x, "Posterior.sample")
        h = self._summaries(xt)
        self._warn_outliers(h)
        k = h.shape[0]
        out = torch.empty(n, k, self.theta_dim, dtype=h.dtype)
        obs_step = max(1, min(k, self.chunk_size // n))
        sample_step = max(1, min(n, self.chunk_size // obs_step))
        for j in range(0, k, obs_step):
            hj = h[j:j + obs_step]
            for i in range(0, n, sample_step):
                m = min(sample_step, n - i)
                out[i:i + m, j:j + hj.shape[0]] = self.estimator.sample_given_summaries(m, hj, generator)
        return out[:, 0] if single else out

    def log_prob(self, theta: Any, x: Any, outside: str = "error") -> Tensor:
        """Posterior log-density, broadcast over observations like ``torch.distributions``.

        Shapes: one observation, ``theta (*s, D)`` -> ``(*s)`` (``(n, D)`` -> ``(n,)``,
        ``(D,)`` -> ``()``); ``k`` observations, ``theta (*s, k, D)`` -> ``(*s, k)`` (``(n, k, D)``
        -> ``(n, k)``; ``(k, D)`` -> ``(k,)``, row ``i`` scored against observation ``i``).

        Args:
            outside: what to do with parameters outside the prior's support: ``"error"``
                (ValueError naming the rows) or ``"-inf"`` (log-density ``-inf``).
        """
        if outside not in ("error", "-inf"):
            raise ValueError(f"Posterior.log_prob: outside must be 'error' or '-inf', got {outside!r}")
        xt, single = self._x(x, "Posterior.log_prob")
        t = to_tensor(theta, "theta", "Posterior.log_prob", self._dtype())
        flat, idx, shape = broadcast_value("Posterior.log_prob", t, (self.theta_dim,), () if single else (xt.shape[0],),
                                           "theta", "observation")
        if not torch.isfinite(flat).all():
            rows = (~torch.isfinite(flat).all(1)).nonzero().flatten()[:10].tolist()
            raise ValueError(f"Posterior.log_prob: theta contains NaN or Inf in rows {rows}")
        support = self.estimator.support
        inside = support.inside(flat)
        if outside == "error" and not inside.all():
            rows = (~inside).nonzero().flatten()[:10].tolist()
            raise ValueError(f"Posterior.log_prob: theta rows {rows} lie outside the prior's support "
                             f"(lower {support.lower.tolist()}, upper {support.upper.tolist()}); "
                             "pass outside='-inf' to get -inf instead")
        with torch.inference_mode():
            h = self._summaries(xt)
            self._warn_outliers(h)
            out = torch.full((flat.shape[0],), -torch.inf, dtype=h.dtype)
            step = self.chunk_size
            for i in range(0, flat.shape[0], step):
                ok = inside[i:i + step]
                if ok.any():
                    out[i:i + step][ok] = self.estimator.flow.log_prob(flat[i:i + step][ok], h[idx[i:i + step][ok]])
        return out.reshape(shape)

    def map(self, x: Any, n_init: int = 1000, steps: int = 200, lr: float = 0.05,
            seed: int = 0) -> Tensor:
        r"""Maximum a posteriori estimate :math:`\arg\max_\theta \log q(\theta \mid x)`.

        Starts from the best of ``n_init`` posterior samples (by log-density) and refines by
        gradient ascent (Adam) in the unbounded space, where the support constraint vanishes.

        Returns:
            ``(D,)`` for one observation, ``(k, D)`` for ``k``.
        """
        xt, single = self._x(x, "Posterior.map")
        gen = torch.Generator().manual_seed(int(seed))
        est = self.estimator
        with torch.inference_mode():
            h = self._summaries(xt)
            k = h.shape[0]
            samples = self.sample(n_init, xt, generator=gen)                   # (n, k, D)
            lp = self.log_prob(samples, xt, outside="-inf")                      # (n, k)
            best = samples[lp.argmax(0), torch.arange(k)]                        # (k, D)
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
