"""Which measurement to take, and what to do when the simulator is wrong.

* Comparing measurement setups (:func:`compare`): per parameter and setup, posterior
  contraction, credible-interval width, an expected-information-gain bound, SBC calibration,
  identifiability and multimodality; a table, a plot and the cost/information Pareto front.
* RoPE (:func:`rope`): correct a trained NPE for a misspecified simulator with a small
  calibration set of real labelled pairs (fine-tuned summaries, entropic optimal transport,
  transport-weighted mixtures of NPE posteriors); :func:`score_posterior` reports LPP and ACAUC,
  and :func:`check_misspecification` tests real data against the simulations first and says
  whether a calibration is needed.
"""

from .compare import compare
from .comparison import Comparison, pareto_front
from .design_posterior import (
    DesignConditionalPosterior,
    DesignOptimum,
    optimize_design,
    train_design_posterior,
)
from .evaluate import SetupResult, evaluate_posterior
from .finetune import fine_tune_posterior, fine_tune_summary, summary_targets
from .information import information_gain, marginal_information_gain
from .mixture import CalibrationRows, RoPEPosterior
from .rope import MIN_CALIBRATION, RoPEOptions, rope
from .scores import CalibrationScores, score_posterior
from .setups import Budget, Setup, design_setups
from .stacking import StackedPosterior, stacking_weight
from .transport import TransportPlan, transport_plan
from .workflow import MisspecificationReport, check_misspecification

__all__ = [
    "MIN_CALIBRATION",
    "Budget",
    "CalibrationRows",
    "CalibrationScores",
    "Comparison",
    "DesignConditionalPosterior",
    "DesignOptimum",
    "MisspecificationReport",
    "RoPEOptions",
    "RoPEPosterior",
    "Setup",
    "SetupResult",
    "StackedPosterior",
    "TransportPlan",
    "check_misspecification",
    "compare",
    "design_setups",
    "evaluate_posterior",
    "fine_tune_posterior",
    "fine_tune_summary",
    "information_gain",
    "marginal_information_gain",
    "optimize_design",
    "pareto_front",
    "rope",
    "score_posterior",
    "stacking_weight",
    "summary_targets",
    "train_design_posterior",
    "transport_plan",
]
