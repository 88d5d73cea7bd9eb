"""
Sets and time series with summary networks
==========================================

When one observation is a set of exchangeable measurements or a time series of varying length,
the posterior should not depend on the order of the set's elements, and it should sharpen as
more data arrive. A *summary network* :math:`h` compresses each observation into a fixed-size
vector that conditions the INN, and both are trained together on the same loss,

.. math::

    \\mathcal{L} = -\\frac{1}{N} \\sum_i \\log q\\big(\\theta_i \\mid h(x_i)\\big).

Observations of different sizes are padded with NaN rows to a common shape: a row that is all
NaN is padding, and the summary networks mask it out.
"""

# %%
import os

import matplotlib.pyplot as plt
import torch

from innverse.amortized import box_uniform, fit_posterior, simulate
from innverse.diagnostics import pair_plot

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"  # reduced budget of the documentation build
N = 3_000 if FAST else 20_000
TRAINING = {"epochs": 60} if FAST else None  # None: the budget-aware defaults
MAX_SIZE = 40

# %%
# Sets: a DeepSet summary
# -----------------------
# Each data set is between 5 and 40 draws from :math:`N(\mu, \sigma^2)`, parameters
# :math:`\theta = (\mu, \log\sigma)`. The simulator pads every set to 40 rows with NaN.
prior = box_uniform([-2.0, -1.5], [2.0, 0.5])


def gaussian_sets(theta, generator=None):
    n = len(theta)
    sizes = torch.randint(5, MAX_SIZE + 1, (n,), generator=generator)
    draws = theta[:, :1, None] + theta[:, 1:, None].exp() * torch.randn(n, MAX_SIZE, 1, generator=generator)
    padding = torch.arange(MAX_SIZE)[None, :] >= sizes[:, None]
    return draws.masked_fill(padding[..., None], float("nan"))


theta, x, _ = simulate(gaussian_sets, prior=prior, n=N, seed=0, progress=False)
print(x.shape, "padding rows:", int(x[..., 0].isnan().sum()))

# %%
# ``summary="deepset"`` (also what ``"auto"`` picks for data of shape ``(N, F)``): a
# permutation-invariant network :math:`h(x) = \rho\big(\frac{1}{n}\sum_j \phi(x_j), \log n\big)`.
set_posterior = fit_posterior(theta, x, prior=prior, summary="deepset", training=TRAINING, seed=0,
                              progress=False)
print(set_posterior.report.history.epochs, "epochs")

# %%
# The posterior contracts as the set grows: the same truth, 5 and then 40 draws.
truth = torch.tensor([0.5, -0.7])
full_set = truth[0] + truth[1].exp() * torch.randn(MAX_SIZE, 1, generator=torch.Generator().manual_seed(3))
small = torch.cat([full_set[:5], torch.full((MAX_SIZE - 5, 1), float("nan"))])
samples_small = set_posterior.sample(2000, small, seed=0)
samples_large = set_posterior.sample(2000, full_set, seed=0)
print("posterior std with 5 draws:", samples_small.std(0), " with 40 draws:", samples_large.std(0))
fig = pair_plot(samples_large, reference=samples_small, truth=truth, labels=["mu", "log sigma"],
          sample_label="40 draws", reference_label="5 draws")

# %%
# Permutation invariance, checked: shuffling the rows of an observation leaves the posterior
# density unchanged.
shuffled = full_set[torch.randperm(MAX_SIZE, generator=torch.Generator().manual_seed(0))]
points = samples_large[:5]
print(torch.allclose(set_posterior.log_prob(points, full_set), set_posterior.log_prob(points, shuffled),
                     atol=1e-4))

# %%
# Time series: a recurrent summary
# --------------------------------
# An autoregressive process :math:`y_t = a\, y_{t-1} + \sigma \varepsilon_t` observed for 20 to
# 60 steps, parameters :math:`(a, \log\sigma)`; shape ``(T, channels) = (60, 1)``, NaN after the
# end of each series.
series_prior = box_uniform([-0.95, -2.0], [0.95, 0.0])
LENGTH = 60


def ar1(theta, generator=None):
    n = len(theta)
    noise = torch.randn(n, LENGTH, generator=generator) * theta[:, 1:].exp()
    y = torch.zeros(n, LENGTH)
    for t in range(1, LENGTH):
        y[:, t] = theta[:, 0] * y[:, t - 1] + noise[:, t]
    lengths = torch.randint(20, LENGTH + 1, (n,), generator=generator)
    y = y.masked_fill(torch.arange(LENGTH)[None, :] >= lengths[:, None], float("nan"))
    return y[..., None]


theta_ts, x_ts, _ = simulate(ar1, prior=series_prior, n=N, seed=1, progress=False)
series_posterior = fit_posterior(theta_ts, x_ts, prior=series_prior, summary="time_series",
                                 training=TRAINING, seed=0, progress=False)

# %%
# One observed series and its posterior; the points are posterior draws, the cross the truth.
truth_ts = torch.tensor([0.7, -1.0])
observed = ar1(truth_ts.expand(1, 2), torch.Generator().manual_seed(5))[0]
draws = series_posterior.sample(2000, observed, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
axes[0].plot(observed[:, 0], ".-")
axes[0].set(title=f"observed series ({int(observed.isfinite().sum())} steps)", xlabel="t")
axes[1].scatter(draws[:, 0], draws[:, 1], s=2, alpha=0.3)
axes[1].plot(*truth_ts, "rx", ms=12, mew=3)
axes[1].set(xlabel="a", ylabel="log sigma", title="posterior draws")
plt.show()
