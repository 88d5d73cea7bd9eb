r"""Posterior sampler from a likelihood: adaptive Metropolis–Hastings, many chains, checked convergence.

Samples :math:`p(\theta \mid x_k) \propto p(x_k \mid \theta)\,p(\theta)` for several
observations :math:`x_k` at once, given any batched log likelihood: a benchmark task's exact one
(the reference posteriors of :mod:`innverse.tasks.sbi`) or a learned one (neural likelihood
estimation, :mod:`innverse.amortized.likelihood`) (``K`` targets x ``C`` chains, one vectorised likelihood call
per iteration), in unconstrained coordinates :math:`z = T^{-1}(\theta)` with
:math:`T` = ``biject_to(prior.support)`` and target density
:math:`\log p(T(z) \mid x_k) + \log p(T(z)) + \log|\det J_T(z)|`.

1. **Initialisation** (overdispersed): ``init_draws`` prior draws are weighted by the tempered
   likelihood :math:`p(x_k \mid \theta)^{\beta}`, with the largest :math:`\beta \le 1` whose weights
   have an effective sample size of at least ``4 C``, and ``C`` distinct starts are drawn.
2. **Kernel**, per iteration and chain, three Metropolis–Hastings moves in turn:

   * random walk :math:`z' = z + \lambda_k L_k \varepsilon`, with :math:`L_k L_k^\top` the
     within-chain covariance (Haario et al. 2001) and :math:`\log\lambda_k` adapted by
     Robbins–Monro towards acceptance 0.25 (Andrieu & Thoms 2008);
   * independence proposal :math:`z' \sim q_k`, a defensive Student-t mixture fitted to all
     chains' states by EM (:class:`~innverse.amortized.mcmc.proposal.StudentTMixture`), accepted with
     :math:`\min(1, \pi(z') q(z) / \pi(z) q(z'))`; it moves chains across the whole posterior,
     between modes included, in one step. It does not depend on the current state, so it is
     evaluated in the same batched likelihood call as the random walk;
   * optional ``symmetries``: volume-preserving involutions of :math:`z` (e.g. the sign flip of
     a parameter that enters the likelihood squared), accepted with the plain Metropolis ratio
     (Tierney 1998), so chains move between exactly or nearly symmetric modes.
3. **Warm-up** (``warmup`` iterations, discarded): the adaptation above, re-estimating
   :math:`L_k` and :math:`q_k` at the end of windows doubling in length (50, 100, ... 1000).
4. **Sampling** with the kernel frozen (a valid, non-adaptive Metropolis–Hastings chain), each
   chain thinned by ``thin`` (first set from the warm-up's autocorrelation). Convergence is
   checked per target and parameter: rank-normalised split-:math:`\hat R` ``<= rhat_max`` and
   bulk ESS ``>= min_ess * n`` (:mod:`~innverse.amortized.mcmc.convergence`); otherwise the round is
   treated as more warm-up, the thinning doubled, and sampling repeated (up to ``max_rounds``),
   and a ``RuntimeError`` reports the diagnostics if it still fails (unless
   ``require_convergence`` is off: then the last round's draws are returned, marked as not converged). The final draws of all
   chains are pooled and shuffled.

The loop runs single-threaded (torch's thread count is restored afterwards): thousands of
iterations on small tensors are latency-bound, and intra-op thread hand-offs only slow them down
on a shared machine.

References:
    Haario, Saksman, Tamminen, "An adaptive Metropolis algorithm", Bernoulli 7 (2001);
    Andrieu, Thoms, "A tutorial on adaptive MCMC", Statistics and Computing 18 (2008);
    Tierney, "A note on Metropolis-Hastings kernels for general state spaces", Ann. Appl. Probab.
    8 (1998); Vehtari et al., "Rank-normalization, folding, and localization", Bayesian Analysis
    16 (2021).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution, biject_to

from ..prior_sampling import sample_with_generator
from .convergence import bulk_ess, split_rhat
from .proposal import StudentTMixture

__all__ = ["MCMCConfig", "log_prior_or_minus_inf", "sample_mcmc"]

Involution = Callable[[Tensor], Tensor]
#: draws kept per chain at the least, whatever ``n``: split-R-hat and the bulk ESS need a few per chain half
MIN_DRAWS_PER_CHAIN = 20
#: split-R-hat of *independent* draws scatters above 1 by about 1 / (draws per chain x sqrt(chains)): with 50
#: chains of 20 draws, exact draws exceed R-hat 1.01 one time in six, so a check over many observations and
#: parameters refused correct samples. Each chain therefore runs at least RHAT_DRAWS / sqrt(chains) draws
#: (114 for 50 chains; exact draws then stay below 1.006 in 3,000 of 3,000 trials), and n of them are kept.
RHAT_DRAWS = 800
#: ``log_likelihood(theta (M, D) float64, x (M, *x_shape)) -> (M,)``
LogLikelihood = Callable[[Tensor, Tensor], Tensor]


def draws_per_chain(n: int, chains: int) -> int:
    """Draws each chain runs for ``n`` per observation: enough for ``n`` and for a meaningful split-R-hat."""
    return max(-(-n // chains), MIN_DRAWS_PER_CHAIN, math.ceil(RHAT_DRAWS / math.sqrt(chains)))


@dataclass(frozen=True)
class MCMCConfig:
    """Settings of :func:`sample_mcmc`.

    Attributes:
        chains: chains per observation.
        warmup: adaptive iterations, discarded.
        init_draws: prior draws from which the starting points are resampled.
        target_acceptance: acceptance rate the random-walk scale is tuned to.
        rhat_max: largest acceptable rank-normalised split-R-hat (per parameter).
        min_ess: required bulk ESS per parameter, as a fraction of the draws the chains run (at least ``n``;
            of them ``n`` are kept, see :func:`draws_per_chain`).
        max_rounds: sampling rounds (thinning doubled each time) before giving up.
        independence_components: fitted components of the independence proposal (plus one
            defensive component, see :class:`~innverse.amortized.mcmc.proposal.StudentTMixture`).
        independence_df: degrees of freedom of its Student-t components.
        independence_inflation: factor on the proposal's scale (heavier than the posterior).
        symmetries: volume-preserving involutions ``z -> z'`` proposed every iteration.
        require_convergence: raise if the diagnostics still fail after ``max_rounds``; ``False``
            returns the last round's draws instead, with ``"converged": False`` in their
            diagnostics (for proposals, e.g. the rounds of sequential likelihood estimation,
            which need to cover the posterior, not to equal it).
    """

    chains: int = 50
    warmup: int = 1500
    init_draws: int = 20_000
    target_acceptance: float = 0.25
    rhat_max: float = 1.01
    min_ess: float = 0.5
    max_rounds: int = 4
    independence_components: int = 4
    independence_df: int = 5
    independence_inflation: float = 1.3
    symmetries: Sequence[Involution] = field(default_factory=tuple)
    require_convergence: bool = True


def log_prior_or_minus_inf(prior: Distribution, theta: Tensor) -> Tensor:
    """``prior.log_prob`` of rows ``theta (M, D) -> (M,)``, ``-inf`` off the support (also for priors that validate).

    Rounding can put a transformed chain state exactly on an open end of the support.
    """
    inside = prior.support.check(theta)
    inside = inside.all(-1) if inside.dim() == theta.dim() else inside
    safe = torch.where(inside[:, None], theta, biject_to(prior.support)(torch.zeros_like(theta[:1])))
    lp = prior.log_prob(safe)
    lp = lp.sum(-1) if lp.dim() == theta.dim() else lp
    return torch.where(inside, lp, -torch.inf)


class _Target:
    """Log density in unconstrained coordinates for K observations: ``z (K, C, d) -> (K, C)``."""

    def __init__(self, log_likelihood: LogLikelihood, prior: Distribution, xs: Tensor, prior_dtype: torch.dtype):
        self.log_likelihood, self.prior, self.xs, self.prior_dtype = log_likelihood, prior, xs, prior_dtype
        self.transform = biject_to(prior.support)
        self.evaluations = 0

    def log_prior(self, theta: Tensor) -> Tensor:
        return log_prior_or_minus_inf(self.prior, theta.to(self.prior_dtype)).to(torch.float64)

    def expand(self, rows: int) -> Tensor:
        """The observations repeated for ``rows`` parameters each: ``(K * rows, *x_shape)``."""
        k = self.xs.shape[0]
        return self.xs[:, None].expand(k, rows, *self.xs.shape[1:]).reshape(k * rows, *self.xs.shape[1:])

    def __call__(self, z: Tensor) -> Tensor:
        k, c, d = z.shape
        theta = self.transform(z)
        ladj = self.transform.log_abs_det_jacobian(z, theta)
        ladj = ladj.sum(-1) if ladj.dim() == z.dim() else ladj
        flat = theta.reshape(k * c, d)
        log_prior = self.log_prior(flat)
        inside = torch.isfinite(log_prior)
        # a point inside the support stands in for parameters the prior excludes (their density is -inf anyway)
        safe = torch.where(inside[:, None], flat, self.transform(torch.zeros_like(flat[:1])))
        ll = self.log_likelihood(safe, self.expand(c)).to(torch.float64)
        lp = torch.where(inside, ll + log_prior, -torch.inf).reshape(k, c) + ladj
        self.evaluations += k * c
        return torch.where(torch.isnan(lp), -torch.inf, lp)


def _initial_states(target: _Target, theta: Tensor, chains: int, generator: torch.Generator) -> Tensor:
    # theta: prior draws (float64), resampled by the tempered likelihood
    k, draws = target.xs.shape[0], theta.shape[0]
    ll = target.log_likelihood(theta.repeat(k, 1), target.expand(draws)).to(torch.float64).reshape(k, draws)
    ll = torch.where(torch.isnan(ll), -torch.inf, ll)
    starts = []
    for row in ll:
        lo, hi = 0.0, 1.0
        for _ in range(50):  # largest beta whose weights keep an ESS of 4 * chains
            beta = hi if lo == hi else 0.5 * (lo + hi)
            w = torch.softmax(beta * row, 0)
            if float(1.0 / w.square().sum()) >= 4 * chains:
                lo = beta
            else:
                hi = beta
            if hi - lo < 1e-4:
                break
        w = torch.softmax(lo * row, 0)
        idx = torch.multinomial(w, chains, replacement=False, generator=generator)
        starts.append(theta[idx])
    return target.transform.inv(torch.stack(starts))


def _windows(total: int) -> list[int]:
    sizes, size = [], 50
    while sum(sizes) + size < total:
        sizes.append(size)
        size = min(2 * size, 1000)
    sizes.append(total - sum(sizes))
    return sizes


def _within_chain_cholesky(buffer: Tensor) -> Tensor:
    # buffer (S, K, C, d): covariance of deviations from each chain's own mean, pooled over chains
    dev = buffer - buffer.mean(0, keepdim=True)
    s, k, c, d = dev.shape
    flat = dev.permute(1, 0, 2, 3).reshape(k, s * c, d)
    cov = flat.transpose(1, 2) @ flat / max(s * c - 1, 1)
    n_eff = s * c
    eye = torch.eye(d, dtype=cov.dtype)
    cov = (n_eff * cov + 5.0 * 1e-3 * eye) / (n_eff + 5.0)
    return torch.linalg.cholesky(cov + 1e-12 * eye)


class _Chains:
    """The chain states and the Metropolis–Hastings moves (random walk, independence, symmetries)."""

    def __init__(self, target: _Target, z: Tensor, generator: torch.Generator, config: MCMCConfig):
        self.target, self.z, self.gen, self.config = target, z, generator, config
        self.lp = target(z)
        k, _, d = z.shape
        self.chol = _within_chain_cholesky(z[None])
        self.log_scale = torch.full((k,), math.log(2.38 / math.sqrt(d)), dtype=torch.float64)
        self.independence: StudentTMixture | None = None
        self.accepted = torch.zeros(k, dtype=torch.float64)
        self.accepted_independence = torch.zeros(k, dtype=torch.float64)
        self.proposed = 0

    def step(self, adapt_rate: float) -> None:
        eps = torch.randn(self.z.shape, generator=self.gen, dtype=torch.float64)
        walk = self.z + (eps @ self.chol.transpose(1, 2)) * self.log_scale.exp()[:, None, None]
        if self.independence is None:
            acc = self._metropolis(walk, self.target(walk))
        else:
            # the independence proposal does not depend on the current state, so both proposals
            # are evaluated in one batched call (half the sequential likelihood calls)
            fresh = self.independence.sample(self.z.shape[1])
            log_q_fresh = self.independence.log_prob(fresh)
            both = self.target(torch.cat([walk, fresh], 1))
            acc = self._metropolis(walk, both[:, : walk.shape[1]])
            ratio = self.independence.log_prob(self.z) - log_q_fresh
            self.accepted_independence += self._metropolis(fresh, both[:, walk.shape[1]:], ratio).mean(1)
        self.accepted += acc.mean(1)
        self.proposed += 1
        if adapt_rate > 0:
            self.log_scale += adapt_rate * (acc.mean(1) - self.config.target_acceptance)
        for involution in self.config.symmetries:
            proposal = involution(self.z)
            self._metropolis(proposal, self.target(proposal))

    def fit_independence(self, buffer: Tensor) -> None:
        # buffer (S, K, C, d) -> at most 4000 pooled states per target for the EM fit
        s, k, c, d = buffer.shape
        flat = buffer.permute(1, 0, 2, 3).reshape(k, s * c, d)
        keep = torch.randperm(s * c, generator=self.gen)[:4000]
        cfg = self.config
        self.independence = StudentTMixture(flat[:, keep], cfg.independence_components, self.gen,
                                            df=cfg.independence_df, inflation=cfg.independence_inflation)

    def _metropolis(self, proposal: Tensor, lp_new: Tensor, log_q_ratio: Tensor | float = 0.0) -> Tensor:
        log_u = torch.log(torch.rand(self.lp.shape, generator=self.gen, dtype=torch.float64))
        accept = log_u < lp_new - self.lp + log_q_ratio
        self.z = torch.where(accept[..., None], proposal, self.z)
        self.lp = torch.where(accept, lp_new, self.lp)
        return accept.to(torch.float64)


def _diagnose(draws: Tensor) -> tuple[list[float], list[float]]:
    # draws (K, C, S, d) -> per target: max R-hat, min bulk ESS over parameters
    rhats, esss = [], []
    for target in draws:
        rh = [split_rhat(target[..., j].numpy()) for j in range(target.shape[-1])]
        es = [bulk_ess(target[..., j].numpy()) for j in range(target.shape[-1])]
        rhats.append(max(rh))
        esss.append(min(es))
    return rhats, esss


@contextmanager
def _single_threaded() -> Iterator[None]:
    # The loop is latency-bound (thousands of iterations on small tensors); on a shared machine
    # torch's intra-op thread hand-offs make small batched linear algebra much slower, so the
    # sampler runs single-threaded and restores the caller's setting afterwards.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sample_mcmc(log_likelihood: LogLikelihood, prior: Distribution, xs: Tensor, n: int, generator: torch.Generator,
                config: MCMCConfig | None = None, *, name: str = "MCMC") -> tuple[list[Tensor], list[dict]]:
    """``n`` posterior draws (float64, ``(n, D)``) and diagnostics for each observation in ``xs``.

    Args:
        log_likelihood: ``(theta (M, D) float64, x (M, *x_shape)) -> (M,)``, batched over rows;
            NaN counts as zero likelihood.
        prior: the prior; its support sets the unconstrained coordinates the chains move in.
        xs: the observations ``(K, *x_shape)``; all are sampled together, vectorised.
        n: draws per observation (pooled over ``config.chains`` chains, so a multiple of it is
            cheapest; the surplus of the last draw per chain is dropped at random; for the
            diagnostics each chain runs at least ``RHAT_DRAWS / sqrt(chains)`` draws, see
            :func:`draws_per_chain`).
        generator: the only source of randomness.
        config: sampler settings, :class:`MCMCConfig` defaults if ``None``.
        name: who is sampling, for the error message.

    Raises:
        RuntimeError: if convergence criteria still fail after ``config.max_rounds`` rounds (and
            ``config.require_convergence`` is on).
    """
    with _single_threaded():
        return _run(log_likelihood, prior, xs, n, generator, config or MCMCConfig(), name)


def _run(log_likelihood: LogLikelihood, prior: Distribution, xs: Tensor, n: int, generator: torch.Generator,
         cfg: MCMCConfig, name: str) -> tuple[list[Tensor], list[dict]]:
    start, cpu_start = time.perf_counter(), time.process_time()
    theta0 = sample_with_generator(prior, cfg.init_draws, generator)
    target = _Target(log_likelihood, prior, xs, theta0.dtype)
    z0 = _initial_states(target, theta0.to(torch.float64), cfg.chains, generator)
    chains = _Chains(target, z0, generator, cfg)
    last = None
    for size in _windows(cfg.warmup):
        buffer = []
        for it in range(size):
            chains.step(adapt_rate=1.0 / math.sqrt(it + 10))
            buffer.append(chains.z)
        last = torch.stack(buffer)
        chains.chol = _within_chain_cholesky(last[len(last) // 2:])
        chains.fit_independence(last[len(last) // 2:])
    per_chain = draws_per_chain(n, cfg.chains)
    # n of the chains' draws are kept at random: an ESS of min_ess per draw run keeps min_ess * n for them
    needed = cfg.min_ess * cfg.chains * per_chain
    # initial thinning from the warm-up's last window: ESS target needs thin ~ tau * min_ess
    tail = last[len(last) // 2:].permute(1, 2, 0, 3)
    ess_rate = min(min(_diagnose(tail)[1]) / (tail.shape[1] * tail.shape[2]), 1.0)
    thin = max(1, math.ceil(cfg.min_ess / max(ess_rate, 1e-3)))
    warmup_evaluations = target.evaluations
    for round_ in range(cfg.max_rounds):
        chains.accepted.zero_()
        chains.accepted_independence.zero_()
        chains.proposed = 0
        draws = []
        for it in range(per_chain * thin):
            chains.step(adapt_rate=0.0)
            if (it + 1) % thin == 0:
                draws.append(chains.z)
        draws_z = torch.stack(draws, 2)  # (K, C, S, d)
        rhats, esss = _diagnose(draws_z)
        ok = all(r <= cfg.rhat_max for r in rhats) and all(e >= needed for e in esss)
        if ok or (round_ + 1 == cfg.max_rounds and not cfg.require_convergence):
            break
        if round_ + 1 == cfg.max_rounds:
            raise RuntimeError(f"{name}: MCMC did not converge after {cfg.max_rounds} rounds "
                               f"(thin={thin}): max R-hat per observation {rhats}, min bulk ESS {esss}, "
                               f"required R-hat <= {cfg.rhat_max} and ESS >= {needed:.0f} ({cfg.chains} chains x {per_chain} "
                               f"draws x min_ess {cfg.min_ess})")
        thin *= 2
    theta = target.transform(draws_z)
    out, info = [], []
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    for k in range(xs.shape[0]):
        pooled = theta[k].reshape(-1, theta.shape[-1])
        pooled = pooled[torch.randperm(pooled.shape[0], generator=generator)[:n]]
        info.append({"sampler": "adaptive Metropolis-Hastings: random walk + Student-t mixture independence proposals "
                                "(innverse.amortized.mcmc)", "converged": ok,
                     "chains": cfg.chains, "warmup": cfg.warmup, "thin": thin, "rounds": round_ + 1,
                     "draws_per_chain": per_chain, "max_split_rhat": rhats[k], "min_bulk_ess": esss[k],
                     "acceptance_rate": float(chains.accepted[k] / max(chains.proposed, 1)),
                     "independence_acceptance_rate":
                         float(chains.accepted_independence[k] / max(chains.proposed, 1)),
                     "likelihood_evaluations_all_targets": target.evaluations,
                     "warmup_evaluations_all_targets": warmup_evaluations,
                     "seconds_all_targets": seconds, "cpu_seconds_all_targets": cpu_seconds})
        out.append(pooled.contiguous())
    return out, info
