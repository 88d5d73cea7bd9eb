"""
Invertible representations: bijective classifiers, metamers and disentanglement
===============================================================================

An ordinary classifier throws information away layer by layer. A *bijective* classifier does
not: every layer but the last linear one is invertible, so the last hidden representation
:math:`z = \\Phi(x)` holds everything about the input, and only its first :math:`k`
coordinates, the logit subspace :math:`z_s`, reach the classes,

.. math::

    z = \\Phi(x) = [z_s, z_n], \\qquad \\text{logits} = W z_s + b, \\qquad x = \\Phi^{-1}(z).

:func:`innverse.represent.IRevNetClassifier` builds :math:`\\Phi` from additive couplings
(inverse exact to round-off), :func:`innverse.represent.IResNetClassifier` from contractive
residual blocks (inverse by fixed-point iteration). Because the logits never see the *nuisance*
:math:`z_n`, the classifier is invariant to everything :math:`z_n` carries, and a metamer makes
that visible (:func:`innverse.represent.metamers`):

.. math::

    x_{\\text{met}} = \\Phi^{-1}\\big([z_s(x_a),\\ z_n(x_b)]\\big)

has exactly the logits of :math:`x_a`; if it looks like :math:`x_b`, the class information of
:math:`x_b` sat in the part the classifier ignores (*excessive invariance*, Jacobsen et al. 2019),
which the independence cross-entropy (:class:`innverse.represent.IndependenceCrossEntropy`)
fights. The same invertibility gives disentanglement: :class:`innverse.represent.GIN` is a
volume-preserving flow, :math:`|\\det J_f| = 1`, with class-conditional Gaussian latents,

.. math::

    \\log p(x \\mid u) = \\log N\\big(f(x);\\ \\mu_u, \\operatorname{diag} \\sigma_u^2\\big),

which cannot give every latent unit variance and so concentrates the data's variability in a few
latents: the informative ones, which recover the true factors up to elementwise maps. Last, an
INN autoencoder (:class:`innverse.represent.INNAutoencoder`) decodes by inverting its encoder.
"""

# %%
# Setup. ``FAST`` is the reduced budget the documentation build uses in CI.
import copy
import os

import matplotlib.pyplot as plt
import torch

from innverse.blocks import FixedPointSolver
from innverse.represent import (
    GIN,
    ConventionalAutoencoder,
    IndependenceCrossEntropy,
    INNAutoencoder,
    IResNetClassifier,
    IRevNetClassifier,
    latent_spectrum,
    mean_correlation_coefficient,
    metamers,
    parameter_count,
    plot_image_rows,
    plot_latent_spectrum,
    plot_metamers,
    probe_nuisance,
    reconstruction_error,
    train_autoencoder,
    train_classifier,
    train_gin,
)
from innverse.tasks.images import DigitClasses
from innverse.tasks.represent import GINSynthetic

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
EPOCHS, GIN_POINTS, GIN_EPOCHS, AE_EPOCHS = (15, 4_000, 40, 30) if FAST else (40, 10_000, 150, 100)
torch.manual_seed(0)

# %%
# The data: scikit-learn's 8x8 digits (shipped with the package, no download) in the fixed splits
# of :class:`~innverse.tasks.images.DigitClasses`, pixel values scaled to ``[0, 1]``, with
# integer labels.
task = DigitClasses()
(x_train, y_train), (x_val, y_val), (x_test, y_test) = (
    (x / 16.0, c.argmax(1)) for x, c in (task.pairs(s) for s in ("train", "val", "test")))
print(f"train {tuple(x_train.shape)}, validation {len(x_val)}, test {len(x_test)}")

# %%
# An i-RevNet: a classifier that forgets nothing
# ----------------------------------------------
# Invertible downsampling and additive couplings, then a linear map of the first 10 of the 64
# representation coordinates. :func:`~innverse.represent.train_classifier` trains it by
# cross-entropy through the library's one training loop; small Gaussian noise on the training
# pixels lets the network also see the directions in which the digits do not vary (constant
# border pixels).
training = {"epochs": EPOCHS, "batch_size": 64, "lr": 3e-3, "patience": None}
irevnet = IRevNetClassifier((1, 8, 8), classes=10, hidden=32, seed=0)
train_classifier(irevnet, x_train, y_train, validation=(x_val, y_val), noise=0.05, training=training)
irevnet.eval()
accuracy = (irevnet.predict(x_test) == y_test).double().mean()
print(f"i-RevNet: {parameter_count(irevnet)} parameters, test accuracy {100 * accuracy:.1f}%")

# %%
# The whole test set, reconstructed from its last hidden representation alone: the error is
# float32 round-off, and in float64 it drops to float64 round-off. Nothing was lost on the way to
# the logits.
with torch.no_grad():
    z = irevnet.features(x_test)                         # (300, 64)
    error32 = (irevnet.invert(z) - x_test).norm() / x_test.norm()
    irevnet64, x64 = copy.deepcopy(irevnet).double(), x_test.double()
    error64 = (irevnet64.invert(irevnet64.features(x64)) - x64).norm() / x64.norm()
print(f"relative reconstruction error from the features: float32 {error32:.1e}, float64 {error64:.1e}")

# %%
# An i-ResNet and its metamers
# ----------------------------
# The i-ResNet's blocks are :math:`x + g(x)` with :math:`\mathrm{Lip}(g) < 1` (spectral
# normalisation); its inverse solves :math:`x = y - g(x)` by fixed-point iteration, to the
# tolerance given in the :class:`~innverse.blocks.FixedPointSolver`.
iresnet = IResNetClassifier((1, 8, 8), classes=10, hidden=32, coeff=0.9, seed=0,
                            solver=FixedPointSolver(tolerance=1e-6))
train_classifier(iresnet, x_train, y_train, validation=(x_val, y_val), noise=0.05,
                 training={**training, "lr": 1e-3})
iresnet.eval()
with torch.no_grad():
    error = (iresnet.invert(iresnet.features(x_test)) - x_test).norm() / x_test.norm()
iterations = max(r.iterations for r in iresnet.fixed_point_reports())
print(f"i-ResNet: test accuracy {100 * (iresnet.predict(x_test) == y_test).double().mean():.1f}%, "
      f"reconstruction error {error:.1e} (at most {iterations} fixed-point iterations per block)")

# %%
# Metamers: 200 pairs of test digits of different classes. Each metamer takes the logit part of
# the first digit and the nuisance of the second, and is inverted back to an image. Its logits,
# recomputed from the image, are those of the first digit up to the inversion's error (the
# ``logit gap``). Which digit does it look like? The i-RevNet above, a separately trained
# network, serves as an independent judge.
gen = torch.Generator().manual_seed(0)
first = torch.randint(len(y_test), (200,), generator=gen)
second = []
for i in first.tolist():
    others = (y_test != y_test[i]).nonzero().flatten()
    second.append(others[torch.randint(len(others), (1,), generator=gen)])
second = torch.cat(second)
a, b = x_test[first], x_test[second]


def judge_metamers(model, name):
    result = metamers(model, a, b)
    with torch.no_grad():
        seen = irevnet(result.metamers).argmax(1)
    print(f"{name}: logit gap {result.logit_gap:.1e}; the judge sees the first digit in "
          f"{100 * (seen == y_test[first]).double().mean():.0f}% and the second in "
          f"{100 * (seen == y_test[second]).double().mean():.0f}% of the metamers; "
          f"RMS distance to the first {result.distance_to_a.mean():.3f}, to the second "
          f"{result.distance_to_b.mean():.3f}")
    return result


result = judge_metamers(iresnet, "cross-entropy")
fig = plot_metamers(metamers(iresnet, a[:10], b[:10]), a[:10], b[:10])
plt.show()

# %%
# Every metamer is classified as the digit in the top row; whatever of the bottom row's digit shows
# through is information the classifier has learned to ignore. A probe classifier trained on the
# nuisance :math:`z_n` alone (:func:`~innverse.represent.probe_nuisance`) measures how much class
# information is left there.
probe = probe_nuisance(iresnet, (x_train, y_train), (x_test, y_test))
print(f"probe on the nuisance (54 features): test accuracy {100 * probe.accuracy:.1f}% "
      f"(chance {100 * probe.chance:.1f}%)")

# %%
# The independence cross-entropy
# ------------------------------
# :class:`~innverse.represent.IndependenceCrossEntropy` trains an adversary to classify from
# :math:`z_n` and the network to defeat it (capped at chance level), plus a Gaussian likelihood on
# :math:`z_n`. The same network, trained with it:
ice = IndependenceCrossEntropy(classes=10, nuisance_features=54, adversary_lr=5.0)
iresnet_ice = IResNetClassifier((1, 8, 8), classes=10, hidden=32, coeff=0.9, seed=0,
                                solver=FixedPointSolver(tolerance=1e-6))
train_classifier(iresnet_ice, x_train, y_train, validation=(x_val, y_val), noise=0.05,
                 training={**training, "lr": 1e-3}, independence=ice)
iresnet_ice.eval()
print(f"iCE i-ResNet: test accuracy {100 * (iresnet_ice.predict(x_test) == y_test).double().mean():.1f}%")
result_ice = judge_metamers(iresnet_ice, "independence cross-entropy")
probe_ice = probe_nuisance(iresnet_ice, (x_train, y_train), (x_test, y_test))
print(f"probe on the nuisance: test accuracy {100 * probe_ice.accuracy:.1f}%")
fig = plot_metamers(metamers(iresnet_ice, a[:10], b[:10]), a[:10], b[:10])
plt.show()

# %%
# Compare the judge's verdicts of the two models: the objective is meant to move the metamers
# towards the first digit, and it costs some test accuracy. It does not empty the nuisance, though: the adversary only removes
# what *it* can read, and a fresh probe trained afterwards still finds the class there. The
# numbers above come from one seed and the budget of this page; ``benchmarks/represent_invariance.py``
# runs the full comparison (results in ``benchmarks/results/represent_invariance_*``).

# %%
# GIN: disentanglement by nonlinear ICA
# -------------------------------------
# The synthetic data of the GIN paper (``GINSynthetic`` in :mod:`innverse.tasks`): 10-D points
# whose first 2 latent factors follow a 5-component Gaussian mixture and whose other 8 are noise of
# standard deviation 0.01, mixed by a random GLOW network. The mixture component is the auxiliary
# label :math:`u`. GIN sees only the mixed points and the labels.
synthetic = GINSynthetic(seed=0)
x, u, _ = synthetic.sample(GIN_POINTS, torch.Generator().manual_seed(1))
x_val_gin, u_val, _ = synthetic.sample(1_000, torch.Generator().manual_seed(2))
x_test_gin, u_test, s_test = synthetic.sample(2_000, torch.Generator().manual_seed(3))
gin = GIN(10, classes=synthetic.components, blocks=8, hidden=(64, 64), seed=0)
train_gin(gin, x, u, (x_val_gin, u_val), {"epochs": GIN_EPOCHS, "batch_size": 256, "lr": 2e-3, "patience": None},
          noise=0.01)
gin.eval()
spectrum = latent_spectrum(gin, x_test_gin, u_test)
print("latent standard deviations, largest first:", [round(v, 3) for v in spectrum.stds.tolist()])
print(f"informative dimensions (two-group split of the log spectrum): {spectrum.informative}")
fig = plot_latent_spectrum(spectrum, title="GIN latents on the synthetic data")
plt.show()

# %%
# Are the most variable latents the true factors? The mean correlation coefficient (MCC) matches
# the 2 true informative latents with the GIN's 2 most variable latents one to one and averages the
# absolute correlations (1: recovered up to elementwise maps).
with torch.no_grad():
    recovered = gin.latent(x_test_gin)[:, spectrum.top(2)]
match = mean_correlation_coefficient(s_test[:, :2], recovered)
print(f"MCC {match.mcc:.3f}, per factor {[round(v, 3) for v in match.correlations.tolist()]}")
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), constrained_layout=True)
for i, ax in enumerate(axes):
    j = int(match.assignment[i])
    ax.scatter(s_test[:, i].numpy(), recovered[:, j].numpy(), s=2, alpha=0.3, c=u_test.numpy(), cmap="tab10")
    ax.set(xlabel=f"true factor {i + 1}", ylabel=f"GIN latent (rank {j + 1})",
           title=f"|corr| = {float(match.correlations[i]):.3f}")
plt.show()

# %%
# Recovery depends on the data set drawn and on training long enough: ``benchmarks/represent_gin.py``
# trains three data sets for 500 epochs and recovers both factors on all three (MCC .93 to .999),
# where PCA does less well. On a harder variant of the data (``GINSynthetic(mixing="rotation")``,
# random rotations between the mixing blocks) it recovers them on two of three (results in
# ``benchmarks/results/represent_gin_*``).

# %%
# An INN as an autoencoder
# ------------------------
# :class:`~innverse.represent.INNAutoencoder` keeps the first :math:`k` latents of an invertible
# network as the code and decodes :math:`f^{-1}([z_b, 0])`; a latent loss pulls the discarded
# coordinates to zero. Against a conventional autoencoder of the same size, with a 4-number code:
autoencoders = {"INN": INNAutoencoder((1, 8, 8), bottleneck=4, blocks=8, hidden=(128, 128), seed=0)}
autoencoders["conventional"] = ConventionalAutoencoder.same_size((1, 8, 8), 4,
                                                                 parameter_count(autoencoders["INN"]))
for name, model in autoencoders.items():
    train_autoencoder(model, x_train, x_val, training={"epochs": AE_EPOCHS, "batch_size": 64, "lr": 1e-3})
    print(f"{name:>12}: {parameter_count(model)} parameters, test MSE per pixel "
          f"{reconstruction_error(model, x_test):.4f}")
with torch.no_grad():
    rows = [x_test[:10]] + [m.eval().reconstruct(x_test[:10]) for m in autoencoders.values()]
fig = plot_image_rows(rows, ["test digits", "INN", "conventional"], value_range=(0.0, 1.0))
plt.show()

# %%
# At this budget the two are close; ``benchmarks/represent_autoencoders.py`` compares them at
# bottlenecks 2, 4 and 8 with early stopping (``benchmarks/results/represent_autoencoders_*``).
