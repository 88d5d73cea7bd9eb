r"""How good a posterior is on held-out real pairs: LPP and ACAUC, for any model of the conditional-density contract.

For held-out pairs :math:`(\theta_j, x_j)`, :math:`j = 1..k`:

* LPP, the mean log posterior density of the true parameters,
  :math:`\mathrm{LPP} = \frac1k \sum_j \log q(\theta_j \mid x_j)` (higher is better; a proper
  scoring rule, so it rewards calibration and sharpness together), with its standard error;
* ACAUC, the signed area between the expected-coverage curve and the diagonal,
  :math:`\mathrm{ACAUC} = \int_0^1 (\mathrm{cov}(\alpha) - \alpha)\,d\alpha`, where
  :math:`\mathrm{cov}(\alpha)` is the share of true parameters inside the credible region of
  level :math:`\alpha`: 0 for a calibrated posterior, negative when over-confident, positive
  when conservative. Regions are highest-density regions (joint over the parameters,
  :func:`innverse.diagnostics.credibility_hpd`, from ``samples`` posterior draws) or central
  intervals per parameter (:func:`innverse.diagnostics.credibility_central`, averaged).
  Computed on the :data:`innverse.diagnostics.LEVELS` grid (:func:`~innverse.diagnostics.coverage_test`'s
  ``mean_deviation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import diagnostics

__all__ = ["CalibrationScores", "score_posterior"]


@dataclass(frozen=True)
class CalibrationScores:
    """LPP (with standard error) and ACAUC of a posterior on held-out pairs, and its coverage curve.

    Attributes:
        lpp, lpp_se: mean log posterior density of the true parameters and its standard error.
        acauc: signed coverage gap (see the module docstring).
        max_coverage_gap: largest :math:`|\\mathrm{cov}(\\alpha) - \\alpha|`.
        coverage: the expected-coverage curve on the levels ``levels``.
        region: ``"hpd"`` or ``"central"``.
        pairs: held-out pairs scored.
    """

    lpp: float
    lpp_se: float
    acauc: float
    max_coverage_gap: float
    coverage: list[float]
    levels: list[float]
    region: str
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score_posterior(posterior: Any, theta: Tensor, x: Tensor, *, samples: int = 200, region: str = "hpd",
                    seed: int = 0) -> CalibrationScores:
    """LPP and ACAUC of ``posterior`` (``sample(n, x)``, ``log_prob(theta, x)``) on pairs ``theta (k, D)``, ``x (k, ...)``.

    Args:
        samples: posterior draws per observation for the credible regions.
        region: ``"hpd"`` (joint highest-density regions) or ``"central"`` (per-parameter intervals, averaged).
        seed: seed of the draws and of the rank randomisation.
    """
    if region not in ("hpd", "central"):
        raise ValueError(f"score_posterior: region must be 'hpd' or 'central', got {region!r}")
    if theta.dim() != 2 or theta.shape[0] != x.shape[0] or theta.shape[0] < 2:
        raise ValueError(f"score_posterior: expected theta (k, D) and x (k, ...) with the same k >= 2, got "
                         f"{tuple(theta.shape)} and {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(seed)
    log_truth = posterior.log_prob(theta, x, outside="-inf").to(torch.float64).reshape(-1)
    draws = posterior.sample(samples, x, generator=gen)                                    # (L, k, D)
    if region == "hpd":
        log_draws = posterior.log_prob(draws, x, outside="-inf").to(torch.float64)          # (L, k)
        cred = diagnostics.credibility_hpd(log_draws, log_truth, seed=seed)
    else:
        cred = diagnostics.credibility_central(draws, theta, seed=seed)
    cov = diagnostics.coverage_test(cred, seed=seed, simulations=200)
    curve = torch.tensor(cov["coverage"], dtype=torch.float64).mean(0)
    levels = torch.tensor(cov["levels"], dtype=torch.float64)
    finite = log_truth[torch.isfinite(log_truth)]
    lpp = float(log_truth.mean())
    se = float(finite.std() / math.sqrt(max(1, finite.numel()))) if finite.numel() > 1 else math.nan
    return CalibrationScores(lpp=lpp, lpp_se=se, acauc=float(sum(cov["mean_deviation"]) / len(cov["mean_deviation"])),
                             max_coverage_gap=float((curve - levels).abs().max()), coverage=curve.tolist(),
                             levels=levels.tolist(), region=region, pairs=int(theta.shape[0]))
