"""Model files for every architecture: safetensors weights and a JSON model card beside them.

Each trained network in napari-cellstate (the β-TCVAE, the classification heads) is saved the same way, so that
one set of checks guards them all and a file can never run code when it is read. A model saved as
``models/name`` is two files:

* ``models/name.safetensors``: the weights (a ``state_dict``), floating-point tensors as float32;
* ``models/name.json``: the model card: ``format`` ("napari-cellstate model"), ``format_version`` (1),
  ``architecture`` (e.g. "beta-tcvae"), ``config`` (what the network is built from), ``weights`` (file name and
  SHA-256), ``versions`` (of napari_cellstate, torch, numpy and safetensors) and whatever the caller adds: data,
  hyper-parameters, metrics.

The card is parsed with :mod:`json` and the weights with safetensors (no pickle, no ``torch.load``); both are
written atomically. This module knows nothing about any architecture: :func:`save_model` and :func:`read_model`
move a state dict and a card, and :func:`load_state_strict` puts a state dict into a freshly built network. The
architecture-specific layers (``vae.save_vae`` / ``vae.load_vae``, ``heads.save_head`` / ``heads.load_head``)
build the config and the network.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ValidationError

from .io import atomic_path, sha256_file

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "ModelFileError",
    "build_model",
    "load_state_strict",
    "model_paths",
    "read_model",
    "save_model",
    "validate_config",
]

FORMAT = "napari-cellstate model"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
_SUFFIXES = (".safetensors", ".json")
_RESERVED = ("format", "format_version", "architecture", "config")
# Which function loads which architecture, to tell the user what to call instead.
_LOADERS = {"beta-tcvae": "load_vae", "mlp-head": "load_head", "cnn-classifier": "load_head"}

_Config = TypeVar("_Config", bound=BaseModel)
_Module = TypeVar("_Module", bound=torch.nn.Module)


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


def _to_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _architecture_list(architecture: str | tuple[str, ...]) -> tuple[str, ...]:
    return (architecture,) if isinstance(architecture, str) else tuple(architecture)


def save_model(
    path: os.PathLike | str,
    state: dict[str, torch.Tensor],
    *,
    architecture: str,
    config: dict | BaseModel,
    card: dict | None = None,
) -> Path:
    """Save a state dict as ``<path>.safetensors`` and its model card as ``<path>.json``, atomically.

    Parameters
    ----------
    path : path-like
        Where to save, with or without a ``.safetensors`` / ``.json`` suffix (see :func:`model_paths`); folders
        are created.
    state : dict of str to torch.Tensor
        The weights, usually ``model.state_dict()``. Floating-point tensors are saved as float32 from the CPU;
        other dtypes (integer counters, boolean masks) are kept.
    architecture : str
        What the weights belong to (e.g. ``"beta-tcvae"``); :func:`read_model` refuses a file of another one.
    config : dict or pydantic model
        JSON-serialisable description the network is rebuilt from.
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
        If ``state`` is not a dict of named tensors.
    ValueError
        If ``card`` sets a reserved key to another value, or ``card`` or ``config`` is not JSON-serialisable.
        Nothing is written then.

    Examples
    --------
    >>> import tempfile
    >>> state = {"weight": torch.ones(2, 3, dtype=torch.float64), "steps": torch.tensor([7])}
    >>> saved = save_model(Path(tempfile.mkdtemp()) / "toy", state, architecture="toy", config={"n": 3})
    >>> card = json.loads(saved.with_suffix(".json").read_text())
    >>> saved.name, card["architecture"], card["config"], card["weights"]["file"]
    ('toy.safetensors', 'toy', {'n': 3}, 'toy.safetensors')
    """
    from safetensors.torch import save_file

    if not isinstance(architecture, str) or not architecture:
        raise ValueError(f"architecture must be a non-empty string, not {architecture!r}.")
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(tensor, torch.Tensor) for name, tensor in state.items()
    ):
        raise TypeError("state must be a dict of str to torch.Tensor, such as model.state_dict().")
    weights_path, card_path = model_paths(path)
    card = dict(card or {})
    card.pop("weights", None)
    card.setdefault("versions", _versions())
    try:  # fail before anything is written
        config_body = _to_json(config)
        card_body = _to_json(card)
    except (TypeError, ValueError) as err:
        raise ValueError(f"The model card is not JSON-serialisable: {err}") from err
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": architecture, "config": config_body}
    for key in _RESERVED:
        if key in card_body and card_body[key] != header[key]:
            raise ValueError(
                f"card[{key!r}] is written by save_model and would be {header[key]!r}, not {card_body[key]!r}."
            )

    tensors = {
        name: (t.detach().to("cpu", torch.float32) if t.is_floating_point() else t.detach().to("cpu")).contiguous()
        for name, t in state.items()
    }
    with atomic_path(weights_path) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT, "architecture": architecture})
        digest = sha256_file(tmp)

    full = {**header, "weights": {"file": weights_path.name, "sha256": digest}, **card_body}
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return weights_path


def _read_card(card_path: Path, architectures: tuple[str, ...]) -> dict:
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
    found = card.get("architecture")
    if found not in architectures:
        expected = " or ".join(map(repr, architectures))
        loader = _LOADERS.get(found) if isinstance(found, str) else None
        how = f"load it with {loader}" if loader else "load it with the function for that architecture"
        raise ModelFileError(f"{card_path} holds a {found!r} model, not a {expected}; {how}.")
    return card


def read_model(path: os.PathLike | str, architecture: str | tuple[str, ...]) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model saved by :func:`save_model`, with strict checks, without building any network.

    Parameters
    ----------
    path : path-like
        The model, with or without a ``.safetensors`` / ``.json`` suffix (see :func:`model_paths`).
    architecture : str or tuple of str
        The architecture(s) the caller can build; a file of any other is refused.

    Returns
    -------
    state : dict of str to torch.Tensor
        The weights, on the CPU, as saved.
    card : dict
        The model card as saved (``card["architecture"]`` says which of ``architecture`` it is).

    Raises
    ------
    ModelFileError
        If a file is missing; the card is not UTF-8 JSON, not a napari-cellstate model card, has an unsupported
        ``format_version`` or another architecture; or the weights file is truncated, corrupted or not the one
        the card was written with (SHA-256 mismatch).

    Examples
    --------
    >>> import tempfile
    >>> saved = save_model(Path(tempfile.mkdtemp()) / "toy", {"w": torch.ones(2)}, architecture="toy", config={})
    >>> state, card = read_model(saved, "toy")
    >>> state["w"].tolist(), card["format_version"]
    ([1.0, 1.0], 1)
    >>> read_model(saved, ("mlp-head", "cnn-classifier"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.ModelFileError: ... holds a 'toy' model, not a 'mlp-head' or 'cnn-classifier'; ...
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    architectures = _architecture_list(architecture)
    weights_path, card_path = model_paths(path)
    missing = [str(p) for p in (card_path, weights_path) if not p.is_file()]
    if missing:
        raise ModelFileError(
            f"Model file(s) not found: {', '.join(missing)}. A model is a .safetensors file (weights) and a .json "
            "file (model card) with the same name, side by side."
        )
    card = _read_card(card_path, architectures)

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
    return state, card


def validate_config(config_type: type[_Config], data: Any, path: os.PathLike | str, *, what: str) -> _Config:
    """Validate a config read from a model card, as a :class:`ModelFileError` naming the card.

    Parameters
    ----------
    config_type : type of pydantic.BaseModel
        The config class, e.g. ``VAEConfig``.
    data : Any
        What the card holds (usually ``card["config"]``).
    path : path-like
        The model (see :func:`model_paths`), for the message.
    what : str
        The config's name in the message, e.g. ``"VAE"``.

    Returns
    -------
    pydantic.BaseModel
        An instance of ``config_type``.

    Raises
    ------
    ModelFileError
        ``<card> has an invalid <what> config: ...`` if ``data`` does not validate.

    Examples
    --------
    >>> from napari_cellstate.core.config import HeadConfig
    >>> validate_config(HeadConfig, {"n_inputs": 4, "hidden": [8]}, "head", what="head").hidden
    (8,)
    """
    try:
        return config_type.model_validate(data)
    except ValidationError as err:
        raise ModelFileError(f"{model_paths(path)[1]} has an invalid {what} config: {err}") from err


def build_model(factory: Callable[[], _Module], path: os.PathLike | str) -> _Module:
    """Build a network from a validated config, turning a refusal into a :class:`ModelFileError`.

    Parameters
    ----------
    factory : callable
        Builds the network, e.g. ``lambda: BetaTCVAE(cfg)``; may raise ``ValueError`` for a config it cannot
        build (valid on its own but inconsistent).
    path : path-like
        The model (see :func:`model_paths`), for the message.

    Returns
    -------
    torch.nn.Module
        What ``factory`` returned.

    Raises
    ------
    ModelFileError
        ``<card>: cannot build the model from its config: ...``.

    Examples
    --------
    >>> build_model(lambda: torch.nn.Linear(2, 1), "toy").out_features
    1
    """
    try:
        return factory()
    except ValueError as err:
        raise ModelFileError(f"{model_paths(path)[1]}: cannot build the model from its config: {err}") from err


def load_state_strict(module: _Module, state: dict[str, torch.Tensor], path: os.PathLike | str) -> _Module:
    """Load ``state`` into ``module``, refusing any missing or unexpected tensor and any other shape or dtype.

    Parameters
    ----------
    module : torch.nn.Module
        A network freshly built from the model's config.
    state : dict of str to torch.Tensor
        The weights, as returned by :func:`read_model`.
    path : path-like
        The model (see :func:`model_paths`), for the message.

    Returns
    -------
    torch.nn.Module
        ``module``, with the weights loaded (its mode and device unchanged).

    Raises
    ------
    ModelFileError
        Listing every problem: missing tensors, unexpected tensors, shapes the config does not give, integer
        tensors where the network has floating-point ones (or another dtype where it has integer ones).

    Examples
    --------
    >>> layer = torch.nn.Linear(3, 2)
    >>> load_state_strict(layer, {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, "toy").bias.tolist()
    [0.0, 0.0]
    >>> load_state_strict(layer, {"weight": torch.zeros(2, 4)}, "toy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.ModelFileError: ... missing tensors ['bias']; weight has shape (2, 4), the ...
    """
    weights_path, card_path = model_paths(path)
    reference = module.state_dict()
    problems = []
    if absent := sorted(set(reference) - set(state)):
        problems.append(f"missing tensors {absent}")
    if extra := sorted(set(state) - set(reference)):
        problems.append(f"unexpected tensors {extra}")
    common = [name for name in reference if name in state]
    problems += [
        f"{name} has shape {tuple(state[name].shape)}, the config needs {tuple(reference[name].shape)}"
        for name in common
        if state[name].shape != reference[name].shape
    ]
    for name in common:
        ref, got = reference[name], state[name]
        if ref.is_floating_point() and not got.is_floating_point():
            problems.append(f"{name} has dtype {got.dtype}, expected a floating-point tensor")
        elif not ref.is_floating_point() and got.dtype != ref.dtype:
            problems.append(f"{name} has dtype {got.dtype}, expected {ref.dtype}")
    if problems:
        raise ModelFileError(
            f"The weights in {weights_path} do not match the config in {card_path}: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)
    return module
