r"""The latent-mixture INN: an invertible map to a latent space with one Gaussian per class."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import Flatten
from ..core import AbstractInvertible, Flow, GaussianMixture, Sequence
from ..core.conditional import broadcast_value, check_count
from ._inputs import as_labels

__all__ = ["LatentMixtureINN", "spread_means"]


def spread_means(classes: int, features: int, distance: float, generator: torch.Generator | None = None) -> Tensor:
    r"""Initial class means ``(K, D)`` at pairwise distance ``distance``.

    With :math:`D \ge K` the means are :math:`\mu_k = (\text{distance}/\sqrt{2m})\sum_{j<m} e_{jK+k}`,
    :math:`m = \lfloor D/K \rfloor`: orthogonal, of equal norm :math:`\text{distance}/\sqrt 2`,
    so every pair is ``distance`` apart (the initialisation of Ardizzone et al. 2020). With
    :math:`D < K` they are random directions from ``generator`` scaled to that norm.
    """
    if classes < 2 or features < 1 or not distance > 0:
        raise ValueError(f"spread_means: needs classes >= 2, features >= 1 and distance > 0, got {classes}, "
                         f"{features}, {distance}")
    if features < classes:
        u = torch.randn(classes, features, generator=generator)
        return u / u.norm(dim=1, keepdim=True) * distance / math.sqrt(2)
    m = features // classes
    means = torch.zeros(classes, features)
    for j in range(m):
        means[:, j * classes:(j + 1) * classes] = torch.eye(classes)
    return means * distance / math.sqrt(2 * m)


class LatentMixtureINN(nn.Module):
    r"""A generative classifier: an INN :math:`z = f(x)` with a Gaussian per class in latent space.

    .. math::
        p(x \mid y) = \mathcal N\big(f(x); \mu_y, \mathrm{diag}\,\sigma_y^2\big)\,
            \lvert\det \partial f/\partial x\rvert,\qquad
        p(x) = \sum_y \pi_y\, p(x \mid y),\qquad
        p(y \mid x) = \frac{\pi_y \mathcal N(f(x); \mu_y, \sigma_y)}{\sum_{y'} \pi_{y'} \mathcal N(f(x); \mu_{y'}, \sigma_{y'})}

    (Bayes' rule; the Jacobian cancels). The latent density is a
    :class:`~innverse.core.GaussianMixture` with learnable means, unit scales (learnable with
    ``learn_scales``) and uniform class weights :math:`\pi` (learnable with ``learn_weights``);
    :attr:`flow` is the marginal :math:`p(x)` as a :class:`~innverse.core.Flow`, so every score
    that takes a flow takes this model too. Follows the conditional-density contract with
    integer labels as the condition: ``sample(n, y)``, ``log_prob(x, y)``.

    Args:
        transform: the INN ``f``; a non-vector output is flattened.
        classes: number of classes ``K >= 2``.
        mean_distance: initial pairwise distance of the class means (:func:`spread_means`).
        learn_weights: learn the class weights :math:`\pi` (else uniform and fixed).
        learn_scales: learn per-class diagonal scales (else :math:`\sigma = 1`, as in the IB-INN).
        generator: random source of the initial means when ``D < K``.

    References:
        Ardizzone, Mackowiak, Rother, Köthe. "Training Normalizing Flows with the Information
        Bottleneck for Competitive Generative Classification". NeurIPS 2020;
        Mackowiak, Ardizzone, Köthe, Rother. "Generative Classifiers as a Basis for Trustworthy
        Image Classification". CVPR 2021.
    """

    def __init__(self, transform: AbstractInvertible, classes: int, mean_distance: float = 5.0,
                 learn_weights: bool = False, learn_scales: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(transform, AbstractInvertible):
            raise TypeError(f"LatentMixtureINN: transform must be an invertible module, got {type(transform).__name__}")
        if transform.conditional:
            raise ValueError("LatentMixtureINN: the transform must be unconditional (the class enters through the "
                             "latent mixture)")
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"LatentMixtureINN: needs classes >= 2, got {classes!r}")
        if len(transform.output_shape) != 1:
            transform = Sequence(transform, Flatten(transform.output_shape))
        features = transform.output_shape[0]
        base = GaussianMixture(classes, features, spread_means(classes, features, mean_distance, generator),
                               scale=1.0, learn_means=True, learn_scales=learn_scales, learn_weights=learn_weights)
        self.flow = Flow(transform, base, validate_args=False)
        self.classes = classes

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.flow.event_shape

    @property
    def latent_features(self) -> int:
        """The latent dimension ``D`` (= the number of input elements)."""
        return self.flow.base.event_shape[0]

    @property
    def mixture(self) -> GaussianMixture:
        return self.flow.base  # type: ignore[return-value]

    def _rows(self, owner: str, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        n = len(self.event_shape)
        if not isinstance(x, Tensor) or x.dim() < n or tuple(x.shape[x.dim() - n:]) != self.event_shape:
            raise ValueError(f"{owner}: expected x of shape (*, {', '.join(map(str, self.event_shape))}), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        lead = tuple(x.shape[:x.dim() - n])
        return x.reshape(-1, *self.event_shape), lead

    def latent(self, x: Tensor, log_det: bool = True) -> tuple[Tensor, Tensor | None]:
        """``z = f(x)`` ``(B, D)`` and ``log|det ∂f/∂x|`` ``(B,)`` for ``x (B, *event)``."""
        return self.flow.transform(x, log_det=log_det)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log \pi_k + \log p(x \mid k)` for every class: ``x (*, *event) -> (*, K)``."""
        rows, lead = self._rows("LatentMixtureINN.joint_log_prob", x)
        z, ld = self.latent(rows)
        joint = self.mixture.component_log_prob(z) + self.mixture.log_weights() + ld[:, None]
        return joint.reshape(*lead, self.classes)

    def class_log_likelihood(self, x: Tensor) -> Tensor:
        r"""The per-class likelihoods :math:`\log p(x \mid k)`: ``x (*, *event) -> (*, K)``."""
        return self.joint_log_prob(x) - self.mixture.log_weights()

    def class_log_posterior(self, x: Tensor) -> Tensor:
        r""":math:`\log p(k \mid x)` by Bayes' rule on the latent mixture: ``x (*, *event) -> (*, K)``."""
        rows, lead = self._rows("LatentMixtureINN.class_log_posterior", x)
        z, _ = self.latent(rows, log_det=False)
        logits = self.mixture.component_log_prob(z) + self.mixture.log_weights()
        return torch.log_softmax(logits, -1).reshape(*lead, self.classes)

    def log_prob(self, x: Tensor, y: Any = None) -> Tensor:
        r""":math:`\log p(x)` (``y`` None) or :math:`\log p(x \mid y)`.

        Shapes: ``x (*s, *event) -> (*s)`` without a label or with one label ``y`` (an int);
        with ``k`` labels ``y (k,)``, ``x (*s, k, *event) -> (*s, k)`` (``x (k, *event)``: row
        ``i`` under label ``i``).
        """
        if y is None:
            return torch.logsumexp(self.joint_log_prob(x), -1)
        labels, single = as_labels("LatentMixtureINN.log_prob", y, self.classes)
        batch = () if single else (labels.shape[0],)
        rows, index, shape = broadcast_value("LatentMixtureINN.log_prob", x, self.event_shape, batch, "x", "label")
        ll = self.class_log_likelihood(rows)
        return ll.gather(1, labels.to(ll.device)[index][:, None]).reshape(shape)

    def rsample(self, n: int, y: Any, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """Differentiable samples of ``x | y``: ``(n, *event)`` for one label, ``(n, k, *event)`` for ``k`` labels.

        ``temperature`` scales the latent deviation from the class mean (``< 1``: more typical samples).
        """
        n = check_count("LatentMixtureINN.sample", n)
        labels, single = as_labels("LatentMixtureINN.sample", y, self.classes)
        component = labels.to(self.mixture.means.device).repeat(n)  # rows ordered (n, k)
        mu = self.mixture.means[component]
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + temperature * eps * torch.exp(self.mixture.log_scales[component])
        x, _ = self.flow.transform.inverse(z, log_det=False)
        x = x.reshape(n, labels.shape[0], *self.event_shape)
        return x[:, 0] if single else x

    @torch.no_grad()
    def sample(self, n: int, y: Any, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """Samples of ``x | y`` without gradient; shapes as :meth:`rsample`."""
        return self.rsample(n, y, generator, temperature)
