"""Statistical helpers for the task tests: goodness of fit of samples against a 2-D log-density."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats


def grid_chi2_pvalue(samples: torch.Tensor, log_density, lo, hi, bins: int = 16, sub: int = 16,
                     min_expected: float = 5.0, inside_only: bool = False) -> float:
    """Pearson chi-square p-value of 2-D ``samples`` against an unnormalised ``log_density``.

    The density is integrated over each of ``bins x bins`` cells of the box ``[lo, hi]`` with a
    ``sub x sub`` midpoint rule and normalised over the box (so the box must hold essentially all
    the mass; samples outside it count against the fit, unless ``inside_only`` compares the
    distribution conditioned on the box). Cells with fewer than ``min_expected`` expected counts
    are pooled into one cell together with everything outside the box.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    m = bins * sub
    axes = [lo[d] + (np.arange(m) + 0.5) * (hi[d] - lo[d]) / m for d in range(2)]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    pts = torch.from_numpy(np.stack([g0.ravel(), g1.ravel()], -1))
    logp = torch.cat([log_density(chunk) for chunk in pts.split(65536)]).double().numpy()
    dens = np.exp(logp - logp.max()).reshape(bins, sub, bins, sub).sum((1, 3))
    expected_prob = dens / dens.sum()
    x = samples.double().numpy()
    if inside_only:
        x = x[((x >= lo) & (x <= hi)).all(1)]
    n = x.shape[0]
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins,
                                  range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    outside = n - counts.sum()
    expected = expected_prob.ravel() * n
    observed = counts.ravel()
    big = expected >= min_expected
    exp_cells = np.append(expected[big], expected[~big].sum())
    obs_cells = np.append(observed[big], observed[~big].sum() + outside)
    if exp_cells[-1] < min_expected:
        if obs_cells[-1] > 3 * min_expected:
            return 0.0
        exp_cells, obs_cells = exp_cells[:-1], obs_cells[:-1]
        obs_cells = obs_cells * (exp_cells.sum() / obs_cells.sum())
    chi2 = float(((obs_cells - exp_cells) ** 2 / exp_cells).sum())
    return float(stats.chi2.sf(chi2, df=len(exp_cells) - 1))
