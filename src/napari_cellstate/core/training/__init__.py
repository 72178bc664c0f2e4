"""Training: one loop for every model (:mod:`.loop`), its checkpoints, devices and multi-process runs."""

from .checkpoints import CheckpointError, latest_checkpoint
from .devices import available_devices, select_device
from .loop import BatchStream, TrainingTask, TrainResult, iter_train, train
from .streaming import ChunkStream

__all__ = [
    "BatchStream",
    "CheckpointError",
    "ChunkStream",
    "TrainResult",
    "TrainingTask",
    "available_devices",
    "iter_train",
    "latest_checkpoint",
    "select_device",
    "train",
]
