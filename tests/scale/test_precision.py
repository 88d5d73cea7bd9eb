"""bfloat16 mixed precision in the training loop (CPU): the subnetworks compute in bfloat16, the
log-determinants and the loss stay float32, and a flow trains as far as in float32."""

from __future__ import annotations

import pytest
import torch

from innverse.flows import coupling_flow
from innverse.train import TensorBatches, TrainConfig, train


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
    return torch.randn(512, 3, generator=g) @ a.T


def _fit(precision: str, seen: dict) -> tuple[float, float]:
    torch.manual_seed(0)
    flow = coupling_flow(3, blocks=2, hidden=(32, 32), coupling="spline")
    x = _data()
    with torch.no_grad():
        before = float(-flow.log_prob(x).mean())
    linear = next(m for m in flow.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda m, i, out: seen.setdefault("matmul", out.dtype) and None)

    def loss(batch, step):
        _, log_det = flow.transform(batch[0])
        seen.setdefault("log_det", log_det.dtype)
        value = -flow.log_prob(batch[0]).mean()
        seen.setdefault("loss", value.dtype)
        return value

    cfg = TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=None, ema=None, precision=precision)
    train(flow, loss, TensorBatches(x, batch_size=128), config=cfg, progress=False)
    with torch.no_grad():
        return before, float(-flow.log_prob(x).mean())


def test_bfloat16_trains_with_float32_log_dets_and_loss():
    seen16: dict = {}
    before, after16 = _fit("bfloat16", seen16)
    assert seen16 == {"matmul": torch.bfloat16, "log_det": torch.float32, "loss": torch.float32}
    seen32: dict = {}
    _, after32 = _fit("float32", seen32)
    assert seen32["matmul"] == torch.float32
    # the Gaussian's entropy is about 3.2 nats (|det A| = 0.24); both fits get most of the way from the start
    assert after16 < before - 1.0
    assert abs(after16 - after32) < 0.1


def test_float16_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"precision must be 'float32' or 'bfloat16', got 'float16' .*loss scaling"):
        TrainConfig(precision="float16")
