"""β-TCVAE model files: weights and model card in one safetensors file, a JSON copy of the card beside it.

A model saved as ``models/vae`` is:

* ``models/vae.safetensors``: the weights (``state_dict`` of :class:`BetaTCVAE`, float32) and the model card inside
  (``format`` "napari-cellstate model", ``format_version`` 2, ``architecture`` "beta-tcvae", ``config`` the
  :class:`VAEConfig`, ``weights`` with the tensors' SHA-256, ``versions``, and whatever the caller adds: data,
  hyper-parameters, metrics);
* ``models/vae.json``: a copy of the card for people to read.

Neither file can run code when read (no pickle, no ``torch.load``); the weights file, card inside, is replaced by
one rename, so a crash leaves the previous model or the new one. The format itself, shared by every architecture,
lives in :mod:`napari_cellstate.core.model_files`; this module only says how a :class:`BetaTCVAE` is rebuilt from
its card.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import VAEConfig
from ..model_files import build_model, load_state_strict, read_model, save_model, validate_config
from ._model import BetaTCVAE

__all__ = ["ARCHITECTURE", "check_crop_size", "load_vae", "save_vae"]

ARCHITECTURE = "beta-tcvae"


def save_vae(path: os.PathLike | str, model: BetaTCVAE, card: dict | None = None) -> Path:
    """Save a β-TCVAE as ``<path>.safetensors`` (weights, card inside) and ``<path>.json`` (card copy), atomically.

    Parameters
    ----------
    path : path-like
        Where to save, with or without a ``.safetensors`` / ``.json`` suffix (see :func:`model_paths`); folders
        are created.
    model : BetaTCVAE
        The model; its weights are saved as float32 from the CPU.
    card : dict, optional
        JSON-serialisable information to keep with the model (data, hyper-parameters, metrics, ...). ``versions``
        is added when absent. The keys ``format``, ``format_version``, ``architecture``, ``config`` and ``weights``
        are written by this function.

    Returns
    -------
    Path
        The weights file (``.safetensors``); the card is the same path with ``.json``.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`BetaTCVAE`.
    ValueError
        If ``card`` sets a reserved key to another value or is not JSON-serialisable.

    Examples
    --------
    >>> import json, tempfile
    >>> model = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    >>> saved = save_vae(Path(tempfile.mkdtemp()) / "vae", model, {"metrics": {"loss": 1.5}})
    >>> saved.name, json.loads(saved.with_suffix(".json").read_text())["metrics"]
    ('vae.safetensors', {'loss': 1.5})
    """
    if not isinstance(model, BetaTCVAE):
        raise TypeError(f"Expected a BetaTCVAE, got {type(model).__name__}.")
    return save_model(path, model.state_dict(), architecture=ARCHITECTURE, config=model.cfg, card=card)


def load_vae(path: os.PathLike | str, device: torch.device | str = "cpu") -> tuple[BetaTCVAE, dict]:
    """Load a β-TCVAE saved by :func:`save_vae`, with strict checks.

    Parameters
    ----------
    path : path-like
        The model, with or without a ``.safetensors`` / ``.json`` suffix (see :func:`model_paths`).
    device : torch.device or str, default="cpu"
        Where to put the model.

    Returns
    -------
    model : BetaTCVAE
        In evaluation mode.
    card : dict
        The model card as saved.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated or corrupted; the card is not a napari-cellstate model card, has an
        unsupported ``format_version``, another architecture, no weights hash or an invalid or oversized config;
        the weights are not the ones the card was written with, hold NaN or infinity, or do not match the config
        (missing or unexpected tensors, other shapes).

    Examples
    --------
    >>> import tempfile
    >>> model = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    >>> saved = save_vae(Path(tempfile.mkdtemp()) / "vae", model)
    >>> loaded, card = load_vae(saved)
    >>> loaded.cfg == model.cfg, card["architecture"]
    (True, 'beta-tcvae')
    """
    state, card = read_model(path, ARCHITECTURE)
    cfg = validate_config(VAEConfig, card.get("config"), path, what="VAE")
    model = build_model(lambda: BetaTCVAE(cfg), path)
    load_state_strict(model, state, path)
    return model.to(device).eval(), card


def check_crop_size(model_cfg: VAEConfig, crop_size_px: int) -> None:
    """Refuse crops whose size differs from the one the model was built for.

    Parameters
    ----------
    model_cfg : VAEConfig
        The model's config.
    crop_size_px : int
        Side of the crops to encode, in px.

    Raises
    ------
    ValueError
        Saying what to do: re-extract the crops at the model's size, or train / fine-tune a model at this size.

    Examples
    --------
    >>> check_crop_size(VAEConfig(crop_size_px=64), 64)  # fine: returns None
    """
    size = model_cfg.crop_size_px
    if crop_size_px != size:
        raise ValueError(
            f"The model expects {size}x{size} px crops but these crops are {crop_size_px}x{crop_size_px} px: "
            f"re-extract the crops at {size} px (CropConfig.size_px={size}, at the pixel size the model was trained "
            f"with), or train / fine-tune a model at {crop_size_px} px."
        )
