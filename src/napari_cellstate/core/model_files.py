"""Model files for every architecture: one safetensors file holding the weights and the model card.

Each trained network in napari-cellstate (the β-TCVAE, the classification heads) is saved the same way, so that
one set of checks guards them all and a file can never run code when it is read. A model saved as
``models/name`` is:

* ``models/name.safetensors``: the weights (a ``state_dict``, floating-point tensors as float32) **and** the model
  card, as JSON text in the safetensors metadata (key ``"card"``). The card holds ``format`` ("napari-cellstate
  model"), ``format_version`` (2), ``architecture`` (e.g. "beta-tcvae"), ``config`` (what the network is built
  from), ``weights`` (file name and ``tensors_sha256``, the SHA-256 of the tensors' names, dtypes, shapes and
  bytes), ``versions`` (of napari_cellstate, torch, numpy and safetensors) and whatever the caller adds: data,
  hyper-parameters, metrics;
* ``models/name.json``: a copy of the card for people to read. It is written after the weights file and never
  read back: editing it changes nothing.

Design decision: one file is one unit. The weights and their card are replaced together by one rename, so a
crash or ``kill -9`` at any moment leaves either the previous complete model or the new complete model, never
new weights beside an old card; the previous model stays until the new file is complete.

Format version 1 (written before) kept the card only in the ``.json`` beside the weights, with the SHA-256 of
the whole weights file. Such files are still read, by this rule: a ``.safetensors`` without a card inside is a
version 1 model, whose ``.json`` must say ``format_version`` 1 and hold the weights file's SHA-256.

Every read checks, before any network is built: the card's JSON is shallow (:func:`loads_bounded`), the weights'
hash is present and matches, every floating-point weight is finite. :func:`build_model` then refuses configs
whose network would be larger than :data:`MAX_PARAMETERS` before allocating it. This module knows nothing about
any architecture: the architecture-specific layers (``vae.save_vae`` / ``vae.load_vae``, ``heads.save_head`` /
``heads.load_head``) build the config and the network.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ValidationError

from .io import atomic_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_JSON_DEPTH",
    "MAX_PARAMETERS",
    "SUPPORTED_FORMAT_VERSIONS",
    "ModelFileError",
    "NonFiniteError",
    "build_model",
    "check_finite",
    "load_state_strict",
    "loads_bounded",
    "model_paths",
    "read_model",
    "save_model",
    "tensors_sha256",
    "validate_config",
]

FORMAT = "napari-cellstate model"
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (1, 2)
MAX_JSON_DEPTH = 32  # a card nests about 5 deep; deeper text is refused before json recurses into it
MAX_PARAMETERS = 100_000_000  # 400 MB of float32: far above any network napari-cellstate builds
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SUFFIXES = (".safetensors", ".json")
_RESERVED = ("format", "format_version", "architecture", "config")
# Which function loads which architecture, to tell the user what to call instead.
_LOADERS = {"beta-tcvae": "load_vae", "mlp-head": "load_head", "cnn-classifier": "load_head"}

_Config = TypeVar("_Config", bound=BaseModel)
_Module = TypeVar("_Module", bound=torch.nn.Module)


class ModelFileError(ValueError):
    """A model file is missing, unreadable, of another format or version, or does not match its card."""


class NonFiniteError(ValueError):
    """A model's inputs or outputs hold NaN or infinity; nothing was written."""


def check_finite(values, what: str, fix: str) -> None:
    """Refuse ``values`` holding NaN or infinity (a model's inputs or outputs), before anything is written.

    Parameters
    ----------
    values : array-like
        Rows of numbers (one row per cell).
    what : str
        What they are, e.g. ``"the latents the VAE produced"``.
    fix : str
        What to do about it.

    Raises
    ------
    NonFiniteError
        ``<what>: N of M rows hold NaN or infinity (rows ...). <fix>``

    Examples
    --------
    >>> import numpy as np
    >>> check_finite(np.ones((2, 3)), "scores", "retrain")  # fine: returns None
    >>> check_finite(np.array([1.0, np.nan]), "the head's scores", "Retrain the head.")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.NonFiniteError: the head's scores: 1 of 2 rows hold NaN or infinity (rows [1])...
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1) if values.ndim else ~np.isfinite(values[None])
    if bad.any():
        rows = np.flatnonzero(bad)
        raise NonFiniteError(
            f"{what}: {len(rows)} of {len(values)} rows hold NaN or infinity (rows {rows[:10].tolist()}"
            f"{' ...' if len(rows) > 10 else ''}). Nothing was written. {fix}"
        )


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


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of tensors: each name, dtype, shape and bytes, in name order (what a version 2 card records).

    Parameters
    ----------
    state : dict of str to torch.Tensor
        The tensors as saved (on the CPU).

    Returns
    -------
    str
        The hex digest.

    Examples
    --------
    >>> tensors_sha256({"w": torch.zeros(2)}) == tensors_sha256({"w": torch.zeros(2)}) != tensors_sha256({})
    True
    """
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or infinity."""
    return sorted(n for n, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def loads_bounded(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text, refusing nesting deeper than ``max_depth`` before the parser recurses into it.

    Parameters
    ----------
    text : str
        The JSON text.
    what : str
        What the text is (a file name), for the message.
    max_depth : int, default=MAX_JSON_DEPTH
        Deepest nesting of ``[`` / ``{`` allowed.

    Returns
    -------
    Any
        The parsed value.

    Raises
    ------
    ModelFileError
        If the text nests deeper than ``max_depth`` or is not valid JSON.

    Examples
    --------
    >>> loads_bounded('{"a": [1, "]]]"]}', "card")
    {'a': [1, ']]]']}
    >>> loads_bounded("[" * 100 + "]" * 100, "card")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.ModelFileError: card nests 100 levels deep; a model card needs at most 32...
    """
    brackets = _JSON_STRING.sub("", text)
    depth = deepest = 0
    for char in _JSON_BRACKET.findall(brackets):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise ModelFileError(
            f"{what} nests {deepest} levels deep; a model card needs at most {max_depth}: it was not written by "
            "napari-cellstate. Use the model file as saved, or retrain the model."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{what} is not a model card: it is not valid JSON ({err}).") from err


def save_model(
    path: os.PathLike | str,
    state: dict[str, torch.Tensor],
    *,
    architecture: str,
    config: dict | BaseModel,
    card: dict | None = None,
) -> Path:
    """Save a state dict and its model card as one ``<path>.safetensors`` file, plus a ``<path>.json`` copy.

    The weights file, card inside, replaces any previous one by one rename: until then the previous model is
    complete and readable, from then on the new one is (see the module's docstring). The ``.json`` copy follows.

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
        The weights file (``.safetensors``); the card's copy is the same path with ``.json``.

    Raises
    ------
    TypeError
        If ``state`` is not a dict of named tensors.
    ValueError
        If ``card`` sets a reserved key to another value, or ``card`` or ``config`` is not JSON-serialisable.
    ModelFileError
        If a weight is NaN or infinite (a diverged training run): the previous model is kept.
        Nothing is written in any of these cases.

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
    if bad := _non_finite(tensors):
        raise ModelFileError(
            f"Not saving {weights_path}: the weights {bad} hold NaN or infinite values (training diverged: lower "
            "the learning rate or check the data for NaN). The previous model, if any, is kept."
        )
    weights = {"file": weights_path.name, "tensors_sha256": tensors_sha256(tensors)}
    full = {**header, "weights": weights, **card_body}
    text = json.dumps(full, indent=2) + "\n"
    with atomic_path(weights_path) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION), "card": text})
    with atomic_path(card_path) as tmp:  # the human-readable copy; never read back
        tmp.write_text(text, encoding="utf-8")
    return weights_path


def _check_card(card: Any, where: Path, architectures: tuple[str, ...], versions: tuple[int, ...]) -> dict:
    """Refuse a card of another format, an unsupported version or another architecture."""
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelFileError(
            f"{where} is not a napari-cellstate model card (expected format {FORMAT!r}, found {found!r})."
        )
    version = card.get("format_version")
    if version not in versions:
        supported = ", ".join(map(str, versions))
        raise ModelFileError(
            f"{where} has format_version {version!r}; this version of napari-cellstate reads format_version "
            f"{supported} there. Use the napari-cellstate release that wrote it, or retrain the model."
        )
    found = card.get("architecture")
    if found not in architectures:
        expected = " or ".join(map(repr, architectures))
        loader = _LOADERS.get(found) if isinstance(found, str) else None
        how = f"load it with {loader}" if loader else "load it with the function for that architecture"
        raise ModelFileError(f"{where} holds a {found!r} model, not a {expected}; {how}.")
    return card


def _expected_hash(card: dict, key: str, where: Path) -> str:
    info = card.get("weights")
    digest = info.get(key) if isinstance(info, dict) else None
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ModelFileError(
            f"{where} has no valid weights.{key} (the SHA-256 every model card carries), so its weights cannot be "
            "checked: the card was edited or written by another program. Use the model file as saved, or retrain."
        )
    return digest


def _read_v1_card(card_path: Path, weights_path: Path, architectures: tuple[str, ...]) -> dict:
    if not card_path.is_file():
        raise ModelFileError(
            f"Model card not found: {card_path}. {weights_path.name} holds no card inside, so it is a format "
            "version 1 model, whose card is the .json file with the same name, side by side."
        )
    try:
        text = card_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ModelFileError(f"{card_path} is not a model card: it is not UTF-8 text.") from err
    return _check_card(loads_bounded(text, str(card_path)), card_path, architectures, (1,))


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
        If the weights file is missing, truncated or corrupted; the card is not UTF-8 JSON, nests too deep, is not
        a napari-cellstate model card, has an unsupported ``format_version`` or another architecture; the card
        has no weights SHA-256 or another one than the weights (damaged, or not the weights it was saved with);
        or a weight is NaN or infinite.

    Examples
    --------
    >>> import tempfile
    >>> saved = save_model(Path(tempfile.mkdtemp()) / "toy", {"w": torch.ones(2)}, architecture="toy", config={})
    >>> state, card = read_model(saved, "toy")
    >>> state["w"].tolist(), card["format_version"]
    ([1.0, 1.0], 2)
    >>> read_model(saved, ("mlp-head", "cnn-classifier"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_cellstate.core.model_files.ModelFileError: ... holds a 'toy' model, not a 'mlp-head' or 'cnn-classifier'; ...
    """
    import hashlib

    from safetensors import SafetensorError
    from safetensors.torch import load

    architectures = _architecture_list(architecture)
    weights_path, card_path = model_paths(path)
    if not weights_path.is_file():
        raise ModelFileError(
            f"Model file not found: {weights_path}. A model is a .safetensors file (weights and card; the .json "
            "beside it is a copy of the card to read)."
        )
    data = weights_path.read_bytes()  # one read: the card and the tensors come from the same bytes
    try:
        state = load(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            f"{weights_path} is not a readable safetensors file (truncated or corrupted?): {err}. Restore it from a "
            "backup, or retrain the model."
        ) from err

    if "card" in metadata:
        card = _check_card(
            loads_bounded(metadata["card"], f"The card inside {weights_path}"),
            weights_path,
            architectures,
            tuple(v for v in SUPPORTED_FORMAT_VERSIONS if v > 1),
        )
        matches = tensors_sha256(state) == _expected_hash(card, "tensors_sha256", weights_path)
    else:
        card = _read_v1_card(card_path, weights_path, architectures)
        matches = hashlib.sha256(data).hexdigest() == _expected_hash(card, "sha256", card_path)
    if not matches:
        raise ModelFileError(
            f"{weights_path} is corrupted or is not the weights file its card was saved with (SHA-256 mismatch). "
            "Restore it from a backup, or retrain the model."
        )
    if bad := _non_finite(state):
        raise ModelFileError(
            f"{weights_path}: the weights {bad} hold NaN or infinite values, so every result would be wrong. "
            "Retrain the model (training diverged: lower the learning rate or check the data for NaN)."
        )
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
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())
        raise ModelFileError(f"{model_paths(path)[0]} has an invalid {what} config: {fields}") from err


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
        ``<model>: cannot build the model from its config: ...``, also when the network would hold more than
        :data:`MAX_PARAMETERS` parameters (checked on the ``meta`` device, before any memory is allocated).

    Examples
    --------
    >>> build_model(lambda: torch.nn.Linear(2, 1), "toy").out_features
    1
    """
    where = model_paths(path)[0]
    try:
        with torch.device("meta"):  # shapes only: a card asking for a giant network allocates nothing
            n_parameters = sum(t.numel() for t in factory().state_dict().values())
        if n_parameters > MAX_PARAMETERS:
            raise ValueError(
                f"its config asks for {n_parameters:,} parameters, more than the {MAX_PARAMETERS:,} a "
                "napari-cellstate model may hold: the card was edited or is not from napari-cellstate"
            )
        return factory()
    except ValueError as err:
        raise ModelFileError(f"{where}: cannot build the model from its config: {err}") from err


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
    weights_path = model_paths(path)[0]
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
            f"The weights in {weights_path} do not match the config in its card: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)
    return module
