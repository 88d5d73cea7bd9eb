r"""Generative classifiers that know when they don't know.

* :class:`LatentMixtureINN`, :class:`IBLoss`, :class:`IBINNClassifier`: an INN with one
  Gaussian per class in latent space, trained with the information-bottleneck loss through the
  one training loop (``fit(X, y)``, ``predict``, ``predict_proba``, ``log_prob(x)``,
  ``log_prob(x, y)``, ``sample(n, y)``), on vectors or images;
* calibration: :func:`calibration_report` (ECE, MCE, ICE, overconfidence, reliability diagram),
  :class:`TemperatureScaling`;
* OOD scores for any flow or IB-INN (larger = more unusual): :func:`negative_log_likelihood`,
  :class:`LikelihoodTest` (one/two-tailed), :class:`TypicalityTest` (batches), :func:`waic_score`,
  :func:`likelihood_ratio_score` (background model trained on :class:`Perturbation`-ed inputs),
  :func:`class_likelihood_score`, :func:`input_complexity_score` (likelihood minus the bits of a
  lossless compressor, :func:`input_complexity`); metrics :func:`auroc`, :func:`aupr`, :func:`fpr_at_tpr`,
  :func:`threshold_at_fpr`;
* :class:`AnomalyDetector`: fit a flow on normal data, score, threshold, conformal p-values.
"""

from .anomaly import AnomalyDetector
from .architectures import InnBuilder, default_inn, image_inn, standardized, vector_inn
from .calibration import (
    CalibrationReport,
    ReliabilityDiagram,
    calibration_report,
    expected_calibration_error,
    integrated_calibration_error,
    maximum_calibration_error,
    overconfidence,
    plot_reliability,
    reliability_diagram,
)
from .classifier import IBINNClassifier, split_indices
from .density import Augment, Perturbation, fit_density
from .latent_mixture import LatentMixtureINN, spread_means
from .likelihood_tests import LikelihoodTest, TypicalityTest, random_batches
from .loss import IBLoss
from .ood_metrics import OODMetrics, aupr, auroc, fpr_at_tpr, ood_metrics, threshold_at_fpr
from .scores import (
    CODECS,
    class_likelihood_score,
    input_complexity,
    input_complexity_score,
    likelihood_ratio_score,
    negative_log_likelihood,
    waic,
    waic_score,
)
from .temperature import TemperatureScaling

__all__ = [
    "CODECS",
    "AnomalyDetector",
    "Augment",
    "CalibrationReport",
    "IBINNClassifier",
    "IBLoss",
    "InnBuilder",
    "LatentMixtureINN",
    "LikelihoodTest",
    "OODMetrics",
    "Perturbation",
    "ReliabilityDiagram",
    "TemperatureScaling",
    "TypicalityTest",
    "aupr",
    "auroc",
    "calibration_report",
    "class_likelihood_score",
    "default_inn",
    "expected_calibration_error",
    "fit_density",
    "fpr_at_tpr",
    "image_inn",
    "input_complexity",
    "input_complexity_score",
    "integrated_calibration_error",
    "likelihood_ratio_score",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "ood_metrics",
    "overconfidence",
    "plot_reliability",
    "random_batches",
    "reliability_diagram",
    "split_indices",
    "spread_means",
    "standardized",
    "threshold_at_fpr",
    "vector_inn",
    "waic",
    "waic_score",
]
