"""A tiny training task, and a DDP run of it when launched under torchrun.

``test_training.py`` imports ``TinyTask`` and ``tiny_dataset`` from here, so the
single-process reference and the DDP run train exactly the same thing::

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/core/_ddp_script.py OUT_DIR \
        '{"epochs": 2, "batch_size": 32, "device": "cpu"}' --resume-after 1

trains ``--resume-after`` epochs with checkpoints in ``OUT_DIR/checkpoints``,
then resumes from them up to the TrainConfig's (given as JSON) ``epochs``
(both under DDP with gloo), and rank
0 writes the final weights to ``OUT_DIR/weights.safetensors`` and the result to
``OUT_DIR/result.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

N_SAMPLES = 245  # not a multiple of the batch: the last batch is partial and splits unevenly across 2 processes


class TinyTask:
    """Regress a fixed function of a (1, 8, 8) image with a conv + GroupNorm net (dropout optional)."""

    def __init__(self, init_seed: int = 0, dropout: float = 0.0):
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.model = nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1),
                nn.GroupNorm(2, 4),
                nn.ReLU(),
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(4 * 8 * 8, 1),
            )

    def loss(self, batch, dataset_size):
        x, y = batch
        prediction = self.model(x)
        mse = F.mse_loss(prediction, y)
        return mse, {"mae": (prediction - y).abs().mean(), "dataset_size": float(dataset_size)}


def tiny_dataset(n: int = N_SAMPLES, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` random images (n, 1, 8, 8) and targets (n, 1): a smooth function of the image."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=generator)
    y = (x[:, 0, :4].mean(dim=(1, 2)) - 0.5 * x[:, 0, 4:].mean(dim=(1, 2))).tanh().unsqueeze(1) * 3
    return torch.utils.data.TensorDataset(x, y)


def main() -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    from napari_cellstate.core.config import TrainConfig
    from napari_cellstate.core.io import atomic_path, write_json_atomic
    from napari_cellstate.core.training import train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("config", help="TrainConfig as JSON")
    parser.add_argument("--resume-after", type=int, default=1)
    args = parser.parse_args()

    task, data = TinyTask(), tiny_dataset()
    checkpoints = args.out / "checkpoints"
    cfg = TrainConfig.model_validate_json(args.config)
    train(task, data, cfg.model_copy(update={"epochs": args.resume_after}), checkpoint_dir=checkpoints)
    result = train(task, data, cfg, checkpoint_dir=checkpoints, resume=True)  # in the process group the first made
    if dist.get_rank() == 0:
        with atomic_path(args.out / "weights.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in task.model.state_dict().items()}, tmp)
        write_json_atomic(
            args.out / "result.json",
            {
                "history": result.history,
                "world_size": result.world_size,
                "step": result.step,
                "wrapped": str(type(task.model)),
            },
        )


if __name__ == "__main__":
    main()
