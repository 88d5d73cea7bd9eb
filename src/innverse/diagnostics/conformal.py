"""Conformal p-values: calibrate any outlier score on held-out in-distribution scores."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._tensors import check_finite, to_tensor

__all__ = ["ScoreCalibrator"]


def _check_level(level: float, owner: str) -> float:
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"{owner}: level must be in (0, 1), got {level!r}")
    return float(level)


class ScoreCalibrator(nn.Module):
    r"""Turns an outlier score (larger = more unusual) into a conformal p-value and a flag.

    With calibration scores :math:`c_1..c_n` of in-distribution data that were not used to
    build the score,

    .. math::
        p(s) = \frac{1 + \#\{i : c_i \ge s\}}{1 + n},\qquad \text{flag}(s) = [\,p(s) \le \alpha\,].

    For a new in-distribution point (exchangeable with the calibration points)
    :math:`P(p \le \alpha) = \lfloor \alpha (n+1)\rfloor / (n+1) \le \alpha`, so the
    false-positive rate is at most, and for large ``n`` close to, the level :math:`\alpha`.
    The equivalent score threshold is :attr:`threshold` (flag iff ``score > threshold``).

    Any score works: e.g. the negative log-density of a summary under a flow trained on the
    simulated summaries, evaluated on held-out simulations.

    State (saved in the state dict): the sorted calibration scores and the level.

    Args:
        calibration_scores: ``(n,)`` scores of held-out in-distribution data; ``None`` makes an
            empty calibrator to load a state dict into.
        level: false-positive rate :math:`\alpha` in (0, 1).

    References:
        Vovk, Gammerman, Shafer. "Algorithmic Learning in a Random World". Springer 2005;
        Bates, Candès, Lei, Romano, Sesia. "Testing for outliers with conformal p-values".
        Annals of Statistics 2023.
    """

    calibration_scores: Tensor
    level_: Tensor

    def __init__(self, calibration_scores: Any = None, level: float = 0.01) -> None:
        super().__init__()
        level = _check_level(level, "ScoreCalibrator")
        if calibration_scores is None:
            scores = torch.zeros(0, dtype=torch.float64)
        else:
            scores = to_tensor(calibration_scores, "calibration_scores", "ScoreCalibrator", torch.float64)
            scores = scores.detach()
            if scores.dim() != 1 or scores.numel() < 1:
                raise ValueError("ScoreCalibrator: calibration_scores must be a non-empty 1-D tensor, "
                                 f"got shape {tuple(scores.shape)}")
            check_finite(scores, "calibration_scores", "ScoreCalibrator")
            scores = scores.sort().values
        self.register_buffer("calibration_scores", scores)
        self.register_buffer("level_", torch.tensor(level, dtype=torch.float64))
        self._check_resolution()

    def _check_resolution(self) -> None:
        n = self.calibration_scores.numel()
        if n and (n + 1) * float(self.level_) < 1.0:
            need = math.ceil(1.0 / float(self.level_)) - 1
            raise ValueError(f"ScoreCalibrator: {n} calibration scores cannot reach level "
                             f"{float(self.level_)}: the smallest p-value is 1/{n + 1}; need at least "
                             f"{need} scores")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # buffers are resized to the saved ones, so an empty calibrator can load any state.
        key = prefix + "calibration_scores"
        if key in state_dict:
            self.calibration_scores = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def level(self) -> float:
        """The false-positive rate :math:`\\alpha` used by :meth:`flags`."""
        return float(self.level_)

    @level.setter
    def level(self, value: float) -> None:
        self.level_.fill_(_check_level(value, "ScoreCalibrator"))
        self._check_resolution()

    @property
    def calibrated(self) -> bool:
        return self.calibration_scores.numel() > 0

    def _require(self, owner: str) -> None:
        if not self.calibrated:
            raise RuntimeError(f"{owner}: not calibrated (built without data and no state dict loaded)")

    @property
    def threshold(self) -> float:
        r"""Score threshold: ``flags(s) == (s > threshold)``; ``inf`` if nothing can be flagged."""
        self._require("ScoreCalibrator.threshold")
        n = self.calibration_scores.numel()
        allowed = math.floor(self.level * (n + 1) + 1e-9) - 1  # calibration scores allowed >= s
        if allowed < 0:
            return math.inf
        return float(self.calibration_scores[n - 1 - allowed])

    def p_values(self, scores: Tensor) -> Tensor:
        """Conformal p-values ``(k,)`` of scores ``(k,)``."""
        self._require("ScoreCalibrator.p_values")
        s = scores.to(self.calibration_scores)
        n = self.calibration_scores.numel()
        at_least = n - torch.searchsorted(self.calibration_scores, s, right=False)
        return (1.0 + at_least.to(torch.float64)) / (n + 1.0)

    def flags(self, scores: Tensor) -> Tensor:
        """``True`` where the p-value is at most the level."""
        return self.p_values(scores) <= self.level + 1e-12

    def forward(self, scores: Tensor) -> Tensor:
        return self.p_values(scores)
