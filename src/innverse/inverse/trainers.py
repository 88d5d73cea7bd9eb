"""Train each inverse model on simulated pairs (x, y) with the library's one training loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from .._tensors import check_finite
from ..train import History, Step, TensorBatches, TrainConfig, train
from .baselines import ConditionalINN, PointRegressor
from .losses import SplitLatentLoss
from .split_latent import SplitLatentINN

__all__ = ["train_split_latent", "train_conditional_inn", "train_regressor"]

Options = TrainConfig | dict[str, Any] | None


def _check_pairs(owner: str, model: nn.Module, expected: type, x: Tensor, y: Tensor) -> None:
    """Raise a clear error unless ``model`` is an ``expected`` and ``x (N, x_dim)``, ``y (N, y_dim)`` are finite pairs."""
    if not isinstance(model, expected):
        raise TypeError(f"{owner}: expected a {expected.__name__}, got {type(model).__name__}")
    for name, t, d in (("x", x, model.x_dim), ("y", y, model.y_dim)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{owner}: expected {name} as a floating-point tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2 or t.shape[1] != d:
            raise ValueError(f"{owner}: expected {name} of shape (N, {d}) to match the model, got {tuple(t.shape)}")
        check_finite(t, f"training {name}", owner)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"{owner}: x and y need the same number N >= 2 of rows, got {x.shape[0]} and {y.shape[0]}")


def _fit(model: nn.Module, loss: Callable[[Sequence[Tensor], Step], Tensor], x: Tensor, y: Tensor,
         training: Options, progress: bool | str) -> History:
    """Standardisation from the data, then the training loop over shuffled minibatches of all pairs.

    The options left unset in ``training`` get the library's budget-aware defaults for ``N`` pairs
    (:meth:`~innverse.train.TrainConfig.resolve`); there is no validation split, so the loop
    runs its ``epochs`` (the returned weights are those of the best training epoch, averaged
    when ``ema`` is set).
    """
    model.fit_normalization(x, y)  # type: ignore[operator]
    cfg = TrainConfig.coerce(training).resolve(x.shape[0])
    return train(model, loss, TensorBatches(x, y, batch_size=cfg.batch_size), None, cfg,  # type: ignore[arg-type]
                 progress=progress)


def train_split_latent(model: SplitLatentINN, x: Tensor, y: Tensor, training: Options = None,
                       loss: SplitLatentLoss | None = None, progress: bool | str = False) -> History:
    """Fit a :class:`SplitLatentINN` to pairs ``x (N, x_dim)``, ``y = s(x) (N, y_dim)``.

    Minimises :class:`SplitLatentLoss` (default weights); the epoch records of the returned
    :class:`~innverse.train.History` hold the mean of each loss term (``fit``, ``latent``,
    ``inverse``, ``reconstruction``). ``training``: :class:`~innverse.train.TrainConfig` or a dict
    of its options.
    """
    _check_pairs("train_split_latent", model, SplitLatentINN, x, y)
    objective = loss or SplitLatentLoss()

    def step_loss(batch: Sequence[Tensor], step: Step) -> Tensor:
        total, terms = objective(model, batch[0], batch[1], step.progress, step.generator)
        step.log(**{k: v for k, v in terms.items() if k != "total"})
        return total

    return _fit(model, step_loss, x, y, training, progress)


def _model_loss(model: ConditionalINN | PointRegressor) -> Callable[[Sequence[Tensor], Step], Tensor]:
    def step_loss(batch: Sequence[Tensor], step: Step) -> Tensor:
        return model.loss(batch[0], batch[1])

    return step_loss


def train_conditional_inn(model: ConditionalINN, x: Tensor, y: Tensor, training: Options = None,
                          progress: bool | str = False) -> History:
    """Fit a :class:`ConditionalINN` by maximum likelihood on pairs ``(x, y)``."""
    _check_pairs("train_conditional_inn", model, ConditionalINN, x, y)
    return _fit(model, _model_loss(model), x, y, training, progress)


def train_regressor(model: PointRegressor, x: Tensor, y: Tensor, training: Options = None,
                    progress: bool | str = False) -> History:
    """Fit a :class:`PointRegressor` by least squares on pairs ``(x, y)``."""
    _check_pairs("train_regressor", model, PointRegressor, x, y)
    return _fit(model, _model_loss(model), x, y, training, progress)
