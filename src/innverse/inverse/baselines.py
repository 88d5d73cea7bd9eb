"""The models the split-latent INN is compared with: a conditional INN and a point regressor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..blocks import Standardization
from ..core import Flow
from ..core import Sequence as InvSequence
from ..core.conditional import as_conditions, broadcast_value, check_count
from ..flows import coupling_flow
from ..nets.subnets import MLP

__all__ = ["ConditionalINN", "PointRegressor", "hidden_width_for"]


def _check_dims(owner: str, **dims: int) -> None:
    for nm, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{owner}: {nm} must be a positive int, got {v!r}")


class ConditionalINN(nn.Module):
    r"""Conditional INN posterior :math:`q(x \mid y)`: a coupling flow on x conditioned on y.

    A :class:`~innverse.core.Flow` over the composition [x standardisation] ∘ [coupling flow],
    conditioned on the standardised observation :math:`\tilde y` (its conditioning network):

    .. math::
        \log q(x \mid y) = \log \mathcal N(f(\tilde x; \tilde y); 0, I)
        + \log\lvert\det \partial f / \partial \tilde x\rvert - \textstyle\sum_d \log \sigma_{x,d},

    trained by maximum likelihood and sampled as :math:`x = \sigma_x f^{-1}(z; \tilde y) + \mu_x`,
    :math:`z \sim \mathcal N(0, I)`. Follows the conditional-density contract:
    ``sample(n, y)``, ``log_prob(x, y)``.

    Args:
        x_dim, y_dim: parameter and observation sizes (``x_dim >= 2``).
        blocks, hidden, coupling, permutation, clamp, seed: passed to ``coupling_flow``.

    References:
        Ardizzone, Lüth, Kruse, Rother, Köthe. "Guided Image Generation with Conditional
        Invertible Neural Networks". 2019; Kruse et al. "Benchmarking Invertible Architectures on
        Inverse Problems". 2021.
    """

    def __init__(self, x_dim: int, y_dim: int, blocks: int = 6, hidden: Sequence[int] = (128, 128),
                 coupling: str = "affine", permutation: str = "orthogonal", clamp: float = 2.0,
                 seed: int = 0) -> None:
        super().__init__()
        _check_dims("ConditionalINN", x_dim=x_dim, y_dim=y_dim)
        if x_dim < 2:
            raise ValueError(f"ConditionalINN: coupling flows need x_dim >= 2, got {x_dim}")
        self.x_dim, self.y_dim = x_dim, y_dim
        inn = coupling_flow(x_dim, context_features=y_dim, blocks=blocks, hidden=tuple(hidden), coupling=coupling,
                            permutation=permutation, clamp=clamp, seed=seed).transform
        self.y_norm = Standardization(y_dim, name="Standardization(y)")
        self.flow = Flow(InvSequence(Standardization(x_dim, name="Standardization(x)"), inn),
                         context_net=self.y_norm.standardize, context_shape=(y_dim,))

    @property
    def x_norm(self) -> Standardization:
        return self.flow.transform.blocks[0]  # type: ignore[return-value]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fit_normalization(self, x: Tensor, y: Tensor) -> ConditionalINN:
        self.x_norm.fit(x)
        self.y_norm.fit(y)
        return self

    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\log q(x \mid y)` in raw units: ``x (*s, D)`` with one ``y (y_dim,)`` -> ``(*s)``;
        ``x (*s, k, D)`` with ``y (k, y_dim)`` -> ``(*s, k)`` (``x (k, D)``: row ``i`` given ``y_i``)."""
        ys, single = as_conditions("ConditionalINN.log_prob", y, (self.y_dim,), "observation y")
        ref = self.x_norm.shift
        rows, index, shape = broadcast_value("ConditionalINN.log_prob", x.to(ref), (self.x_dim,),
                                             () if single else (ys.shape[0],), "x", "observation")
        return self.flow.log_prob(rows, ys.to(ref)[index]).reshape(shape)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean negative log-likelihood of paired rows ``x (B, D)``, ``y (B, y_dim)`` (what training minimises)."""
        return -self.log_prob(x, y).mean()

    @torch.no_grad()
    def sample(self, n: int, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Posterior samples: ``(n, x_dim)`` for ``y (y_dim,)``, ``(n, k, x_dim)`` for ``(k, y_dim)``."""
        n = check_count("ConditionalINN.sample", n)
        ys, single = as_conditions("ConditionalINN.sample", y, (self.y_dim,), "observation y")
        x = self.flow.sample(n, ys.to(self.x_norm.shift), generator)
        return x[:, 0] if single else x


class PointRegressor(nn.Module):
    r"""A plain point estimate :math:`\hat x(y)`: an MLP trained with the mean squared error.

    It converges to the posterior mean :math:`\mathbb E[x \mid y]`, which for a multimodal
    posterior may lie between the modes. :meth:`sample` returns the point estimate ``n`` times
    (a Dirac "posterior"), so it plugs into the same evaluation as real posteriors and shows
    what ignoring the ambiguity costs.

    Args:
        x_dim, y_dim: parameter and observation sizes.
        hidden: hidden widths of the MLP.
        activation: hidden activation.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        _check_dims("PointRegressor", x_dim=x_dim, y_dim=y_dim)
        self.x_dim, self.y_dim = x_dim, y_dim
        self.net = MLP(y_dim, x_dim, tuple(hidden), activation, zero_init=False)
        self.x_norm = Standardization(x_dim, name="Standardization(x)")
        self.y_norm = Standardization(y_dim, name="Standardization(y)")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fit_normalization(self, x: Tensor, y: Tensor) -> PointRegressor:
        self.x_norm.fit(x)
        self.y_norm.fit(y)
        return self

    def forward(self, y: Tensor) -> Tensor:
        """Point estimates ``(B, x_dim)`` for observations ``(B, y_dim)``."""
        ref = self.x_norm.shift
        return self.x_norm.unstandardize(self.net(self.y_norm.standardize(y.to(ref))))

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean squared error in standardised x units."""
        ref = self.x_norm.shift
        return (self.net(self.y_norm.standardize(y.to(ref))) - self.x_norm.standardize(x.to(ref))).square().sum(1).mean()

    @torch.no_grad()
    def sample(self, n: int, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The point estimate repeated: ``(n, x_dim)`` or ``(n, k, x_dim)`` (a Dirac "posterior"; no ``log_prob``)."""
        n = check_count("PointRegressor.sample", n)
        ys, single = as_conditions("PointRegressor.sample", y, (self.y_dim,), "observation y")
        x = self(ys).expand(n, -1, -1).clone()
        return x[:, 0] if single else x


def hidden_width_for(target: int, count: Callable[[int], int], low: int = 2, high: int = 8192) -> int:
    """The hidden width ``w`` in ``[low, high]`` whose parameter count ``count(w)`` is nearest ``target``.

    ``count`` must be non-decreasing in ``w`` (true for MLP widths). The bracket is found by
    doubling from ``low`` (so no model much larger than the target is ever built), then bisected;
    the better of the two neighbours wins.
    """
    if count(low) >= target:
        return low
    lo, hi = low, low
    while count(hi) < target:
        if hi >= high:
            raise ValueError(f"hidden_width_for: even width {high} has fewer than {target} parameters")
        lo, hi = hi, min(2 * hi, high)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return lo if abs(count(lo) - target) <= abs(count(hi) - target) else hi
