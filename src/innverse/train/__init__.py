"""The training loop: optimiser and schedules, validation, early stopping, checkpoints, logging."""

from .checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from .config import SCHEDULES, TrainConfig
from .data import BatchSource, TensorBatches
from .distributed import leave_group
from .history import EpochCallback, History
from .progress import progress_bar
from .schedule import learning_rate
from .trainer import LossFn, NonFiniteLossError, Step, adam, train

__all__ = [
    "SCHEDULES",
    "Step",
    "BatchSource",
    "EpochCallback",
    "History",
    "LossFn",
    "NonFiniteLossError",
    "TensorBatches",
    "TrainConfig",
    "adam",
    "atomic_write_bytes",
    "learning_rate",
    "leave_group",
    "load_checkpoint",
    "progress_bar",
    "save_checkpoint",
    "train",
]
