"""
Build and train a flow by hand
==============================

A normalizing flow is an invertible module plus a base distribution. This tutorial composes
blocks into an invertible network, checks that it really is invertible, trains it by maximum
likelihood with the library's training loop and compares it with the exact density it learned.

The change of variables behind every flow: for :math:`z = f(x)` with :math:`z \\sim N(0, I)`,

.. math::

    \\log p(x) = \\log N(f(x); 0, I) + \\log\\left|\\det \\frac{\\partial f}{\\partial x}\\right|,

and every block returns its own log-determinant, so the network's is their sum.
"""

# %%
# Setup. ``FAST`` is the reduced budget the documentation build uses in CI; run the script
# without it for the full budget.
import os

import matplotlib.pyplot as plt
import torch

import innverse
from innverse.blocks import ActNorm, RandomPermutation, SplineCoupling
from innverse.diagnostics import check_invertibility, loss_plot
from innverse.nets import mlp_constructor
from innverse.tasks import density
from innverse.train import TensorBatches, TrainConfig, train

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
N, EPOCHS = (4_000, 25) if FAST else (20_000, 80)

# %%
# The target: two moons, a 2-D density whose log-density is known exactly, so the learned
# flow can be compared with the truth.
target = density("two_moons")
gen = torch.Generator().manual_seed(0)
x_train, x_val, x_test = (target.sample(n, gen).float() for n in (N, N // 5, 20_000))
print(x_train.shape)

# %%
# Compose the invertible network
# ------------------------------
# Each block maps ``(B, 2) -> (B, 2)`` and returns ``(y, log_det)``. Spline couplings transform
# one half of the features with a monotone rational-quadratic spline whose knots a small MLP
# computes from the other half; permutations between them let every feature be transformed;
# ActNorm standardises the data with statistics taken from the first batch.
subnet = mlp_constructor(hidden=(64, 64))
blocks = [ActNorm(2)]
for i in range(4):
    blocks += [SplineCoupling(2, subnet, bins=8, bound=4.0), RandomPermutation(2, seed=i)]
transform = innverse.Sequence(*blocks)
flow = innverse.Flow(transform)  # standard normal base distribution
print(flow)

# %%
# It is invertible, exactly: the inverse runs the blocks backwards and returns the
# log-determinant of the inverse map, the negative of the forward one.
x = x_train[:5]
z, log_det = transform(x)
x_back, log_det_inv = transform.inverse(z)
print("round-trip error:", (x_back - x).abs().max().item())
print("log-dets cancel:", (log_det + log_det_inv).abs().max().item())

# %%
# The log-determinant is the exact one, as the autograd Jacobian of the whole network shows
# (float64, one point):
point = x[:1].double()
transform64 = transform.double()
jacobian = torch.autograd.functional.jacobian(lambda v: transform64(v[None])[0][0], point[0])
print(torch.linalg.slogdet(jacobian).logabsdet.item(), transform64(point)[1].item())
transform.float()

# %%
# Train by maximum likelihood
# ---------------------------
# There is one training loop, :func:`innverse.train.train`: it takes the model, a loss
# ``loss_fn(batch, step) -> scalar`` and batch sources, and handles the optimiser, the learning
# rate schedule, validation, early stopping, an exponential moving average of the weights and
# non-finite steps. ``step.log`` records extra terms next to the loss.


def nll(batch, step):
    loss = -flow.log_prob(batch[0]).mean()
    step.log(bits_per_dim=loss / (2 * torch.log(torch.tensor(2.0))))
    return loss


history = train(flow, nll, TensorBatches(x_train, batch_size=256),
                TensorBatches(x_val, batch_size=1024, shuffle=False),
                TrainConfig(epochs=EPOCHS, lr=2e-3, seed=0), progress=False)
print(f"{history.epochs} epochs in {history.seconds:.0f} s, best epoch {history.best_epoch}, "
      f"validation NLL {history.best_val_loss:.3f}")
fig = loss_plot(history.records)  # the per-epoch records: train_loss, val_loss, bits_per_dim, lr

# %%
# How good is it? The test negative log-likelihood can never fall below the true differential
# entropy of the target; the gap is the Kullback-Leibler divergence from the target to the flow.
flow.eval()
with torch.no_grad():
    test_nll = -flow.log_prob(x_test).mean().item()
entropy, standard_error = target.entropy()
print(f"test NLL {test_nll:.3f} nats, entropy {entropy:.3f} ± {standard_error:.3f}, "
      f"KL ≈ {test_nll - entropy:.3f}")

# %%
# The learned density next to the true one, and samples from the flow.
grid_x, grid_y = torch.linspace(-1.5, 2.5, 200), torch.linspace(-1.2, 1.8, 160)
xx, yy = torch.meshgrid(grid_x, grid_y, indexing="xy")
grid = torch.stack([xx.flatten(), yy.flatten()], 1)
with torch.no_grad():
    learned = flow.log_prob(grid).exp().reshape(xx.shape)
    samples = flow.sample(2000, generator=torch.Generator().manual_seed(1))
true = target.log_prob(grid.double()).exp().reshape(xx.shape)
extent = [-1.5, 2.5, -1.2, 1.8]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
for ax, image, title in [(axes[0], true, "true density"), (axes[1], learned, "flow density")]:
    ax.imshow(image.numpy(), origin="lower", extent=extent, cmap="magma", vmin=0, vmax=float(true.max()))
    ax.set_title(title)
axes[2].scatter(*samples.T, s=2, alpha=0.4)
axes[2].set(xlim=extent[:2], ylim=extent[2:], title="flow samples", aspect="equal")
plt.show()

# %%
# Check invertibility where it matters
# ------------------------------------
# A trained flow can become numerically hard to invert far from the data. The check measures
# round trips on the data and on base samples at larger radii, and local Lipschitz constants of
# both directions, block by block.
report = check_invertibility(flow, x_test[:256], warn=False)
print(report.summary())

# %%
# Conditional flows
# -----------------
# The same blocks take a condition ``c`` (``context_shape``), and a conditional flow follows the
# library's conditional-density contract: ``sample(n, c)`` gives ``(n, D)`` for one condition and
# ``(n, k, D)`` for ``k`` conditions; ``log_prob(x, c)`` broadcasts like ``torch.distributions``.
# :func:`innverse.flows.coupling_flow` builds the usual stack in one line.
conditional = innverse.flows.coupling_flow(2, context_features=3, blocks=4, hidden=(32, 32),
                                           coupling="spline")
c = torch.randn(5, 3)
print(conditional.sample(100, c[0]).shape, conditional.sample(100, c).shape)
print(conditional.log_prob(torch.randn(7, 5, 2), c).shape)
