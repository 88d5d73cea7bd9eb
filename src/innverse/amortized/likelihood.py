r"""Neural likelihood estimation (NLE, SNLE): learn :math:`q(x \mid \theta)`, sample the posterior by MCMC.

A conditional flow over the data, conditioned on the parameters, is trained by maximum likelihood
on simulated pairs,

.. math::
    \min\; -\frac1N \sum_i \log q(x_i \mid \theta_i),

which is minimised by the simulator's likelihood wherever the training parameters have mass
(Papamakarios, Sterratt, Murray 2019). The flow is the one posterior machinery with the roles of
parameters and data swapped (:func:`~innverse.amortized.fit_posterior` on ``(x, theta)``: the same
couplings, standardisation, Gaussian start, candidate race and training loop). The posterior of an
observation :math:`x_o` is then :math:`p(\theta \mid x_o) \propto p(\theta)\, q(x_o \mid \theta)`,
sampled by the adaptive MCMC sampler of :mod:`innverse.amortized.mcmc` with its convergence checks.

Because the likelihood is learned *conditionally on* :math:`\theta`, the distribution the
training parameters were drawn from does not bias it: sequential NLE (:func:`~innverse.amortized.fit_sequential_likelihood`)
draws each round's parameters from the current posterior of :math:`x_o` and retrains on all
simulations so far, without any correction. Where the likelihood is simpler than the posterior
(SLCP: a Gaussian likelihood, a four-moded posterior) this is the better estimator; where it is
not, or the data are high-dimensional, posterior estimation is (Lueckmann et al. 2021).

The normaliser of :math:`p(\theta)\,q(x_o \mid \theta)` is unknown, so
:class:`~innverse.amortized.LikelihoodPosterior` offers :meth:`~innverse.amortized.LikelihoodPosterior.unnormalized_log_prob`, and its
``log_prob`` refuses rather than return an unnormalised density under a normalised name.

References:
    Papamakarios, Sterratt, Murray. "Sequential Neural Likelihood: Fast Likelihood-free Inference
    with Autoregressive Flows". AISTATS 2019.
    Lueckmann, Boelts, Greenberg, Goncalves, Macke. "Benchmarking Simulation-Based Inference".
    AISTATS 2021.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .ensemble import EnsemblePosterior
from .gaussian_likelihood import GaussianLikelihood, nonlinear_mean
from .mcmc import MCMCConfig, sample_mcmc
from .mcmc.sampler import log_prior_or_minus_inf
from .posterior import Posterior, sample_shape_of
from .priors import as_prior
from .standardize import wide_positive_features

__all__ = ["LikelihoodPosterior", "fit_likelihood", "integer_features", "LIKELIHOOD_MODELS"]

#: the likelihood models of :func:`fit_likelihood`
LIKELIHOOD_MODELS = ("flow", "gaussian")
class LikelihoodPosterior:
    r"""The posterior :math:`p(\theta \mid x) \propto p(\theta)\, q(x \mid \theta)` of a learned likelihood.

    ``sample(n, x)``: ``(n, D)`` for one observation ``x (F,)``, ``(n, k, D)`` for ``k``
    observations ``(k, F)`` (one MCMC run for all of them, vectorised). The diagnostics of the
    last run (R-hat, bulk ESS, acceptance, thinning per observation) are in ``diagnostics``.

    Args:
        likelihood: the trained conditional flow of ``x`` given ``theta`` (a :class:`Posterior` or an
            :class:`EnsemblePosterior` over the data, conditioned on the parameters), or a
            :class:`~innverse.amortized.gaussian_likelihood.GaussianLikelihood`.
        prior: the prior.
        mcmc: the sampler's settings (:class:`~innverse.amortized.mcmc.MCMCConfig`; its defaults if ``None``).
        dequantized: mask ``(F,)`` of the integer-valued features the flow was trained on with
            uniform noise added (``x + u``, ``u ~ U[0, 1)``); their probability
            :math:`P(X = k \mid \theta) = \int_k^{k+1} q(\tilde x \mid \theta)\,d\tilde x` is
            evaluated by the midpoint rule, as the density at ``k + 1/2``.
        logged: mask ``(F,)`` of the strictly positive features the flow models on the log scale;
            the density of ``x`` includes the Jacobian, :math:`q(\log x \mid \theta) / x`.
    """

    def __init__(self, likelihood: Posterior | EnsemblePosterior | GaussianLikelihood, prior: Distribution,
                 mcmc: MCMCConfig | None = None, dequantized: Tensor | None = None,
                 logged: Tensor | None = None) -> None:
        self.likelihood, self.prior = likelihood, as_prior(prior)
        self.mcmc = mcmc or MCMCConfig()
        self.diagnostics: list[dict[str, Any]] = []
        none = torch.zeros(self.x_dim, dtype=torch.bool)
        self.dequantized = none if dequantized is None else torch.as_tensor(dequantized, dtype=torch.bool)
        self.logged = none if logged is None else torch.as_tensor(logged, dtype=torch.bool)

    @property
    def x_dim(self) -> int:
        return self.likelihood.theta_dim

    @property
    def theta_dim(self) -> int:
        return int(self.likelihood.x_shape[0])

    def log_likelihood(self, x: Any, theta: Any) -> Tensor:
        r"""The learned :math:`\log q(x \mid \theta)`: rows of ``x (n, F)`` against rows of ``theta (n, D)``."""
        flows = getattr(self.likelihood, "members", [self.likelihood])
        device = flows[0].device
        theta = torch.as_tensor(theta).to(device, torch.float32)
        x = torch.as_tensor(x).to(device, torch.float32) + 0.5 * self.dequantized.to(device)
        logged = self.logged.to(device)
        if not bool(logged.any()):
            return self.likelihood.log_prob(x, theta, outside="-inf")
        positive = ~(logged & (x <= 0)).any(-1)    # a logged feature <= 0 has zero likelihood
        log_x = torch.where(logged & (x > 0), x, 1.0).log()
        ll = self.likelihood.log_prob(torch.where(logged, log_x, x), theta, outside="-inf")
        return torch.where(positive, ll - (log_x * logged).sum(-1), -torch.inf)

    def _observations(self, x: Any, owner: str) -> tuple[Tensor, bool]:
        if x is None:
            raise ValueError(f"{owner}: needs the observation x (shape ({self.x_dim},)) or a batch (k, {self.x_dim})")
        xt = torch.as_tensor(x, dtype=torch.float32)
        expected = f"expected finite observations of shape ({self.x_dim},) or (k, {self.x_dim})"
        if xt.shape[-1:] != (self.x_dim,) or xt.dim() > 2:
            raise ValueError(f"{owner}: {expected}, got shape {tuple(xt.shape)}")
        if not bool(torch.isfinite(xt).all()):
            raise ValueError(f"{owner}: {expected}, got shape {tuple(xt.shape)} with NaN/Inf")
        bad = (xt <= 0) & self.logged
        if bool(bad.any()):
            feature = int(bad.reshape(-1, self.x_dim).any(0).nonzero()[0])
            raise ValueError(f"{owner}: data feature {feature} is modelled on the log scale (all training values were "
                             f"positive, spanning more than three decades), but the observation has {float(xt[bad][0]):g}")
        return (xt[None], True) if xt.dim() == 1 else (xt, False)

    def sample(self, sample_shape: Any, x: Any = None, generator: torch.Generator | None = None,
               seed: int | None = None, mcmc: MCMCConfig | None = None) -> Tensor:
        """Posterior draws by MCMC: ``(*s, D)`` for one observation, ``(*s, k, D)`` for ``k``.

        Raises:
            ValueError: no or malformed observation.
            RuntimeError: the chains did not converge (see :class:`~innverse.amortized.mcmc.MCMCConfig`).
        """
        shape = sample_shape_of("LikelihoodPosterior.sample", sample_shape)
        xt, single = self._observations(x, "LikelihoodPosterior.sample")
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        n = max(1, int(torch.Size(shape).numel()))
        draws, self.diagnostics = sample_mcmc(self._log_likelihood64, self.prior, xt, n, generator,
                                              mcmc or self.mcmc, name="LikelihoodPosterior.sample")
        out = torch.stack(draws, 1).to(torch.float32)[: shape.numel()]
        out = out.reshape(*shape, xt.shape[0], self.theta_dim)
        return out.select(-2, 0) if single else out

    @torch.no_grad()
    def _log_likelihood64(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.log_likelihood(x, theta).to(torch.float64).cpu()

    def unnormalized_log_prob(self, theta: Any, x: Any) -> Tensor:
        r""":math:`\log p(\theta) + \log q(x \mid \theta)` for rows ``theta (n, D)`` and one observation ``x (F,)``."""
        theta = torch.as_tensor(theta, dtype=torch.float32)
        xt, _ = self._observations(x, "LikelihoodPosterior.unnormalized_log_prob")
        if xt.shape[0] != 1:
            raise ValueError("LikelihoodPosterior.unnormalized_log_prob: one observation at a time, "
                             f"got {xt.shape[0]}")
        if theta.dim() != 2 or theta.shape[1] != self.theta_dim:
            raise ValueError(f"LikelihoodPosterior.unnormalized_log_prob: expected theta of shape (n, {self.theta_dim}), "
                             f"got {tuple(theta.shape)}")
        log_prior = log_prior_or_minus_inf(self.prior, theta)
        with torch.no_grad():
            ll = self.log_likelihood(xt.expand(theta.shape[0], -1), theta).cpu()
        return torch.where(torch.isfinite(log_prior), log_prior + ll, -torch.inf)

    def log_prob(self, theta: Any, x: Any = None) -> Tensor:
        """Refused: the normaliser of ``p(theta) q(x | theta)`` is unknown (see ``unnormalized_log_prob``)."""
        raise NotImplementedError(
            "LikelihoodPosterior.log_prob: the posterior of a learned likelihood is known only up to its normaliser; "
            "use unnormalized_log_prob(theta, x) for log p(theta) + log q(x | theta), or fit_posterior for a "
            "normalised density")


def _check_pairs(theta: Any, x: Any, owner: str) -> tuple[Tensor, Tensor]:
    theta, x = torch.as_tensor(theta, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32)
    if theta.dim() != 2 or x.dim() != 2 or theta.shape[0] != x.shape[0]:
        raise ValueError(f"{owner}: neural likelihood estimation models the data directly, so it needs theta (n, D) "
                         f"and x (n, F) with F features per simulation; got theta {tuple(theta.shape)} and x "
                         f"{tuple(x.shape)} (sets, series and images need a posterior estimator with a summary "
                         "network: fit_posterior)")
    return theta, x


def integer_features(x: Tensor) -> Tensor:
    """Mask ``(F,)`` of the columns of ``x (n, F)`` whose values are all integers (counts, spikes, binary)."""
    return (x == x.round()).all(0) if x.shape[0] else torch.zeros(x.shape[1], dtype=torch.bool)


def _warn_if_nonlinear(theta: Tensor, x: Tensor) -> None:
    """A RuntimeWarning where a data feature's mean is detectably not linear in the parameters
    (:func:`~innverse.amortized.gaussian_likelihood.nonlinear_mean`): the Gaussian likelihood is then biased."""
    found = nonlinear_mean(theta, x)
    if found is not None and found.detected:
        warnings.warn(f"fit_likelihood: the mean of data feature {found.feature} is not linear in the parameters over "
                      f"these simulations (quadratic terms explain {found.share:.0%} of its residual variance, F-test "
                      f"p = {found.p_value:.2g}), so the Gaussian likelihood's posterior is biased; fit it to "
                      "simulations near one observation's posterior (fit_sequential_likelihood(likelihood='auto')) "
                      "or use model='flow'", RuntimeWarning, stacklevel=3)


def fit_likelihood(theta: Any, x: Any, prior: Distribution, *, mcmc: MCMCConfig | None = None, seed: int = 0,
                   dequantize: bool | str = "auto", log_data: bool | str = "auto", model: str = "flow",
                   **options: Any) -> LikelihoodPosterior:
    r"""NLE: train :math:`q(x \mid \theta)` on simulated pairs and return the MCMC posterior it defines.

    Args:
        theta: parameters ``(n, D)``, drawn from the prior or any proposal.
        x: their simulations ``(n, F)``.
        prior: the prior of the posterior (and the support the chains move in).
        mcmc: settings of the posterior's sampler.
        seed: seed of the training (and of the dequantisation noise).
        dequantize: ``"auto"``: features whose simulated values are all integers are dequantised
            (uniform noise on ``[0, 1)`` added for training; a flow fitted to the lattice itself
            would pile its density onto the integers without bound, and the posterior would be
            confidently wrong); ``False``: none.
        log_data: ``"auto"``: features that are strictly positive and span more than three decades
            (populations with multiplicative noise) are modelled on the log scale, where such
            likelihoods are close to Gaussian; ``False``: none. The density stays that of ``x``.
        model: ``"flow"``: a conditional flow trained by maximum likelihood; ``"gaussian"``: a
            Gaussian with a mean linear in ``theta`` and a full covariance, fitted in closed form
            (:class:`~innverse.amortized.gaussian_likelihood.GaussianLikelihood`; a local model,
            for simulations near one observation's posterior, which takes no training options).
            It warns where a data feature's mean is detectably not linear in the parameters
            (:func:`~innverse.amortized.gaussian_likelihood.nonlinear_mean`: SIR, Lotka-Volterra and
            two moons over their priors). Silence is no proof: on Bernoulli GLM's prior simulations
            the mean passes that test and the posterior is still biased (C2ST .75-.88 on three
            observations at 10^3 and 10^4).
        options: keyword arguments of :func:`~innverse.amortized.fit_posterior` for the flow over
            ``x`` (``flow``, ``training``, ``ensemble``, ``checkpoint``, ...).

    Raises:
        ValueError: x not a batch of feature vectors, bad training options, an unknown model, or
            too few simulations for the Gaussian.
    """
    theta, x = _check_pairs(theta, x, "fit_likelihood")
    if prior is None:
        raise ValueError("fit_likelihood: the prior is required (the posterior is prior x likelihood)")
    from .fit import fit_posterior

    for name in ("prior", "summary", "simulator", "store"):
        if name in options:
            raise ValueError(f"fit_likelihood: {name!r} is not an option here (the flow models x given theta, "
                             "from pairs in memory)")
    for name, value in (("dequantize", dequantize), ("log_data", log_data)):
        if value not in ("auto", False):
            raise ValueError(f"fit_likelihood: {name} must be 'auto' or False, got {value!r}")
    if model not in LIKELIHOOD_MODELS:
        raise ValueError(f"fit_likelihood: model must be one of {LIKELIHOOD_MODELS}, got {model!r}")
    if model == "gaussian" and options:
        raise ValueError(f"fit_likelihood: the Gaussian likelihood is fitted in closed form and takes no training "
                         f"options; got {sorted(options)}")
    none = torch.zeros(x.shape[1], dtype=torch.bool)
    mask = integer_features(x) if dequantize == "auto" else none
    logged = wide_positive_features(x, (x.shape[1],)) & ~mask if log_data == "auto" else none
    if bool(mask.any()):
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        x = x + noise * mask
    x = torch.where(logged, torch.where(logged, x, 1.0).log(), x)
    if model == "gaussian":
        gaussian = GaussianLikelihood.fit(theta, x)
        _warn_if_nonlinear(theta, x)
        return LikelihoodPosterior(gaussian, prior, mcmc, dequantized=mask, logged=logged)
    # the conditioning inputs are parameters, proposed by MCMC anywhere in the prior's support (also at a
    # boundary of 0 that prior draws never quite reach), so none is standardised on the log scale
    flow = fit_posterior(x, theta, None, summary="identity", seed=seed,
                         **{"progress": False, "log_x": False, **options})
    return LikelihoodPosterior(flow, prior, mcmc, dequantized=mask, logged=logged)
