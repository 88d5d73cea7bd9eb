"""
Diagnostic plots
================

Every plot of :mod:`innverse.diagnostics` takes plain tensors, so it works with samples from any
estimator. Here they are drawn for a posterior whose answer is known exactly (a Gaussian
posterior), once calibrated and once over-confident.
"""

# %%
import torch

from innverse import diagnostics

gen = torch.Generator().manual_seed(0)
k, draws = 300, 400
truth = torch.randn(k, 2, generator=gen)
x = truth + 0.5 * torch.randn(k, 2, generator=gen)
mean, std = x / 1.25, 0.5 / 1.25**0.5  # the exact posterior of x = theta + 0.5 noise, theta ~ N(0, I)
samples = mean + std * torch.randn(draws, k, 2, generator=gen)
narrow = mean + 0.5 * std * torch.randn(draws, k, 2, generator=gen)
labels = ["theta_1", "theta_2"]

# %%
# The plotting functions return a ``matplotlib.figure.Figure`` (not registered with pyplot, so a
# library call never opens a window): save it with ``fig.savefig(...)`` or the ``save=`` argument.
#
# Pair plot: the posterior for one data set against a reference, with the true parameters.
fig = diagnostics.pair_plot(samples[:, 0], reference=narrow[:, 0], truth=truth[0], labels=labels,
                      sample_label="calibrated", reference_label="over-confident")

# %%
# SBC: ECDF of the ranks minus the uniform CDF, with the simultaneous 95 % band.
fig = diagnostics.sbc_ecdf_plot(diagnostics.sbc_ranks(samples, truth), draws, labels=labels)

# %%
# The same for the over-confident posterior: the ECDF leaves the band.
fig = diagnostics.sbc_ecdf_plot(diagnostics.sbc_ranks(narrow, truth), draws, labels=labels)

# %%
# SBC rank histograms with the pointwise binomial band.
fig = diagnostics.rank_histogram_plot(diagnostics.sbc_ranks(narrow, truth), draws, labels=labels)

# %%
# Coverage of central credible intervals.
fig = diagnostics.coverage_plot({"calibrated": diagnostics.credibility_central(samples, truth),
                           "over-confident": diagnostics.credibility_central(narrow, truth)}, labels=labels)

# %%
# Recovery: posterior means against the truth, and z-scores against contraction.
recovery = diagnostics.recovery(samples, truth)
fig = diagnostics.recovery_plot(truth, samples.mean(0), samples.std(0), labels=labels)

# %%
fig = diagnostics.zscore_contraction_plot(recovery["z_score"], recovery["contraction"], labels=labels)
