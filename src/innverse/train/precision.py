r"""Mixed precision for the training loop: bfloat16 or float16 autocast around the loss, the loss itself in float32.

Under ``TrainConfig(precision="bfloat16")`` (or ``"float16"``) the loss function runs inside ``torch.autocast``: matrix
products and convolutions of the subnetworks (where the time goes) compute in bfloat16, while
autocast keeps reductions, ``log``, ``exp``, ``softplus`` and the like in float32; the returned loss
is cast to float32 before the backward pass, and the weights, gradients and optimiser state stay
float32 (no loss scaling is needed: bfloat16 has float32's exponent range).

What must stay float32 is the log-determinant: :math:`\log p(x) = \log p_z(f(x)) + \sum_k \log|\det J_k|`
sums many terms, and bfloat16's 8-bit mantissa (a relative step of :math:`2^{-8}`) would round each
of them. A block whose log-determinant comes out in bfloat16 therefore needs to accumulate it in
float32 itself (``s.float().sum(-1)``); the loop checks nothing per block, only the dtype of the loss.

float16 has a 10-bit mantissa but a narrow exponent range (gradients below about :math:`6\cdot 10^{-8}`
flush to zero), so ``"float16"`` adds dynamic loss scaling (:class:`LossScaler`): the loss is
multiplied by a scale :math:`S` before the backward pass and the gradients divided by :math:`S`
before clipping and the update; a step whose gradients overflow is skipped and halves :math:`S`,
and :math:`S` doubles after ``interval`` finite steps in a row. Overflow skips are the scaler's
business and do not count towards ``max_nonfinite`` until :math:`S` has fallen to 1; a non-finite
*loss* always counts (the forward pass itself overflowed, which no scale fixes). Use bfloat16 where
the hardware has it; float16 is for GPUs without (V100, T4).

References:
    Micikevicius, P. et al. (2018). Mixed precision training. ICLR.
    Kalamkar, D. et al. (2019). A study of BFLOAT16 for deep learning training. arXiv:1905.12322.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "LossScaler", "autocast", "as_float32"]

#: the ``TrainConfig.precision`` values
PRECISIONS = ("float32", "bfloat16", "float16")
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bfloat16 / float16 autocast on ``device`` for those precisions; nothing for ``"float32"``.

    Raises:
        ValueError: a device type autocast does not support (only ``cpu`` and ``cuda``).
    """
    if precision == "float32":
        yield
        return
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train: precision={precision!r} needs a cpu or cuda device, got {device}")
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield


def as_float32(loss: Tensor) -> Tensor:
    """The loss in float32 (a no-op when it already is)."""
    return loss if loss.dtype == torch.float32 or loss.dtype == torch.float64 else loss.float()


class LossScaler:
    """Dynamic loss scaling for float16 training (a disabled scaler has scale 1 and never changes).

    Args:
        enabled: scale at all (``precision="float16"``).
        init: the first scale, :math:`2^{16}`.
        interval: finite steps in a row after which the scale doubles.
    """

    def __init__(self, enabled: bool, init: float = 2.0**16, interval: int = 2000) -> None:
        self.enabled, self.interval = bool(enabled), int(interval)
        self.scale = float(init) if enabled else 1.0
        self.good_steps = 0

    def overflowed(self) -> bool:
        """Record a step whose gradients overflowed: halve the scale; whether the skip is the scaler's (not counted)."""
        if not self.enabled:
            return False
        counted = self.scale <= 1.0
        self.scale = max(self.scale / 2.0, 2.0**-24)
        self.good_steps = 0
        return not counted

    def finite(self) -> None:
        """Record a finite step: the scale doubles after ``interval`` of them in a row."""
        if not self.enabled:
            return
        self.good_steps += 1
        if self.good_steps >= self.interval:
            self.scale, self.good_steps = min(self.scale * 2.0, 2.0**24), 0

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load(self, state: dict[str, float] | None) -> None:
        if self.enabled and state is not None:
            self.scale, self.good_steps = float(state["scale"]), int(state["good_steps"])
