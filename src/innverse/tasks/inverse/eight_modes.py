"""The 8-modes toy inverse problem of Ardizzone et al. (2019): position x, colour label y."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC
from typing import Any

import torch
from torch import Tensor

from .base import AbstractInverseTask, split_observations

__all__ = ["EightModes", "EIGHT_MODES_LABELS"]

#: Label maps of the published toy: mode i gets colour ``labels[i]``.
EIGHT_MODES_LABELS: dict[str, tuple[int, ...]] = {
    "all": (0, 1, 2, 3, 4, 5, 6, 7),
    "some": (0, 0, 0, 0, 1, 1, 2, 3),
}


def _octagon(dtype: torch.dtype = torch.float64) -> Tensor:
    """Vertices of the regular octagon with corners (±(1+√2), ±1), (±1, ±(1+√2)), in order."""
    a, b = 1.0 + math.sqrt(2.0), 1.0
    pts = [(-a, b), (-b, a), (b, a), (a, b), (a, -b), (b, -a), (-b, -a), (-a, -b)]
    return torch.tensor(pts, dtype=dtype)


class EightModes(AbstractInverseTask):
    r"""Gaussian mixture with 8 modes on an octagon; the observation is the colour of the mode.

    Generative model: component :math:`k \sim U\{0..7\}`, position
    :math:`x = \mu_k + \sigma\varepsilon` with :math:`\varepsilon \sim \mathcal N(0, I_2)`, and
    observation :math:`y = \mathrm{onehot}(\ell_k)` where :math:`\ell` maps modes to colours.
    With ``labels="some"`` (the paper's ambiguous setting) colour 0 covers four modes and
    colour 1 two, so their posteriors are 4- and 2-modal:

    .. math::
        p(x \mid y = \mathrm{onehot}(c)) = \frac{1}{|M_c|} \sum_{k \in M_c}
        \mathcal N(x;\, \mu_k, \sigma^2 I), \qquad M_c = \{k : \ell_k = c\}.

    Adjacent modes are 2 apart (10 sigma for the default sigma = 0.2), so the forward process used
    for re-simulation, :math:`s(x) = \mathrm{onehot}(\ell_{k^*(x)})` with :math:`k^*` the nearest
    mode, equals the generating label except with probability below 1e-6.

    Args:
        labels: ``"some"``, ``"all"`` or an explicit sequence of 8 colour indices (0-based,
            every colour from 0 to max used).
        sigma: standard deviation of each mode.

    References:
        Ardizzone, Kruse, Wirkert, Rahner, Pellegrini, Klessen, Maier-Hein, Rother, Köthe.
        "Analyzing Inverse Problems with Invertible Neural Networks". ICLR 2019, Sec. 4.1.
    """

    name = "eight_modes"
    x_dim = 2
    parameter_names = ("x1", "x2")

    def __init__(self, labels: str | SequenceABC[int] = "some", sigma: float = 0.2) -> None:
        if isinstance(labels, str):
            if labels not in EIGHT_MODES_LABELS:
                raise ValueError(f"EightModes: labels must be one of {sorted(EIGHT_MODES_LABELS)} or "
                                 f"a sequence of 8 ints, got {labels!r}")
            labels = EIGHT_MODES_LABELS[labels]
        lab = tuple(int(v) for v in labels)
        if len(lab) != 8 or min(lab) < 0 or set(lab) != set(range(max(lab) + 1)):
            raise ValueError(f"EightModes: labels must give each of the 8 modes a colour in "
                             f"0..C-1 using every colour, got {lab}")
        if not sigma > 0:
            raise ValueError(f"EightModes: sigma must be positive, got {sigma}")
        self.labels = lab
        self.sigma = float(sigma)
        self.y_dim = max(lab) + 1
        self.observation_names = tuple(f"colour{c}" for c in range(self.y_dim))
        self.centers = _octagon()
        self._label_of = torch.tensor(lab)

    def config(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "sigma": self.sigma}

    def modes_of(self, colour: int) -> Tensor:
        """Centres ``(m, 2)`` of the modes with colour ``colour``."""
        if not 0 <= colour < self.y_dim:
            raise ValueError(f"EightModes: colour must be in 0..{self.y_dim - 1}, got {colour}")
        return self.centers[self._label_of == colour]

    def _one_hot(self, colour: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(colour, self.y_dim).to(torch.float64)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.sample_joint(n, generator)[0]

    def sample_joint(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        n = self._check_count(n, "sample_joint")
        k = torch.randint(0, 8, (n,), generator=generator)
        x = self.centers[k] + self.sigma * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x, self._one_hot(self._label_of[k])

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = self.check_x(x)
        nearest = torch.cdist(x, self.centers.to(x)).argmin(1)
        out = self._one_hot(self._label_of[nearest])
        out[~torch.isfinite(x).all(1)] = math.nan
        return out

    def colour_of(self, y: Tensor) -> Tensor:
        """The colour index ``(batch,)`` of one-hot observations (the arg-max entry)."""
        return self.check_y(y).argmax(1)

    def reference_posterior(self, y_obs: Tensor, n: int,
                            generator: torch.Generator | None = None) -> Tensor:
        """Exact samples of :math:`p(x \\mid y)`: ``(n, 2)`` for one y ``(C,)``, ``(n, *batch, 2)`` for ``(*batch, C)``."""
        n = self._check_count(n, "reference_posterior")
        ys, batch = split_observations("EightModes.reference_posterior", y_obs, self.y_dim)
        out = []
        for colour in self.colour_of(ys).tolist():
            modes = self.modes_of(colour)
            pick = torch.randint(0, modes.shape[0], (n,), generator=generator)
            out.append(modes[pick] + self.sigma * torch.randn(n, 2, generator=generator,
                                                              dtype=torch.float64))
        return torch.stack(out, 1).reshape(n, *batch, 2)

    def reference_log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """Exact :math:`\\log p(x \\mid y)` for matching batches ``x (B, 2)``, ``y (B, C)``."""
        x, colour = self.check_x(x), self.colour_of(y)
        d2 = torch.cdist(x, self.centers).square()                     # (B, 8)
        comp = -0.5 * d2 / self.sigma**2 - math.log(2 * math.pi * self.sigma**2)
        member = self._label_of[None, :] == colour[:, None]
        comp = comp.masked_fill(~member, -math.inf)
        return torch.logsumexp(comp, 1) - torch.log(member.sum(1).to(x))
