"""
Residual flows and memory-saving training
=========================================

Two ways to build deep invertible networks beyond couplings.

**Residual flows** (i-ResNet, Residual Flows): a block :math:`y = x + g(x)` is invertible when
the residual branch is a contraction, :math:`\\mathrm{Lip}(g) < 1`, which spectral normalisation of
every layer guarantees. The inverse is the fixed point of :math:`x \\leftarrow y - g(x)`, and

.. math::

    \\log|\\det(I + J_g)| = \\sum_{k \\ge 1} \\frac{(-1)^{k+1}}{k} \\operatorname{tr}(J_g^k),

estimated without bias during training (Russian roulette over the series, Hutchinson traces).

**Memory-saving backpropagation**: a network whose blocks have exact inverses does not need to
keep its activations for the backward pass; they are recomputed from the outputs, so memory
stays flat however deep the network.
"""

# %%
import os

import matplotlib.pyplot as plt
import torch

import innverse
from innverse.blocks import lipschitz_bounds
from innverse.flows import coupling_flow, residual_flow
from innverse.reversible import Reversible
from innverse.tasks import density
from innverse.train import TensorBatches, TrainConfig, train

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"  # reduced budget of the documentation build
N, EPOCHS = (4_000, 15) if FAST else (20_000, 100)

# %%
# A residual flow on a 2-D density
# --------------------------------
target = density("rings")
gen = torch.Generator().manual_seed(0)
x_train, x_val = target.sample(N, gen).float(), target.sample(N // 5, gen).float()
flow = residual_flow(2, blocks=6, hidden=(64, 64), coeff=0.97)
history = train(flow, lambda batch, step: -flow.log_prob(batch[0]).mean(),
                TensorBatches(x_train, batch_size=256), TensorBatches(x_val, batch_size=1024, shuffle=False),
                TrainConfig(epochs=EPOCHS, lr=2e-3, seed=0), progress=False)
entropy, _ = target.entropy()
print(f"{history.epochs} epochs, validation NLL {history.best_val_loss:.3f} (true entropy {entropy:.3f})")

# %%
# Compare the validation NLL with the entropy: the gap is what the flow has not learned. (At the
# time of writing this small residual flow barely moves from its ActNorm-Gaussian start on
# this density within the reduced budget; coupling flows, tutorial 1, learn such densities in
# seconds. ``benchmarks/residual_density.py`` measures residual flows at realistic budgets.)
#
# In evaluation mode the log-determinant of these 2-D blocks is exact (the estimator is only
# used in training). Every block's Lipschitz constant stays below one, so the inverse converges:
flow.eval()
bounds = lipschitz_bounds(flow)
print("largest Lipschitz bound of a residual branch:", max(bounds.values()), f"({len(bounds)} blocks)")
with torch.no_grad():
    z, _ = flow.transform(x_val[:500])
    x_back, _ = flow.transform.inverse(z)
print("fixed-point inversion error:", (x_back - x_val[:500]).abs().max().item())

# %%
# Samples invert the blocks by fixed-point iteration.
with torch.no_grad():
    samples = flow.sample(3000, generator=torch.Generator().manual_seed(1))
fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), constrained_layout=True)
axes[0].scatter(*x_val[:3000].T, s=1, alpha=0.4)
axes[0].set(title="data", aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
axes[1].scatter(*samples.T, s=1, alpha=0.4, color="tab:orange")
axes[1].set(title="residual flow samples", aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
plt.show()

# %%
# Memory-saving training with ``Reversible``
# ------------------------------------------
# :class:`~innverse.reversible.Reversible` wraps a sequence of blocks with exact inverses
# (couplings, permutations, ActNorm, ...). It computes the same map, log-determinant and
# gradients, but keeps no intermediate activations. Measured here by what autograd stores
# for the backward pass (every tensor it saves, in bytes), for increasing depth:


def saved_bytes(module, x):
    """Bytes autograd keeps from the forward pass until the backward pass."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        z, log_det = module(x)
    return total, z, log_det


x = torch.randn(512, 64)
print(f"{'blocks':>6} {'plain (MiB)':>12} {'reversible (MiB)':>17}")
for depth in (4, 8, 16) if FAST else (4, 8, 16, 32, 64):
    transform = coupling_flow(64, blocks=depth, hidden=(128, 128), seed=0).transform
    plain, _, _ = saved_bytes(transform, x)
    saving, _, _ = saved_bytes(Reversible(transform), x)
    print(f"{depth:6d} {plain / 2**20:12.1f} {saving / 2**20:17.1f}")

# %%
# The gradients are those of ordinary backpropagation, up to round-off (the weights are
# perturbed first: at initialisation every coupling is the identity, and the check would be
# trivially exact).
transform = coupling_flow(64, blocks=8, hidden=(128, 128), seed=0).transform
noise = torch.Generator().manual_seed(0)
with torch.no_grad():
    for parameter in transform.parameters():
        parameter.add_(0.02 * torch.randn(parameter.shape, generator=noise))
wrapped = Reversible(transform)
grads = []
for module in (transform, wrapped):
    transform.zero_grad()
    z, log_det = module(x)
    (0.5 * z.pow(2).sum(1) - log_det).mean().backward()
    grads.append(torch.cat([p.grad.flatten() for p in transform.parameters()]))
print("largest relative gradient difference:",
      ((grads[0] - grads[1]).abs().max() / grads[0].abs().max()).item())

# %%
# A reversible network is an invertible module like any other: a :class:`~innverse.Flow` over it
# trains through the same loop.
deep = innverse.Flow(Reversible(coupling_flow(2, blocks=16, hidden=(32, 32), seed=0).transform))
print(deep.log_prob(x_val[:4]))
