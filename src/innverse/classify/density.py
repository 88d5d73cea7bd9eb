r"""Fit any unconditional flow by maximum likelihood with the one training loop (density baselines,
anomaly detectors, the background models of likelihood-ratio scores)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..blocks import Standardization
from ..core import Flow
from ..core import Sequence as InvSequence
from ..train import History, Step, TensorBatches, TrainConfig, train
from ._inputs import as_inputs, check_fraction
from .classifier import split_indices

__all__ = ["Augment", "Perturbation", "fit_density"]

#: ``augment(x, generator) -> x'``: a random transformation of a training batch.
Augment = Callable[[Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class Perturbation:
    r"""Replace each input element, with probability ``rate``, by a uniform draw from ``[low, high]``.

    .. math::
        \tilde x_i = (1 - m_i)\,x_i + m_i\,u_i,\qquad m_i \sim \mathrm{Bernoulli}(\mu),\quad u_i \sim U[\text{low}, \text{high}].

    The background model of the likelihood-ratio score is trained on such inputs: it learns the
    population-level statistics (smoothness, overall intensity) that dominate the likelihood but
    not the semantic content, so the ratio cancels them.

    References:
        Ren, Liu, Fertig, Snoek, Poplin, DePristo, Dillon, Lakshminarayanan. "Likelihood Ratios for
        Out-of-Distribution Detection". NeurIPS 2019.
    """

    rate: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1 or not self.high > self.low:
            raise ValueError(f"Perturbation: needs 0 <= rate <= 1 and high > low, got rate={self.rate}, "
                             f"low={self.low}, high={self.high}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mask = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) < self.rate
        u = self.low + (self.high - self.low) * torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return torch.where(mask, u, x)


def _noise(x: Tensor, generator: torch.Generator, dequantize: float, noise: float) -> Tensor:
    if dequantize > 0:
        x = x + dequantize * torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x


def _standardized(flow: Flow, data: Tensor) -> Flow:
    shape = flow.event_shape
    norm = Standardization(shape, None if len(shape) == 1 else (1,), name="Standardization(X)").fit(data)
    return Flow(InvSequence(norm, flow.transform), flow.base, validate_args=False)


def fit_density(flow: Flow, X: Any, *, training: TrainConfig | dict[str, Any] | None = None,
                validation_fraction: float = 0.1, dequantize: float = 0.0, noise: float = 0.0,
                augment: Augment | None = None, standardize: bool = True, seed: int = 0,
                progress: bool | str = False) -> tuple[Flow, History]:
    r"""Train an unconditional flow on ``X (N, *event)`` by maximum likelihood: the loss is
    :math:`-\frac1D \log p(\tilde x)` (nats per dimension), logged as ``nll``.

    Each batch is augmented (``augment``, e.g. :class:`Perturbation`), then dequantised
    (:math:`+\delta u`) and noised (:math:`+\sigma\varepsilon`); the validation split (for early
    stopping) gets the same treatment from the loop's fixed validation generator.

    Args:
        flow: an unconditional :class:`~innverse.core.Flow` over the event shape of ``X``.
        X: training inputs.
        training: :class:`~innverse.train.TrainConfig` or a dict of its options.
        validation_fraction: share held out for early stopping (0: none).
        dequantize / noise: bin width of uniform dequantisation, Gaussian noise std (raw units).
        augment: random transformation of each training batch.
        standardize: put a :class:`~innverse.blocks.Standardization` fitted on ``X`` in front of
            the flow's transform (per feature for vectors, one shift and scale for images), so the
            returned flow works in raw units; ``False`` trains ``flow`` as it is.
        seed: seed of the split and the training noise.

    Returns:
        ``(trained flow in raw units, History)``; with ``standardize`` the returned flow shares its
        transform and base with ``flow``.
    """
    if not isinstance(flow, Flow) or flow.conditional:
        raise TypeError(f"fit_density: expected an unconditional innverse Flow, got {type(flow).__name__}"
                        f"{' (conditional)' if isinstance(flow, Flow) else ''}")
    dtype = next((p.dtype for p in flow.parameters() if p.is_floating_point()), torch.get_default_dtype())
    x = as_inputs("fit_density", X, flow.event_shape, dtype=dtype)
    check_fraction("fit_density", "validation_fraction", validation_fraction, low_open=False)
    keep, held = split_indices(x.shape[0], validation_fraction, seed)
    gen = torch.Generator().manual_seed(seed)
    model = _standardized(flow, _noise(x[keep], gen, dequantize, noise)) if standardize else flow
    d = math.prod(flow.event_shape)

    def step_loss(batch: Sequence[Tensor], step: Step) -> Tensor:
        xb = batch[0] if augment is None else augment(batch[0], step.generator)
        nll = -model.log_prob(_noise(xb, step.generator, dequantize, noise)).mean() / d
        step.log(nll=nll)
        return nll

    cfg = TrainConfig.coerce(training, seed=seed).resolve(len(keep))
    val = TensorBatches(x[held], batch_size=cfg.batch_size, shuffle=False) if len(held) else None
    history = train(model, step_loss, TensorBatches(x[keep], batch_size=cfg.batch_size), val, cfg, progress=progress)
    return model.eval(), history
