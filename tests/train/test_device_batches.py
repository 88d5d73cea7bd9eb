"""Batches on their way to the device: data resident on a GPU, pinned copies one batch ahead.

The batches, their order and the generator's draws must not depend on how they travel. The CUDA
paths run where a GPU is present; the look-ahead bookkeeping is checked everywhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from innverse.train import TensorBatches, TrainConfig, train
from innverse.train.data import _one_ahead, device_batches, resident

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n: int = 103) -> TensorBatches:
    g = torch.Generator().manual_seed(0)
    return TensorBatches(torch.randn(n, 3, generator=g), torch.arange(n), batch_size=16)


def _epoch(source: TensorBatches, seed: int = 5) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.cpu() for t in b) for b in source.epoch(0, torch.Generator().manual_seed(seed))]


def _assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for s, t in zip(x, y, strict=True):
            assert torch.equal(s, t)


def test_every_row_once_per_epoch_in_the_generators_order():
    batches = _epoch(_data())
    rows = torch.cat([b[1] for b in batches])
    assert sorted(rows.tolist()) == list(range(103))
    assert rows.tolist() == torch.randperm(103, generator=torch.Generator().manual_seed(5)).tolist()


def test_on_the_cpu_nothing_moves():
    source = _data()
    assert resident(source, torch.device("cpu")) is source
    raw = list(source.epoch(0, torch.Generator().manual_seed(5)))
    moved = list(device_batches(iter(raw), torch.device("cpu")))
    assert all(m is r for a, b in zip(moved, raw, strict=True) for m, r in zip(a, b, strict=True))
    _assert_same_batches(_epoch(source.to("cpu")), _epoch(source))


def test_sending_runs_one_item_ahead_of_the_consumer():
    """``send(i + 1)`` is issued before item ``i`` reaches the caller, after ``ready(i)``; every item once,
    in order; an empty input yields nothing and sends nothing."""
    log: list[str] = []
    out = []
    for item in _one_ahead(range(4), lambda i: log.append(f"send {i}") or i, lambda i: log.append(f"ready {i}")):
        log.append(f"use {item}")
        out.append(item)
    assert out == [0, 1, 2, 3]
    assert log == ["send 0", "ready 0", "send 1", "use 0", "ready 1", "send 2", "use 1",
                   "ready 2", "send 3", "use 2", "ready 3", "use 3"]
    sent: list = []
    assert list(_one_ahead([], sent.append, sent.append)) == [] and sent == []


@CUDA
def test_resident_data_give_the_same_batches_on_the_gpu():
    source = _data()
    on_gpu = resident(source, torch.device("cuda", 0))
    assert isinstance(on_gpu, TensorBatches) and on_gpu.device.type == "cuda"
    _assert_same_batches(_epoch(on_gpu), _epoch(source))
    assert resident(source, torch.device("cuda", 0), fraction=0.0) is source  # too large: stays on the host


@CUDA
def test_pinned_copies_one_batch_ahead_arrive_intact():
    source = _data(4099)
    raw = list(source.epoch(0, torch.Generator().manual_seed(5)))
    got = []
    for batch in device_batches(iter(raw), torch.device("cuda", 0)):
        assert all(t.device.type == "cuda" for t in batch)
        got.append(tuple(t * 1 for t in batch))  # use on the compute stream, as a training step does
    _assert_same_batches([tuple(t.cpu() for t in b) for b in got], raw)


@CUDA
@pytest.mark.parametrize("fraction", [None, 0.0])
def test_training_on_the_gpu_from_resident_or_streamed_data(monkeypatch, fraction):
    """The same training, with the data resident on the device or streamed through pinned memory."""
    if fraction is not None:
        monkeypatch.setattr("innverse.train.trainer.resident",
                            lambda s, d: resident(s, d, fraction=fraction))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(2048, generator=g)
    model = nn.Linear(4, 1).cuda()
    train(model, lambda b, step: ((model(b[0]).squeeze(-1) - b[1]) ** 2).mean(),
          TensorBatches(x, y, batch_size=64), None, TrainConfig(epochs=30, lr=3e-2, patience=None), progress=False)
    assert torch.allclose(model.weight.detach().cpu(), torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.05)
