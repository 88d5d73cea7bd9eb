"""Train each inverse model on simulated pairs (x, y) with one shared budget."""

from __future__ import annotations

import torch
from torch import Tensor

from .baselines import ConditionalINN, PointRegressor
from .losses import SplitLatentLoss
from .split_latent import SplitLatentINN
from .training import TrainingBudget, TrainingResult, check_training_data, fit

__all__ = ["train_split_latent", "train_conditional_inn", "train_regressor"]


def train_split_latent(model: SplitLatentINN, x: Tensor, y: Tensor, budget: TrainingBudget | None = None,
                       loss: SplitLatentLoss | None = None) -> TrainingResult:
    """Fit a :class:`SplitLatentINN` to pairs ``x (N, x_dim)``, ``y = s(x) (N, y_dim)``.

    Sets the model's standardisation from the data, then minimises :class:`SplitLatentLoss`
    (default weights) for ``budget.steps`` steps (default :class:`TrainingBudget`).
    """
    if not isinstance(model, SplitLatentINN):
        raise TypeError(f"train_split_latent: expected a SplitLatentINN, got {type(model).__name__}")
    check_training_data("train_split_latent", x, y, model.x_dim, model.y_dim)
    model.fit_normalization(x, y)
    objective = loss or SplitLatentLoss()

    def step(xb: Tensor, yb: Tensor, progress: float, gen: torch.Generator):
        return objective(model, xb, yb, progress, gen)

    return fit(model, step, x, y, budget)


def _likelihood_step(model: ConditionalINN | PointRegressor):
    def step(xb: Tensor, yb: Tensor, progress: float, gen: torch.Generator):
        value = model.loss(xb, yb)
        return value, {"total": value.item()}

    return step


def train_conditional_inn(model: ConditionalINN, x: Tensor, y: Tensor,
                          budget: TrainingBudget | None = None) -> TrainingResult:
    """Fit a :class:`ConditionalINN` by maximum likelihood on pairs ``(x, y)``."""
    if not isinstance(model, ConditionalINN):
        raise TypeError(f"train_conditional_inn: expected a ConditionalINN, got {type(model).__name__}")
    check_training_data("train_conditional_inn", x, y, model.x_dim, model.y_dim)
    model.fit_normalization(x, y)
    return fit(model, _likelihood_step(model), x, y, budget)


def train_regressor(model: PointRegressor, x: Tensor, y: Tensor,
                    budget: TrainingBudget | None = None) -> TrainingResult:
    """Fit a :class:`PointRegressor` by least squares on pairs ``(x, y)``."""
    if not isinstance(model, PointRegressor):
        raise TypeError(f"train_regressor: expected a PointRegressor, got {type(model).__name__}")
    check_training_data("train_regressor", x, y, model.x_dim, model.y_dim)
    model.fit_normalization(x, y)
    return fit(model, _likelihood_step(model), x, y, budget)
