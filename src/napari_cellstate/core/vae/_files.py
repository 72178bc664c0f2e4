"""β-TCVAE model files: weights in safetensors, a JSON model card beside them.

A model saved as ``models/vae`` is two files:

* ``models/vae.safetensors``: the weights (``state_dict`` of :class:`BetaTCVAE`), float32;
* ``models/vae.json``: the model card: ``format`` ("napari-cellstate model"), ``format_version`` (1),
  ``architecture`` ("beta-tcvae"), ``config`` (the :class:`VAEConfig`), ``weights`` (file name and SHA-256),
  ``versions`` (of napari_cellstate, torch, numpy and safetensors) and whatever the caller adds: data,
  hyper-parameters, metrics.

Neither file can run code when read: the card is parsed with :mod:`json` and the weights with safetensors (no
pickle, no ``torch.load``). Both are written atomically.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from ..config import VAEConfig
from ..io import atomic_path, sha256_file
from ._model import BetaTCVAE

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "check_crop_size", "load_vae", "model_paths", "save_vae"]

FORMAT = "napari-cellstate model"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
ARCHITECTURE = "beta-tcvae"
_SUFFIXES = (".safetensors", ".json")


class ModelFileError(ValueError):
    """A model file is missing, unreadable, of another format or version, or does not match its card."""


def model_paths(path: os.PathLike | str) -> tuple[Path, Path]:
    """The weights and card paths of a model.

    Parameters
    ----------
    path : path-like
        ``models/vae``, ``models/vae.safetensors`` or ``models/vae.json``: a ``.safetensors`` or ``.json`` suffix
        is dropped, any other suffix is kept as part of the name (``vae.v2`` -> ``vae.v2.safetensors``).

    Returns
    -------
    weights, card : Path

    Examples
    --------
    >>> [p.name for p in model_paths("models/vae.json")]
    ['vae.safetensors', 'vae.json']
    """
    path = Path(path)
    if path.suffix.lower() in _SUFFIXES:
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _versions() -> dict[str, str]:
    import numpy
    import safetensors

    import napari_cellstate

    return {
        "napari_cellstate": napari_cellstate.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays, tensors, paths, enums and pydantic models JSON-friendly."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def save_vae(path: os.PathLike | str, model: BetaTCVAE, card: dict | None = None) -> Path:
    """Save a β-TCVAE as ``<path>.safetensors`` (weights) and ``<path>.json`` (model card), atomically.

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
    ValueError
        If ``card`` sets a reserved key to another value or is not JSON-serialisable.

    Examples
    --------
    >>> import tempfile
    >>> model = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    >>> saved = save_vae(Path(tempfile.mkdtemp()) / "vae", model, {"metrics": {"loss": 1.5}})
    >>> saved.name, json.loads(saved.with_suffix(".json").read_text())["metrics"]
    ('vae.safetensors', {'loss': 1.5})
    """
    from safetensors.torch import save_file

    if not isinstance(model, BetaTCVAE):
        raise TypeError(f"Expected a BetaTCVAE, got {type(model).__name__}.")
    weights_path, card_path = model_paths(path)
    card = dict(card or {})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "config": model.cfg.model_dump(mode="json"),
    }
    card.pop("weights", None)
    card.setdefault("versions", _versions())
    try:
        card_body = json.loads(json.dumps(card, default=_json_default))  # fail before anything is written
    except (TypeError, ValueError) as err:
        raise ValueError(f"The model card is not JSON-serialisable: {err}") from err
    for key, value in header.items():
        if key in card_body and card_body[key] != value:
            raise ValueError(f"card[{key!r}] is written by save_vae and would be {value!r}, not {card_body[key]!r}.")

    state = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        save_file(state, tmp, metadata={"format": FORMAT, "architecture": ARCHITECTURE})
        digest = sha256_file(tmp)

    full = {**header, "weights": {"file": weights_path.name, "sha256": digest}, **card_body}
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return weights_path


def _read_card(card_path: Path) -> dict:
    try:
        text = card_path.read_text(encoding="utf-8")
        card = json.loads(text)
    except UnicodeDecodeError as err:
        raise ModelFileError(f"{card_path} is not a model card: it is not UTF-8 text.") from err
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{card_path} is not a model card: it is not valid JSON ({err}).") from err
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelFileError(
            f"{card_path} is not a napari-cellstate model card (expected format {FORMAT!r}, found {found!r})."
        )
    version = card.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise ModelFileError(
            f"{card_path} has format_version {version!r}; this version of napari-cellstate reads format_version "
            f"{supported}. Use the napari-cellstate release that wrote it, or retrain the model."
        )
    if card.get("architecture") != ARCHITECTURE:
        raise ModelFileError(
            f"{card_path} holds a {card.get('architecture')!r} model, not a {ARCHITECTURE!r}; load it with the "
            "function for that architecture."
        )
    return card


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
        If a file is missing; the card is not a napari-cellstate model card, has an unsupported
        ``format_version``, another architecture or an invalid config; the weights file is truncated, corrupted
        or not the one the card was written with; or the weights do not match the config (missing or unexpected
        tensors, other shapes).

    Examples
    --------
    >>> import tempfile
    >>> model = BetaTCVAE(VAEConfig(crop_size_px=16, n_latents=2, channels=(4,), dense_units=8))
    >>> saved = save_vae(Path(tempfile.mkdtemp()) / "vae", model)
    >>> loaded, card = load_vae(saved)
    >>> loaded.cfg == model.cfg, card["architecture"]
    (True, 'beta-tcvae')
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, card_path = model_paths(path)
    missing = [str(p) for p in (card_path, weights_path) if not p.is_file()]
    if missing:
        raise ModelFileError(
            f"Model file(s) not found: {', '.join(missing)}. A model is a .safetensors file (weights) and a .json "
            "file (model card) with the same name, side by side."
        )
    card = _read_card(card_path)
    try:
        cfg = VAEConfig.model_validate(card.get("config"))
    except ValidationError as err:
        raise ModelFileError(f"{card_path} has an invalid VAE config: {err}") from err

    weights_info = card.get("weights")
    expected_sha = weights_info.get("sha256") if isinstance(weights_info, dict) else None
    if expected_sha is not None and sha256_file(weights_path) != expected_sha:
        raise ModelFileError(
            f"{weights_path} is corrupted or is not the weights file its card {card_path.name} was saved with "
            "(SHA-256 mismatch)."
        )
    try:
        state = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            f"{weights_path} is not a readable safetensors file (truncated or corrupted?): {err}"
        ) from err

    try:
        model = BetaTCVAE(cfg)
    except ValueError as err:
        raise ModelFileError(f"{card_path}: cannot build the model from its config: {err}") from err
    reference = model.state_dict()
    problems = []
    if absent := sorted(set(reference) - set(state)):
        problems.append(f"missing tensors {absent}")
    if extra := sorted(set(state) - set(reference)):
        problems.append(f"unexpected tensors {extra}")
    problems += [
        f"{name} has shape {tuple(state[name].shape)}, the config needs {tuple(ref.shape)}"
        for name, ref in reference.items()
        if name in state and state[name].shape != ref.shape
    ]
    problems += [
        f"{name} has dtype {state[name].dtype}, expected a floating-point tensor"
        for name in reference
        if name in state and not state[name].is_floating_point()
    ]
    if problems:
        raise ModelFileError(
            f"The weights in {weights_path} do not match the config in {card_path}: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)
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
