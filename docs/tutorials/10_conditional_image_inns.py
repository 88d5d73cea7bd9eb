"""
Conditional image INNs: class-conditional digits and diverse inpainting
=======================================================================

A conditional image INN (cINN) models a whole distribution of images given a condition
:math:`c`: a class label, a low-resolution image, a face with a hole. A conditioning network
:math:`h` summarises the condition once, and a multi-scale invertible network
:math:`z = f(x; h(c))` maps images to Gaussian latents, so that

.. math::

    \\log p(x \\mid c) = \\log N\\big(f(x; h(c)); 0, I\\big)
        + \\log\\left|\\det \\frac{\\partial f(x; h(c))}{\\partial x}\\right|, \\qquad
    x = f^{-1}(T z; h(c)),\\ z \\sim N(0, I),

trained by maximum likelihood and sampled at a temperature :math:`T` (:math:`T < 1` trades
diversity for typicality). :func:`innverse.flows.image_flow` builds the flow (Haar downsampling,
ActNorm, invertible 1x1 convolutions, latents split off per level) and feeds every level a
feature map of its resolution from the conditioning network
(:class:`innverse.flows.ConditionMLP` for vectors, :class:`innverse.flows.ConditionCNN` for
images). For images with :math:`K` discrete grey levels, the likelihood is reported in bits per
dimension, an upper bound on the code length computed with uniform dequantisation
(:class:`innverse.imaging.UniformDequantization`),

.. math::

    \\mathrm{bpd}(v) = -\\frac{\\mathbb E_{u \\sim U[0,1)^D}\\big[\\log p\\big((v + u)/K\\big)\\big] - D \\log K}{D \\ln 2}.

This tutorial trains a class-conditional flow on the 8x8 digits (samples per class, style
transfer) and a cINN that fills holes in faces with many different plausible completions.
"""

# %%
# Setup. ``FAST`` is the reduced budget the documentation build uses in CI.
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from innverse.flows import ConditionCNN, image_flow
from innverse.imaging import (
    BitsPerDimLoss,
    UniformDequantization,
    best_of_k,
    bits_per_dim,
    image_grid,
    sample_images,
    transfer_style,
    variance_map,
)
from innverse.nets import conv_constructor, mlp_constructor
from innverse.tasks.images import DigitClasses, FaceInpainting
from innverse.train import TensorBatches, TrainConfig, train

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
DIGIT_EPOCHS, FACE_EPOCHS = (15, 80) if FAST else (60, 200)
torch.manual_seed(0)


def show_grid(images, title, scale=1):
    """Images ``(rows, columns, 1, H, W)`` with values in [0, 1] as one picture."""
    _, ax = plt.subplots(figsize=(0.55 * images.shape[1] * scale, 0.55 * images.shape[0] * scale))
    ax.imshow(image_grid(images), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    plt.show()


# %%
# Class-conditional digits
# ------------------------
# :class:`~innverse.tasks.images.DigitClasses`: the 8x8 digits with their 17 integer grey levels
# and the class as a one-hot condition, in fixed train / validation / test splits. The
# dequantiser adds uniform noise to the integer pixels and maps them through a logit, so the flow
# models an unbounded variable; :class:`~innverse.imaging.BitsPerDimLoss` holds flow and
# dequantiser and trains through the library's one loop.
digits = DigitClasses()
x, c = digits.pairs("train")
x_val, c_val = digits.pairs("val")
x_test, c_test = digits.pairs("test")
dequantize = UniformDequantization(digits.image_shape, levels=digits.levels, alpha=0.05)
flow = image_flow(digits.image_shape, levels=2, blocks_per_level=4, condition_shape=(10,),
                  subnet=conv_constructor((48, 48)), dense_blocks=2, dense_subnet=mlp_constructor((128,)), seed=0)
loss = BitsPerDimLoss(flow, dequantize)
history = train(loss, loss, TensorBatches(x, c, batch_size=64), TensorBatches(x_val, c_val, batch_size=200, shuffle=False),
                TrainConfig(epochs=DIGIT_EPOCHS, lr=2e-3, clip_grad=10.0, patience=None, seed=0), progress=False)
flow.eval()
print(f"{sum(p.numel() for p in flow.parameters()) / 1e3:.0f}k parameters, {history.epochs} epochs in "
      f"{history.seconds:.0f} s")

# %%
# Held-out bits per dimension (8 dequantisation draws per test image). For scale: uniform pixels
# cost :math:`\log_2 17 \approx 4.09` bits.
bpd = bits_per_dim(flow, x_test, dequantize, c_test, draws=8, generator=torch.Generator().manual_seed(1))
print(f"test: {bpd}")

# %%
# Samples, one row per class, at temperature 1 and 0.7. ``sample_images`` draws ``n`` images for
# each of the 10 conditions, ``(n, 10, 1, 8, 8)``, in the flow's space; the dequantiser's
# ``to_unit`` maps them back to pixel values in ``[0, 1]``.
labels = torch.eye(10)
for temperature in (1.0, 0.7):
    s = sample_images(flow, 10, labels, temperature=temperature, generator=torch.Generator().manual_seed(2))
    images = dequantize.to_unit(s.reshape(-1, *digits.image_shape)).reshape(s.shape)   # to_unit takes (B, C, H, W)
    show_grid(images.transpose(0, 1), f"samples per class, temperature {temperature}")

# %%
# Style transfer: encode a test digit under its own class, decode the same latent under every
# other class, :math:`x' = f^{-1}(f(x; h(c_1)); h(c_2))`. What the class does not explain (slant,
# stroke width, position) is in the latent and carries over.
s_in = dequantize(x_test[:8], torch.Generator().manual_seed(3))[0]
with torch.no_grad():
    moved = [transfer_style(flow, s_in, c_test[:8], labels[k].expand(8, 10)) for k in range(10)]
columns = [dequantize.to_unit(s_in)] + [dequantize.to_unit(m) for m in moved]
show_grid(torch.stack(columns, 1), "test digit, then decoded as 0, 1, ..., 9")

# %%
# Diverse face inpainting
# -----------------------
# :class:`~innverse.tasks.images.FaceInpainting`: scikit-image's bundled LFW faces (24x24; 70
# training faces and their mirror images, 10 validation, 20 test), each with a random rectangular
# hole. The condition is :math:`c = [m \odot (x + \sigma\varepsilon),\ m]` with the mask :math:`m`
# and observation noise :math:`\sigma = 0.05`; a fresh hole and noise are drawn for every training
# batch. The conditioning CNN passes each level the condition itself, squeezed to the level's
# resolution (``skip=True``), next to its learned features.
faces = FaceInpainting(size=24, noise_std=0.05)
net = ConditionCNN(faces.condition_shape, faces.image_shape, levels=2, width=16, skip=True)
cinn = image_flow(faces.image_shape, net, levels=2, blocks_per_level=3, subnet=conv_constructor((16, 16)),
                  dense_blocks=0, seed=0)
pixels = math.prod(faces.image_shape)
history = train(cinn, lambda batch, step: -cinn.log_prob(batch[0], batch[1]).mean() / pixels,  # nats per pixel
                faces.batches("train", 16), faces.batches("val", 32),
                TrainConfig(epochs=FACE_EPOCHS, lr=1e-2, patience=None, seed=0), progress=False)
cinn.eval()
print(f"{history.epochs} epochs in {history.seconds:.0f} s, best validation NLL {history.best_val_loss:.3f} "
      f"nats per pixel")

# %%
# Eight completions of each test face. Three checks: a sample consistent with the observation
# re-degrades to it within the noise level (RMS about :math:`\sigma` on the observed pixels); the
# samples should differ inside the hole and agree outside (per-pixel variance,
# :func:`~innverse.imaging.variance_map`); and the best of the 8 is closer to the true face than a
# single sample (:func:`~innverse.imaging.best_of_k`). A classical biharmonic fill
# (scikit-image) gives the scale of the errors.
truth, condition = faces.pairs("test", torch.Generator().manual_seed(0))
samples = sample_images(cinn, 8, condition, generator=torch.Generator().manual_seed(1))  # (8, 20, 1, 24, 24)
redegradation = torch.stack([faces.redegradation_rms(s, condition) for s in samples]).mean()
variance, hole = variance_map(samples), faces.removed(condition)
best = best_of_k(samples, truth)
one = (samples[0] - truth).square().mean((1, 2, 3)).sqrt().mean()
filled = np.stack([inpaint_biharmonic(ci[0].numpy(), (ci[1] < 0.5).numpy()) for ci in condition])
biharmonic = (torch.from_numpy(filled).float()[:, None] - truth).square().mean((1, 2, 3)).sqrt().mean()
print(f"re-degradation RMS {redegradation:.3f} (noise level {faces.noise_std})")
print(f"sample variance inside the holes {variance[hole].mean():.4f}, outside {variance[~hole].mean():.4f}")
print(f"RMS error to the true face: best of 8 {best.rms.mean():.3f}, one sample {one:.3f}, "
      f"biharmonic fill {biharmonic:.3f}")

# %%
# Rows are test faces; columns the observed face (hole in black), the truth, four completions, the
# mean of the 8 and the variance map (white: high).
columns = [condition[:6, :1], truth[:6], *samples[:4, :6], samples[:, :6].mean(0),
           (variance[:6] / variance[:6].amax((1, 2), keepdim=True))[:, None]]
show_grid(torch.stack(columns, 1).clamp(0, 1), "observed | truth | 4 samples | mean | variance", scale=1.3)

# %%
# The variance concentrates in the holes: the network has learned where the observation leaves it
# free. The errors above come from the small budget of this page and 20 test faces; a single
# completion is a *sample*, not a best guess, so its error to the truth is typically larger than that
# of a smooth fill, and what the cINN adds is the spread of plausible completions.
# ``benchmarks/image_restoration.py`` (inpainting and super-resolution on 32x32 faces) and
# ``benchmarks/image_digits.py`` (bits per dimension against normflows' Glow) are the full runs;
# their results and sample grids are in ``benchmarks/results/image_*``.
