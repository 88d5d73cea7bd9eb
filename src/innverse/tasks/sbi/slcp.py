r"""SLCP task ("simple likelihood, complex posterior"), with and without distractors.

Definition (Lueckmann et al. 2021, task "SLCP", after Papamakarios et al. 2019):

.. math::
    \theta \sim \mathcal U([-3, 3]^5), \quad m = (\theta_1, \theta_2), \quad
    s_1 = \theta_3^2, \quad s_2 = \theta_4^2, \quad \rho = \tanh\theta_5,

    S = \begin{pmatrix} s_1^2 + \epsilon & \rho s_1 s_2 \\ \rho s_1 s_2 & s_2^2 + \epsilon \end{pmatrix},
    \qquad x_1, \dots, x_4 \overset{\text{iid}}{\sim} \mathcal N(m, S),

flattened to ``x = (x_11, x_12, x_21, ..., x_42)``, ``x_shape = (8,)``;
:math:`\epsilon = 10^{-6}` keeps :math:`S` positive definite (as in the benchmark's reference
implementation). The likelihood is Gaussian, but :math:`\theta_3, \theta_4` enter squared, so
the posterior has four symmetric modes; the reference MCMC proposes the sign flips
:math:`\theta_3 \to -\theta_3`, :math:`\theta_4 \to -\theta_4` as extra Metropolis moves.

SLCP with distractors (task "SLCP Distractors"): the same 8 values plus 92 distractors drawn
independently of :math:`\theta` from an equal-weight mixture of 20 multivariate Student-t
distributions (2 degrees of freedom) in 92 dimensions with locations :math:`15\,\mathcal N(0, I)`
and shape matrices :math:`\Sigma_k = 9\,(T_k T_k^\top + \operatorname{diag} e^{2 g_k})`, with
:math:`T_k` strictly lower triangular with standard normal entries and
:math:`g_k \sim \mathcal N(0, I)`; all drawn once from ``numpy.random.default_rng(42)``, which
then also draws the fixed permutation of the 100 coordinates. (The benchmark's reference code
uses the Cholesky factor :math:`3(T_k + \operatorname{diag} e^{g_k})` directly; random triangular
matrices are exponentially ill-conditioned, condition number ~1e16 here, which makes that
density numerically singular. :math:`\Sigma_k` above keeps the same per-coordinate scales
except for the cross terms and is well conditioned, so :meth:`SLCPDistractors.log_likelihood`
is exact.) The distractors do not depend on :math:`\theta`, so the posterior (and the cached
reference) is SLCP's: observation ``i`` of both tasks comes from the same seed and shares the
8 informative values.

Observation seeds: ``1_000_000 + i`` for observation ``i = 0..9``.

References:
    Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021 (appendix T.4, T.5);
    Papamakarios, Sterratt, Murray, "Sequential Neural Likelihood", AISTATS 2019.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from ...amortized.priors import box_uniform
from .base import AbstractSBITask
from .mcmc import MCMCConfig, sample_reference_mcmc

__all__ = ["SLCP", "SLCPDistractors"]

_EPS = 1e-6
_DRAWS = 4
_DISTRACTORS, _COMPONENTS, _DISTRACTOR_SEED, _DF = 92, 20, 42, 2


def _moments(theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    # mean (n, 2) and the Cholesky factor entries of S
    s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, torch.tanh(theta[:, 4])
    l11 = torch.sqrt(s1**2 + _EPS)
    l21 = rho * s1 * s2 / l11
    l22 = torch.sqrt(s2**2 + _EPS - l21**2)
    return theta[:, :2], l11, l21, l22


def _simulate_slcp(theta: Tensor, generator: torch.Generator | None) -> Tensor:
    m, l11, l21, l22 = _moments(theta)
    z = torch.randn(theta.shape[0], _DRAWS, 2, generator=generator, dtype=theta.dtype, device=theta.device)
    x1 = m[:, None, 0] + l11[:, None] * z[..., 0]
    x2 = m[:, None, 1] + l21[:, None] * z[..., 0] + l22[:, None] * z[..., 1]
    return torch.stack([x1, x2], -1).reshape(theta.shape[0], 2 * _DRAWS)


def _log_likelihood_slcp(theta: Tensor, x: Tensor) -> Tensor:
    m, l11, l21, l22 = _moments(theta)
    pts = x.reshape(x.shape[0], _DRAWS, 2)
    u1 = (pts[..., 0] - m[:, None, 0]) / l11[:, None]
    u2 = (pts[..., 1] - m[:, None, 1] - l21[:, None] * u1) / l22[:, None]
    quad = (u1.square() + u2.square()).sum(-1)
    return -0.5 * quad - _DRAWS * (torch.log(l11) + torch.log(l22) + math.log(2 * math.pi))


def _prior(dtype: torch.dtype, validate_args: bool) -> Distribution:
    return box_uniform(-3.0, 3.0, 5, dtype=dtype, validate_args=validate_args)


def _flip(index: int):
    def involution(z: Tensor) -> Tensor:
        out = z.clone()
        out[..., index] = -out[..., index]
        return out
    return involution


class SLCP(AbstractSBITask):
    """SLCP: 5 parameters, 4 bivariate-normal draws whose mean and covariance they set."""

    name = "slcp"
    theta_dim = 5
    x_shape = (2 * _DRAWS,)
    parameter_names = tuple(f"theta_{d + 1}" for d in range(5))
    observation_seeds = tuple(1_000_000 + i for i in range(10))
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals
    # z = logit-type coordinates of the box prior: theta -> -theta is z -> -z
    mcmc_config = MCMCConfig(chains=100, warmup=1500, init_draws=50_000, independence_components=8,
                             symmetries=(_flip(2), _flip(3)))

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        return _simulate_slcp(theta, generator)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _log_likelihood_slcp(theta, x)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return sample_reference_mcmc(self, indices, n, generator, self.mcmc_config)


def _distractor_parameters() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    rng = np.random.default_rng(_DISTRACTOR_SEED)
    loc = 15.0 * rng.standard_normal((_COMPONENTS, _DISTRACTORS))
    lower = np.tril(rng.standard_normal((_COMPONENTS, _DISTRACTORS, _DISTRACTORS)), -1)
    diag = np.exp(2.0 * rng.standard_normal((_COMPONENTS, _DISTRACTORS)))
    shape = 9.0 * (lower @ lower.transpose(0, 2, 1) + diag[:, :, None] * np.eye(_DISTRACTORS))
    perm = rng.permutation(_DISTRACTORS + 2 * _DRAWS)
    scale = torch.linalg.cholesky(torch.from_numpy(shape))
    return torch.from_numpy(loc), scale, torch.linalg.inv(scale), torch.from_numpy(perm)


class SLCPDistractors(AbstractSBITask):
    """SLCP's 8 informative values hidden among 92 heavy-tailed distractors, ``x_shape = (100,)``."""

    name = "slcp_distractors"
    theta_dim = 5
    x_shape = (_DISTRACTORS + 2 * _DRAWS,)
    parameter_names = SLCP.parameter_names
    observation_seeds = SLCP.observation_seeds
    reference_key = "slcp"
    batched_reference = True
    reference_version = "2"  # 2: mixture independence proposals

    def __init__(self, dtype: torch.dtype = torch.float32):
        self._loc, self._scale, self._scale_inv, self._perm = _distractor_parameters()
        # column of each original coordinate: informative values first, then distractors
        self._positions = torch.argsort(self._perm)
        self._informative = self._positions[: 2 * _DRAWS]
        self._base = SLCP(torch.float64)
        super().__init__(dtype)

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return _prior(dtype, validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        n, kw = theta.shape[0], {"generator": generator, "device": theta.device}
        informative = _simulate_slcp(theta, generator)
        comp = torch.randint(0, _COMPONENTS, (n,), **kw).cpu()
        z = torch.randn(n, _DISTRACTORS, dtype=torch.float64, **kw).cpu()
        chi2 = -2.0 * torch.log(torch.rand(n, dtype=torch.float64, **kw)).cpu()  # chi-square, 2 dof
        noise = self._loc[comp] + (self._scale[comp] @ z[..., None])[..., 0] / torch.sqrt(chi2 / _DF)[:, None]
        full = torch.cat([informative, noise.to(theta)], -1)
        return full[:, self._perm.to(theta.device)]

    def distractor_log_prob(self, x: Tensor) -> Tensor:
        """Log-density ``(n,)`` of the 92 distractor coordinates of ``x (n, 100)`` (independent of theta)."""
        noise = x[:, self._positions[2 * _DRAWS:].to(x.device)].cpu().to(torch.float64)
        dev = noise[:, None, :] - self._loc[None]
        white = torch.einsum("kij,nkj->nki", self._scale_inv, dev)
        p = _DISTRACTORS
        log_det = torch.log(torch.diagonal(self._scale, dim1=1, dim2=2).abs()).sum(-1)
        log_t = (math.lgamma((_DF + p) / 2) - math.lgamma(_DF / 2) - 0.5 * p * math.log(_DF * math.pi)
                 - log_det - 0.5 * (_DF + p) * torch.log1p(white.square().sum(-1) / _DF))
        return (torch.logsumexp(log_t, -1) - math.log(_COMPONENTS)).to(x)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        informative = x[:, self._informative.to(x.device)]
        return _log_likelihood_slcp(theta, informative) + self.distractor_log_prob(x).to(theta)

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        return self._base._sample_reference(indices, n, generator)
