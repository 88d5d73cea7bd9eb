"""Invertible representations: i-RevNet and i-ResNet classifiers, metamers and the iCE, GIN, INN autoencoders.

* :class:`InvertibleClassifier` (factories :func:`IRevNetClassifier`, :func:`IResNetClassifier`):
  bijective up to a linear projection of a logit subspace; ``invert(features)`` reconstructs the
  input from the last hidden representation; :func:`train_classifier`.
* Invariance: :func:`metamers` (metameric sampling), :class:`IndependenceCrossEntropy` (iCE),
  :func:`probe_nuisance` (class information left in the nuisance).
* :class:`GIN` (volume-preserving flow, class-conditional latents; :func:`train_gin`),
  :func:`latent_spectrum`, :func:`count_informative`, :func:`mean_correlation_coefficient`,
  :func:`latent_traversals`.
* :class:`INNAutoencoder` and :class:`ConventionalAutoencoder`, :func:`train_autoencoder`,
  :func:`reconstruction_error`.
* Figures (matplotlib, imported lazily): :func:`plot_metamers`, :func:`plot_image_rows`,
  :func:`plot_traversals`, :func:`plot_latent_spectrum`.
"""

from .architectures import iresnet_body, irevnet_body
from .autoencoder import ConventionalAutoencoder, INNAutoencoder, reconstruction_error, train_autoencoder
from .classifier import InvertibleClassifier, IResNetClassifier, IRevNetClassifier, parameter_count
from .gin import GIN, train_gin
from .invariance import IndependenceCrossEntropy, MetamerResult, metamers
from .latents import (
    LatentSpectrum,
    MatchedCorrelation,
    count_informative,
    latent_spectrum,
    latent_traversals,
    mean_correlation_coefficient,
)
from .plots import plot_image_rows, plot_latent_spectrum, plot_metamers, plot_traversals
from .training import ProbeResult, probe_nuisance, train_classifier

__all__ = [
    "GIN",
    "ConventionalAutoencoder",
    "INNAutoencoder",
    "IResNetClassifier",
    "IRevNetClassifier",
    "IndependenceCrossEntropy",
    "InvertibleClassifier",
    "LatentSpectrum",
    "MatchedCorrelation",
    "MetamerResult",
    "ProbeResult",
    "count_informative",
    "iresnet_body",
    "irevnet_body",
    "latent_spectrum",
    "latent_traversals",
    "mean_correlation_coefficient",
    "metamers",
    "parameter_count",
    "plot_image_rows",
    "plot_latent_spectrum",
    "plot_metamers",
    "plot_traversals",
    "probe_nuisance",
    "reconstruction_error",
    "train_autoencoder",
    "train_classifier",
    "train_gin",
]
