r"""How well a score separates out-of-distribution inputs: AUROC, AUPR, FPR at 95% TPR, thresholds.

Convention everywhere: a larger score means "more unusual", and out-of-distribution inputs are
the positives of the detection problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..diagnostics.conformal import ScoreCalibrator
from ._inputs import as_scores, check_fraction

__all__ = ["OODMetrics", "aupr", "auroc", "fpr_at_tpr", "ood_metrics", "threshold_at_fpr"]


def _pair(owner: str, in_scores: Any, out_scores: Any) -> tuple[Tensor, Tensor]:
    return as_scores(owner, in_scores, "in_scores"), as_scores(owner, out_scores, "out_scores")


def auroc(in_scores: Any, out_scores: Any) -> float:
    r"""Area under the ROC curve: :math:`P(s_\text{out} > s_\text{in}) + \tfrac12 P(s_\text{out} = s_\text{in})`.

    Computed exactly from average ranks (the Mann–Whitney U statistic), so ties count one half;
    0.5 is chance, 1 perfect separation, below 0.5 the score ranks OOD inputs as *more* typical.
    """
    a, b = _pair("auroc", in_scores, out_scores)
    both = torch.cat([a, b])
    order = both.argsort()
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, both.numel() + 1, dtype=both.dtype)
    uniq, inverse = both.unique(return_inverse=True)
    mean_rank = torch.zeros_like(uniq).index_add_(0, inverse, ranks) / torch.bincount(inverse).to(both.dtype)
    r_out = mean_rank[inverse][a.numel():].sum()
    n_in, n_out = a.numel(), b.numel()
    return float((r_out - n_out * (n_out + 1) / 2) / (n_in * n_out))


def _average_precision(pos: Tensor, neg: Tensor) -> float:
    """Average precision of ranking ``pos`` above ``neg`` (step-wise interpolation, tied scores as one threshold)."""
    scores = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    uniq, inverse = scores.unique(return_inverse=True)
    tp = torch.zeros_like(uniq).index_add_(0, inverse, labels).flip(0).cumsum(0)
    total = torch.bincount(inverse, minlength=uniq.numel()).to(scores.dtype).flip(0).cumsum(0)
    precision, recall = tp / total, tp / pos.numel()
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=recall.dtype))
    return float((steps * precision).sum())


def aupr(in_scores: Any, out_scores: Any, positive: str = "out") -> float:
    r"""Area under the precision–recall curve (average precision) with OOD (``"out"``) or in-distribution (``"in"``) as positives.

    For ``"in"`` the scores are negated (in-distribution inputs should score low).
    """
    a, b = _pair("aupr", in_scores, out_scores)
    if positive == "out":
        return _average_precision(b, a)
    if positive == "in":
        return _average_precision(-a, -b)
    raise ValueError(f"aupr: positive must be 'out' or 'in', got {positive!r}")


def fpr_at_tpr(in_scores: Any, out_scores: Any, tpr: float = 0.95) -> float:
    r"""False-positive rate on in-distribution inputs at the largest threshold that flags a fraction ``tpr`` of the OOD inputs.

    Flags are ``score >= t`` with :math:`t` the :math:`\lceil \text{tpr}\, n_\text{out}\rceil`-th
    largest OOD score; the result is the fraction of in-distribution scores :math:`\ge t`.
    """
    tpr = check_fraction("fpr_at_tpr", "tpr", tpr)
    a, b = _pair("fpr_at_tpr", in_scores, out_scores)
    k = int(torch.ceil(torch.tensor(tpr * b.numel() - 1e-9)))
    t = b.sort(descending=True).values[max(k, 1) - 1]
    return float((a >= t).double().mean())


def threshold_at_fpr(validation_scores: Any, fpr: float = 0.05) -> float:
    r"""A score threshold chosen on in-distribution validation scores for a stated false-positive rate.

    Flag an input when ``score > threshold``. The threshold is the conformal one
    (:class:`~innverse.diagnostics.ScoreCalibrator`): for a new in-distribution input,
    exchangeable with the validation inputs, :math:`P(\text{flag}) \le \text{fpr}`. The
    validation inputs must not have been used to train the model behind the score.

    Raises:
        ValueError: no validation scores, or too few to reach ``fpr`` (``n + 1 < 1 / fpr``).
    """
    fpr = check_fraction("threshold_at_fpr", "fpr", fpr)
    if validation_scores is None:
        raise ValueError("threshold_at_fpr: needs the scores of in-distribution validation data (held out from "
                         "training) to choose a threshold; got None")
    scores = as_scores("threshold_at_fpr", validation_scores, "validation_scores")
    if (scores.numel() + 1) * fpr < 1:
        raise ValueError(f"threshold_at_fpr: {scores.numel()} validation scores cannot reach fpr={fpr}; need at least "
                         f"{int(1 / fpr)} in-distribution validation scores")
    return ScoreCalibrator(scores, fpr).threshold


@dataclass(frozen=True)
class OODMetrics:
    """Separation of one OOD set from the in-distribution test set by one score."""

    auroc: float
    aupr_out: float
    aupr_in: float
    fpr_at_95_tpr: float
    detected: float | None = None  # fraction of OOD inputs flagged at the validation threshold
    false_positives: float | None = None  # fraction of in-distribution test inputs flagged

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.__dict__)


def ood_metrics(in_scores: Any, out_scores: Any, threshold: float | None = None) -> OODMetrics:
    """AUROC, both AUPRs and FPR@95%TPR; with a ``threshold`` (e.g. :func:`threshold_at_fpr`) also the flag rates."""
    a, b = _pair("ood_metrics", in_scores, out_scores)
    flags = (None, None) if threshold is None else (float((b > threshold).double().mean()),
                                                    float((a > threshold).double().mean()))
    return OODMetrics(auroc(a, b), aupr(a, b, "out"), aupr(a, b, "in"), fpr_at_tpr(a, b), *flags)
