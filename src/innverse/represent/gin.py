r"""GIN: a volume-preserving flow with class-conditional Gaussian latents (nonlinear ICA)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import Flatten
from ..classify.latent_mixture import LatentMixtureINN
from ..core import AbstractInvertible
from ..core import Sequence as InvSequence
from ..core.module import as_shape
from ..flows import coupling_flow
from ..train import History, Step
from .classifier import seeded
from .training import Options, _fit, check_inputs, check_labelled

__all__ = ["GIN", "empirical_nll", "train_gin"]


class GIN(nn.Module):
    r"""General Incompressible-flow Network: :math:`z = f(x)` with :math:`|\det J_f| = 1` and :math:`z \mid u \sim \mathcal N(\mu_u, \mathrm{diag}\,\sigma_u^2)`.

    .. math::
        \log p(x \mid u) = \log \mathcal N\big(f(x);\ \mu_u, \mathrm{diag}\,\sigma_u^2\big)
            = -\tfrac12 \sum_i \Big[\tfrac{(f_i(x) - \mu_{u,i})^2}{\sigma_{u,i}^2} + \log 2\pi\sigma_{u,i}^2\Big],

    no Jacobian term: the flow is volume-preserving (GIN couplings, whose log-scales sum to zero,
    and permutations). The means :math:`\mu_u` and the per-dimension standard deviations
    :math:`\sigma_u` of every class (auxiliary variable) :math:`u` are learned. Because the flow
    cannot change volume, it cannot give every latent unit variance; it concentrates the data's
    variability in few latent dimensions and squeezes the rest, so the standard deviation of
    each latent over the data (:func:`~innverse.represent.latent_spectrum`) separates informative
    dimensions from noise. Under the conditions of Sorrenson et al. the informative latents
    recover the true generative factors up to elementwise maps (nonlinear ICA).

    The class-conditional latent density is a :class:`~innverse.classify.LatentMixtureINN` with
    learned scales (:attr:`mixture`); the model follows the conditional-density contract with
    integer labels as the condition: ``log_prob(x, u)``, ``sample(n, u)``.

    Args:
        input_shape: ``(D,)`` or any event shape (flattened in front of the flow).
        classes: number of values of the auxiliary variable ``u`` (``>= 2``).
        blocks: GIN coupling blocks (each followed by a random permutation).
        permutation: ``"random"`` (a permutation of the features after every coupling, as in the
            paper) or ``"orthogonal"`` (a fixed random rotation; also volume-preserving).
        hidden: hidden widths of the coupling MLPs.
        clamp: soft bound of the couplings' log-scales.
        transform: your own volume-preserving invertible module instead (checked numerically).
        mean_distance: initial pairwise distance of the class means.
        seed: seed of the initialisation and the permutations.

    References:
        Sorrenson, Rother, Köthe. "Disentanglement by Nonlinear ICA with General
        Incompressible-flow Networks (GIN)". ICLR 2020.
    """

    def __init__(self, input_shape: int | Sequence[int], classes: int, blocks: int = 8,
                 hidden: Sequence[int] = (256, 256), clamp: float = 2.0, transform: AbstractInvertible | None = None,
                 mean_distance: float = 1.0, seed: int = 0, permutation: str = "random") -> None:
        super().__init__()
        shape = as_shape(input_shape, "input_shape")
        d = math.prod(shape)
        with seeded(seed):
            if transform is None:
                transform = coupling_flow(d, blocks=blocks, hidden=tuple(hidden), coupling="gin", clamp=clamp,
                                          permutation=permutation, seed=seed).transform
                if len(shape) > 1:
                    transform = InvSequence(Flatten(shape), transform)
            elif transform.event_shape != shape:
                raise ValueError(f"GIN: the transform takes inputs {transform.event_shape}, input_shape is {shape}")
            _check_volume_preserving(transform)
            self.model = LatentMixtureINN(transform, classes, mean_distance, learn_scales=True,
                                          generator=torch.Generator().manual_seed(seed))
        self.input_shape = shape

    @property
    def classes(self) -> int:
        return self.model.classes

    @property
    def latent_features(self) -> int:
        return self.model.latent_features

    @property
    def transform(self) -> AbstractInvertible:
        return self.model.flow.transform

    @property
    def mixture(self) -> Any:
        """The class-conditional Gaussians: ``means`` and ``log_scales`` ``(classes, D)``."""
        return self.model.mixture

    def latent(self, x: Tensor) -> Tensor:
        """``z = f(x)``: ``(B, *input_shape) -> (B, D)``."""
        check_inputs("GIN.latent", x, self.input_shape)
        return self.transform(x, log_det=False)[0]

    def invert(self, z: Tensor) -> Tensor:
        """``x = f^{-1}(z)``: ``(B, D) -> (B, *input_shape)``."""
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.latent_features:
            raise ValueError(f"GIN.invert: expected latents of shape (B, {self.latent_features}), got "
                             f"{tuple(getattr(z, 'shape', ()))}")
        return self.transform.inverse(z, log_det=False)[0]

    def log_prob(self, x: Tensor, u: Any = None) -> Tensor:
        """:math:`\\log p(x \\mid u)` (or the mixture :math:`\\log p(x)` for ``u=None``); shapes as :meth:`LatentMixtureINN.log_prob`."""
        return self.model.log_prob(x, u)

    @torch.no_grad()
    def fit_latent_statistics(self, x: Tensor, u: Tensor, batch_size: int = 4096) -> GIN:
        """Set the class means and scales to the per-class means and standard deviations of the latents of ``(x, u)``."""
        x, u = check_labelled("GIN.fit_latent_statistics", x, u, self.input_shape, self.classes)
        z = torch.cat([self.latent(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
        counts = torch.bincount(u, minlength=self.classes)
        if bool((counts < 2).any()):
            raise ValueError(f"GIN.fit_latent_statistics: every class needs >= 2 examples, got counts {counts.tolist()}")
        for k in range(self.classes):
            self.mixture.means[k] = z[u == k].mean(0)
            self.mixture.log_scales[k] = z[u == k].std(0).clamp_min(torch.finfo(z.dtype).tiny).log()
        return self

    def sample(self, n: int, u: Any, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples of :math:`x \\mid u`: ``(n, *input_shape)`` for one label, ``(n, k, *input_shape)`` for ``k``."""
        return self.model.sample(n, u, generator, temperature)


@torch.no_grad()
def _check_volume_preserving(transform: AbstractInvertible) -> None:
    """Raise unless the transform's log-det is zero on a few standard-normal inputs (eval mode, restored after)."""
    was = transform.training
    transform.eval()
    p = next(transform.parameters(), None)
    x = torch.randn(4, *transform.event_shape, generator=torch.Generator().manual_seed(0))
    _, ld = transform(x if p is None else x.to(p))
    transform.train(was)
    if float(ld.abs().max()) > 1e-4 * max(1, math.prod(transform.event_shape)):
        raise ValueError(f"GIN: the transform must be volume-preserving (log-det 0); it has log-dets {ld.tolist()}")


def empirical_nll(z: Tensor, u: Tensor, classes: int) -> Tensor:
    r"""The Gaussian NLL per dimension at the batch's own per-class means and variances (GIN's "empirical variances").

    With :math:`\hat\mu_{u,i}`, :math:`\hat\sigma^2_{u,i}` the maximum-likelihood (biased) mean
    and variance of latent :math:`i` over the batch rows of class :math:`u`, the minimum over means
    and variances of :math:`-\frac1D\log\mathcal N(z;\mu_u,\sigma_u^2)` averaged over rows is

    .. math::
        \frac1N \sum_u N_u \Big[\frac1D\sum_i \log\hat\sigma_{u,i}\Big] + \tfrac12 + \tfrac12\log 2\pi

    (classes with fewer than 2 rows in the batch are left out). Optimising the flow against this
    profile likelihood is much better conditioned than learning the means and scales by gradient.
    """
    onehot = torch.nn.functional.one_hot(u, classes).to(z)
    count = onehot.sum(0)
    mean = onehot.T @ z / count.clamp_min(1)[:, None]
    var = onehot.T @ z.square() / count.clamp_min(1)[:, None] - mean.square()
    used = count >= 2
    if not bool(used.any()):
        raise ValueError("GIN: no class has 2 rows in the batch; use larger batches")
    log_sigma = 0.5 * var[used].clamp_min(torch.finfo(z.dtype).tiny).log().mean(1)
    return (count[used] @ log_sigma) / count[used].sum() + 0.5 + 0.5 * math.log(2 * math.pi)


def train_gin(gin: GIN, x: Tensor, u: Tensor, validation: tuple[Tensor, Tensor] | None = None,
              training: Options = None, empirical: bool = True, noise: float = 0.0,
              progress: bool | str = False) -> History:
    r"""Fit a :class:`GIN` by maximum likelihood, :math:`-\frac1D \log p(x \mid u)` per batch (logged as ``nll``).

    With ``empirical`` (default, as in the reference implementation of GIN) the class means and
    variances are the batch's own (:func:`empirical_nll`) and, after training, are set to those
    of the whole training set (:meth:`GIN.fit_latent_statistics`); otherwise they are learned by
    gradient with the flow. ``noise`` adds Gaussian noise of that standard deviation to every
    training batch (dequantisation of the data's thinnest directions).

    Args:
        gin: the model (trained in place).
        x, u: data ``(N, *input_shape)`` and integer auxiliary labels ``(N,)``.
        validation: ``(x_val, u_val)`` for early stopping, or None.
        training: :class:`~innverse.train.TrainConfig` or a dict of its options.
    """
    pair = check_labelled("train_gin", x, u, gin.input_shape, gin.classes)
    val = None if validation is None else check_labelled("train_gin", *validation, gin.input_shape, gin.classes)
    if not noise >= 0:
        raise ValueError(f"train_gin: noise must be >= 0, got {noise}")
    d = gin.latent_features

    def loss_fn(batch: Sequence[Tensor], step: Step) -> Tensor:
        xb, ub = batch
        if noise > 0 and step.training:
            xb = xb + noise * torch.randn(xb.shape, generator=step.generator, dtype=xb.dtype, device=xb.device)
        if empirical:
            nll = empirical_nll(gin.latent(xb), ub, gin.classes)
        else:
            nll = -gin.log_prob(xb, ub).mean() / d
        step.log(nll=nll)
        return nll

    history = _fit(gin, loss_fn, pair, val, training, progress)
    if empirical:
        gin.fit_latent_statistics(*pair)
    return history
