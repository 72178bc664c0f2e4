"""A tiny β-TCVAE task with per-sample noise, and a DDP run of it when launched under torchrun.

``test_vae_ddp.py`` imports ``NoiseTask``, ``noisy_crops``, ``train_config`` and ``gradient_batch`` from here, so
the single-process reference and the DDP run train exactly the same thing::

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/core/_vae_ddp_script.py OUT_DIR

For each estimator (MWS, MSS), rank 0 writes to ``OUT_DIR``:

* ``weights_<estimator>.safetensors``: the weights after training with ``iter_train`` (``train_config()``);
* ``grads_<estimator>.safetensors``: the DDP-averaged gradients of a fresh model on ``gradient_batch()`` (split
  unevenly across the processes, as iter_train splits a partial last batch), with ``VAETask.loss`` (``exact.*``)
  and with the estimators fed only the process's own rows (``local.*``, the behaviour before the all-gather).

The reparameterisation noise is part of each sample (a fixed eps per crop), so it does not depend on which process
draws it: the runs differ only in how the batch is split.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import torch
from torch import nn

from napari_cellstate.core.config import TrainConfig, VAEConfig
from napari_cellstate.core.vae import BetaTCVAE, beta_tcvae_loss
from napari_cellstate.core.vae.fit import VAETask

N_CROPS = 45  # batches of 16: two full ones and a partial one of 13, split 7 + 6 across 2 processes
ESTIMATORS = ("mws", "mss")


class FixedNoiseVAE(nn.Module):
    """A BetaTCVAE whose forward takes the reparameterisation noise eps as an input."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.vae = BetaTCVAE(cfg)
        self.cfg = self.vae.cfg

    def forward(self, x, eps):
        mu, logvar = self.vae.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.vae.decode(z), mu, logvar, z


class NoiseTask(VAETask):
    """VAETask on (crop, eps) samples: the noise comes with the sample."""

    def __init__(self, estimator: str = "mss", init_seed: int = 0):
        cfg = VAEConfig(crop_size_px=16, n_latents=3, channels=(4,), dense_units=16, estimator=estimator)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            super().__init__(FixedNoiseVAE(cfg))

    def loss(self, batch, dataset_size):
        x, eps = batch
        x_hat, mu, logvar, z = self.model(x, eps)
        return self.objective(x, x_hat, mu, logvar, z, dataset_size)


def noisy_crops(n: int = N_CROPS, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` random (1, 16, 16) crops, each with its own eps of shape (3,)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=generator)
    eps = torch.randn(n, 3, generator=generator)
    return torch.utils.data.TensorDataset(x, eps)


def train_config() -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3, seed=7, device="cpu")


def gradient_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A global batch of 13 samples (odd: 7 + 6 rows across 2 processes)."""
    x, eps = noisy_crops().tensors
    return x[:13], eps[:13]


def _ddp_gradients(estimator: str, exact: bool) -> dict[str, torch.Tensor]:
    """One backward pass through DDP, as iter_train does it (the loss scaled by the process's share)."""
    import torch.distributed as dist

    world, rank = dist.get_world_size(), dist.get_rank()
    task = NoiseTask(estimator)
    model = task.model
    task.model = nn.parallel.DistributedDataParallel(model)
    x, eps = gradient_batch()
    rows = torch.tensor_split(torch.arange(len(x)), world)[rank]
    local = (x[rows], eps[rows])
    if exact:
        loss, _ = task.loss(local, N_CROPS)
    else:
        x_hat, mu, logvar, z = task.model(*local)
        loss, _ = beta_tcvae_loss(local[0], x_hat, mu, logvar, z, N_CROPS, task.cfg)
    (loss * (len(rows) * world / len(x))).backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def main() -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    from napari_cellstate.core.training import train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()

    for estimator in ESTIMATORS:
        task = NoiseTask(estimator)
        train(task, noisy_crops(), train_config())  # initialises the process group
        grads = {f"exact.{k}": v for k, v in _ddp_gradients(estimator, exact=True).items()}
        grads |= {f"local.{k}": v for k, v in _ddp_gradients(estimator, exact=False).items()}
        if dist.get_rank() == 0:
            weights = {k: v.contiguous() for k, v in task.model.state_dict().items()}
            save_file(weights, args.out / f"weights_{estimator}.safetensors")
            save_file(grads, args.out / f"grads_{estimator}.safetensors")
        dist.barrier()
    # Leave together, with no DDP reducer alive: gloo threads torn down at interpreter exit can abort the process.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
