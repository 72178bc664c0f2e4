"""A β-TCVAE trained from a crop store by two processes under torchrun, each streaming its own chunks.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/core/_stream_ddp_script.py OUT_DIR

Rank 0 writes the store (pixel (0, 0) of crop i holds i, so a batch tells which rows it holds); every process
trains with a :class:`ChunkStream` over it and writes ``rank<r>.json`` (the rows of each of its steps, per epoch,
and the history) and ``weights<r>.safetensors``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_cellstate.core.config import TrainConfig, VAEConfig
from napari_cellstate.core.project.crop_store import open_crop_store, write_crop_store
from napari_cellstate.core.training import ChunkStream, train
from napari_cellstate.core.vae import BetaTCVAE
from napari_cellstate.core.vae.fit import VAETask

N_CROPS, BATCH, EPOCHS = 1100, 32, 2


def make_store(path: Path) -> None:
    crops = np.random.default_rng(0).normal(size=(N_CROPS, 16, 16)).astype(np.float32)
    crops[:, 0, 0] = np.arange(N_CROPS)
    write_crop_store(path, [crops], 16, {})


def main() -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if rank == 0:
        make_store(args.out / "crops.zarr")
    dist.barrier()

    served: list[list[int]] = []

    def collate(block: np.ndarray) -> torch.Tensor:
        served.append(block[:, 0, 0].astype(int).tolist())
        block = block.copy()
        block[:, 0, 0] = 0.0
        return torch.from_numpy(block)[:, None]

    stream = ChunkStream(open_crop_store(args.out / "crops.zarr"), buffer_chunks=1, collate=collate)
    torch.manual_seed(0)
    task = VAETask(BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=3, channels=(4,), dense_units=16)))
    result = train(task, stream, TrainConfig(epochs=EPOCHS, batch_size=BATCH, learning_rate=3e-3, seed=3, device="cpu"))
    steps = stream.steps_per_epoch(BATCH, dist.get_world_size())
    epochs = [served[e * steps : (e + 1) * steps] for e in range(EPOCHS)]
    (args.out / f"rank{rank}.json").write_text(json.dumps({"epochs": epochs, "history": result.history}))
    save_file({k: v.contiguous() for k, v in task.model.state_dict().items()}, args.out / f"weights{rank}.safetensors")
    dist.barrier()


if __name__ == "__main__":
    main()
