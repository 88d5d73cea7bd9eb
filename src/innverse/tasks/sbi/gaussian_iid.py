r"""Set-valued task: mean and scale of a Gaussian from a set of 5 to 100 i.i.d. draws.

Definition (conjugate normal–inverse-gamma model):

.. math::
    \sigma^2 \sim \operatorname{InvGamma}(2, 1), \quad \mu \mid \sigma \sim \mathcal N(0, \sigma^2),
    \quad k \sim \mathcal U\{5, \dots, 100\}, \quad x_1, \dots, x_k \mid \mu, \sigma
    \overset{\text{iid}}{\sim} \mathcal N(\mu, \sigma^2),

with :math:`\theta = (\mu, \sigma)`, so the prior is
:class:`~innverse.tasks.NormalInverseGamma` ``(loc=0, kappa=1, concentration=2, rate=1)``
(marginally :math:`\mu` is Student-t with 4 degrees of freedom and scale :math:`1/\sqrt2`; the
central 90 % of :math:`\sigma` is about :math:`[0.46, 1.68]`).

Data layout (the project-wide convention for sets): a simulation is a tensor of shape
``x_shape = (100, 1)`` whose first :math:`k` rows are the draws and whose remaining rows are NaN
(a row that is entirely NaN is padding). :meth:`GaussianIID.log_likelihood` and
:meth:`GaussianIID.posterior` also accept an unpadded set ``(k, 1)``. ``simulate(theta,
generator, count=k)`` fixes the set size (an int in ``[1, 100]``, or a tensor of ``n`` counts),
e.g. to check that a posterior contracts as :math:`k` grows.

The posterior is normal–inverse-gamma in closed form and is sampled exactly.

Observation seeds: ``2_000_000 + i`` for observation ``i = 0..9`` (the set sizes are drawn
from the seed too).

References:
    Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007);
    Zaheer et al., "Deep Sets", NeurIPS 2017 (permutation-invariant summaries).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from .base import AbstractSBITask
from .normal_inverse_gamma import NormalInverseGamma

__all__ = ["GaussianIID"]

_MAX, _MIN = 100, 5
_PRIOR = {"loc": 0.0, "kappa": 1.0, "concentration": 2.0, "rate": 1.0}


class GaussianIID(AbstractSBITask):
    """Unknown ``(mu, sigma)`` of a Gaussian from a NaN-padded set of 5..100 draws, ``x_shape = (100, 1)``."""

    name = "gaussian_iid"
    theta_dim = 2
    x_shape = (_MAX, 1)
    parameter_names = ("mu", "sigma")
    observation_seeds = tuple(2_000_000 + i for i in range(10))
    set_valued = True
    min_count = _MIN
    max_count = _MAX

    def _make_prior(self, dtype: torch.dtype, validate_args: bool) -> Distribution:
        return NormalInverseGamma(*(torch.tensor(v, dtype=dtype) for v in _PRIOR.values()),
                                  validate_args=validate_args)

    def _simulate(self, theta: Tensor, generator: torch.Generator | None,
                  count: int | Tensor | None = None) -> Tensor:
        n = theta.shape[0]
        kw = {"generator": generator, "device": theta.device}
        counts = self._counts(count, n, kw)
        x = theta[:, :1] + theta[:, 1:] * torch.randn(n, _MAX, dtype=theta.dtype, **kw)
        rows = torch.arange(_MAX, device=theta.device)
        x = torch.where(rows < counts[:, None], x, torch.nan)
        return x.unsqueeze(-1)

    def _counts(self, count: int | Tensor | None, n: int, kw: dict) -> Tensor:
        if count is None:
            return torch.randint(_MIN, _MAX + 1, (n,), **kw)
        counts = torch.as_tensor(count, device=kw["device"])
        if counts.is_floating_point() or counts.dim() > 1 or (counts.dim() == 1 and counts.numel() != n):
            raise ValueError(f"{self.name}.simulate: count must be an int or an integer tensor of shape "
                             f"({n},), got {count!r}")
        if bool(((counts < 1) | (counts > _MAX)).any()):
            raise ValueError(f"{self.name}.simulate: count must lie in [1, {_MAX}], got {count!r}")
        return counts.expand(n)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        values = x[..., 0]
        present = ~torch.isnan(values)
        mu, sigma = theta[:, :1], theta[:, 1:]
        z = (torch.where(present, values, mu) - mu) / sigma
        lp = -0.5 * z.square() - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
        return torch.where(present, lp, 0.0).sum(-1)

    def posterior(self, x: Tensor) -> NormalInverseGamma:
        """The exact posterior for one set ``x`` (padded ``(100, 1)`` or unpadded ``(k, 1)``)."""
        x = self._check_x(x, 1, self.dtype, "posterior")[0]
        return self.prior.update(x[..., 0])

    def _sample_reference(self, indices: tuple[int, ...], n: int, generator: torch.Generator):
        out, info = [], []
        for i in indices:
            x = self._observed_pair(i)[1]
            post = self._prior64.update(x[..., 0])
            out.append(post.sample_with_generator((n,), generator))
            info.append({"sampler": "exact normal-inverse-gamma posterior",
                         "count": int((~torch.isnan(x[:, 0])).sum())})
        return out, info
