"""
Inverse problems with the split-latent INN
==========================================

A known forward process :math:`y = s(x)` loses information: many hidden parameters :math:`x`
explain the same observation :math:`y`. The split-latent INN (Ardizzone et al. 2019) learns the
forward process itself, :math:`x \\mapsto [y, z]`, with a latent :math:`z \\sim N(0, I)` that is
independent of :math:`y` and carries exactly the information the forward process loses. Run
backwards with fresh :math:`z`, it samples the whole posterior:

.. math::

    x = f^{-1}([y^*, z]),\\quad z \\sim N(0, I) \\quad\\Longrightarrow\\quad x \\sim p(x \\mid y^*).

The loss matches :math:`\\hat y` to :math:`s(x)` (least squares), the joint of :math:`(\\hat y, z)`
to :math:`p(y)\\,N(z; 0, I)` and the backward samples to the prior (both by MMD).
"""

# %%
import os

import matplotlib.pyplot as plt
import torch

from innverse.diagnostics import c2st, identifiability, multimodality, pair_plot
from innverse.inverse import SplitLatentINN, train_split_latent
from innverse.tasks import InverseKinematics, abc_reference

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"  # reduced budget of the documentation build
N, EPOCHS = (10_000, 30) if FAST else (100_000, None)

# %%
# The problem: a planar robot arm on a vertical rail, :math:`x` = (rail height, three joint
# angles), :math:`y` = the position of the hand. Four parameters, two observed: for each hand
# position a two-dimensional family of arm configurations, often several separate ones.
task = InverseKinematics()
x, y = task.sample_joint(N, torch.Generator().manual_seed(0))
print(task.parameter_names, x.shape, y.shape)

# %%
# Train. ``training`` takes a :class:`~innverse.train.TrainConfig` or a dict of its options;
# the history records each loss term per epoch.
inn = SplitLatentINN(task.x_dim, task.y_dim)
history = train_split_latent(inn, x.float(), y.float(), training={"epochs": EPOCHS} if EPOCHS else None)
print(f"{history.epochs} epochs;", {k: round(v, 4) for k, v in history.records[-1].items()
                                    if k in ("fit", "latent", "inverse", "reconstruction")})

# %%
# Forward: the network predicts :math:`y` from :math:`x` and sends the rest into :math:`z`,
# which should be standard normal.
x_test, y_test = task.sample_joint(2000, torch.Generator().manual_seed(1))
with torch.no_grad():
    y_hat, z = inn(x_test.float())
print("forward error (RMSE):", (y_hat - y_test).pow(2).mean().sqrt().item())
print("latent mean / std:", z.mean(0), z.std(0))

# %%
# Backward: posterior samples for one hand position, ``sample(n, y)`` as for every conditional
# model of the library, against a rejection-ABC reference (prior draws whose hand lands
# nearest to the target; cached on disk).
y_star = torch.tensor([1.5, 0.3])
samples = inn.sample(2000, y_star, generator=torch.Generator().manual_seed(2))
reference = abc_reference(task, y_star, n_keep=1000, n_simulations=200_000 if FAST else 1_000_000)
ref_samples = reference.samples[:, 0]
print("C2ST against the reference (0.5 = indistinguishable):", c2st(samples[:1000], ref_samples))
fig = pair_plot(samples, reference=ref_samples, labels=task.parameter_names, sample_label="split-latent INN",
          reference_label="rejection ABC")

# %%
# Read the C2ST honestly: a classifier that tells the two sample sets apart with accuracy well
# above 0.5 means the posterior is not yet the reference one. On the reduced budget of the
# documentation build (10 000 pairs, 30 epochs) it is visibly too wide; the comparison with a
# conditional INN and a point regressor at larger budgets is ``benchmarks/inverse_problems.py``.
#
# Which parameters does the observation pin down, and which posteriors have several modes?
print(identifiability(samples, task.sample_prior(10_000), names=task.parameter_names))
print(multimodality(samples))

# %%
# The arms themselves: each sample is an arm configuration whose hand should end at the target.
# (The hand positions of the samples, pushed through the true forward process, show how exact
# the posterior is.)
joints = task.joints(samples[:300].double())  # (300, 4, 2): rail base, two joints, hand
hands = joints[:, -1]
fig, ax = plt.subplots(figsize=(5, 5))
for arm in joints[:60]:
    ax.plot(arm[:, 0], arm[:, 1], "-", color="tab:blue", alpha=0.25)
ax.scatter(hands[:, 0], hands[:, 1], s=4, color="tab:orange", label="hand positions of samples")
ax.plot(*y_star, "kx", ms=12, mew=3, label="target")
ax.set(aspect="equal", title="posterior arm configurations")
ax.legend(loc="lower left")
plt.show()
