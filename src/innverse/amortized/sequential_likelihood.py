"""Sequential neural likelihood estimation (SNLE): rounds of simulations near one observation's posterior.

Round 1 simulates from the prior, every later round from MCMC draws of the current posterior of
the observation, and the likelihood is refitted on the simulations so far
(:func:`fit_sequential_likelihood`). The likelihood is learned conditionally on the parameters,
so the proposal needs no correction. Each round may fit a flow, the Gaussian likelihood of
:mod:`~innverse.amortized.gaussian_likelihood`, or both and keep the one that does better on the
round's new simulations. At the end, the observation is placed among the last round's
simulations (:func:`predictive_check`): a posterior that cannot reproduce it is reported.

References:
    Papamakarios, Sterratt, Murray. "Sequential Neural Likelihood: Fast Likelihood-free Inference
    with Autoregressive Flows". AISTATS 2019.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .executor import simulate
from .likelihood import LikelihoodPosterior, fit_likelihood
from .mcmc import MCMCConfig
from .priors import as_prior
from .sequential import SequentialReport
from .simulation import batch_seed

__all__ = ["MAX_WIDENING", "ROUND_MCMC", "SequentialLikelihoodReport", "fit_sequential_likelihood", "predictive_check"]

#: ``likelihood="auto"`` keeps the flow where the Gaussian's posterior is wider than the flow's by more than
#: this factor on some parameter: the Gaussian then ignores information the flow found (on SLCP, whose
#: covariance carries three parameters, 2.0; where the Gaussian serves, 0.8-1.13: Bernoulli GLM,
#: Gaussian-linear-uniform, SIR, Lotka-Volterra)
MAX_WIDENING = 1.5

#: MCMC settings of the intermediate rounds of :func:`fit_sequential_likelihood`: their draws only
#: propose the next round's parameters, so they must cover the posterior, not equal it; they are
#: returned even where the convergence checks fail (the report records R-hat and ESS).
ROUND_MCMC = MCMCConfig(chains=100, warmup=600, min_ess=0.3, rhat_max=1.05, max_rounds=2,
                        require_convergence=False)


@dataclass
class SequentialLikelihoodReport(SequentialReport):
    """:class:`~innverse.amortized.SequentialReport` of SNLE, with the likelihood model of each round.

    ``likelihoods``: per round, the model whose posterior proposed the next round (and, for the
    last, the model returned): ``"flow"`` or ``"gaussian"``. ``held_out``: per round, the
    contrastive score of that round's new simulations under the previous round's models, which
    neither was fitted on (higher is better; ``{}`` in the first round and where only one model
    is fitted): the mean log-probability its likelihood ratios give each simulation's parameters
    among those of 256 of them. ``widening``: where the Gaussian scored better, the largest ratio
    over parameters of its posterior's standard deviation to the flow's (``None`` elsewhere); above
    :data:`MAX_WIDENING` the flow is kept.
    """

    likelihoods: list[str] = field(default_factory=list)
    held_out: list[dict[str, float]] = field(default_factory=list)
    widening: list[float | None] = field(default_factory=list)
    #: where the observation lies among the last round's simulations (see :func:`predictive_check`)
    predictive: dict[str, float] | None = None


def _held_out_score(model: LikelihoodPosterior, theta: Tensor, x: Tensor, rows: int = 256) -> float:
    r"""Contrastive score of simulations the model was not fitted on: how well its likelihood *ratios* pick each
    simulation's parameters out of the others', :math:`\frac1m \sum_i \log \frac{q(x_i \mid \theta_i)}
    {\frac1m \sum_j q(x_i \mid \theta_j)}` over ``m`` of them (-inf where a simulation has no likelihood).

    A posterior depends on the likelihood only through its ratios between parameters. This is the log-loss
    of the ``m``-way classification of which parameters made ``x_i`` (a proper scoring rule, best for the
    true ratios); unlike the mean log-likelihood, it does not favour a model that fits the data's spread
    well but ignores how some parameters move it.
    """
    m = min(rows, theta.shape[0])
    theta, x = theta[:m], x[:m]
    with torch.no_grad():
        ll = model.log_likelihood(x.repeat_interleave(m, 0), theta.repeat(m, 1)).double().reshape(m, m)
    score = float((ll.diagonal() - ll.logsumexp(1)).mean()) + math.log(m)
    return score if math.isfinite(score) else -math.inf


def predictive_check(x: Tensor, x_obs: Tensor) -> dict[str, float] | None:
    """Where ``x_obs`` lies among simulations ``x (n, F)`` drawn at posterior parameters.

    Returns ``p``, the fraction of the ``n + 1`` points (simulations and ``x_obs``) at least as far
    as ``x_obs`` from their common mean, by squared Mahalanobis distance in their common
    covariance, minus ``1 / (n + 1)`` for ``x_obs`` itself (so ``p = 0``: beyond every simulation).
    The statistic treats all ``n + 1`` points alike, so where the posterior is right (``x_obs`` one
    more draw of the same predictive distribution) ``p = 0`` has probability ``1 / (n + 1)``; a
    posterior in the wrong place puts ``x_obs`` far beyond. ``d2`` and ``d2_max`` are the squared
    distances of ``x_obs`` and of the farthest simulation from the simulations' own mean, in their
    own covariance (the size of the gap). ``None`` with ``n <= F + 1``.
    """
    x = x.reshape(x.shape[0], -1).double()
    xo = x_obs.reshape(1, -1).double()
    n, f = x.shape
    if n <= f + 1:
        return None

    def distances(points: Tensor, of: Tensor) -> Tensor:
        mean = points.mean(0)
        cov = torch.cov(points.T) + torch.diag(1e-9 * points.var(0).clamp_min(1e-12))
        centred = of - mean
        return (centred @ torch.linalg.pinv(cov, hermitian=True) * centred).sum(-1)

    pooled = distances(torch.cat([x, xo]), torch.cat([x, xo]))
    own = distances(x, torch.cat([x, xo]))
    return {"p": float((pooled[:n] >= pooled[n]).double().sum() / (n + 1)), "d2": float(own[n]),
            "d2_max": float(own[:n].max()), "simulations": n}


def _warn_if_unreproduced(check: dict[str, float] | None) -> None:
    if check is None or check["p"] > 0:
        return
    warnings.warn(f"fit_sequential_likelihood: the observation lies beyond all {check['simulations']} simulations of "
                  f"the last round, drawn from the posterior (squared Mahalanobis distance {check['d2']:.1f}, the "
                  f"farthest simulation's {check['d2_max']:.1f}): the posterior does not reproduce it. The learned "
                  "likelihood may be wrong there, or the simulator cannot produce the observation; rerun with more "
                  "simulations or another seed, or compare with fit_sequential (NPE). report.predictive has the "
                  "figures", RuntimeWarning, stacklevel=3)


def _widening(models: dict[str, LikelihoodPosterior], x_obs: Tensor, n: int, round_mcmc: MCMCConfig,
              seed: int) -> float:
    """The largest ratio, over parameters, of the Gaussian posterior's standard deviation to the flow's."""
    sd = {k: models[k].sample(n, x_obs, seed=seed, mcmc=round_mcmc).double().std(0) for k in ("gaussian", "flow")}
    return float((sd["gaussian"] / sd["flow"].clamp_min(1e-12)).max())


def _fit_round(kinds: tuple[str, ...], thetas: list[Tensor], xs: list[Tensor], prior: Distribution,
               strict: bool, **fit: Any) -> dict[str, LikelihoodPosterior]:
    """Each kind's likelihood posterior: the flow on all rounds, the Gaussian on the latest half of them."""
    models = {}
    if "flow" in kinds:
        models["flow"] = fit_likelihood(torch.cat(thetas), torch.cat(xs), prior, **fit)
    if "gaussian" in kinds:
        latest = (len(thetas) + 1) // 2    # local: a linear mean holds over a posterior's width, not a prior's
        fit = {k: v for k, v in fit.items() if k in ("mcmc", "seed", "dequantize", "log_data")}
        try:
            with warnings.catch_warnings():
                if not strict:   # "auto" scores the Gaussian against the flow on new simulations instead
                    warnings.filterwarnings("ignore", "fit_likelihood: the mean of data feature", RuntimeWarning)
                models["gaussian"] = fit_likelihood(torch.cat(thetas[-latest:]), torch.cat(xs[-latest:]), prior,
                                                    model="gaussian", **fit)
        except ValueError:
            if strict:
                raise
    return models


# exempt from the size rule: the options mirror fit_sequential's, each a documented keyword
def fit_sequential_likelihood(simulator: Callable[..., Any], prior: Distribution, x_obs: Any, *, rounds: int = 4,
                              simulations_per_round: int = 1000, mcmc: MCMCConfig | None = None,
                              round_mcmc: MCMCConfig = ROUND_MCMC, seed: int = 0, likelihood: str = "flow",
                              **options: Any) -> tuple[LikelihoodPosterior, SequentialLikelihoodReport]:
    """SNLE: rounds of simulations from the current posterior of ``x_obs``, the likelihood refitted on them.

    Round 1 simulates from the prior; every later round from ``simulations_per_round`` MCMC draws
    of the current posterior (``round_mcmc``). The report's ``samplers`` are ``"prior"`` and
    ``"mcmc"``; for the MCMC rounds ``acceptance`` is the random-walk acceptance rate and
    ``ess`` the smallest bulk effective sample size over parameters (``thresholds`` are ``None``).
    ``report.predictive`` places ``x_obs`` among the last round's simulations
    (:func:`predictive_check`); where it lies beyond all of them, the posterior does not reproduce
    the observation, and a ``RuntimeWarning`` says so.

    Args:
        simulator / prior / x_obs / rounds / simulations_per_round / seed: as in
            :func:`~innverse.amortized.fit_sequential`.
        mcmc: settings of the returned posterior's sampler.
        round_mcmc: settings of the rounds' samplers (``ROUND_MCMC`` of this module).
        likelihood: ``"flow"``: a conditional flow retrained on all simulations each round (SNLE);
            ``"gaussian"``: a Gaussian with a mean linear in the parameters, fitted on the latest
            half of the rounds (sequential synthetic likelihood; see
            :mod:`~innverse.amortized.gaussian_likelihood`); ``"auto"``: both, and each round's
            posterior uses the one whose likelihood ratios identified the parameters of that
            round's new simulations better (held out from both fits; the flow until the first
            comparison), unless the Gaussian's posterior is much wider than the flow's
            (:data:`MAX_WIDENING`). The report records the scores, widths and choices.
        options: keyword arguments of :func:`~innverse.amortized.fit_likelihood`'s training.

    Raises:
        ValueError: no observation, bad round counts or likelihood, or data that are not feature vectors.
    """
    if x_obs is None:
        raise ValueError("fit_sequential_likelihood: sequential inference is for one observation; x_obs is None")
    for name, value in (("rounds", rounds), ("simulations_per_round", simulations_per_round)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"fit_sequential_likelihood: {name} must be an int >= 1, got {value!r}")
    if likelihood not in ("flow", "gaussian", "auto"):
        raise ValueError(f"fit_sequential_likelihood: likelihood must be 'flow', 'gaussian' or 'auto', "
                         f"got {likelihood!r}")
    if likelihood == "gaussian" and options:
        raise ValueError(f"fit_sequential_likelihood: the Gaussian likelihood takes no training options; got "
                         f"{sorted(options)}")
    kinds = ("flow", "gaussian") if likelihood == "auto" else (likelihood,)
    prior = as_prior(prior)
    x_obs = torch.as_tensor(x_obs, dtype=torch.float32)
    report, thetas, xs = SequentialLikelihoodReport(), [], []
    models: dict[str, LikelihoodPosterior] = {}
    kind = "gaussian" if likelihood == "gaussian" else "flow"
    for r in range(rounds):
        if not models:
            sims = simulate(simulator, prior=prior, n=simulations_per_round, seed=batch_seed(seed, r), progress=False)
            report.samplers.append("prior")
            report.acceptance.append(1.0)
            report.ess.append(None)
        else:
            theta = models[kind].sample(simulations_per_round, x_obs, seed=batch_seed(seed, r, 1), mcmc=round_mcmc)
            info = models[kind].diagnostics[0]
            sims = simulate(simulator, theta, seed=batch_seed(seed, r), progress=False)
            report.samplers.append("mcmc")
            report.acceptance.append(float(info["acceptance_rate"]))
            report.ess.append(float(info["min_bulk_ess"]))
        scores = {k: _held_out_score(m, sims.theta, sims.x) for k, m in models.items()} if len(models) > 1 else {}
        report.held_out.append(scores)
        if scores and max(scores.values()) > -math.inf:
            kind = max(scores, key=lambda k: scores[k])
        thetas.append(sims.theta)
        xs.append(sims.x)
        report.simulations.append(int(sims.theta.shape[0]))
        report.thresholds.append(None)
        models = _fit_round(kinds, thetas, xs, prior, strict=likelihood == "gaussian", mcmc=mcmc, seed=seed + r,
                            **options)
        widening = None
        if kind == "gaussian" and "flow" in models:
            widening = _widening(models, x_obs, simulations_per_round, round_mcmc, batch_seed(seed, r, 2))
            if widening > MAX_WIDENING:
                kind = "flow"
        if kind not in models:    # the Gaussian could not be fitted this round
            kind = "flow"
        report.widening.append(widening)
        report.likelihoods.append(kind)
    report.predictive = predictive_check(xs[-1], x_obs)
    _warn_if_unreproduced(report.predictive)
    return models[kind], report
