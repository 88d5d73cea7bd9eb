r"""The information-bottleneck loss of the IB-INN, as a loss of the one training loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..train import LossFn, Step
from .latent_mixture import LatentMixtureINN

__all__ = ["IBLoss"]


@dataclass(frozen=True)
class IBLoss:
    r"""The IB-INN objective :math:`\mathcal L = \frac{2}{1+\beta}\mathcal L_X - \frac{2\beta}{1+\beta}\mathcal L_Y`.

    With :math:`\tilde x = x + \delta u + \sigma\varepsilon` (uniform dequantisation of bin
    width :math:`\delta`, :math:`u \sim U[0,1)^D`, and the small Gaussian noise of the paper's
    "controlled information loss", :math:`\varepsilon \sim \mathcal N(0, I)`), :math:`D` input
    elements and label-smoothed targets :math:`\tilde y_k = (1-\epsilon)[k=y] + \epsilon/K`:

    .. math::
        \mathcal L_X &= -\tfrac1D\,\mathbb E\Big[\log \textstyle\sum_k \pi_k\,
            \mathcal N(f(\tilde x); \mu_k, \sigma_k^2) + \log\lvert\det J_f(\tilde x)\rvert\Big]
            \quad(\text{mixture NLL per dimension}),\\
        \mathcal L_Y &= \mathbb E\Big[\textstyle\sum_k \tilde y_k
            \big(\log p(k \mid \tilde x) - \log \pi_k\big)\Big]
            \quad(\text{class term; } -\mathcal L_Y \text{ is the cross-entropy up to a constant}).

    :math:`\beta \to 0` leaves :math:`2\mathcal L_X`, a pure (mixture) density model;
    :math:`\beta \to \infty` leaves :math:`-2\mathcal L_Y`, a purely discriminative softmax
    classifier on the latent distances (``beta=math.inf`` is allowed). The weights sum to 2 for
    every :math:`\beta`, so learning rates carry over. The class weights enter :math:`\mathcal L_Y`
    without gradient (they are learned, when learnable, by :math:`\mathcal L_X`).

    Args:
        beta: :math:`\beta \ge 0`.
        noise: standard deviation :math:`\sigma` of the Gaussian input noise (raw units).
        dequantize: bin width :math:`\delta` of uniform dequantisation for discrete inputs
            (e.g. 1 for integer pixel values), or 0.
        label_smoothing: :math:`\epsilon \in [0, 1)`.

    References:
        Ardizzone, Mackowiak, Rother, Köthe. "Training Normalizing Flows with the Information
        Bottleneck for Competitive Generative Classification". NeurIPS 2020, Eqs. (9)-(11).
    """

    beta: float = 1.0
    noise: float = 0.0
    dequantize: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("beta", "noise", "dequantize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isnan(value):
                raise ValueError(f"IBLoss: {name} must be a number >= 0, got {value!r}")
        if not math.isfinite(self.noise) or not math.isfinite(self.dequantize):
            raise ValueError("IBLoss: noise and dequantize must be finite")
        if not (isinstance(self.label_smoothing, (int, float)) and 0 <= self.label_smoothing < 1):
            raise ValueError(f"IBLoss: label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    @property
    def weights(self) -> tuple[float, float]:
        r"""``(w_X, w_Y)`` with :math:`\mathcal L = w_X \mathcal L_X - w_Y \mathcal L_Y`."""
        if math.isinf(self.beta):
            return 0.0, 2.0
        return 2.0 / (1.0 + self.beta), 2.0 * self.beta / (1.0 + self.beta)

    def perturb(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r""":math:`\tilde x = x + \delta u + \sigma \varepsilon` (``x`` itself when both are 0)."""
        if self.dequantize > 0:
            x = x + self.dequantize * torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x

    def terms(self, model: LatentMixtureINN, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        r"""``L_X``, ``L_Y``, the loss and the batch accuracy for ``x (B, *event)`` (already perturbed), ``y (B,)``."""
        z, log_det = model.latent(x)
        mixture = model.mixture
        log_w = mixture.log_weights()
        components = mixture.component_log_prob(z)
        l_x = -(torch.logsumexp(components + log_w, 1) + log_det).mean() / model.latent_features
        log_post = torch.log_softmax(components + log_w.detach(), 1)
        k = model.classes
        target = torch.nn.functional.one_hot(y, k).to(log_post.dtype)
        target = (1 - self.label_smoothing) * target + self.label_smoothing / k
        l_y = (target * (log_post - log_w.detach())).sum(1).mean()
        w_x, w_y = self.weights
        loss = (w_x * l_x if w_x else 0.0) - w_y * l_y
        accuracy = (log_post.argmax(1) == y).to(log_post.dtype).mean()
        return {"loss": loss, "L_X": l_x, "L_Y": l_y, "accuracy": accuracy}  # type: ignore[dict-item]

    def __call__(self, model: LatentMixtureINN, x: Tensor, y: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of a batch after perturbing ``x``, and its terms."""
        terms = self.terms(model, self.perturb(x, generator), y)
        return terms.pop("loss"), terms

    def loss_fn(self, model: LatentMixtureINN) -> LossFn:
        """``loss_fn(batch, step)`` for :func:`innverse.train.train` over batches ``(x, y)``.

        Draws the input noise from ``step.generator`` (checkpointed with the run) and logs
        ``L_X``, ``L_Y`` and the batch ``accuracy`` with ``step.log``.
        """

        def step_loss(batch: Sequence[Tensor], step: Step) -> Tensor:
            x, y = batch[0], batch[1]
            loss, terms = self(model, x, y, step.generator)
            step.log(**terms)
            return loss

        return step_loss
