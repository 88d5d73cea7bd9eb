r"""What one measurement setup tells about each parameter: the metrics of its posterior on held-out simulations.

For held-out joint draws :math:`(\theta_j, x_j)`, :math:`j = 1..k`, and :math:`n` posterior
samples each, per parameter :math:`d`:

* contraction :math:`1 - \overline{\mathrm{Var}[\theta_d \mid x_j]} / \mathrm{Var}[\theta_d]`
  (:func:`innverse.diagnostics.posterior_contraction`, averaged over :math:`j`);
* expected width of the central credible interval at ``level``, absolute and relative to the
  prior's interval at the same level;
* the expected-information-gain lower bound (joint and per parameter,
  :mod:`innverse.design.information`);
* calibration: SBC ranks and their uniformity test (:func:`innverse.diagnostics.sbc_test`);
* identifiability: recoverable iff the mean contraction reaches ``threshold``
  (:func:`innverse.diagnostics.identifiability`);
* multimodality: the share of observations whose marginal posterior has more than one mode
  (:func:`innverse.diagnostics.multimodality`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .. import diagnostics
from ..amortized import sample_with_generator
from .information import information_gain, marginal_information_gain

__all__ = ["SetupResult", "evaluate_posterior"]


@dataclass(frozen=True)
class SetupResult:
    """The posterior metrics of one setup (see the module docstring); per-parameter fields are ``(D,)``.

    Attributes:
        name: the setup's name; cost: its cost (``None`` if not given).
        contraction, interval_width, relative_width: posterior contraction and expected central
            credible-interval width (absolute, and relative to the prior's).
        information_gain, information_gain_se: joint EIG lower bound (nats) and its standard error.
        marginal_information, marginal_information_se: per-parameter EIG lower bounds (nats).
        sbc_p_value, calibration_error, calibrated: SBC uniformity p-value, largest ECDF
            deviation and verdict (Bonferroni over parameters) per parameter.
        recoverable: contraction at least the identifiability threshold.
        multimodal_share: share of observations with a multimodal marginal posterior.
        simulations: training simulations used (0 for a shared design-conditional posterior).
        test_size: held-out observations evaluated.
    """

    name: str
    cost: float | None
    contraction: Tensor
    interval_width: Tensor
    relative_width: Tensor
    information_gain: float
    information_gain_se: float
    marginal_information: Tensor
    marginal_information_se: Tensor
    sbc_p_value: Tensor
    calibration_error: Tensor
    calibrated: Tensor
    recoverable: Tensor
    multimodal_share: Tensor
    simulations: int = 0
    test_size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> Tensor:
        """A per-parameter metric by name, ``(D,)`` (the joint information gain is repeated)."""
        if name == "information_gain":
            return torch.full_like(self.contraction, self.information_gain)
        value = getattr(self, name, None)
        if not isinstance(value, Tensor) or value.shape != self.contraction.shape:
            raise ValueError(f"SetupResult.metric: unknown per-parameter metric {name!r}; expected one of "
                             f"{PER_PARAMETER}")
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, Tensor) else value
        return out


PER_PARAMETER = ("contraction", "interval_width", "relative_width", "marginal_information", "sbc_p_value",
                 "calibration_error", "multimodal_share", "information_gain")


def _prior_draws(prior: Distribution, n: int, generator: torch.Generator) -> Tensor:
    """``n`` prior draws in the prior's own dtype, from ``generator`` (through a seed where the prior cannot use one)."""
    try:
        return sample_with_generator(prior, n, generator)
    except TypeError:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            return prior.sample((n,)).reshape(n, -1)


def _interval_width(samples: Tensor, level: float) -> Tensor:
    """Width of the central interval at ``level`` of samples ``(n, ..., D)`` along dim 0."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo_hi = torch.quantile(samples.to(torch.float64), q, dim=0)
    return lo_hi[1] - lo_hi[0]


# exempt from the size rule: one keyword per documented option of the evaluation (sizes, level,
# threshold, seed), each forwarded to the diagnostic it belongs to.
def evaluate_posterior(posterior: Any, theta: Tensor, x: Tensor, prior: Distribution, *, name: str = "setup",
                       cost: float | None = None, samples: int = 500, level: float = 0.9, threshold: float = 0.1,
                       seed: int = 0, simulations: int = 0) -> SetupResult:
    """Evaluate a posterior (``sample(n, x)``, ``log_prob(theta, x)``) on held-out pairs ``theta (k, D)``, ``x (k, ...)``.

    Args:
        prior: the prior the pairs were drawn from.
        samples: posterior samples per observation.
        level: credibility level of the interval widths.
        threshold: contraction below which a parameter counts as unidentifiable.
        seed: seed of the posterior samples and prior draws.
    """
    gen = torch.Generator().manual_seed(seed)
    post = posterior.sample(samples, x, generator=gen).to(torch.float64)                 # (n, k, D)
    truth = theta.to(torch.float64)
    native = _prior_draws(prior, 4000, gen)
    prior_draws = native.to(torch.float64)
    contraction = diagnostics.posterior_contraction(post, prior_draws).mean(0)
    width = _interval_width(post, level).mean(0)
    log_q = posterior.log_prob(theta, x).to(torch.float64).reshape(-1)
    log_p = prior.log_prob(theta.to(native.dtype)).to(torch.float64).reshape(-1)
    eig, eig_se = information_gain(log_q, log_p)
    marg, marg_se = marginal_information_gain(post, truth, prior, prior_draws)
    ranks = diagnostics.sbc_ranks(post, truth, seed=seed)
    sbc = diagnostics.sbc_test(ranks, samples, seed=seed)
    ident = diagnostics.identifiability(post, prior_draws, threshold=threshold)
    modes = diagnostics.multimodality(post)
    return SetupResult(
        name=name, cost=cost, contraction=contraction, interval_width=width,
        relative_width=width / _interval_width(prior_draws, level), information_gain=eig, information_gain_se=eig_se,
        marginal_information=marg, marginal_information_se=marg_se,
        sbc_p_value=torch.tensor(sbc["p_value"], dtype=torch.float64),
        calibration_error=torch.tensor(sbc["calibration_error"], dtype=torch.float64),
        calibrated=torch.tensor(sbc["passed_per_parameter"]), recoverable=ident.recoverable,
        multimodal_share=(modes > 1).to(torch.float64).mean(0), simulations=int(simulations),
        test_size=int(truth.shape[0]))
