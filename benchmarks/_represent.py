"""Shared pieces of the represent_* benchmarks: data splits, the non-invertible ResNet baseline, figure paths."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from _common import RESULTS, machine_tag
from innverse.tasks.images import DigitClasses
from innverse.tasks.represent import GeneratedShapes
from innverse.train import TensorBatches, TrainConfig, train

Split = tuple[torch.Tensor, torch.Tensor]


def digits() -> dict[str, Split]:
    """scikit-learn's 8x8 digits in [0, 1] with integer labels; the fixed train/val/test split of DigitClasses."""
    task = DigitClasses()
    out = {}
    for split in ("train", "val", "test"):
        x, c = task.pairs(split)
        out[split] = (x / 16.0, c.argmax(1))
    return out


def shapes() -> dict[str, Split]:
    """The generated 16x16 shapes (6 classes) with integer labels; fixed train/val/test splits."""
    task = GeneratedShapes()
    out = {}
    for split in ("train", "val", "test"):
        x, c = task.pairs(split)
        out[split] = (x, c.argmax(1))
    return out


DATASETS = {"digits": digits, "shapes": shapes}


def figure_path(name: str, what: str) -> Path:
    """``benchmarks/results/<name>_<date>_<machine>_<what>.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}_{_dt.date.today().isoformat()}_{machine_tag()}_{what}.png"


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResNet(nn.Module):
    """A plain (non-invertible) ResNet: stem conv, stages of residual blocks with stride-2 convs between, average pool, linear.

    Widths double at every stage, starting from ``width``; ``stages`` blocks per stage.
    """

    def __init__(self, in_channels: int, classes: int, width: int, stages: tuple[int, ...] = (2, 2, 2)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1)]
        c = width
        for i, n in enumerate(stages):
            if i > 0:
                layers.append(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1))
                c *= 2
            layers += [_Residual(c) for _ in range(n)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.body(x)).mean((2, 3)))


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def same_size_resnet(in_channels: int, classes: int, target: int, stages: tuple[int, ...]) -> ResNet:
    """The :class:`ResNet` whose parameter count is closest to ``target``."""
    best = min(range(2, 256), key=lambda w: abs(parameters(ResNet(in_channels, classes, w, stages)) - target))
    return ResNet(in_channels, classes, best, stages)


def train_plain(model: nn.Module, data: dict[str, Split], config: TrainConfig) -> object:
    """Cross-entropy training of a plain classifier with the library's training loop (validation: val split)."""
    def loss_fn(batch, step):
        loss = F.cross_entropy(model(batch[0]), batch[1])
        step.log(semantic=loss)
        return loss

    return train(model, loss_fn, TensorBatches(*data["train"], batch_size=config.batch_size),
                 TensorBatches(*data["val"], batch_size=config.batch_size, shuffle=False), config, progress=False)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split) -> float:
    model.eval()
    x, y = split
    pred = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((pred == y).double().mean())


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0)
