r"""Mixed precision for the training loop: bfloat16 autocast around the loss, the loss itself in float32.

Under ``TrainConfig(precision="bfloat16")`` the loss function runs inside ``torch.autocast``: matrix
products and convolutions of the subnetworks (where the time goes) compute in bfloat16, while
autocast keeps reductions, ``log``, ``exp``, ``softplus`` and the like in float32; the returned loss
is cast to float32 before the backward pass, and the weights, gradients and optimiser state stay
float32 (no loss scaling is needed: bfloat16 has float32's exponent range).

What must stay float32 is the log-determinant: :math:`\log p(x) = \log p_z(f(x)) + \sum_k \log|\det J_k|`
sums many terms, and bfloat16's 8-bit mantissa (a relative step of :math:`2^{-8}`) would round each
of them. A block whose log-determinant comes out in bfloat16 therefore needs to accumulate it in
float32 itself (``s.float().sum(-1)``); the loop checks nothing per block, only the dtype of the loss.

float16 is refused: its narrow exponent range needs dynamic loss scaling, which the loop's skipping of
non-finite steps does not model.

References:
    Micikevicius, P. et al. (2018). Mixed precision training. ICLR.
    Kalamkar, D. et al. (2019). A study of BFLOAT16 for deep learning training. arXiv:1905.12322.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "autocast", "as_float32"]

#: the ``TrainConfig.precision`` values
PRECISIONS = ("float32", "bfloat16")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bfloat16 autocast on ``device`` for ``precision="bfloat16"``; nothing for ``"float32"``.

    Raises:
        ValueError: bfloat16 on a device type autocast does not support (only ``cpu`` and ``cuda``).
    """
    if precision == "float32":
        yield
        return
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train: precision='bfloat16' needs a cpu or cuda device, got {device}")
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def as_float32(loss: Tensor) -> Tensor:
    """The loss in float32 (a no-op when it already is)."""
    return loss if loss.dtype == torch.float32 or loss.dtype == torch.float64 else loss.float()
