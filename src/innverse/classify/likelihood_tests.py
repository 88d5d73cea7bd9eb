r"""Statistical tests on the likelihood: one- and two-tailed tests per input, the typicality test for batches.

Both are calibrated on in-distribution validation inputs (held out from training) and give
p-values; their statistics are OOD scores (larger = more unusual).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..diagnostics.conformal import ScoreCalibrator
from ._inputs import as_inputs, batched_log_prob
from .ood_metrics import threshold_at_fpr

__all__ = ["LikelihoodTest", "TypicalityTest", "random_batches"]


def _reference_nll(owner: str, model: Any, x: Any, minimum: int) -> Tensor:
    if x is None:
        raise ValueError(f"{owner}: needs in-distribution validation inputs (held out from training), got None")
    nll = -batched_log_prob(owner, model, x).double()
    if nll.numel() < minimum:
        raise ValueError(f"{owner}: needs at least {minimum} validation inputs, got {nll.numel()}")
    return nll


class LikelihoodTest:
    r"""The one- or two-tailed likelihood test: is :math:`-\log p(x)` unusual for in-distribution data?

    With the negative log-likelihoods :math:`\ell_1..\ell_n` of in-distribution validation
    inputs, their median :math:`m` and robust spread :math:`s = \mathrm{IQR} / 1.349`:

    * one-tailed (``tails=1``): statistic :math:`t(x) = -\log p(x)`; only *unlikely* inputs are
      unusual (the plain likelihood test);
    * two-tailed (``tails=2``): statistic :math:`t(x) = \lvert -\log p(x) - m\rvert / s`;
      inputs *more* likely than the data ever are (constant images, the mode of a
      high-dimensional Gaussian) are unusual too. Median and IQR, not mean and standard
      deviation: the negative log-likelihoods of held-out data have a heavy upper tail (a few
      unusual inputs score orders of magnitude higher), which would drag a mean-centred test.

    The p-value is conformal, :math:`p(x) = (1 + \#\{i : t_i \ge t(x)\}) / (n + 1)`, with
    :math:`t_i` the statistics of the validation inputs.

    Args:
        model: anything with ``log_prob(x) -> (N,)``.
        tails: 1 or 2.

    References:
        Nalisnick, Matsukawa, Teh, Lakshminarayanan. "Detecting Out-of-Distribution Inputs to Deep
        Generative Models Using Typicality". 2019 (the two-tailed view, their test at batch size 1).
    """

    def __init__(self, model: Any, tails: int = 2) -> None:
        if tails not in (1, 2):
            raise ValueError(f"LikelihoodTest: tails must be 1 or 2, got {tails!r}")
        self.model, self.tails = model, tails
        self.center: float | None = None
        self.spread: float | None = None
        self.calibrator: ScoreCalibrator | None = None

    def fit(self, x_validation: Any) -> LikelihoodTest:
        """Calibrate on in-distribution validation inputs; returns ``self``."""
        nll = _reference_nll("LikelihoodTest.fit", self.model, x_validation, 2)
        q1, median, q3 = torch.quantile(nll, torch.tensor([0.25, 0.5, 0.75], dtype=nll.dtype))
        self.center, self.spread = float(median), max(float(q3 - q1) / 1.349, 1e-12)
        self.calibrator = ScoreCalibrator(self._statistic(nll), 0.5)
        return self

    def _statistic(self, nll: Tensor) -> Tensor:
        return nll if self.tails == 1 else (nll - self.center).abs() / self.spread

    def score(self, x: Any) -> Tensor:
        """The test statistic per input, ``(N,)`` (an OOD score)."""
        if self.calibrator is None:
            raise RuntimeError("LikelihoodTest.score: call fit(x_validation) first")
        return self._statistic(-batched_log_prob("LikelihoodTest.score", self.model, x).double())

    def p_value(self, x: Any) -> Tensor:
        """Conformal p-values ``(N,)``; small = unusual."""
        return self.calibrator.p_values(self.score(x))  # type: ignore[union-attr]

    def threshold(self, fpr: float = 0.05) -> float:
        """Statistic threshold with false-positive rate at most ``fpr`` on in-distribution inputs."""
        if self.calibrator is None:
            raise ValueError("LikelihoodTest.threshold: needs in-distribution validation data; call fit(x_validation)")
        return threshold_at_fpr(self.calibrator.calibration_scores, fpr)


def random_batches(x: Any, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
    """Split ``x (N, *event)`` into ``N // batch_size`` random disjoint batches ``(B, batch_size, *event)``."""
    t = as_inputs("random_batches", x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= t.shape[0]:
        raise ValueError(f"random_batches: batch_size must be an int in 1..{t.shape[0]}, got {batch_size!r}")
    count = t.shape[0] // batch_size
    order = torch.randperm(t.shape[0], generator=generator)[:count * batch_size]
    return t[order].reshape(count, batch_size, *t.shape[1:])


class TypicalityTest:
    r"""The typicality test for batches of ``M`` inputs (Nalisnick et al. 2019).

    A batch is typical if its mean negative log-likelihood is close to the entropy of the
    data distribution, estimated as the mean :math:`\hat H` over in-distribution inputs:

    .. math::
        \hat\epsilon(x_{1:M}) = \Big\lvert -\frac1M \sum_{m=1}^M \log p(x_m) - \hat H \Big\rvert .

    The null distribution of :math:`\hat\epsilon` comes from ``bootstraps`` batches of size
    :math:`M` drawn with replacement from the validation inputs; the p-value of a batch is
    :math:`(1 + \#\{k : \hat\epsilon_k \ge \hat\epsilon\}) / (K + 1)`. Batches of inputs that
    are all *too likely* (constant images) are caught as well as unlikely ones.

    Args:
        model: anything with ``log_prob(x) -> (N,)``.
        batch_size: ``M``, the number of inputs tested together.
        bootstraps: ``K``.
        seed: seed of the bootstrap.

    References:
        Nalisnick, Matsukawa, Teh, Lakshminarayanan. "Detecting Out-of-Distribution Inputs to Deep
        Generative Models Using Typicality". arXiv:1906.02994, 2019.
    """

    def __init__(self, model: Any, batch_size: int, bootstraps: int = 2000, seed: int = 0) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"TypicalityTest: batch_size must be a positive int, got {batch_size!r}")
        if isinstance(bootstraps, bool) or not isinstance(bootstraps, int) or bootstraps < 20:
            raise ValueError(f"TypicalityTest: bootstraps must be an int >= 20, got {bootstraps!r}")
        self.model, self.batch_size, self.bootstraps, self.seed = model, batch_size, bootstraps, seed
        self.entropy: float | None = None
        self.null: Tensor | None = None

    def fit(self, x_validation: Any, x_entropy: Any = None) -> TypicalityTest:
        r"""Estimate :math:`\hat H` and bootstrap the null distribution on ``x_validation``.

        ``x_entropy`` (e.g. the training inputs, as in Nalisnick et al.) estimates :math:`\hat H`
        instead: the mean is sensitive to the heavy upper tail of held-out negative
        log-likelihoods, and a large training set gives a stable estimate.
        """
        nll = _reference_nll("TypicalityTest.fit", self.model, x_validation, 2)
        ref = nll if x_entropy is None else _reference_nll("TypicalityTest.fit", self.model, x_entropy, 1)
        self.entropy = float(ref.mean())
        gen = torch.Generator().manual_seed(self.seed)
        idx = torch.randint(nll.numel(), (self.bootstraps, self.batch_size), generator=gen)
        self.null = (nll[idx].mean(1) - self.entropy).abs().sort().values
        return self

    def statistic_from_nll(self, nll: Any) -> Tensor:
        r""":math:`\hat\epsilon` for negative log-likelihoods ``(B, M)`` of ``B`` batches."""
        if self.entropy is None:
            raise RuntimeError("TypicalityTest: call fit(x_validation) first")
        t = torch.as_tensor(nll, dtype=torch.float64)
        if t.dim() != 2 or t.shape[1] != self.batch_size:
            raise ValueError(f"TypicalityTest: expected negative log-likelihoods of shape (B, {self.batch_size}), got "
                             f"{tuple(t.shape)}")
        return (t.mean(1) - self.entropy).abs()

    def statistic(self, batches: Any) -> Tensor:
        r""":math:`\hat\epsilon` per batch for ``batches (B, M, *event)`` (see :func:`random_batches`) -> ``(B,)``."""
        t = torch.as_tensor(batches)
        if t.dim() < 3 or t.shape[1] != self.batch_size:
            raise ValueError(f"TypicalityTest.statistic: expected batches of shape (B, {self.batch_size}, *event), got "
                             f"{tuple(t.shape)}")
        nll = -batched_log_prob("TypicalityTest.statistic", self.model, t.reshape(-1, *t.shape[2:])).double()
        return self.statistic_from_nll(nll.reshape(t.shape[0], self.batch_size))

    def p_value(self, batches: Any) -> Tensor:
        """Bootstrap p-values ``(B,)`` of the batches; small = atypical."""
        eps = self.statistic(batches)
        above = self.null.numel() - torch.searchsorted(self.null, eps, right=False)  # type: ignore[union-attr]
        return (1.0 + above.double()) / (self.null.numel() + 1.0)  # type: ignore[union-attr]

    def threshold(self, fpr: float = 0.05) -> float:
        r"""Threshold on :math:`\hat\epsilon` with false-positive rate about ``fpr`` under the bootstrap null."""
        if self.null is None:
            raise ValueError("TypicalityTest.threshold: needs in-distribution validation data; call fit(x_validation)")
        return threshold_at_fpr(self.null, fpr)
