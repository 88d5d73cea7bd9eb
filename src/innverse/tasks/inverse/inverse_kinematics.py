"""Inverse kinematics of a planar arm on a vertical rail (Ardizzone et al. 2019; Kruse et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from typing import Any

import torch
from torch import Tensor

from .base import AbstractInverseTask

__all__ = ["InverseKinematics"]


class InverseKinematics(AbstractInverseTask):
    r"""A 4-DOF arm: rail height and three joint angles -> the 2-D position of the end point.

    Parameters :math:`x = (x_1, x_2, x_3, x_4)` with independent Gaussian priors
    :math:`x_i \sim \mathcal N(0, \sigma_i^2)`, :math:`\sigma = (1/4, 1/2, 1/2, 1/2)`. The arm
    starts at :math:`(0, x_1)` on a vertical rail; its three segments of lengths
    :math:`l = (1/2, 1/2, 1)` point at the cumulative angles :math:`\varphi_1 = x_2`,
    :math:`\varphi_2 = x_2 + x_3`, :math:`\varphi_3 = x_2 + x_3 + x_4` (measured from the
    horizontal axis). The observation is the end point

    .. math::
        y_1 = \sum_{j=1}^3 l_j \cos\varphi_j,\qquad y_2 = x_1 + \sum_{j=1}^3 l_j \sin\varphi_j .

    Four parameters, two observations: each end point is reached by a 2-D family of
    configurations, and the posterior is often bimodal (elbow up / elbow down).

    Args:
        lengths: segment lengths :math:`l`.
        sigmas: prior standard deviations :math:`\sigma`.

    References:
        Ardizzone et al. "Analyzing Inverse Problems with Invertible Neural Networks". ICLR 2019;
        Kruse, Ardizzone, Rother, Köthe. "Benchmarking Invertible Architectures on Inverse
        Problems". ICML Workshop on Invertible Neural Networks 2019 / arXiv:2101.10763 (2021).
    """

    name = "inverse_kinematics"
    x_dim = 4
    y_dim = 2
    parameter_names = ("rail", "angle1", "angle2", "angle3")
    observation_names = ("end_x", "end_y")

    def __init__(self, lengths: SequenceABC[float] = (0.5, 0.5, 1.0),
                 sigmas: SequenceABC[float] = (0.25, 0.5, 0.5, 0.5)) -> None:
        lengths, sigmas = tuple(float(v) for v in lengths), tuple(float(v) for v in sigmas)
        if len(lengths) != 3 or any(v <= 0 for v in lengths):
            raise ValueError(f"InverseKinematics: expected 3 positive segment lengths, got {lengths}")
        if len(sigmas) != 4 or any(v <= 0 for v in sigmas):
            raise ValueError(f"InverseKinematics: expected 4 positive prior sigmas, got {sigmas}")
        self.lengths, self.sigmas = lengths, sigmas

    def config(self) -> dict[str, Any]:
        return {"lengths": list(self.lengths), "sigmas": list(self.sigmas)}

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_count(n, "sample_prior")
        eps = torch.randn(n, 4, generator=generator, dtype=torch.float64)
        return eps * torch.tensor(self.sigmas, dtype=torch.float64)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the Gaussian prior, ``(batch,)``."""
        x = self.check_x(x)
        s = torch.tensor(self.sigmas, dtype=torch.float64)
        return torch.distributions.Normal(0.0, s).log_prob(x).sum(1)

    def joints(self, x: Tensor) -> Tensor:
        """Positions of the rail base, the two inner joints and the end point, ``(batch, 4, 2)``."""
        x = self.check_x(x)
        phi = torch.cumsum(x[:, 1:], 1)                                 # (B, 3)
        steps = torch.stack([torch.cos(phi), torch.sin(phi)], -1)       # (B, 3, 2)
        steps = steps * torch.tensor(self.lengths, dtype=torch.float64)[None, :, None]
        base = torch.stack([torch.zeros_like(x[:, 0]), x[:, 0]], 1)[:, None]
        return torch.cat([base, base + torch.cumsum(steps, 1)], 1)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.joints(x)[:, -1]
