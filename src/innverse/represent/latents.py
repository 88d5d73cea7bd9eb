r"""Reading a GIN's latent space: the spectrum of latent standard deviations, informative dimensions, MCC, traversals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .gin import GIN
from .training import check_inputs, check_labelled

__all__ = ["LatentSpectrum", "MatchedCorrelation", "count_informative", "latent_spectrum", "latent_traversals",
           "mean_correlation_coefficient"]


def count_informative(stds: Tensor, threshold: float | None = None, method: str = "split") -> int:
    r"""Estimate how many latent dimensions carry information from their standard deviations.

    Sort :math:`\sigma_{(1)} \ge \dots \ge \sigma_{(D)}`, :math:`\ell_j = \log\sigma_{(j)}`.

    * ``method="split"`` (default): the two-group split of the log spectrum with the least
      within-group sum of squares (1-D two-means, Otsu's criterion),
      :math:`\hat k = \arg\min_k \sum_{j\le k}(\ell_j - \bar\ell_{\le k})^2 + \sum_{j>k}(\ell_j - \bar\ell_{>k})^2`.
      The noise dimensions of a volume-preserving flow are squeezed to a common floor, while the
      informative ones may differ from each other by decades; the split weighs the spread of
      both groups, so one large gap between two informative dimensions does not end the count.
    * ``method="gap"``: the largest gap on the log scale,
      :math:`\hat k = \arg\max_{j<D} \ell_j - \ell_{j+1}` (counts too few when two informative
      dimensions are further apart than the smallest of them is from the noise floor).
    * ``threshold``: the number of dimensions with :math:`\sigma >` ``threshold`` (``method`` unused).
    """
    s = torch.as_tensor(stds, dtype=torch.float64).flatten()
    if s.numel() < 2 or not bool((s > 0).all()):
        raise ValueError(f"count_informative: needs at least 2 positive standard deviations, got {s.tolist()}")
    if method not in ("split", "gap"):
        raise ValueError(f"count_informative: method must be 'split' or 'gap', got {method!r}")
    if threshold is not None:
        return int((s > threshold).sum())
    log_s = s.sort(descending=True).values.log()
    if method == "gap":
        return int((log_s[:-1] - log_s[1:]).argmax()) + 1
    k = torch.arange(1, log_s.numel(), dtype=torch.float64)
    head, total = log_s.cumsum(0)[:-1], log_s.sum()
    head_sq, total_sq = log_s.square().cumsum(0)[:-1], log_s.square().sum()
    n_tail = log_s.numel() - k
    within = head_sq - head.square() / k + (total_sq - head_sq) - (total - head).square() / n_tail
    return int(within.argmin()) + 1


@dataclass(frozen=True)
class LatentSpectrum:
    """Standard deviations of the latent dimensions over a data set, largest first.

    Attributes:
        stds: ``(D,)`` sorted descending.
        order: ``(D,)`` latent index of each entry of ``stds`` (``order[0]`` is the most variable dimension).
        informative: the estimate :func:`count_informative` (two-group split of the log spectrum).
    """

    stds: Tensor
    order: Tensor
    informative: int

    def by_index(self) -> Tensor:
        """The standard deviations in latent order, ``(D,)`` (``by_index()[order[0]] == stds[0]``)."""
        return self.stds[self.order.argsort()]

    def top(self, k: int | None = None) -> Tensor:
        """Indices of the ``k`` (default: ``informative``) most variable latent dimensions."""
        return self.order[:self.informative if k is None else k]


@torch.no_grad()
def latent_spectrum(gin: GIN, x: Tensor, u: Tensor | None = None, batch_size: int = 4096) -> LatentSpectrum:
    r"""The :class:`LatentSpectrum` of ``gin``'s latents over data ``x (N, *input_shape)``.

    With labels ``u (N,)`` the spectrum is the root mean square over classes of the per-class
    standard deviations, :math:`\sigma_i = (\frac1K\sum_u \hat\sigma_{u,i}^2)^{1/2}` (how the
    GIN paper ranks its latents: the variability within classes, which the class-conditional
    Gaussians model); without, the standard deviation over all of ``x``.
    """
    check_inputs("latent_spectrum", x, gin.input_shape)
    if x.shape[0] < 2:
        raise ValueError(f"latent_spectrum: needs at least 2 inputs, got {x.shape[0]}")
    z = torch.cat([gin.latent(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    if u is None:
        stds = z.std(0)
    else:
        _, u = check_labelled("latent_spectrum", x, u, gin.input_shape, gin.classes)
        per_class = [z[u == k].std(0) for k in range(gin.classes) if int((u == k).sum()) >= 2]
        if not per_class:
            raise ValueError("latent_spectrum: no class has 2 examples")
        stds = torch.stack(per_class).square().mean(0).sqrt()
    stds, order = stds.sort(descending=True)
    return LatentSpectrum(stds, order, count_informative(stds))


@dataclass(frozen=True)
class MatchedCorrelation:
    """Correlations between true and recovered latents after the best one-to-one matching.

    Attributes:
        mcc: mean absolute correlation of the matched pairs.
        correlations: ``(k,)`` absolute correlation of each true latent with its match.
        assignment: ``(k,)`` index of the recovered latent matched to each true latent.
    """

    mcc: float
    correlations: Tensor
    assignment: Tensor


def mean_correlation_coefficient(true: Tensor, recovered: Tensor, method: str = "pearson") -> MatchedCorrelation:
    r"""The mean correlation coefficient (MCC) of nonlinear-ICA evaluation.

    :math:`\rho_{ij} = |\mathrm{corr}(s_i, \hat z_j)|` for true latents ``true (N, k)`` and
    recovered ones ``recovered (N, m)`` (``m >= k``); the matching :math:`\pi` maximising
    :math:`\sum_i \rho_{i\pi(i)}` is found by the Hungarian algorithm, and
    :math:`\mathrm{MCC} = \frac1k \sum_i \rho_{i\pi(i)}`. ``method="spearman"`` correlates ranks
    (invariant to monotone elementwise maps, the identifiability class of nonlinear ICA).
    """
    from scipy.optimize import linear_sum_assignment

    if method not in ("pearson", "spearman"):
        raise ValueError(f"mean_correlation_coefficient: method must be 'pearson' or 'spearman', got {method!r}")
    for name, t in (("true", true), ("recovered", recovered)):
        if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[0] < 3:
            raise ValueError(f"mean_correlation_coefficient: {name} must be a tensor (N, k) with N >= 3, got "
                             f"{tuple(getattr(t, 'shape', ()))}")
    if true.shape[0] != recovered.shape[0] or recovered.shape[1] < true.shape[1]:
        raise ValueError(f"mean_correlation_coefficient: needs the same N and at least as many recovered as true "
                         f"latents, got {tuple(true.shape)} and {tuple(recovered.shape)}")
    a, b = true.detach().double().cpu(), recovered.detach().double().cpu()
    if method == "spearman":
        a, b = a.argsort(0).argsort(0).double(), b.argsort(0).argsort(0).double()
    a = (a - a.mean(0)) / a.std(0).clamp_min(1e-300)
    b = (b - b.mean(0)) / b.std(0).clamp_min(1e-300)
    rho = (a.T @ b / (a.shape[0] - 1)).abs()
    rows, cols = linear_sum_assignment(-rho.numpy())
    corr = rho[torch.from_numpy(rows), torch.from_numpy(cols)]
    return MatchedCorrelation(float(corr.mean()), corr, torch.from_numpy(np.asarray(cols)))


@torch.no_grad()
def latent_traversals(gin: GIN, x: Tensor, dims: Sequence[int], steps: int = 9, span: float = 2.0,
                      stds: Tensor | None = None) -> Tensor:
    r"""Inputs generated by moving one latent at a time: ``(len(dims), steps, *input_shape)``.

    For the latent :math:`z = f(x)` of one reference input ``x (1, *input_shape)`` (or
    ``(*input_shape)``), row ``r`` sets :math:`z_{d_r} \leftarrow z_{d_r} + t\,\sigma_{d_r}`
    for ``steps`` values :math:`t` evenly spaced in ``[-span, span]`` and inverts the flow
    (:math:`\sigma`: ``stds`` by latent index, default 1).
    """
    if x.dim() == len(gin.input_shape):
        x = x[None]
    check_inputs("latent_traversals", x, gin.input_shape)
    if x.shape[0] != 1:
        raise ValueError(f"latent_traversals: expected one reference input, got {x.shape[0]}")
    d = gin.latent_features
    dims = [int(i) for i in dims]
    if not dims or any(not 0 <= i < d for i in dims) or steps < 2:
        raise ValueError(f"latent_traversals: dims must be latent indices in 0..{d - 1} and steps >= 2, got {dims} "
                         f"and {steps}")
    z0 = gin.latent(x)[0]
    scale = torch.ones(d, dtype=z0.dtype) if stds is None else torch.as_tensor(stds, dtype=z0.dtype)
    t = torch.linspace(-span, span, steps, dtype=z0.dtype)
    z = z0.repeat(len(dims), steps, 1)
    for r, i in enumerate(dims):
        z[r, :, i] = z0[i] + t * scale[i]
    return gin.invert(z.reshape(-1, d)).reshape(len(dims), steps, *gin.input_shape)
