"""Training: one loop for every model (:mod:`.loop`), its checkpoints, devices and multi-process runs."""

from .checkpoints import CheckpointError, latest_checkpoint
from .devices import available_devices, select_device
from .loop import TrainingTask, TrainResult, iter_train, train

__all__ = [
    "CheckpointError",
    "TrainResult",
    "TrainingTask",
    "available_devices",
    "iter_train",
    "latest_checkpoint",
    "select_device",
    "train",
]
