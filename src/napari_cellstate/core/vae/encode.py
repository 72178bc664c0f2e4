"""Apply the β-TCVAE: encode crops and a project's crops into latent columns, decode latents into images.

Latent columns are named by :func:`~napari_cellstate.core.objects.latent_name` (``z0``, ``z1``, ...) and
:func:`~napari_cellstate.core.objects.logvar_name`.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import numpy as np
import pandas as pd

from ..objects import latent_name, logvar_name
from ..progress import Progress, run_to_completion

__all__ = [
    "decode_latents",
    "encode_crops",
    "encode_project",
    "iter_encode_project",
    "latent_columns",
    "traversal_grid",
]

_FORWARD_CROPS = 64  # crops per forward pass when encoding
CROPS_FIX = "Extract the crops again (napari-cellstate track); the movie may hold NaN."
ENCODER_FIX = "The VAE is damaged or diverged: load another model (e.g. the packaged one) or retrain it."


def encode_crops(model, crops, *, batch_size: int = 512, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Latent means and log-variances of crops, in batches.

    Parameters
    ----------
    crops : array of shape (N, S, S)
        Standardised crops (numpy or zarr; read a batch at a time).

    Returns
    -------
    mu, logvar : ndarray of shape (N, D), float32

    Raises
    ------
    NonFiniteError
        If a crop or a latent holds NaN or infinity (nothing is returned, so nothing is written).
    """
    import torch

    from ..model_files import check_finite
    from . import check_crop_size

    check_crop_size(model.cfg, int(crops.shape[-1]))
    model = model.to(device).eval()
    means, logvars = [], []
    # Channels-last convolutions on small forward batches (activations stay in cache): about 2x the crops/s of
    # 512-crop NCHW batches on CPU, same results within float32 rounding (benchmarks/bench_vae.py).
    model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                batch = torch.from_numpy(np.asarray(crops[start : start + batch_size], dtype=np.float32))[:, None]
                check_finite(batch.numpy(), f"Crops {start} to {start + len(batch) - 1}", CROPS_FIX)
                for part in batch.split(_FORWARD_CROPS):
                    mu, logvar = model.encode(part.to(device).contiguous(memory_format=torch.channels_last))
                    means.append(mu.float().cpu().numpy())
                    logvars.append(logvar.float().cpu().numpy())
    finally:
        model.to(memory_format=torch.contiguous_format)
    mu, logvar = np.concatenate(means), np.concatenate(logvars)
    check_finite(np.hstack([mu, logvar]), "The latents the VAE produced", ENCODER_FIX)
    return mu, logvar


def decode_latents(model, z: np.ndarray) -> np.ndarray:
    """Images of latent vectors: (N, D) -> (N, S, S) float32."""
    import torch

    with torch.inference_mode():
        return model.decode(torch.as_tensor(np.asarray(z, dtype=np.float32))).float().numpy()[:, 0]


def traversal_grid(model, base: np.ndarray, latents: list[int], values: np.ndarray | None = None) -> np.ndarray:
    """The Fig. 1-style traversal: one row per latent, ``base`` with that latent set to each value.

    Returns
    -------
    ndarray of shape (len(latents) * S, len(values) * S)
    """
    values = np.linspace(-3, 3, 7) if values is None else np.asarray(values, dtype=float)
    base = np.asarray(base, dtype=np.float32)
    z = np.repeat(base[None], len(latents) * len(values), axis=0)
    for row, j in enumerate(latents):
        z[row * len(values) : (row + 1) * len(values), j] = values
    images = decode_latents(model, z)
    size = images.shape[-1]
    return (
        images.reshape(len(latents), len(values), size, size)
        .transpose(0, 2, 1, 3)
        .reshape(len(latents) * size, len(values) * size)
    )


def latent_columns(mu: np.ndarray, logvar: np.ndarray) -> pd.DataFrame:
    """Latents as table columns: ``z0 .. z{D-1}`` (means) and ``z0_logvar ..`` (log-variances)."""
    dims = range(mu.shape[1])
    return pd.concat(
        [
            pd.DataFrame(mu, columns=[latent_name(j) for j in dims]),
            pd.DataFrame(logvar, columns=[logvar_name(j) for j in dims]),
        ],
        axis=1,
    )


def iter_encode_project(
    project: os.PathLike | str,
    model=None,
    *,
    batch_size: int = 512,
    device: str = "cpu",
    model_name: str | None = None,
) -> Generator[Progress, None, pd.DataFrame]:
    """Encode every crop of a project with ``model`` (default: the packaged one) into its objects table.

    The latents are stored as the column group "latents" with the model's name and weights hash, so heads can
    refuse latents of another encoder; each crop's central nucleus is measured too (column group
    "crop_morphology", :func:`~napari_cellstate.core.crop_morphology.iter_measure_project`), to name the latents.
    Returns the dataset's objects table with both groups.
    """
    from ..crop_morphology import iter_measure_project
    from ..project import load_crop_dataset, set_object_columns
    from ..provenance import model_provenance

    if model is None:
        from .fit import load_default_vae

        model, _ = load_default_vae()
        model_name = model_name or "packaged β-TCVAE"
    provenance = {"command": "encode", "model": model_provenance(model, model_name or "β-TCVAE")}
    dataset = load_crop_dataset(project)
    n = dataset.crops.shape[0]
    means, logvars = [], []
    for start in range(0, n, batch_size):
        mu, logvar = encode_crops(
            model, dataset.crops[start : start + batch_size], batch_size=batch_size, device=device
        )
        means.append(mu)
        logvars.append(logvar)
        yield Progress(min(start + batch_size, n), n, f"encoded {min(start + batch_size, n)}/{n} crops")
    columns = latent_columns(np.concatenate(means), np.concatenate(logvars))
    set_object_columns(project, columns, group="latents", provenance=provenance)
    # every crop's nucleus measured on the crop, so the latents can be named on any data (imported crops too)
    return (yield from iter_measure_project(project))


def encode_project(project: os.PathLike | str, model=None, **kwargs) -> pd.DataFrame:
    """Blocking :func:`iter_encode_project`."""
    return run_to_completion(iter_encode_project(project, model, **kwargs))
