r"""INN autoencoders: an invertible network whose latent is split into a kept bottleneck and a part forced to zero."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import AllInOne, Flatten
from ..core import AbstractInvertible
from ..core import Sequence as InvSequence
from ..core.module import as_shape
from ..nets.subnets import MLP, mlp_constructor
from ..train import History, Step
from .classifier import parameter_count, seeded
from .training import Options, _fit, check_inputs

__all__ = ["ConventionalAutoencoder", "INNAutoencoder", "reconstruction_error", "train_autoencoder"]


def _check_bottleneck(owner: str, bottleneck: Any, d: int, shape: tuple[int, ...]) -> int:
    if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or not 1 <= bottleneck <= d:
        raise ValueError(f"{owner}: the bottleneck must be an int in 1..{d} (the size of inputs {shape}), "
                         f"got bottleneck={bottleneck!r}")
    return bottleneck


class INNAutoencoder(nn.Module):
    r"""An autoencoder whose encoder and decoder are one invertible network, :math:`f` and :math:`f^{-1}`.

    .. math::
        z = f(x) = [z_b, z_r],\ z_b \in \mathbb R^{k},\qquad \text{encode}(x) = z_b,\qquad
        \text{decode}(z_b) = f^{-1}([z_b, 0]),

    .. math::
        \mathcal L = \tfrac1D\lVert x - f^{-1}([\tilde z_b, 0])\rVert^2
            + \lambda\,\tfrac1{D-k}\lVert z_r\rVert^2
            \;\big[+\ \beta\,\tfrac1D\,\mathrm{KL}\big(\mathcal N(z_b, \mathrm{diag}\,\sigma^2)\,\Vert\,\mathcal N(0, I)\big)\big],

    :math:`\tilde z_b = z_b` (deterministic) or, with ``variational``,
    :math:`\tilde z_b = z_b + \sigma\odot\varepsilon` with a learned per-dimension :math:`\sigma` and
    the KL term (a VAE whose encoder mean and decoder share their weights). The latent term pulls
    the discarded coordinates to zero, so that for inputs on the learned manifold decoding is
    exact inversion; nothing but the ``k`` bottleneck numbers passes from encoder to decoder.

    Args:
        input_shape: shape of one input (flattened in front of the default INN).
        bottleneck: ``k``, ``1 <= k <= D``.
        inn: your own invertible network on ``input_shape`` with a vector output ``(D,)``;
            default: ``blocks`` :class:`~innverse.blocks.AllInOne` blocks with ``hidden`` MLPs.
        blocks, hidden: of the default INN.
        latent_weight: :math:`\lambda`.
        variational: the variational form; ``kl_weight`` is :math:`\beta`.
        seed: seed of the initialisation.

    References:
        Nguyen, Ardizzone, Köthe. "Training Invertible Neural Networks as Autoencoders". GCPR 2023.
    """

    def __init__(self, input_shape: int | Sequence[int], bottleneck: int, inn: AbstractInvertible | None = None,
                 blocks: int = 8, hidden: Sequence[int] = (128, 128), latent_weight: float = 1.0,
                 variational: bool = False, kl_weight: float = 1e-3, seed: int = 0) -> None:
        super().__init__()
        shape = as_shape(input_shape, "input_shape")
        d = math.prod(shape)
        self.bottleneck = _check_bottleneck("INNAutoencoder", bottleneck, d, shape)
        with seeded(seed):
            if inn is None:
                make = mlp_constructor(tuple(hidden))
                layers: list[AbstractInvertible] = [Flatten(shape)] if len(shape) > 1 else []
                layers += [AllInOne(d, make, seed=seed + i) for i in range(blocks)]
                inn = InvSequence(*layers)
        if inn.event_shape != shape or inn.output_shape != (d,):
            raise ValueError(f"INNAutoencoder: the inn must map {shape} to ({d},), got {inn.event_shape} -> "
                             f"{inn.output_shape}")
        self.inn, self.input_shape = inn, shape
        self.latent_weight, self.kl_weight, self.variational = float(latent_weight), float(kl_weight), variational
        self.log_sigma = nn.Parameter(torch.full((self.bottleneck,), -2.0)) if variational else None

    def _pad(self, z_b: Tensor) -> Tensor:
        return torch.cat([z_b, z_b.new_zeros(z_b.shape[0], math.prod(self.input_shape) - self.bottleneck)], 1)

    def encode(self, x: Tensor) -> Tensor:
        """The bottleneck code :math:`z_b`: ``(B, *input_shape) -> (B, k)`` (the mean for the variational form)."""
        check_inputs("INNAutoencoder.encode", x, self.input_shape)
        return self.inn(x, log_det=False)[0][:, :self.bottleneck]

    def decode(self, code: Tensor) -> Tensor:
        """:math:`f^{-1}([z_b, 0])`: ``(B, k) -> (B, *input_shape)``."""
        check_inputs("INNAutoencoder.decode", code, (self.bottleneck,), "code")
        return self.inn.inverse(self._pad(code), log_det=False)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, terms)`` of a batch: ``reconstruction``, ``latent`` (and ``kl`` for the variational form)."""
        z = self.inn(x, log_det=False)[0]
        z_b, z_r = z[:, :self.bottleneck], z[:, self.bottleneck:]
        terms: dict[str, Tensor] = {}
        if self.log_sigma is not None:
            sigma = self.log_sigma.exp()
            eps = torch.randn(z_b.shape, generator=generator, dtype=z_b.dtype, device=z_b.device)
            kl = 0.5 * (z_b.square() + sigma.square() - 1 - 2 * self.log_sigma).sum(1).mean() / z.shape[1]
            z_b = z_b + sigma * eps
            terms["kl"] = kl
        x_hat = self.inn.inverse(self._pad(z_b), log_det=False)[0]
        terms["reconstruction"] = (x_hat - x).square().mean()
        terms["latent"] = z_r.square().mean() if z_r.shape[1] else z.new_zeros(())
        total = terms["reconstruction"] + self.latent_weight * terms["latent"] + self.kl_weight * terms.get("kl", 0.0)
        return total, terms


class ConventionalAutoencoder(nn.Module):
    r"""A fully connected autoencoder :math:`x \mapsto e(x) \in \mathbb R^k \mapsto d(e(x))`, the baseline of INN autoencoders.

    Encoder ``D -> hidden... -> k`` and decoder ``k -> reversed(hidden)... -> D``, ReLU between,
    loss :math:`\tfrac1D\lVert x - d(e(x))\rVert^2`. :meth:`same_size` picks the width for a
    given parameter count, so the comparison with an :class:`INNAutoencoder` is at equal size.
    """

    def __init__(self, input_shape: int | Sequence[int], bottleneck: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        shape = as_shape(input_shape, "input_shape")
        d = math.prod(shape)
        self.bottleneck = _check_bottleneck("ConventionalAutoencoder", bottleneck, d, shape)
        self.input_shape = shape
        self.encoder = MLP(d, self.bottleneck, tuple(hidden), zero_init=False)
        self.decoder = MLP(self.bottleneck, d, tuple(reversed(tuple(hidden))), zero_init=False)

    @staticmethod
    def same_size(input_shape: int | Sequence[int], bottleneck: int, parameters: int,
                  layers: int = 2) -> ConventionalAutoencoder:
        """The autoencoder with ``layers`` hidden layers of equal width whose parameter count is closest to ``parameters``."""
        best, best_gap, width = None, math.inf, 1
        while True:
            model = ConventionalAutoencoder(input_shape, bottleneck, (width,) * layers)
            gap = parameter_count(model) - parameters
            if abs(gap) < best_gap:
                best, best_gap = model, abs(gap)
            if gap > 0:
                return best  # type: ignore[return-value]
            width = max(width + 1, int(width * 1.02))

    def encode(self, x: Tensor) -> Tensor:
        check_inputs("ConventionalAutoencoder.encode", x, self.input_shape)
        return self.encoder(x.flatten(1))

    def decode(self, code: Tensor) -> Tensor:
        check_inputs("ConventionalAutoencoder.decode", code, (self.bottleneck,), "code")
        return self.decoder(code).reshape(code.shape[0], *self.input_shape)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        rec = (self.decoder(self.encoder(x.flatten(1))).reshape(x.shape) - x).square().mean()
        return rec, {"reconstruction": rec}


Autoencoder = INNAutoencoder | ConventionalAutoencoder


def train_autoencoder(model: Autoencoder, x: Tensor, validation: Tensor | None = None, training: Options = None,
                      progress: bool | str = False) -> History:
    """Fit an :class:`INNAutoencoder` or :class:`ConventionalAutoencoder` on ``x (N, *input_shape)`` (terms logged)."""
    check_inputs("train_autoencoder", x, model.input_shape)
    if validation is not None:
        check_inputs("train_autoencoder", validation, model.input_shape, "validation")

    def loss_fn(batch: Sequence[Tensor], step: Step) -> Tensor:
        total, terms = model.loss(batch[0], step.generator)
        step.log(**terms)
        return total

    return _fit(model, loss_fn, (x,), None if validation is None else (validation,), training, progress)


@torch.no_grad()
def reconstruction_error(model: Autoencoder, x: Tensor, batch_size: int = 1024) -> float:
    """Mean squared reconstruction error per input element (the variational form decodes its mean code)."""
    check_inputs("reconstruction_error", x, model.input_shape)
    was = model.training
    model.eval()
    total = sum(float((model.reconstruct(x[i:i + batch_size]) - x[i:i + batch_size]).square().sum())
                for i in range(0, x.shape[0], batch_size))
    model.train(was)
    return total / x.numel()
