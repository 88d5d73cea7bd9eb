r"""Two moons task: a crescent-shaped, bimodal posterior in 2-D.

Definition (Lueckmann et al. 2021, task "Two Moons", after Greenberg et al. 2019):

.. math::
    \theta \sim \mathcal U([-1, 1]^2), \quad a \sim \mathcal U(-\tfrac\pi2, \tfrac\pi2), \quad
    r \sim \mathcal N(0.1, 0.01^2), \quad p = (r\cos a + 0.25,\; r \sin a),

    x = p + \Big(-\frac{|\theta_1 + \theta_2|}{\sqrt2},\; \frac{-\theta_1 + \theta_2}{\sqrt2}\Big).

Likelihood: with :math:`(u, v) = x - g(\theta) - (0.25, 0)` the point :math:`r(\cos a, \sin a)`,
:math:`\rho = \sqrt{u^2 + v^2}` and the polar change of variables :math:`dp = |r|\,dr\,da`,

.. math::
    p(x \mid \theta) = \frac{\mathcal N(\operatorname{sign}(u)\,\rho;\ 0.1, 0.01^2)}{\pi\,\rho}.

Reference posterior (exact, from the simulator's structure): draw :math:`p` from its
distribution; :math:`g(\theta) = x - p` has exactly two preimages (the sign of
:math:`\theta_1 + \theta_2`), related to :math:`g(\theta)` by a rotation-reflection of unit
Jacobian. Choosing one at random gives a draw with density proportional to
:math:`p(x \mid \theta)`; rejecting draws outside the prior box makes it the posterior.

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.6);
    Greenberg, Nonnenmacher, Macke, "Automatic Posterior Transformation for Likelihood-Free
    Inference", ICML 2019.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from ...amortized.priors import box_uniform
from .base import AbstractSBITask

__all__ = ["TwoMoons"]

_R_LOC, _R_SCALE, _OFFSET = 0.1, 0.01, 0.25
_SQRT2 = math.sqrt(2.0)


def _crescent(n: int, generator: torch.Generator | None, dtype: torch.dtype, device) -> Tensor:
    kw = {"generator": generator, "dtype": dtype, "device": device}
    a = (torch.rand(n, **kw) - 0.5) * math.pi
    r = _R_LOC + _R_SCALE * torch.randn(n, **kw)
    return torch.stack([r * torch.cos(a) + _OFFSET, r * torch.sin(a)], -1)


class TwoMoons(AbstractSBITask):
    """Two moons: prior ``U([-1, 1]^2)``, data a noisy crescent shifted by a folded rotation of theta."""

    name = "two_moons"
    theta_dim = 2
    x_shape = (2,)
    parameter_names = ("theta_1", "theta_2")
    observation_seeds = tuple(1_000_000 + i for i in range(10))

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return box_uniform(-1.0, 1.0, 2, dtype=dtype, validate_args=validate_args)

    @staticmethod
    def _shift(theta: Tensor) -> Tensor:
        s, d = theta[:, 0] + theta[:, 1], theta[:, 1] - theta[:, 0]
        return torch.stack([-s.abs() / _SQRT2, d / _SQRT2], -1)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _crescent(theta.shape[0], generator, theta.dtype, theta.device) + self._shift(theta)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        q = x - self._shift(theta)
        u, v = q[:, 0] - _OFFSET, q[:, 1]
        rho = torch.sqrt(u * u + v * v)
        r = torch.where(u < 0, -rho, rho)
        log_r = -0.5 * ((r - _R_LOC) / _R_SCALE) ** 2 - math.log(_R_SCALE * math.sqrt(2 * math.pi))
        return log_r - math.log(math.pi) - torch.log(rho)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        out, info = [], []
        for i in indices:
            x = self._observed_pair(i)[1]
            kept, proposed = [], 0
            while sum(k.shape[0] for k in kept) < n:
                m = 4 * n
                q = x - _crescent(m, generator, torch.float64, "cpu")
                sign = torch.where(torch.rand(m, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
                z0, z1 = sign * (-q[:, 0]), q[:, 1]
                theta = torch.stack([(z0 - z1) / _SQRT2, (z0 + z1) / _SQRT2], -1)
                ok = (q[:, 0] <= 0) & (theta.abs() < 1).all(-1)
                kept.append(theta[ok])
                proposed += m
                if proposed > 1000 * n and not kept[-1].numel():
                    raise RuntimeError(f"two_moons: reference rejection sampler stalled for observation {i}")
            accepted = sum(k.shape[0] for k in kept)
            out.append(torch.cat(kept)[:n])
            info.append({"sampler": "exact inversion of the simulator + rejection to the prior box",
                         "acceptance_rate": accepted / proposed})
        return out, info
