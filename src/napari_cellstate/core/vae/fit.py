"""Train and fine-tune the β-TCVAE on crops, through the shared training loop; the packaged model.

The packaged default model (``data/vae_default.*``) was trained by
``napari-cellstate train-vae --synthetic`` on the synthetic crop generator;
its model card records the data, settings, metrics and versions.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import CropGeneratorConfig, TrainConfig, VAEConfig
from ..crops import standardise_crops
from ..progress import Progress, run_to_completion

__all__ = [
    "DEFAULT_VAE_PATH",
    "VAETask",
    "evaluate_on_synthetic",
    "fine_tune_training",
    "iter_train_vae",
    "load_default_vae",
    "resolve_vae_path",
    "synthetic_training_crops",
    "train_vae",
]

DEFAULT_VAE_PATH = Path(__file__).parents[1] / "data" / "vae_default"
SYNTHETIC_CHUNK = 1000  # crops per generator call (one texture and neighbour bank each)
LOSS_WEIGHTS = {"alpha", "beta", "gamma", "estimator", "input_noise"}  # the VAEConfig fields a fine-tune may change
#: Fewest optimisation steps a fine-tune takes by default (a few hundred crops, a few minutes on a CPU).
FINE_TUNE_STEPS = 200
#: The name that stands for the packaged model wherever a model path is asked for.
PACKAGED = "packaged"


def resolve_vae_path(path: os.PathLike | str) -> Path:
    """A model path, with ``"packaged"`` standing for the packaged β-TCVAE.

    >>> resolve_vae_path("packaged") == DEFAULT_VAE_PATH
    True
    """
    return DEFAULT_VAE_PATH if str(path).strip().lower() == PACKAGED else Path(path)


def fine_tune_training(n_crops: int, seed: int = 0) -> TrainConfig:
    """Fine-tuning settings for a few hundred to a few thousand crops: small batches, a low rate, enough steps.

    Batches of 64 (fewer crops than that: all of them), learning rate 3e-4 (a third of training from scratch, so the
    latents keep their meaning and names), and as many epochs as :data:`FINE_TUNE_STEPS` steps need (at least 5).

    >>> config = fine_tune_training(300)
    >>> config.batch_size, config.epochs, config.learning_rate
    (64, 40, 0.0003)
    """
    batch_size = int(min(64, max(n_crops, 1)))
    epochs = max(5, -(-FINE_TUNE_STEPS // -(-max(n_crops, 1) // batch_size)))
    return TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=3e-4, seed=seed)


class _Crops:
    """A torch Dataset over (N, S, S) crops (numpy or zarr), one (1, S, S) tensor per item."""

    def __init__(self, crops) -> None:
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index):
        import torch

        return torch.from_numpy(np.asarray(self.crops[index], dtype=np.float32))[None]


class VAETask:
    """The β-TCVAE objective as a :class:`~napari_cellstate.core.training.TrainingTask`.

    Exact under data parallelism: when ``torch.distributed`` runs several processes, each process gathers the
    posterior parameters (mu, logvar) of the whole global batch and scores its own samples against all of them, so
    the MI/TC/DWKL estimators see the global batch, as one process training on it would.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.cfg = model.cfg  # kept here: under DDP ``self.model`` is the wrapper, which has no ``cfg``

    def loss(self, batch, dataset_size: int):
        """β-TCVAE loss of a batch, with the true dataset size for the estimators.

        With ``cfg.input_noise`` > 0 the encoder sees the batch plus Gaussian noise and the loss scores the
        reconstruction against the clean batch (a denoising VAE), which keeps the encoder's gradient off pixel noise.
        """
        import torch

        noisy = batch + self.cfg.input_noise * torch.randn_like(batch) if self.cfg.input_noise > 0 else batch
        x_hat, mu, logvar, z = self.model(noisy)
        return self.objective(batch, x_hat, mu, logvar, z, dataset_size)

    def objective(self, x, x_hat, mu, logvar, z, dataset_size: int):
        """The loss of this process's samples (a per-sample mean), against the global batch under DDP.

        Gradients: :func:`iter_train` scales each process's loss by its share (``b_r·W/B``, 1 for an even split),
        so the losses of the W processes sum to W times the global-batch mean loss L. The all-gather's backward
        sums, into each process's own (mu, logvar), the gradients from every process's loss, and each process's
        parameter gradient is the derivative of that sum along the paths through its own forward pass; DDP
        averages these W gradients, which gives (1/W)·∇(W·L) = ∇L: the single-process gradient, with no extra
        factor (``tests/core/test_vae_ddp.py`` checks it).
        """
        from . import beta_tcvae_loss

        gathered = _gather_posterior(mu, logvar)
        if gathered is None:
            return beta_tcvae_loss(x, x_hat, mu, logvar, z, dataset_size, self.cfg)
        batch_mu, batch_logvar, offset = gathered
        return beta_tcvae_loss(
            x, x_hat, mu, logvar, z, dataset_size, self.cfg, batch_mu=batch_mu, batch_logvar=batch_logvar, offset=offset
        )


def _gather_posterior(mu, logvar):
    """(mu, logvar) of the global batch and the offset of this process's rows, or None on one process.

    ``iter_train`` splits the global batch contiguously in rank order (``torch.tensor_split``), so concatenating
    the shares in rank order rebuilds it. A partial last batch may split unevenly: shares are padded to the largest
    for the all-gather (which needs equal shapes) and trimmed after. The gather is autograd-aware, so gradients
    flow back to the process that computed each row.
    """
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    world = torch.distributed.get_world_size()
    if world == 1:
        return None
    from torch.distributed.nn.functional import all_gather

    rank, rows = torch.distributed.get_rank(), mu.shape[0]
    count_device = mu.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    counts = [torch.zeros(1, dtype=torch.int64, device=count_device) for _ in range(world)]
    torch.distributed.all_gather(counts, torch.tensor([rows], dtype=torch.int64, device=count_device))
    sizes = [int(c.item()) for c in counts]
    largest = max(sizes)
    both = torch.cat([mu, logvar], dim=1)
    if rows < largest:
        both = torch.cat([both, both.new_zeros(largest - rows, both.shape[1])])
    with warnings.catch_warnings():
        # deprecated in recent torch for a private API; it still works, and it is the one torch >= 2.4 all have
        warnings.filterwarnings("ignore", ".*all_gather is deprecated", FutureWarning)
        parts = all_gather(both)
    full = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
    d = mu.shape[1]
    return full[:, :d], full[:, d:], sum(sizes[:rank])


def synthetic_training_crops(
    n: int,
    seed: int = 0,
    cfg: CropGeneratorConfig | None = None,
    clip: float = 4.0,
    chunk: int | None = SYNTHETIC_CHUNK,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Standardised crops from the synthetic generator, and their generating factors.

    Drawn in chunks of ``chunk`` crops, each from its own child seed: the crops of one generator call share one
    bank of chromatin textures and neighbour nuclei, so a single large call would train (and score) a model on one
    bank only. Each chunk is balanced between the classes. ``chunk=None`` makes one call with ``seed`` itself.
    """
    from ..simulate import generate_crops

    if chunk is None:
        batches = [generate_crops(n, cfg, seed=seed)]
    else:
        children = np.random.SeedSequence(seed).spawn(-(-n // chunk))
        batches = [
            generate_crops(min(chunk, n - k * chunk), cfg, seed=int(child.generate_state(1)[0]))
            for k, child in enumerate(children)
        ]
    images = np.concatenate([batch.images for batch in batches]).astype(np.float32)
    factors = pd.concat([batch.factors for batch in batches], ignore_index=True)
    return standardise_crops(images, clip=clip), factors


def iter_train_vae(
    crops,
    vae: VAEConfig | None = None,
    training: TrainConfig | None = None,
    *,
    start_from: os.PathLike | str | None = None,
    checkpoint_dir: os.PathLike | str | None = None,
    resume: bool = False,
    rows=None,
) -> Generator[Progress, None, tuple[object, dict]]:
    """Train a β-TCVAE on standardised crops (or fine-tune one from ``start_from``).

    Parameters
    ----------
    crops : array of shape (N, S, S), float32
        Standardised crops (see ``CropConfig``), numpy or zarr.
    start_from : path, optional
        A saved model to fine-tune (``"packaged"``: the packaged one). Its architecture is kept; each loss weight
        (α, β, γ, estimator) set explicitly in ``vae`` replaces the file's, so a fine-tune can change the
        information penalty.
    rows : array of int, optional
        Train on these rows of ``crops`` only (e.g. the "train" split); default all. A project's lazy crop store
        larger than :data:`~napari_cellstate.core.training.streaming.STREAM_ABOVE_BYTES` is streamed chunk by
        chunk (:class:`~napari_cellstate.core.training.ChunkStream`) instead of read into memory.

    Returns
    -------
    model : BetaTCVAE
    card : dict
        Data, hyperparameters, metrics and training history for the model card.
    """
    import torch

    from ..training import iter_train
    from ..training.streaming import training_rows
    from . import BetaTCVAE, check_crop_size, load_vae

    training = training or TrainConfig()
    parent = None
    if start_from is not None:
        start_from = resolve_vae_path(start_from)
        model, parent_card = load_vae(start_from)
        if vae is not None:
            model.cfg = model.cfg.model_copy(update=vae.model_dump(include=LOSS_WEIGHTS & vae.model_fields_set))
        lineage = ("data", "hyperparameters", "fine_tuned_from")  # a chain of fine-tunes keeps every stage
        parent = {"path": str(start_from)} | {key: parent_card.get(key) for key in lineage}
    else:
        torch.manual_seed(training.seed)
        model = BetaTCVAE(vae or VAEConfig(crop_size_px=int(crops.shape[-1])))
    check_crop_size(model.cfg, int(crops.shape[-1]))
    start = time.perf_counter()
    data = training_rows(crops, rows, in_memory=_Crops)
    result = yield from iter_train(VAETask(model), data, training, checkpoint_dir=checkpoint_dir, resume=resume)
    card = {
        "data": {"n_crops": len(data), "crop_size_px": int(crops.shape[-1])},
        "hyperparameters": {"vae": model.cfg.model_dump(mode="json"), "training": training.model_dump(mode="json")},
        "metrics": {"final_epoch": result.history[-1] if result.history else {}},
        "history": result.history,
        "fine_tuned_from": parent,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return model.cpu().eval(), card


def train_vae(crops, vae: VAEConfig | None = None, training: TrainConfig | None = None, **kwargs):
    """Blocking form of :func:`iter_train_vae`."""
    return run_to_completion(iter_train_vae(crops, vae, training, **kwargs))


def load_default_vae():
    """The packaged β-TCVAE and its model card."""
    from . import load_vae

    return load_vae(DEFAULT_VAE_PATH)


def evaluate_on_synthetic(model, n: int = 4000, seed: int = 12345) -> dict:
    """How well a VAE keeps and disentangles the synthetic crops' generating factors.

    Uses fresh crops (a seed the training data did not use). Returns the
    reconstruction error, the MIG against the generator's factors, the
    latent best tied to each factor (|r|), the best latent pair for
    eccentricity (radius and angle), and the latents tied to the neighbourhood.
    """
    import torch

    from .encode import encode_crops, latent_name
    from .naming import best_pairs, mutual_information_gap, name_latents

    crops, factors = synthetic_training_crops(n, seed=seed)
    mu, _ = encode_crops(model, crops)
    with torch.inference_mode():
        sample = torch.from_numpy(crops[:512])[:, None]
        recon = model.decode(model.encode(sample)[0]).numpy()[:, 0]
    named = name_latents(mu, factors, columns=("area", "eccentricity", "orientation", "brightness", "neighbour_count"))
    mig, per_factor = mutual_information_gap(mu, factors[["area", "eccentricity", "brightness", "neighbour_count"]])
    strongest = {
        column: {"latent": latent_name(int(named[column].abs().idxmax())), "r": float(named[column].abs().max())}
        for column in named.columns[3:]
    }
    pair = best_pairs(mu, factors, "eccentricity", top=1).iloc[0]
    active = np.flatnonzero(mu.std(axis=0) > 0.1)
    return {
        "reconstruction_mse": float(np.mean((recon - crops[:512]) ** 2)),
        "mig": mig,
        "mig_per_factor": per_factor.to_dict(orient="records"),
        "strongest_latent": strongest,
        "eccentricity_pair": {
            "pair": pair["pair"],
            "r_radius": float(pair["r_radius"]),
            "r_angle": float(pair["r_angle"]),
        },
        "neighbourhood_latents": [
            row.latent for row in named.itertuples() if row.best_match == "neighbour_count" and abs(row.r) >= 0.3
        ],
        "active_latents": [latent_name(j) for j in active],
    }
