"""The Heads step's work done in napari workers.

Training and searching through the core session, reading saved heads, drawing a sparse head's figures. Kept apart
from the widget so that it holds layout only; torch and the heads' code are imported inside each job, never at
import time (the panel opens without them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.config import HeadScheme
from .._figures import as_list, make_figures, rendered

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LOADED_PREFIX",
    "HeadChoice",
    "iter_search_and_draw",
    "iter_session",
    "read_head",
    "read_saved_heads",
    "sparse_head_figures",
]

LOADED_PREFIX = "saved: "


@dataclass
class HeadChoice:
    """A head the user can make current: trained here or loaded from a file."""

    model: Any
    card: dict
    scheme: str
    file_stem: str  # default file name when saving


def iter_session(function: str, source: tuple[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``core.heads.session.<function>(data source, ...)``; the source (``TrainHeadsWidget._source``) is made here."""
    from ...core.heads import session

    kind, value = source
    prepare = session.synthetic_data_source(value) if kind == "synthetic" else session.project_data_source(value)
    return (yield from getattr(session, function)(prepare, *args, **kwargs))


def iter_search_and_draw(source: tuple[str, Any], *args: Any, **kwargs: Any) -> Any:
    """The sparsity search, then its accuracy / weights trade-off drawn (in the worker)."""
    from ...core.heads.search import tradeoff_figure

    result = yield from iter_session("iter_search_heads", source, *args, **kwargs)
    return result, rendered(tradeoff_figure(result))


def sparse_head_figures(model, names: list[str] | None, x: np.ndarray | None, decode) -> dict[str, list | str]:
    """A sparse head's wiring and sub-network figures, drawn; a message for a tab that has none (in a worker)."""
    from ...core.heads.analysis import decompose
    from ...core.heads.plots import subnetwork_figures, topology_figure

    subnets = decompose(model, names)
    jobs: dict[str, Callable[[], list[Figure]]] = {"wiring": lambda: [topology_figure(model, names, subnets)]}
    messages = {}
    if not subnets:
        messages["subnetworks"] = (
            "This head's score does not depend on any latent (it is a constant): train it again, with more "
            "epochs, another seed or a higher RigL density."
        )
    elif x is None:
        messages["subnetworks"] = "Apply the head to a movie (or train it here) to plot its responses on real cells."
    else:
        jobs["subnetworks"] = lambda: as_list(subnetwork_figures(model, subnets, x, names, decode=decode))
    return {**make_figures(jobs), **messages}


def read_head(path: str | Path) -> tuple[str, HeadChoice]:
    """A saved head and the name it is listed under."""
    from ...core.heads import load_head

    model, card = load_head(path)
    scheme = _scheme_of(model, card)
    stem = Path(path).name.removesuffix(".safetensors").removesuffix(".json")
    return f"{LOADED_PREFIX}{stem} (Scheme {scheme.number})", HeadChoice(model, card, scheme.value, stem)


def read_saved_heads(project: str) -> tuple[list[tuple[str, HeadChoice]], list[str]]:
    """The project's saved heads, listed and read (in a worker); and a message for each that could not be read."""
    if not any(Path(project).glob("heads/*.safetensors")):  # none: torch need not load (its load stalls napari)
        return [], []
    from ...core.heads.session import saved_heads
    from ...core.model_files import ModelFileError

    heads, errors = [], []
    for card in saved_heads(project):
        try:
            heads.append(read_head(card.with_suffix(".safetensors")))
        except (ModelFileError, OSError) as err:
            errors.append(str(err))
    return heads, errors


def _scheme_of(model, card: dict) -> HeadScheme:
    """The scheme a loaded head belongs to: its card's word, else what its architecture and masks say."""
    from ...core.heads import CNNClassifier

    try:
        return HeadScheme(card.get("scheme"))
    except ValueError:
        pass
    if isinstance(model, CNNClassifier):
        return HeadScheme.CNN
    return HeadScheme.SPARSE if not all(bool(mask.all()) for mask in model.masks) else HeadScheme.DENSE
