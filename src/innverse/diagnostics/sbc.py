"""Simulation-based calibration: ranks of true parameters among posterior samples, and their tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .._tensors import check_finite, to_tensor
from .ecdf import ECDFBand, uniformity_test

__all__ = ["sbc_ranks", "sbc_test", "randomized_pit", "rank_histogram", "check_samples_truth"]


def check_samples_truth(samples: Any, truth: Any, owner: str) -> tuple[Tensor, Tensor]:
    """Posterior samples ``(L, k, D)`` and true values ``(k, D)`` as finite float64 tensors.

    ``(L, k)`` with ``(k,)`` is read as one parameter.
    """
    s = to_tensor(samples, "samples", owner, torch.float64).detach()
    t = to_tensor(truth, "truth", owner, torch.float64).detach().to(s.device)
    if s.dim() == 2 and t.dim() == 1:
        s, t = s[..., None], t[:, None]
    if s.dim() != 3 or t.dim() != 2:
        raise ValueError(f"{owner}: expected samples (L, k, D) and truth (k, D), got samples "
                         f"{tuple(s.shape)} and truth {tuple(t.shape)}")
    if s.shape[1:] != t.shape:
        raise ValueError(f"{owner}: samples {tuple(s.shape)} do not match truth {tuple(t.shape)}: "
                         f"expected samples (L, {t.shape[0]}, {t.shape[1]})")
    if s.shape[0] < 1 or t.shape[0] < 2:
        raise ValueError(f"{owner}: needs at least 1 posterior sample and 2 data sets, got samples "
                         f"{tuple(s.shape)}")
    check_finite(s.reshape(s.shape[0], -1).T, "samples", owner)
    check_finite(t, "truth", owner)
    return s, t


#: offset of the tie-breaking seed, so that it never shares a stream with the PIT's seed
TIES_SEED_OFFSET = 7919


def _rank_with_ties(below: Tensor, equal: Tensor, seed: int) -> Tensor:
    """Rank = #below + a uniform draw from {0, ..., #equal} (random tie breaking)."""
    gen = torch.Generator().manual_seed(seed + TIES_SEED_OFFSET)
    u = torch.rand(below.shape, generator=gen, dtype=torch.float64).to(below.device)
    return below + torch.floor(u * (equal + 1)).to(below.dtype)


def sbc_ranks(samples: Any, truth: Any, *, seed: int = 0) -> Tensor:
    r"""SBC ranks :math:`r_{jd} = \#\{l : \theta^{(l)}_{jd} < \theta^*_{jd}\}` of the true values.

    For a calibrated posterior (samples drawn from the exact posterior of data simulated from
    the prior) each rank is uniform on :math:`\{0, \dots, L\}`. Ties (discrete parameters) are
    broken at random.

    Args:
        samples: posterior samples ``(L, k, D)``: ``L`` samples for each of ``k`` data sets.
        truth: the parameters the data sets were simulated from, ``(k, D)``.
        seed: seed of the tie breaking.

    Returns:
        Ranks ``(k, D)`` (int64), in ``0..L``.

    References:
        Talts, Betancourt, Simpson, Vehtari, Gelman. "Validating Bayesian Inference Algorithms
        with Simulation-Based Calibration". arXiv:1804.06788, 2018.
    """
    s, t = check_samples_truth(samples, truth, "sbc_ranks")
    return _rank_with_ties((s < t).sum(0), (s == t).sum(0), seed)


def randomized_pit(ranks: Tensor, num_samples: int, *, seed: int = 0) -> Tensor:
    r"""Continuous version of discrete ranks: :math:`u = (r + V) / (L + 1)`, :math:`V \sim U(0, 1)`.

    If :math:`r` is uniform on :math:`\{0..L\}`, :math:`u` is exactly uniform on :math:`(0, 1)`,
    so continuous uniformity tests apply without a discreteness correction.
    """
    gen = torch.Generator().manual_seed(seed)
    v = torch.rand(ranks.shape, generator=gen, dtype=torch.float64).to(ranks.device)
    return (ranks.to(torch.float64) + v) / (num_samples + 1)


def _check_ranks(ranks: Any, num_samples: int, owner: str) -> Tensor:
    r = to_tensor(ranks, "ranks", owner).detach()
    r = r[:, None] if r.dim() == 1 else r
    if r.dim() != 2:
        raise ValueError(f"{owner}: ranks must have shape (k, D), got {tuple(r.shape)}")
    check_finite(r, "ranks", owner)
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"{owner}: num_samples must be a positive integer, got {num_samples!r}")
    if bool(((r < 0) | (r > num_samples) | (r != r.round())).any()):
        raise ValueError(f"{owner}: ranks must be integers in 0..{num_samples} (num_samples)")
    if r.shape[0] < 2:
        raise ValueError(f"{owner}: needs ranks of at least 2 data sets, got {r.shape[0]}")
    return r.long()


def rank_histogram(ranks: Any, num_samples: int, *, bins: int | None = None,
                   level: float = 0.01) -> dict[str, Any]:
    r"""Histogram of SBC ranks with a binomial band per bin.

    Bin :math:`b` collects the ranks in ``[edges[b], edges[b+1])``; under calibration its count
    is :math:`\mathrm{Bin}(k, p_b)` with :math:`p_b` = (ranks in the bin) / (L + 1). The band is
    the central ``1 - level`` binomial interval of each bin (pointwise, as in Talts et al.).

    Args:
        ranks: ``(k, D)`` ranks in ``0..L``; num_samples: ``L``.
        bins: number of bins (default: about ``k / 10``, at most 50 and at most ``L + 1``).
        level: level of the pointwise band.

    Returns:
        ``{"edges", "counts" (D lists), "expected", "lower", "upper", "chi2_p_value" (per D)}``.

    Raises:
        ValueError: more bins than distinct ranks, or fewer than 5 expected ranks per bin.
    """
    r = _check_ranks(ranks, num_samples, "rank_histogram")
    k = r.shape[0]
    if bins is None:
        bins = int(max(2, min(50, num_samples + 1, k // 10)))
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"rank_histogram: bins must be an integer >= 2, got {bins!r}")
    if bins > num_samples + 1:
        raise ValueError(f"rank_histogram: {bins} bins requested but there are only "
                         f"{num_samples + 1} distinct ranks with {num_samples} posterior samples")
    if k / bins < 5:
        raise ValueError(f"rank_histogram: too few data sets for {bins} bins: {k} ranks give "
                         f"{k / bins:.1f} per bin (need >= 5); use bins <= {max(1, k // 5)} or "
                         "simulate more data sets")
    edges = np.floor(np.linspace(0, num_samples + 1, bins + 1) + 1e-9).astype(int)
    p = np.diff(edges) / (num_samples + 1)
    rn = r.cpu().numpy()
    counts = np.stack([np.histogram(rn[:, d], bins=edges)[0] for d in range(rn.shape[1])])
    expected = k * p
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "expected": expected.tolist(),
        "lower": stats.binom.ppf(level / 2, k, p).tolist(),
        "upper": stats.binom.ppf(1 - level / 2, k, p).tolist(),
        "chi2_p_value": stats.chi2.sf(chi2, bins - 1).tolist(),
    }


def sbc_test(ranks: Any, num_samples: int, *, level: float = 0.05, bins: int | None = None,
             band: ECDFBand | None = None, seed: int = 0, simulations: int = 5000) -> dict[str, Any]:
    r"""Test SBC ranks for uniformity, per parameter, with a verdict at ``level``.

    The ranks are turned into exactly uniform values by :func:`randomized_pit` and tested with
    the simultaneous ECDF band (:func:`~innverse.diagnostics.ecdf.uniformity_test`); the verdict
    is Bonferroni-corrected over the ``D`` parameters (a parameter fails when its p-value is
    below ``level / D``). The numeric calibration error per parameter is the largest ECDF
    deviation :math:`\max_z|\hat F(z) - z|`; the rank histogram's :math:`\chi^2` p-value is
    reported alongside.

    Returns:
        ``{"p_value", "calibration_error", "inside_band", "chi2_p_value", "histogram",
        "passed_per_parameter", "passed", "level", "num_samples", "num_datasets"}``.
    """
    r = _check_ranks(ranks, num_samples, "sbc_test")
    hist = rank_histogram(r, num_samples, bins=bins)
    u = randomized_pit(r, num_samples, seed=seed)
    res = uniformity_test(u, level=level, band=band, seed=seed, simulations=simulations)
    dims = r.shape[1]
    ok = [p >= level / dims for p in res["p_value"]]
    return {
        "p_value": res["p_value"],
        "calibration_error": res["max_deviation"],
        "inside_band": res["inside_band"],
        "chi2_p_value": hist["chi2_p_value"],
        "histogram": hist,
        "passed_per_parameter": ok,
        "passed": all(ok),
        "level": level,
        "num_samples": int(num_samples),
        "num_datasets": int(r.shape[0]),
    }
