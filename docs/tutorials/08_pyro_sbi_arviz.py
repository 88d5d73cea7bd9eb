"""
Interop: ArviZ, sbi and Pyro
============================

:mod:`innverse.interop` connects innverse to the libraries the field already uses, in both
directions, without making any of them a dependency of ``import innverse`` (``pip install
innverse[interop]`` installs them):

* ArviZ: :func:`~innverse.interop.to_inference_data` turns posterior draws into an
  ``InferenceData`` for ArviZ's summaries and plots;
* sbi: :func:`~innverse.interop.to_sbi` gives an innverse posterior sbi's interface (for sbi's
  ``run_sbc``, ``run_tarp``), :func:`~innverse.interop.from_sbi` gives an sbi posterior
  innverse's (for :func:`innverse.diagnostics.check`);
* Pyro: :func:`~innverse.interop.pyro_flow` makes a conditional flow a Pyro distribution that
  broadcasts under plates, e.g. an amortized variational guide.

All three use one conjugate model whose posterior is known exactly:
:math:`\\theta \\sim N(0, I_2)`, :math:`x \\mid \\theta \\sim N(\\theta, 0.5^2 I_2)`, so
:math:`\\theta \\mid x \\sim N(0.8\\,x,\\ 0.2\\, I_2)`.
"""

# %%
# Setup: the model, and an innverse posterior trained on 2000 simulations.
import os
import warnings

import arviz as az
import matplotlib.pyplot as plt
import torch

from innverse.amortized import fit_posterior, gaussian
from innverse.flows import coupling_flow
from innverse.interop import from_sbi, pyro_flow, to_inference_data, to_sbi

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
EPOCHS, STEPS = (30, 250) if FAST else (60, 600)
NOISE, SHRINK = 0.5, 0.8
torch.manual_seed(0)
prior = gaussian(0.0, 1.0, dim=2)


def simulator(theta):
    return theta + NOISE * torch.randn_like(theta)


theta = prior.sample((2000,))
x = simulator(theta)
posterior = fit_posterior(theta, x, prior=prior, flow={"blocks": 2, "hidden": [32]},
                          training={"epochs": EPOCHS}, progress=False)
x_obs = torch.tensor([1.0, -0.5])
print("exact posterior mean", (SHRINK * x_obs).tolist(), "sd", round((SHRINK * NOISE**2) ** 0.5, 3))

# %%
# ArviZ
# -----
# The draws go into chains (they are independent, so ``r_hat`` is 1 by construction: what to check
# instead is calibration, see the diagnostics tutorial); ``log_q`` and the prior draws come along.
idata = to_inference_data(posterior, x_obs, n=2000, parameter_names=["a", "b"])
print(idata)
print(az.summary(idata, kind="stats"))
axes = az.plot_posterior(idata, var_names=["theta"], figsize=(8, 3))
plt.show()

# %%
# sbi's calibration tools on an innverse posterior
# ------------------------------------------------
# :func:`~innverse.interop.to_sbi` answers sbi's ``sample`` / ``log_prob`` / ``sample_batched``
# with sbi's shapes, so sbi's simulation-based calibration runs on it as on its own posteriors.
from sbi.diagnostics import run_sbc  # noqa: E402

test_theta = prior.sample((200,))
ranks, _ = run_sbc(test_theta, simulator(test_theta), to_sbi(posterior), num_posterior_samples=100,
                   show_progress_bar=False)
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
for d, ax in enumerate(axes):
    ax.hist(ranks[:, d].numpy(), bins=10, range=(0, 100))
    ax.axhline(len(test_theta) / 10, color="k", ls="--")
    ax.set(title=f"SBC ranks, parameter {d} (sbi's run_sbc)", xlabel="rank")
plt.show()

# %%
# innverse's checks on an sbi posterior
# -------------------------------------
# The other direction: an sbi NPE posterior (here a mixture density network) wrapped by
# :func:`~innverse.interop.from_sbi` follows innverse's conditional-density contract, so
# :func:`innverse.diagnostics.check` runs its full battery on it.
from sbi.inference import NPE  # noqa: E402

from innverse import diagnostics  # noqa: E402

inference = NPE(prior=prior, density_estimator="mdn", show_progress_bars=False)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*not yet fully converged", category=UserWarning)
    inference.append_simulations(theta, x).train(max_num_epochs=20, training_batch_size=100,
                                                 show_train_summary=False)
sbi_posterior = from_sbi(inference.build_posterior(), sample_kwargs={"max_sampling_batch_size": 1000},
                         log_prob_kwargs={"norm_posterior": False})
print(sbi_posterior.sample(4, x_obs).shape, sbi_posterior.sample(4, x[:3]).shape)
result = diagnostics.check(sbi_posterior, prior, simulator, n=100, samples=200, seed=0)
print(result.summary())

# %%
# Pyro: an innverse flow as an amortized guide
# --------------------------------------------
# A conditional flow :math:`q(\\theta_i \\mid x_i)` as the guide of 32 data points under a plate,
# trained by Pyro's SVI with vectorised particles: ``pyro_flow(flow, x)`` has batch shape ``(32,)``
# and its draws broadcast as ``(particles, 32, 2)``.
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
from pyro.infer import SVI, Trace_ELBO  # noqa: E402
from pyro.optim import Adam  # noqa: E402

pyro.set_rng_seed(1)
pyro.clear_param_store()
data = 1.5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
guide_flow = coupling_flow(2, 2, blocks=2, hidden=(32,))


def model(data):
    with pyro.plate("data", data.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, NOISE).to_event(1), obs=data)


def guide(data):
    pyro.module("flow", guide_flow)
    with pyro.plate("data", data.shape[0]):
        pyro.sample("z", pyro_flow(guide_flow, data))


svi = SVI(model, guide, Adam({"lr": 1e-2}), Trace_ELBO(num_particles=8, vectorize_particles=True,
                                                        max_plate_nesting=1))
losses = [svi.step(data) for _ in range(STEPS)]
with torch.no_grad():
    error = (guide_flow.sample(4000, data).mean(0) - SHRINK * data).abs().max()
print(f"ELBO loss {losses[0]:.1f} -> {sum(losses[-50:]) / 50:.1f}; "
      f"largest error of a posterior mean over the 32 points: {float(error):.3f}")
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot(losses)
ax.set(xlabel="SVI step", ylabel="-ELBO", yscale="symlog")
plt.show()
