"""Classification-head model files: the β-TCVAE's format (safetensors, card inside) for the heads.

A head is saved like every napari-cellstate model (see :mod:`napari_cellstate.core.model_files`): ``name.safetensors``
holds the weights and the card, ``name.json`` a copy of the card to read. Two architectures:

* ``"mlp-head"``: an :class:`MLPHead` (Schemes 2 and 3); ``config`` is its :class:`HeadConfig`. Its 0/1 masks are
  buffers, so they travel in the weights file, and loading re-applies them (weights outside the mask are exactly
  zero again, whatever the file holds);
* ``"cnn-classifier"``: a :class:`CNNClassifier` (Scheme 1); ``config`` is ``{"cnn": CNNConfig, "head": HeadConfig}``.

The card passes through what the caller gives: ``scheme`` ("cnn", "dense" or "sparse"), ``input_names`` (e.g.
``["z0", ..., "z31"]``), the VAE the latents came from, data, metrics. A head trained on one VAE's latents means
nothing on another's, so :func:`check_head_inputs` refuses data with another number of inputs, saying what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import CNNConfig, HeadConfig
from ..model_files import ModelFileError, build_model, load_state_strict, read_model, save_model, validate_config
from ._model import CNNClassifier, MLPHead

__all__ = ["CNN_ARCHITECTURE", "MLP_ARCHITECTURE", "check_head_inputs", "load_head", "save_head"]

MLP_ARCHITECTURE = "mlp-head"
CNN_ARCHITECTURE = "cnn-classifier"


def save_head(path: os.PathLike | str, model: MLPHead | CNNClassifier, card: dict | None = None) -> Path:
    """Save a head as ``<path>.safetensors`` (weights, masks, card) and ``<path>.json`` (card copy), atomically.

    Parameters
    ----------
    path : path-like
        Where to save, with or without a ``.safetensors`` / ``.json`` suffix (see
        :func:`~napari_cellstate.core.model_files.model_paths`); folders are created.
    model : MLPHead or CNNClassifier
        The head; its weights are saved as float32 from the CPU, masks included.
    card : dict, optional
        JSON-serialisable information to keep with the head, e.g. ``scheme`` ("cnn", "dense" or "sparse"),
        ``input_names``, the VAE it was trained on, data, metrics. ``versions`` is added when absent. The keys
        ``format``, ``format_version``, ``architecture``, ``config`` and ``weights`` are written by this function.

    Returns
    -------
    Path
        The weights file (``.safetensors``); the card is the same path with ``.json``.

    Raises
    ------
    TypeError
        If ``model`` is neither an :class:`MLPHead` nor a :class:`CNNClassifier`.
    ValueError
        If ``card`` sets a reserved key to another value or is not JSON-serialisable.

    Examples
    --------
    >>> import json, tempfile
    >>> head = MLPHead(HeadConfig(n_inputs=4, hidden=(8,)))
    >>> saved = save_head(Path(tempfile.mkdtemp()) / "head", head, {"scheme": "dense"})
    >>> card = json.loads(saved.with_suffix(".json").read_text())
    >>> saved.name, card["architecture"], card["scheme"], card["config"]["hidden"]
    ('head.safetensors', 'mlp-head', 'dense', [8])
    """
    if isinstance(model, CNNClassifier):
        architecture, config = CNN_ARCHITECTURE, {"cnn": model.cfg, "head": model.head.cfg}
    elif isinstance(model, MLPHead):
        architecture, config = MLP_ARCHITECTURE, model.cfg
    else:
        raise TypeError(f"Expected an MLPHead or a CNNClassifier, got {type(model).__name__}.")
    return save_model(path, model.state_dict(), architecture=architecture, config=config, card=card)


def load_head(path: os.PathLike | str, device: torch.device | str = "cpu") -> tuple[MLPHead | CNNClassifier, dict]:
    """Load a head saved by :func:`save_head`, with strict checks.

    Parameters
    ----------
    path : path-like
        The head, with or without a ``.safetensors`` / ``.json`` suffix.
    device : torch.device or str, default="cpu"
        Where to put the head.

    Returns
    -------
    model : MLPHead or CNNClassifier
        As the card's ``architecture`` says, in evaluation mode, with its masks applied.
    card : dict
        The model card as saved.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated or corrupted; the card is not a napari-cellstate model card, has an
        unsupported ``format_version``, another architecture (a VAE, say), no weights hash or an invalid or
        oversized config; the weights are not the ones the card was written with, hold NaN or infinity, or do
        not match the config (missing or unexpected tensors or masks, other shapes).

    Examples
    --------
    >>> import tempfile
    >>> head = MLPHead(HeadConfig(n_inputs=4, hidden=(8,)))
    >>> loaded, card = load_head(save_head(Path(tempfile.mkdtemp()) / "head", head))
    >>> type(loaded).__name__, loaded.cfg == head.cfg, loaded.training
    ('MLPHead', True, False)
    """
    state, card = read_model(path, (MLP_ARCHITECTURE, CNN_ARCHITECTURE))
    config = card.get("config")
    model: MLPHead | CNNClassifier
    if card["architecture"] == CNN_ARCHITECTURE:
        parts = config if isinstance(config, dict) else {}
        cnn = validate_config(CNNConfig, parts.get("cnn"), path, what="CNN")
        head = validate_config(HeadConfig, parts.get("head"), path, what="head")
        model = build_model(lambda: CNNClassifier(cnn, head), path)
        load_state_strict(model, state, path)
        model.head.apply_masks()
    else:
        head = validate_config(HeadConfig, config, path, what="head")
        model = build_model(lambda: MLPHead(head), path)
        load_state_strict(model, state, path)
        model.apply_masks()
    return model.to(device).eval(), card


def _head_config(card_or_model: dict | MLPHead | CNNClassifier) -> tuple[str, HeadConfig | None, CNNConfig | None]:
    """The architecture, head config and (for Scheme 1) CNN config of a card or a model."""
    if isinstance(card_or_model, CNNClassifier):
        return CNN_ARCHITECTURE, card_or_model.head.cfg, card_or_model.cfg
    if isinstance(card_or_model, MLPHead):
        return MLP_ARCHITECTURE, card_or_model.cfg, None
    if not isinstance(card_or_model, dict):
        raise TypeError(f"Expected a head's model card or the head, got {type(card_or_model).__name__}.")
    architecture = card_or_model.get("architecture")
    config = card_or_model.get("config")
    try:
        if architecture == CNN_ARCHITECTURE and isinstance(config, dict):
            return (
                architecture,
                HeadConfig.model_validate(config.get("head")),
                CNNConfig.model_validate(config.get("cnn")),
            )
        if architecture == MLP_ARCHITECTURE:
            return architecture, HeadConfig.model_validate(config), None
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise ModelFileError(f"This {architecture!r} card has an invalid config: {err}") from err
    raise ModelFileError(
        f"This card describes a {architecture!r} model, not a head ({MLP_ARCHITECTURE!r} or {CNN_ARCHITECTURE!r})."
    )


def check_head_inputs(card_or_model: dict | MLPHead | CNNClassifier, n_inputs: int) -> None:
    """Refuse data whose number of inputs per cell differs from the one the head was trained on.

    Parameters
    ----------
    card_or_model : dict, MLPHead or CNNClassifier
        The head's model card (as :func:`load_head` returns it) or the head itself.
    n_inputs : int
        Inputs per cell in the data: latents for an MLP head.

    Raises
    ------
    ModelFileError
        Saying what to do: encode the crops with the VAE the head was trained with, or train a new head. A CNN
        classifier (Scheme 1) takes crops, not latents: it is refused here, with its crop size in the message.
    TypeError
        If ``card_or_model`` is neither a card nor a head.

    Examples
    --------
    >>> head = MLPHead(HeadConfig(n_inputs=32))
    >>> check_head_inputs(head, 32)  # fine: returns None
    >>> check_head_inputs(head, 16)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.ModelFileError: This head was trained on 32 latents but the data has 16: ...
    """
    _, head_cfg, cnn_cfg = _head_config(card_or_model)
    if cnn_cfg is not None:
        size = cnn_cfg.crop_size_px
        raise ModelFileError(
            f"This head is a CNN classifier (Scheme 1): it takes {size}x{size} px crops, not {n_inputs} latents per "
            "cell. Give it the crops, or use a head trained on latents (Scheme 2 or 3)."
        )
    expected = head_cfg.n_inputs
    if n_inputs != expected:
        raise ModelFileError(
            f"This head was trained on {expected} latents but the data has {n_inputs}: encode the crops with the "
            "same VAE the head was trained with (its card names it), or train a new head."
        )
