"""ArviZ: a posterior for one observation as ``InferenceData`` (posterior, ``log q``, observed data, prior).

Why ``r_hat`` says nothing here: an amortized posterior draws *independent* samples from
:math:`q(\\theta \\mid x_{obs})`; there is no Markov chain that could fail to mix. Splitting the
draws into chains (ArviZ wants at least two) makes ``r_hat`` 1 and the effective sample size
about the number of draws by construction, whether ``q`` is a good posterior or a bad one. What
tells you whether to trust ``q`` is calibration on simulated data — SBC, coverage and TARP
(:func:`innverse.diagnostics.check`), the validation loss in ``posterior.report`` — and, for
this one observation, whether it lies among the simulations (the outlier warning of
``posterior.sample``, :func:`innverse.diagnostics.misspecification_test`). ``az.summary`` is still
the place for means, standard deviations and highest-density intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["to_inference_data"]


def to_inference_data(posterior: Any, x_obs: Any, n: int = 1000, *, chains: int = 4, prior_draws: int | None = None,
                      parameter_names: Sequence[str] | None = None, seed: int = 0) -> Any:
    r"""ArviZ ``InferenceData`` of a posterior given one observation.

    Groups: ``posterior`` (variable ``theta``, dims ``(chain, draw, parameter)``: ``n`` independent
    draws of :math:`q(\theta \mid x_{obs})` split into ``chains`` chains), ``sample_stats``
    (``log_q``: :math:`\log q(\theta \mid x_{obs})` of every draw), ``observed_data`` (``x``) and,
    when the posterior has a prior, ``prior`` (``theta``: ``prior_draws`` draws, default ``n``).
    See the module docstring for why ``r_hat`` is 1 by construction and what to check instead.

    Args:
        posterior: an innverse :class:`~innverse.amortized.Posterior` (or any object with
            ``sample(n, x, seed=)``, ``log_prob(theta, x)`` and optionally ``prior``).
        x_obs: one observation (``x_shape``).
        n: posterior draws in total (a multiple of ``chains``).
        chains: how many chains to split the draws into (ArviZ's diagnostics need at least 2).
        prior_draws: prior draws (a multiple of ``chains``), 0 for none.
        parameter_names: coordinates of the ``parameter`` dimension (default ``θ1 ... θD``).
        seed: seeds the posterior and prior draws.

    Raises:
        ImportError: ArviZ is not installed.
        ValueError: a batch of observations, or ``n`` / ``prior_draws`` not a multiple of ``chains``.
    """
    try:
        import arviz
    except ImportError as err:
        raise ImportError("to_inference_data needs ArviZ (pip install arviz)") from err
    if not isinstance(chains, int) or isinstance(chains, bool) or chains < 1:
        raise ValueError(f"to_inference_data: chains must be a positive int, got {chains!r}")
    prior = getattr(posterior, "prior", None)
    m = (n if prior is not None else 0) if prior_draws is None else prior_draws
    for name, value in (("n", n), ("prior_draws", m)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value % chains or (
                name == "n" and value == 0):
            raise ValueError(f"to_inference_data: {name} must be a {'positive ' if name == 'n' else ''}multiple of "
                             f"chains={chains}, got {value!r}")
    samples = posterior.sample(n, x_obs, seed=seed)
    if samples.dim() != 2:
        raise ValueError(f"to_inference_data: expected one observation, got x_obs giving samples of shape "
                         f"{tuple(samples.shape)}; call it once per observation")
    dim = samples.shape[1]
    log_q = posterior.log_prob(samples, x_obs)
    names = [f"θ{d + 1}" for d in range(dim)] if parameter_names is None else [str(p) for p in parameter_names]
    if len(names) != dim:
        raise ValueError(f"to_inference_data: {len(names)} parameter names for {dim} parameters")
    x = torch.as_tensor(np.asarray(x_obs.detach().cpu() if isinstance(x_obs, torch.Tensor) else x_obs))

    def chained(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().double().reshape(chains, t.shape[0] // chains, *t.shape[1:]).numpy()

    groups: dict[str, Any] = {"posterior": {"theta": chained(samples)}, "sample_stats": {"log_q": chained(log_q)},
                              "observed_data": {"x": x.numpy()}}
    if prior is not None and m:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            groups["prior"] = {"theta": chained(prior.sample((m,)))}
    dims = {"theta": ["parameter"], "x": [f"x_dim_{i}" for i in range(x.dim())]}
    from .. import __version__

    attrs = {"inference_library": "innverse", "inference_library_version": __version__,
             "sampling": f"{n} independent draws of the amortized posterior q(theta | x_obs), split into {chains} "
                         "chains: r_hat and ESS are not convergence diagnostics here; check calibration "
                         "(innverse.diagnostics.check)"}
    return arviz.from_dict(**groups, coords={"parameter": names}, dims=dims, attrs=attrs)
