"""Base distributions for flows: standard normal, diagonal Gaussian, Gaussian mixture."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor, nn

from .module import Shape, as_shape

__all__ = ["AbstractBase", "StandardNormal", "DiagonalGaussian", "GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


class AbstractBase(nn.Module):
    """A base distribution over events of shape ``event_shape``; dtype/device follow the module.

    Subclasses implement ``log_prob(z) -> (B,)`` and ``rsample(n, generator) -> (n, *event)``.
    """

    def __init__(self, event_shape: int | SequenceABC[int]) -> None:
        super().__init__()
        self.event_shape: Shape = as_shape(event_shape, "event_shape")
        # A zero-size buffer that carries dtype and device through .to() / .double().
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self._ref.dtype

    @property
    def device(self) -> torch.device:
        return self._ref.device

    def _check(self, z: Tensor) -> None:
        if z.dim() != len(self.event_shape) + 1 or tuple(z.shape[1:]) != self.event_shape:
            raise ValueError(
                f"{type(self).__name__}: expected shape (batch, *{self.event_shape}), "
                f"got {tuple(z.shape)}"
            )

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.rsample(n, generator)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


class StandardNormal(AbstractBase):
    r"""Standard normal :math:`\mathcal N(0, I)` over ``event_shape``."""

    def log_prob(self, z: Tensor) -> Tensor:
        self._check(z)
        d = math.prod(self.event_shape)
        return -0.5 * (z.reshape(z.shape[0], -1).square().sum(1) + d * _LOG_2PI)

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn((n, *self.event_shape), generator=generator, dtype=self.dtype, device=self.device)


class DiagonalGaussian(AbstractBase):
    r"""Gaussian :math:`\mathcal N(\mu, \mathrm{diag}(\sigma^2))`, optionally learnable.

    Args:
        event_shape: event shape.
        loc: initial mean (broadcast to the event shape), default 0.
        scale: initial standard deviation (broadcast), default 1.
        learnable: whether ``loc`` and ``log_scale`` are parameters.
    """

    def __init__(self, event_shape: int | SequenceABC[int], loc: float | Tensor = 0.0,
                 scale: float | Tensor = 1.0, learnable: bool = True) -> None:
        super().__init__(event_shape)
        loc_t = torch.zeros(self.event_shape) + torch.as_tensor(loc, dtype=torch.get_default_dtype())
        log_scale = torch.zeros(self.event_shape) + torch.as_tensor(scale, dtype=torch.get_default_dtype()).log()
        if learnable:
            self.loc = nn.Parameter(loc_t)
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("loc", loc_t)
            self.register_buffer("log_scale", log_scale)

    def log_prob(self, z: Tensor) -> Tensor:
        self._check(z)
        u = (z - self.loc) * torch.exp(-self.log_scale)
        d = math.prod(self.event_shape)
        return -0.5 * (u.square().reshape(z.shape[0], -1).sum(1) + d * _LOG_2PI) - self.log_scale.sum()

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn((n, *self.event_shape), generator=generator, dtype=self.loc.dtype,
                          device=self.loc.device)
        return self.loc + eps * torch.exp(self.log_scale)


class GaussianMixture(AbstractBase):
    r"""Mixture of diagonal Gaussians over vectors, with learnable means, scales and weights.

    .. math::
        p(z) = \sum_k \pi_k \, \mathcal N(z; \mu_k, \mathrm{diag}(\sigma_k^2))

    Used as the latent distribution of latent-mixture / IB-INN classifiers, where
    :meth:`component_log_prob` gives :math:`\log \mathcal N(z; \mu_k, \sigma_k)` per component.

    Args:
        components: number of components ``K``.
        features: event size ``D``.
        means: optional initial means ``(K, D)`` (default: ``N(0, I)`` draws from ``generator``).
        scale: initial standard deviation of every component.
        learn_means / learn_scales / learn_weights: which parameters are trained.
        generator: random generator for the initial means.
    """

    def __init__(self, components: int, features: int, means: Tensor | None = None,
                 scale: float = 1.0, learn_means: bool = True, learn_scales: bool = True,
                 learn_weights: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__((features,))
        if components < 1:
            raise ValueError(f"GaussianMixture: components must be >= 1, got {components}")
        if means is None:
            means = torch.randn(components, features, generator=generator)
        means = torch.as_tensor(means, dtype=torch.get_default_dtype())
        if means.shape != (components, features):
            raise ValueError(
                f"GaussianMixture: expected means of shape {(components, features)}, got {tuple(means.shape)}"
            )
        params = {
            "means": (means.clone(), learn_means),
            "log_scales": (torch.full((components, features), math.log(scale)), learn_scales),
            "logits": (torch.zeros(components), learn_weights),
        }
        for name, (value, learn) in params.items():
            if learn:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def component_log_prob(self, z: Tensor) -> Tensor:
        """``log N(z; mu_k, sigma_k)`` for every component, shape ``(B, K)``."""
        self._check(z)
        u = (z[:, None, :] - self.means) * torch.exp(-self.log_scales)
        return -0.5 * (u.square().sum(-1) + z.shape[1] * _LOG_2PI) - self.log_scales.sum(-1)

    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, 0)

    def log_prob(self, z: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_prob(z) + self.log_weights(), dim=1)

    def rsample(self, n: int, generator: torch.Generator | None = None,
                component: Tensor | None = None) -> Tensor:
        """Samples; ``component`` (shape ``(n,)``) fixes each sample's component if given."""
        if component is None:
            probs = torch.softmax(self.logits.detach(), 0)
            component = torch.multinomial(probs, n, replacement=True, generator=generator)
        eps = torch.randn((n, self.event_shape[0]), generator=generator, dtype=self.means.dtype,
                          device=self.means.device)
        return self.means[component] + eps * torch.exp(self.log_scales[component])
