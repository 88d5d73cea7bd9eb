"""Polyak averaging of the weights during training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    r"""Exponential moving average of the trained parameters (Polyak averaging).

    :math:`\bar w \leftarrow d_t \bar w + (1 - d_t) w` after every optimiser step, with the
    warm-up :math:`d_t = \min(d, (1 + t) / (10 + t))` so that the first steps are not averaged
    with the initial weights for long.
    """

    def __init__(self, params: list[nn.Parameter], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.updates = 0
        self.average = [p.detach().clone() for p in params]

    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def _set(self, values: list[Tensor]) -> None:
        torch._foreach_copy_(self.params, values)

    def write_to_model(self) -> None:
        """Replace the model's weights by the averaged ones."""
        self._set(self.average)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights in the model for the duration of the block."""
        current = [p.detach().clone() for p in self.params]
        self.write_to_model()
        try:
            yield
        finally:
            self._set(current)

    def state(self) -> dict[str, Any]:
        return {"updates": self.updates, "average": self.average}

    def load(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for a, v in zip(self.average, state["average"]):
            a.copy_(v)
