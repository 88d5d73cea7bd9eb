r"""Compare candidate measurement setups by the posteriors an amortized estimator returns for each.

For every setup :func:`compare` trains an NPE on ``budget.simulations`` simulations
(:func:`~innverse.amortized.fit_posterior`), or reads a design-conditional posterior trained once
over a design space at the setup's design, and evaluates it on ``budget.test_size`` held-out
simulations whose *parameters are shared by all setups* (so differences between setups are not
differences between test sets): contraction, credible-interval width, an expected-information-gain
lower bound, SBC calibration, identifiability and multimodality per parameter
(:mod:`innverse.design.evaluate`). The result (:class:`~innverse.design.comparison.Comparison`)
ranks the setups per parameter, flags unidentifiable parameters, prints a table, plots, and
given costs returns the Pareto front.

References:
    Adler, Ardizzone et al. "Uncertainty-aware performance assessment of optical imaging
    modalities with invertible neural networks". IJCARS 2019; Wehenkel et al. "Simulation-based
    inference for cardiovascular models". arXiv:2307.13918, 2023.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.distributions import Distribution

from ..amortized import as_prior, fit_posterior, sample_with_generator, simulate
from .comparison import Comparison
from .design_posterior import DesignConditionalPosterior
from .evaluate import evaluate_posterior
from .setups import Budget, Setup, as_setups, check_setup_dimensions

__all__ = ["compare"]


def _names(setups: list[Setup], dim: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        for s in setups:
            found = getattr(s.simulator, "parameter_names", getattr(getattr(s.simulator, "func", None),
                                                                    "parameter_names", None))
            if found:
                names = found
                break
    names = tuple(names) if names else tuple(f"theta_{i}" for i in range(dim))
    if len(names) != dim:
        raise ValueError(f"compare: got {len(names)} parameter names for {dim} parameters")
    return names


# exempt from the size rule: the entry point keeps its documented options as keywords; the body is a
# short loop over named steps (simulate, fit, evaluate).
def compare(setups: Mapping[str, Any] | Sequence[Setup], prior: Distribution, budget: Budget | int | dict = 10_000, *,
            posterior: DesignConditionalPosterior | None = None, costs: Mapping[str, float] | None = None,
            parameter_names: Sequence[str] | None = None, level: float = 0.9, threshold: float = 0.1,
            seed: int = 0, progress: bool = False) -> Comparison:
    """Compare measurement setups by their posteriors (see the module docstring).

    Args:
        setups: a mapping name -> simulator, or a list of :class:`~innverse.design.Setup`
            (:func:`~innverse.design.design_setups` builds them from one simulator with a design argument).
        prior: the prior over the parameters, shared by all setups.
        budget: a :class:`~innverse.design.Budget`, or the number of training simulations per setup.
        posterior: a design-conditional posterior trained once over the design space
            (:func:`~innverse.design.train_design_posterior`); every setup then needs a ``design``
            and no NPE is trained per setup.
        costs: setup name -> cost, when ``setups`` is a mapping (for the Pareto front).
        parameter_names: names of the parameters (default: the simulator's ``parameter_names``).
        level: credibility level of the interval widths.
        threshold: contraction below which a parameter is flagged unidentifiable.
        seed: seed of the simulations, the training and the posterior samples.

    Raises:
        ValueError: setups that do not share the prior's parameters (a simulator declaring or
            needing another parameter dimension), duplicate names, costs that do not match the
            setups, a design-conditional posterior with setups that lack a design.
        TypeError: setups neither a mapping nor a list of Setup; a budget of another type.
    """
    items = as_setups(setups, costs)
    plan = Budget.coerce(budget)
    prior = as_prior(prior)
    dim = int(prior.event_shape[0])
    check_setup_dimensions(items, prior, seed)
    if posterior is not None:
        if not isinstance(posterior, DesignConditionalPosterior):
            raise TypeError(f"compare: posterior must be a DesignConditionalPosterior, got {type(posterior).__name__}")
        if posterior.theta_dim != dim:
            raise ValueError(f"compare: the design-conditional posterior has {posterior.theta_dim} parameters, the "
                             f"prior {dim}")
        lacking = [s.name for s in items if s.design is None]
        if lacking:
            raise ValueError(f"compare: setups {lacking} have no design for the design-conditional posterior")
    theta_test = sample_with_generator(prior, plan.test_size, torch.Generator().manual_seed(seed + 1))
    results = []
    for i, s in enumerate(items):
        if posterior is None:
            train = simulate(s.simulator, prior=prior, n=plan.simulations, seed=seed + 1000 * (i + 1), progress=False)
            q: Any = fit_posterior(train.theta, train.x, prior=prior, training=plan.training, seed=seed,
                                   progress=progress, **dict(plan.fit_options or {}))
            used = int(train.theta.shape[0])
        else:
            q, used = posterior.at(s.design), 0
        test = simulate(s.simulator, theta=theta_test, seed=seed + 7 + 1000 * (i + 1), progress=False)
        results.append(evaluate_posterior(q, test.theta, test.x, prior, name=s.name, cost=s.cost,
                                          samples=plan.posterior_samples, level=level, threshold=threshold,
                                          seed=seed, simulations=used))
    return Comparison(_names(items, dim, parameter_names), tuple(results), level, threshold)
