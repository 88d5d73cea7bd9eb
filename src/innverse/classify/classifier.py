r"""The IB-INN classifier with a scikit-learn-style interface: ``fit(X, y)``, ``predict``, ``predict_proba``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..train import History, TensorBatches, TrainConfig, train
from ._inputs import as_inputs, as_labels, check_fraction
from .architectures import InnBuilder, default_inn, standardized
from .latent_mixture import LatentMixtureINN
from .loss import IBLoss

__all__ = ["IBINNClassifier", "split_indices"]


def split_indices(n: int, fraction: float, seed: int, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A random split of ``range(n)`` into ``(kept, held_out)`` with ``round(fraction * n)`` held out.

    With ``labels`` the split is stratified: each class gives the same fraction (at least one row
    stays in training).
    """
    gen = torch.Generator().manual_seed(seed)
    groups = [torch.arange(n)] if labels is None else [(labels == k).nonzero().flatten() for k in labels.unique()]
    held: list[Tensor] = []
    for g in groups:
        order = g[torch.randperm(len(g), generator=gen)]
        held.append(order[:min(round(fraction * len(g)), len(g) - 1)])
    out = torch.cat(held) if held else torch.zeros(0, dtype=torch.long)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[out] = True
    return (~mask).nonzero().flatten(), mask.nonzero().flatten()


class IBINNClassifier:
    r"""A generative classifier trained with the information bottleneck (IB-INN), scikit-learn style.

    ``fit(X, y)`` builds a :class:`LatentMixtureINN` — ``[Standardization] ∘ INN`` with one
    unit Gaussian per class in latent space — and minimises :class:`IBLoss`
    (:math:`\frac{2}{1+\beta}\mathcal L_X - \frac{2\beta}{1+\beta}\mathcal L_Y`) with
    :func:`innverse.train.train`, stopping early on a stratified validation split. Small
    :math:`\beta` gives a density model that knows its inputs, large :math:`\beta` a
    discriminative classifier. Afterwards it predicts (``predict``, ``predict_proba`` by Bayes'
    rule), scores (``log_prob(x)``, ``log_prob(x, y)``, ``class_log_likelihood``,
    ``bits_per_dim``) and generates (``sample(n, y)``). Inputs are vectors ``(N, D)`` or
    images ``(N, C, H, W)``; outputs are torch tensors.

    Args:
        beta: :math:`\beta \ge 0` (``math.inf``: purely discriminative).
        inn: ``builder(event_shape) -> invertible module``; default :func:`default_inn`.
        classes: number of classes ``K`` (default: ``max(y) + 1``); labels are ``0 .. K-1``.
        noise: standard deviation of the Gaussian training noise (raw units).
        dequantize: bin width of uniform dequantisation for discrete inputs (e.g. 1 for integer
            pixel values); ``bits_per_dim`` then reports the discrete bound.
        label_smoothing: :math:`\epsilon` of :class:`IBLoss`.
        mean_distance: initial pairwise distance of the class means.
        learn_weights: learn the class weights (else uniform).
        training: :class:`~innverse.train.TrainConfig` or a dict of its options.
        validation_fraction: share of the data held out for early stopping (0: none).
        seed: seed of the split, the initialisation and the training noise.

    References:
        Ardizzone, Mackowiak, Rother, Köthe. "Training Normalizing Flows with the Information
        Bottleneck for Competitive Generative Classification". NeurIPS 2020.
    """

    def __init__(self, beta: float = 1.0, *, inn: InnBuilder | None = None, classes: int | None = None,
                 noise: float = 0.0, dequantize: float = 0.0, label_smoothing: float = 0.0,
                 mean_distance: float = 5.0, learn_weights: bool = False,
                 training: TrainConfig | dict[str, Any] | None = None, validation_fraction: float = 0.1,
                 seed: int = 0) -> None:
        self.loss = IBLoss(beta, noise, dequantize, label_smoothing)
        self.inn = inn
        self.classes = classes
        self.mean_distance = mean_distance
        self.learn_weights = learn_weights
        self.training = TrainConfig.coerce(training, seed=seed)
        self.validation_fraction = check_fraction("IBINNClassifier", "validation_fraction", validation_fraction,
                                                  low_open=False)
        self.seed = seed
        self.model_: LatentMixtureINN | None = None
        self.history_: History | None = None

    @property
    def beta(self) -> float:
        return self.loss.beta

    def _check_labels(self, x: Tensor, y: Any) -> tuple[Tensor, int]:
        labels, _ = as_labels("IBINNClassifier.fit", y, self.classes)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"IBINNClassifier.fit: X and y need the same number of rows, got {x.shape[0]} and "
                             f"{labels.shape[0]}")
        k = self.classes if self.classes is not None else int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=k)
        if int((counts > 0).sum()) < 2:
            raise ValueError(f"IBINNClassifier.fit: needs examples of at least 2 classes, got only class "
                             f"{int(labels[0])}")
        if bool((counts == 0).any()):
            missing = (counts == 0).nonzero().flatten().tolist()
            raise ValueError(f"IBINNClassifier.fit: classes {missing[:10]} of 0..{k - 1} have no example; relabel "
                             "to 0..K-1 or drop them")
        return labels, k

    def _build(self, x: Tensor, classes: int) -> LatentMixtureINN:
        """``[Standardization fitted on x] ∘ INN`` with the latent mixture, initialised from ``seed``."""
        gen = torch.Generator().manual_seed(self.seed)
        event = tuple(x.shape[1:])
        with torch.random.fork_rng(devices=[]):  # the subnets draw their initial weights from torch's RNG
            torch.manual_seed(self.seed)
            inn = (self.inn or (lambda shape: default_inn(shape, self.seed)))(event)
        if tuple(inn.event_shape) != event:
            raise ValueError(f"IBINNClassifier.fit: the inn takes inputs of shape {inn.event_shape}, X has {event}")
        return LatentMixtureINN(standardized(inn, self.loss.perturb(x, gen)), classes, self.mean_distance,
                                self.learn_weights, generator=gen)

    def fit(self, X: Any, y: Any, *, progress: bool | str = False) -> IBINNClassifier:
        """Build the model for the shape of ``X (N, *event)`` and train it on labels ``y (N,)``; returns ``self``."""
        x = as_inputs("IBINNClassifier.fit", X, dtype=torch.get_default_dtype())
        labels, k = self._check_labels(x, y)
        keep, held = split_indices(x.shape[0], self.validation_fraction, self.seed, labels)
        model = self._build(x[keep], k)
        cfg = self.training.resolve(len(keep))
        val = TensorBatches(x[held], labels[held], batch_size=cfg.batch_size, shuffle=False) if len(held) else None
        self.history_ = train(model, self.loss.loss_fn(model), TensorBatches(x[keep], labels[keep],
                              batch_size=cfg.batch_size), val, cfg, progress=progress)
        self.model_ = model.eval()
        return self

    # -- use --------------------------------------------------------------------------------------
    def _model(self, owner: str) -> LatentMixtureINN:
        if self.model_ is None:
            raise RuntimeError(f"IBINNClassifier.{owner}: call fit(X, y) first")
        return self.model_

    def _inputs(self, owner: str, X: Any) -> tuple[LatentMixtureINN, Tensor]:
        model = self._model(owner)
        ref = model.mixture.means
        return model, as_inputs(f"IBINNClassifier.{owner}", X, model.event_shape, dtype=ref.dtype).to(ref.device)

    @torch.no_grad()
    def _batched(self, fn: Any, x: Tensor, batch_size: int = 2048) -> Tensor:
        return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])

    def predict_proba(self, X: Any) -> Tensor:
        """Class probabilities :math:`p(k \\mid x)` ``(N, K)`` by Bayes' rule on the latent mixture."""
        model, x = self._inputs("predict_proba", X)
        return self._batched(model.class_log_posterior, x).exp()

    def predict_log_proba(self, X: Any) -> Tensor:
        """:math:`\\log p(k \\mid x)`, ``(N, K)``."""
        model, x = self._inputs("predict_log_proba", X)
        return self._batched(model.class_log_posterior, x)

    def predict(self, X: Any) -> Tensor:
        """The most probable class ``(N,)``."""
        return self.predict_log_proba(X).argmax(1)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)`` (scikit-learn's ``score``)."""
        model, x = self._inputs("score", X)
        labels, _ = as_labels("IBINNClassifier.score", y, model.classes)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"IBINNClassifier.score: X and y need the same number of rows, got {x.shape[0]} and "
                             f"{labels.shape[0]}")
        return float((self.predict(x).cpu() == labels).double().mean())

    def class_log_likelihood(self, X: Any) -> Tensor:
        """The per-class likelihoods :math:`\\log p(x \\mid k)`, ``(N, K)``."""
        model, x = self._inputs("class_log_likelihood", X)
        return self._batched(model.class_log_likelihood, x)

    def log_prob(self, X: Any, y: Any = None) -> Tensor:
        """:math:`\\log p(x)` ``(N,)``, or :math:`\\log p(x \\mid y)` (see :meth:`LatentMixtureINN.log_prob`)."""
        model = self._model("log_prob")
        if y is None:
            _, x = self._inputs("log_prob", X)
            return self._batched(model.log_prob, x)
        ref = model.mixture.means
        x = torch.as_tensor(X, dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            return model.log_prob(x, y)

    def bits_per_dim(self, X: Any, draws: int = 4, seed: int = 1) -> float:
        r"""Mean :math:`-\log_2 p(x) / D`; with ``dequantize`` :math:`\delta` the bound on the discrete
        probability of the bin, :math:`\log P(v) \ge \mathbb E_u \log p(v + \delta u) + D\log\delta`,
        as :math:`-\log_2 P(v) / D`, the expectation over ``draws`` noise draws."""
        model, x = self._inputs("bits_per_dim", X)
        gen = torch.Generator(x.device).manual_seed(seed)
        delta = self.loss.dequantize
        total = 0.0
        for _ in range(draws if delta > 0 else 1):
            xq = x + delta * torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device) if delta else x
            total += float(self._batched(model.log_prob, xq).mean()) + (math.log(delta) * x[0].numel() if delta else 0)
        return -total / (draws if delta > 0 else 1) / (x[0].numel() * math.log(2))

    def sample(self, n: int, y: Any, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """Inputs generated for label(s) ``y``: ``(n, *event)`` for one label, ``(n, k, *event)`` for ``k``."""
        return self._model("sample").sample(n, y, generator, temperature)
