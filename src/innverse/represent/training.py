r"""Training the invertible classifiers and the nuisance probe with the library's one training loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._tensors import check_finite
from ..nets.subnets import MLP
from ..train import History, Step, TensorBatches, TrainConfig, train
from .classifier import InvertibleClassifier, seeded
from .invariance import IndependenceCrossEntropy

__all__ = ["ProbeResult", "check_inputs", "check_labelled", "initialize", "probe_nuisance", "train_classifier"]

Options = TrainConfig | dict[str, Any] | None
Pair = tuple[Tensor, ...]


def check_inputs(owner: str, x: Any, input_shape: tuple[int, ...], name: str = "x") -> Tensor:
    """``x`` checked to be a finite floating-point tensor of shape ``(N, *input_shape)``."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{owner}: expected {name} as a floating-point tensor, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{owner}: expected {name} of shape (N, {', '.join(map(str, input_shape))}), got "
                         f"{tuple(x.shape)}")
    check_finite(x, name, owner)
    return x


def check_labelled(owner: str, x: Any, y: Any, input_shape: tuple[int, ...], classes: int | None = None) -> Pair:
    """``(x (N, *input_shape) float, y (N,) long)`` checked for shape, finiteness and label range."""
    x = check_inputs(owner, x, input_shape)
    y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != (x.shape[0],):
        raise ValueError(f"{owner}: expected integer labels y of shape ({x.shape[0]},), got {tuple(y.shape)} "
                         f"of dtype {y.dtype}")
    y = y.long()
    if classes is not None and bool(((y < 0) | (y >= classes)).any()):
        raise ValueError(f"{owner}: labels must lie in 0..{classes - 1}, got values in {int(y.min())}..{int(y.max())}")
    return x, y.to(x.device)


def initialize(model: nn.Module, forward: Any, x: Tensor, rows: int = 512) -> None:
    """Run ``forward`` once in training mode without gradients on the first ``rows`` of ``x``.

    Data-dependent initialisations (:class:`~innverse.blocks.ActNorm`) happen on this batch
    before the training loop copies the weights for its moving average and best-epoch state, so
    neither starts from the uninitialised values.
    """
    was = model.training
    model.train()
    with torch.no_grad():
        forward(x[:rows])
    model.train(was)


def _fit(module: nn.Module, loss_fn: Any, train_pair: Pair, val_pair: Pair | None, training: Options,
         progress: bool | str, groups: Callable[[TrainConfig], list[dict[str, Any]]] | None = None) -> History:
    """The training loop over minibatches of ``train_pair``; ``groups(config)``: optimiser parameter groups (default: one)."""
    cfg = TrainConfig.coerce(training).resolve(train_pair[0].shape[0])
    val = None if val_pair is None else TensorBatches(*val_pair, batch_size=cfg.batch_size, shuffle=False)
    optimizer = None if groups is None else adam_groups(groups(cfg), cfg)
    return train(module, loss_fn, TensorBatches(*train_pair, batch_size=cfg.batch_size), val, cfg,  # type: ignore[arg-type]
                 optimizer=optimizer, progress=progress)


def adam_groups(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (AdamW with weight decay) over parameter groups with their own learning rates."""
    if config.weight_decay > 0:
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.lr)


def train_classifier(model: InvertibleClassifier, x: Tensor, y: Tensor, validation: Pair | None = None,
                     training: Options = None, independence: IndependenceCrossEntropy | None = None,
                     noise: float = 0.0, progress: bool | str = False) -> History:
    r"""Fit an :class:`~innverse.represent.InvertibleClassifier` by cross-entropy, or by the iCE.

    Minimises :math:`\mathrm{CE}(W z_s + b, y)` (logged as ``semantic``), or, with
    ``independence``, the :class:`~innverse.represent.IndependenceCrossEntropy` (its nuisance
    classifier is trained in the same steps; terms ``semantic``, ``nuisance``, ``likelihood``).
    Early stopping and the kept weights follow the validation cross-entropy of the logits alone.

    Args:
        model: the classifier (trained in place).
        x, y: inputs ``(N, *input_shape)`` and integer labels ``(N,)``.
        validation: ``(x_val, y_val)`` for early stopping, or None (then the loop runs its epochs).
        training: :class:`~innverse.train.TrainConfig` or a dict of its options.
        independence: the iCE objective, or None for plain cross-entropy.
        noise: standard deviation of Gaussian noise added to every training batch (drawn from the
            loop's generator): the bijection then also sees, and learns to invert smoothly,
            directions in which the data do not vary (constant pixels).
        progress: show a progress bar.
    """
    if not noise >= 0:
        raise ValueError(f"train_classifier: noise must be >= 0, got {noise}")
    train_pair = check_labelled("train_classifier", x, y, model.input_shape, model.classes)
    val_pair = None if validation is None else check_labelled("train_classifier", *validation, model.input_shape,
                                                               model.classes)
    module: nn.Module = model if independence is None else nn.ModuleDict({"model": model, "ice": independence})
    initialize(model, model.features, train_pair[0])

    def loss_fn(batch: Sequence[Tensor], step: Step) -> Tensor:
        xb, yb = batch
        if noise > 0 and step.training:
            xb = xb + noise * torch.randn(xb.shape, generator=step.generator, dtype=xb.dtype, device=xb.device)
        if independence is None or not step.training:
            loss = F.cross_entropy(model(xb), yb)
            step.log(semantic=loss)
            return loss
        total, terms = independence(model, xb, yb)
        step.log(**terms)
        return total

    def groups(cfg: TrainConfig) -> list[dict[str, Any]]:
        adversary = list(independence.parameters())  # type: ignore[union-attr]
        return [{"params": list(model.parameters()), "lr": cfg.lr},
                {"params": adversary, "lr": cfg.lr * independence.adversary_lr}]  # type: ignore[union-attr, operator]

    return _fit(module, loss_fn, train_pair, val_pair, training, progress, None if independence is None else groups)


@dataclass(frozen=True)
class ProbeResult:
    """How much class information a part of the representation carries, by a probe classifier.

    Two probes read the same standardised features: an MLP trained by cross-entropy and a
    k-nearest-neighbour vote over the training features. The vote needs no training, so it still
    reads class information that sits in local structure when the MLP's training fails to find
    it (an MLP stopped early near chance is not evidence of independence); :attr:`best` is the
    larger of the two.

    Attributes:
        accuracy: test accuracy of the MLP probe.
        train_accuracy: its training accuracy.
        chance: accuracy of always predicting the most frequent training class on the test set.
        part: ``"nuisance"`` or ``"logit"``.
        features: number of features the probe saw.
        knn_accuracy: test accuracy of the k-nearest-neighbour vote.
        neighbours: its ``k``.
    """

    accuracy: float
    train_accuracy: float
    chance: float
    part: str
    features: int
    knn_accuracy: float = float("nan")
    neighbours: int = 5

    @property
    def best(self) -> float:
        """The higher test accuracy of the two probes."""
        return max(self.accuracy, self.knn_accuracy)


@torch.no_grad()
def knn_predict(train: Tensor, labels: Tensor, query: Tensor, k: int = 5, batch_size: int = 1024) -> Tensor:
    """Majority vote of the ``k`` nearest training rows (Euclidean; ties to the lowest class): ``(M,)`` labels."""
    classes = int(labels.max()) + 1
    out = []
    for i in range(0, query.shape[0], batch_size):
        nearest = torch.cdist(query[i:i + batch_size], train).topk(k, largest=False).indices
        votes = torch.nn.functional.one_hot(labels[nearest], classes).sum(1)
        out.append(votes.argmax(1))
    return torch.cat(out)


@torch.no_grad()
def _part(model: InvertibleClassifier, x: Tensor, part: str, batch_size: int = 1024) -> Tensor:
    z = torch.cat([model.features(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    z_s, z_n = model.split(z)
    return z_n if part == "nuisance" else z_s


def probe_nuisance(model: InvertibleClassifier, train_pair: Pair, test_pair: Pair, part: str = "nuisance",
                   hidden: Sequence[int] = (256, 256), training: Options = None, seed: int = 0,
                   neighbours: int = 5) -> ProbeResult:
    r"""Train a fresh MLP to predict the class from :math:`z_n` (or :math:`z_s`) of a frozen classifier.

    The probe sees the standardised part of the representation (mean and scale from the training
    inputs) and is trained with :func:`innverse.train.train` (cross-entropy; 20% of the training
    pairs held out for early stopping). Test accuracy near ``chance`` means the part carries no
    class information such a probe can read; near the classifier's accuracy, that it carries as
    much as the logits.

    Args:
        model: the trained classifier (not changed).
        train_pair, test_pair: ``(x, y)`` to train and to evaluate the probe on.
        part: ``"nuisance"`` (:math:`z_n`) or ``"logit"`` (:math:`z_s`).
        hidden: hidden widths of the probe.
        training: options of the probe's training (default: up to 200 epochs, patience 20).
        seed: seed of the probe's initialisation, split and data order.
        neighbours: ``k`` of the nearest-neighbour probe.
    """
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
        raise ValueError(f"probe_nuisance: neighbours must be an int >= 1, got {neighbours!r}")
    if part not in ("nuisance", "logit"):
        raise ValueError(f"probe_nuisance: part must be 'nuisance' or 'logit', got {part!r}")
    if part == "nuisance" and model.representation_size == model.logit_features:
        raise ValueError("probe_nuisance: the model has no nuisance (logit_features equals the representation size)")
    x_tr, y_tr = check_labelled("probe_nuisance", *train_pair, model.input_shape, model.classes)
    x_te, y_te = check_labelled("probe_nuisance", *test_pair, model.input_shape, model.classes)
    was_training = model.training
    model.eval()
    f_tr, f_te = _part(model, x_tr, part), _part(model, x_te, part)
    model.train(was_training)
    mean, std = f_tr.mean(0), f_tr.std(0).clamp_min(1e-8)
    f_tr, f_te = (f_tr - mean) / std, (f_te - mean) / std
    with seeded(seed):
        probe = MLP(f_tr.shape[1], model.classes, tuple(hidden), zero_init=False).to(f_tr)
    order = torch.randperm(len(f_tr), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:len(order) // 5], order[len(order) // 5:]
    cfg = TrainConfig.coerce(training, epochs=200, patience=20, seed=seed)

    def loss_fn(batch: Sequence[Tensor], step: Step) -> Tensor:
        return F.cross_entropy(probe(batch[0]), batch[1])

    _fit(probe, loss_fn, (f_tr[kept], y_tr[kept]), (f_tr[held], y_tr[held]), cfg, False)
    with torch.no_grad():
        acc = float((probe(f_te).argmax(1) == y_te).double().mean())
        train_acc = float((probe(f_tr).argmax(1) == y_tr).double().mean())
    majority = int(torch.bincount(y_tr).argmax())
    knn = float((knn_predict(f_tr, y_tr, f_te, min(neighbours, len(f_tr))) == y_te).double().mean())
    return ProbeResult(acc, train_acc, float((y_te == majority).double().mean()), part, f_tr.shape[1], knn, neighbours)
