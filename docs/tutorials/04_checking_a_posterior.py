"""
Checking a posterior: calibration, coverage, misspecification
=============================================================

A trained posterior can be wrong in ways a loss curve does not show. The checks here need no
ground-truth posterior, only the prior and the simulator: draw
:math:`\\theta^* \\sim p(\\theta)`, simulate :math:`x \\sim p(x \\mid \\theta^*)`, and ask where
:math:`\\theta^*` falls among posterior draws for :math:`x`.

* **SBC** (simulation-based calibration): the rank of :math:`\\theta^*_d` among :math:`L`
  posterior draws is uniform on :math:`\\{0, \\dots, L\\}` for every parameter :math:`d` exactly
  when the posterior is calibrated; the ECDF of the ranks must stay inside a simultaneous band.
* **Coverage**: the true parameters fall in the :math:`\\alpha` credible region in a fraction
  :math:`\\alpha` of the data sets, for every :math:`\\alpha`.
* **Misspecification**: an observation unlike every simulation gets a posterior that
  extrapolates; it is flagged by its distance to the simulated data.

This tutorial runs them on a good posterior, then shows what a failing check looks like.
"""

# %%
import os
import tempfile
import warnings

import torch

from innverse import diagnostics
from innverse.amortized import fit_posterior, gaussian, simulate

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"  # reduced budget of the documentation build
N, CHECKS = (3_000, 100) if FAST else (20_000, 300)
TRAINING = {"epochs": 40} if FAST else None

# %%
# A problem with a known answer: :math:`\theta \sim N(0, I_2)`,
# :math:`x = \theta + 0.5\,\varepsilon`, whose posterior is Gaussian with mean
# :math:`\theta/1.25` and standard deviation :math:`0.5/\sqrt{1.25}`.
prior = gaussian([0.0, 0.0], 1.0)


def simulator(theta, generator=None):
    return theta + 0.5 * torch.randn(theta.shape, generator=generator)


theta, x, _ = simulate(simulator, prior=prior, n=N, seed=0, progress=False)
posterior = fit_posterior(theta, x, prior=prior, training=TRAINING, seed=0, progress=False)

# %%
# The whole battery
# -----------------
# :func:`~innverse.diagnostics.check` simulates ``n`` fresh data sets, samples the posterior for
# each and runs SBC, coverage (central and HPD), TARP and parameter recovery, with a pass/fail
# verdict per check at significance ``level``; ``out_dir`` receives the plots.
out_dir = tempfile.mkdtemp(prefix="innverse-checks-")
result = diagnostics.check(posterior, prior, simulator, n=CHECKS, samples=500, out_dir=out_dir)
print(result.summary())
print("all passed:", result.passed)

# %%
# The same checks one at a time, on plain tensors: they work with any estimator that can draw
# samples, ours or anybody else's.
truth = prior.sample((CHECKS,))
data = simulator(truth)
draws = posterior.sample(500, data, seed=1)  # (500, CHECKS, 2)
ranks = diagnostics.sbc_ranks(draws, truth)
print(diagnostics.sbc_test(ranks, 500)["passed"])
fig = diagnostics.sbc_ecdf_plot(ranks, 500, labels=["theta_1", "theta_2"])

# %%
# What a failing check looks like
# -------------------------------
# An over-confident posterior: the same draws pulled halfway towards their mean (too narrow).
# Its ECDF difference leaves the band in an S shape (true values too often in the tails, ranks
# pile up at 0 and L), and the coverage curve falls below the diagonal: a nominal 90 % region
# holds the truth far less often than 90 % of the time.


class Overconfident:
    """Wraps a posterior and shrinks its draws towards their mean (a deliberately wrong one)."""

    def __init__(self, posterior, factor):
        self.posterior, self.factor = posterior, factor

    def sample(self, n, x, generator=None):
        s = self.posterior.sample(n, x, generator=generator)
        return s.mean(0) + self.factor * (s - s.mean(0))


narrow = Overconfident(posterior, 0.5)
bad_draws = narrow.sample(500, data)
bad_ranks = diagnostics.sbc_ranks(bad_draws, truth)
print("SBC passed:", diagnostics.sbc_test(bad_ranks, 500)["passed"])
fig = diagnostics.sbc_ecdf_plot(bad_ranks, 500, labels=["theta_1", "theta_2"])

# %%
# Coverage of central credible intervals, good and over-confident, against the diagonal:
good_cred = diagnostics.credibility_central(draws, truth)
bad_cred = diagnostics.credibility_central(bad_draws, truth)
print("coverage test passed:", diagnostics.coverage_test(good_cred)["passed"],
      diagnostics.coverage_test(bad_cred)["passed"])
fig = diagnostics.coverage_plot({"calibrated posterior": good_cred, "over-confident": bad_cred})

# %%
# The battery reports the failure too (the check only needs ``sample(n, x)``):
print(diagnostics.check(narrow, prior, simulator, n=CHECKS, samples=500).summary())

# %%
# Misspecification: data the simulator never makes
# ------------------------------------------------
# Real data often differ from every simulation (an unmodelled effect, an outlier). The posterior
# still answers, by extrapolating. :func:`~innverse.diagnostics.misspecification_test` tests a
# batch of observations against simulations with an MMD two-sample test (on summaries; here the
# data are their own summaries):
well_specified = simulator(prior.sample((50,)))
misspecified = well_specified + 3.0 * torch.randn(50, 2).abs()  # an effect the model lacks
simulated = simulator(prior.sample((2000,)))
for name, batch in [("well specified", well_specified), ("misspecified", misspecified)]:
    test = diagnostics.misspecification_test(batch, simulated)
    print(f"{name:15s} p = {test['p_value']:.3g}  flagged: {test['flagged']}")

# %%
# One observation at a time: a :class:`~innverse.diagnostics.SummaryOutlierDetector` calibrated
# on the summaries of training simulations (kept in the posterior) gives each observation a
# conformal p-value. Attached to the posterior (the command line does this for every run),
# ``sample`` warns when an observation lies outside the simulations.
detector = diagnostics.SummaryOutlierDetector(posterior.reference_summaries, level=0.01)
observations = torch.tensor([[0.3, -0.5], [6.0, -6.0]])
print("p-values:", detector.p_values(posterior.summaries(observations)))
posterior.attach_detector(detector)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    posterior.sample(100, observations)
print([f"{w.category.__name__}: {w.message}" for w in caught])
