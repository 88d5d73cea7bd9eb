"""
Amortized inference from your own simulator
===========================================

You have a simulator: parameters in, data out. Amortized inference trains a conditional INN once
on simulated pairs :math:`(\\theta_i, x_i)`, and then gives the posterior :math:`p(\\theta \\mid x)`
for any observation in milliseconds. Training minimises the expected negative log posterior
density over the simulations,

.. math::

    \\mathcal{L} = -\\frac{1}{N} \\sum_i \\log q(\\theta_i \\mid x_i),

whose minimiser is the true posterior for every :math:`x` the simulator can produce. This tutorial
does it from Python first, then with the ``innverse`` command line on the same simulator.
"""

# %%
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import innverse
from innverse.amortized import fit_posterior, simulate
from innverse.diagnostics import pair_plot

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"  # reduced budget of the documentation build
N, EPOCHS = (3_000, 30) if FAST else (20_000, None)  # None: the budget-aware default

# %%
# The simulator and the prior
# ---------------------------
# A simulator is any batched callable ``theta (n, d) -> x (n, ...)``, torch or numpy. Here:
# noisy exponential decay curves with an amplitude and a time constant. The prior is a
# ``torch.distributions`` distribution; bounded priors are handled by a bijection inside the
# posterior, so no posterior sample ever leaves the prior's support.
prior = torch.distributions.Independent(
    torch.distributions.Uniform(torch.tensor([0.0, 0.1]), torch.tensor([5.0, 2.0])), 1)
times = torch.linspace(0, 1, 20)


def decay(theta, generator=None):
    noise = 0.05 * torch.randn(len(theta), 20, generator=generator)
    return theta[:, :1] * torch.exp(-times / theta[:, 1:]) + noise


# %%
# Simulate. Failed simulations (exceptions, NaN or Inf output) are counted in the report and
# dropped, never silently kept.
theta, x, sim_report = simulate(decay, prior=prior, n=N, seed=0, progress=False)
print(theta.shape, x.shape, sim_report.to_dict())

# %%
# Train the posterior
# -------------------
# :func:`~innverse.amortized.fit_posterior` standardises parameters and data, builds the
# conditional INN (a summary network first when the data are sets or series), trains it through
# the library's training loop with early stopping, and returns a
# :class:`~innverse.amortized.Posterior`. Every default can be overridden with a
# :class:`~innverse.train.TrainConfig` or a dict of its options.
training = {"epochs": EPOCHS} if EPOCHS else None
posterior = fit_posterior(theta, x, prior=prior, training=training, seed=0, progress=False)

# %%
# What the fit did is a typed report (saved with the model): the training options after the
# budget-aware defaults were resolved, the history, the candidate flows compared.
report = posterior.report
print(report.training)
print(f"{report.history.epochs} epochs, best {report.history.best_epoch}, "
      f"validation loss {report.history.best_val_loss:.3f} (prior-only baseline {report.baseline_val_loss:.3f})")

# %%
# The posterior for one observation
# ---------------------------------
# ``sample(n, x)`` follows the conditional-density contract: ``(n, D)`` for one observation.
theta_true = torch.tensor([2.0, 0.4])
x_obs = decay(theta_true[None], torch.Generator().manual_seed(7))[0]
samples = posterior.sample(2000, x_obs, seed=0)
print(samples.shape, samples.mean(0), samples.std(0))
fig = pair_plot(samples, truth=theta_true, labels=["amplitude", "time constant"])

# %%
# Many observations at once: ``(n, k, D)`` for ``k`` observations, and ``log_prob`` broadcasts
# the parameters over them like ``torch.distributions``.
many = posterior.sample(500, x[:100], seed=0)
log_q = posterior.log_prob(many, x[:100])
print(many.shape, log_q.shape)

# %%
# The posterior predictive: simulate from posterior draws and compare with the observation.
predictive = decay(samples[:200])
plt.plot(times, predictive.T, color="tab:blue", alpha=0.05)
plt.plot(times, x_obs, "k.", label="observation")
plt.xlabel("time")
plt.legend()
plt.show()

# %%
# Model files are safetensors weights with a versioned JSON description, checked with SHA-256
# on load and never unpickled.
workdir = Path(tempfile.mkdtemp(prefix="innverse-tutorial-"))
innverse.save(posterior, workdir / "decay.safetensors")
again = innverse.load(workdir / "decay.safetensors")
print(torch.allclose(again.log_prob(samples[:10], x_obs), posterior.log_prob(samples[:10], x_obs)))

# %%
# The same from the command line
# ------------------------------
# Put the simulator and the prior in a Python file; the ``innverse`` command runs the whole
# workflow from it. (Here each command runs in a scratch folder; the output is what you would
# see in a terminal.)
(workdir / "mysim.py").write_text('''\
import torch
prior = torch.distributions.Independent(
    torch.distributions.Uniform(torch.tensor([0.0, 0.1]), torch.tensor([5.0, 2.0])), 1)

def simulate(theta):                                 # (n, 2) -> (n, 20): noisy decay curves
    t = torch.linspace(0, 1, 20)
    return theta[:, :1] * torch.exp(-t / theta[:, 1:]) + 0.05 * torch.randn(len(theta), 20)
''')
np.save(workdir / "measured.npy", x_obs.numpy())
innverse_command = Path(sys.executable).with_name("innverse")


def sh(command):
    """Run one ``innverse ...`` command in the scratch folder and show its output."""
    print(f"$ {command}")
    done = subprocess.run([str(innverse_command), *shlex.split(command)[1:]], cwd=workdir,
                          capture_output=True, text=True, check=False)
    print((done.stdout + done.stderr).strip())
    if done.returncode:
        raise RuntimeError(f"{command!r} exited with {done.returncode}")


sh(f"innverse simulate --simulator mysim:simulate --prior mysim:prior -n {N} --out sims.h5 --quiet")

# %%
# The fit is described by a TOML file; ``innverse fit --example-config`` prints a commented one.
epochs_line = f"epochs = {EPOCHS}\n" if EPOCHS else ""
(workdir / "config.toml").write_text(f'''\
[simulator]
function = "mysim:simulate"
prior = "mysim:prior"
parameter_names = ["amplitude", "time_constant"]

[simulations]
store = "sims.h5"
count = {N}                       # as many as the store holds

[training]
{epochs_line}
[diagnostics]
simulations = {100 if FAST else 200}
''')
sh("innverse fit config.toml --run runs/decay --quiet")
sh("innverse sample runs/decay --obs measured.npy --quiet")
sh(f"innverse check runs/decay --trust-run-code --samples {200 if FAST else 500} --quiet")
sh("innverse report runs/decay --quiet")

# %%
# The run folder holds everything: the model, the samples, the diagnostics and one offline
# HTML page (``report.html``, see the :doc:`gallery <../auto_gallery/index>`).
print(sorted(p.relative_to(workdir / "runs/decay").as_posix() for p in (workdir / "runs/decay").rglob("*")
             if p.is_file()))
cli_samples = np.load(workdir / "runs/decay/samples/measured.npz")["samples"]
print(cli_samples.shape, cli_samples.reshape(-1, 2).mean(0))
