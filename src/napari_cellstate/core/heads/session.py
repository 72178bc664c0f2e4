"""A heads session as the GUI runs it: prepare the data, train and compare, keep the best heads in the project.

Everything here runs in a worker thread: encoding synthetic crops with the β-TCVAE or reading a project's labels
and latents takes seconds to minutes, and the best heads are saved in ``<project>/heads/`` as they are chosen, so
they outlive the session without a Save click.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import HeadConfig, HeadScheme, RigLConfig
from ..progress import Progress

__all__ = [
    "HEADS_FOLDER",
    "TrainHeadsResult",
    "head_file_stem",
    "iter_search_heads",
    "iter_train_heads",
    "project_data_source",
    "saved_heads",
    "synthetic_data_source",
]

HEADS_FOLDER = "heads"

#: ``prepare()`` returns the data and the decoder of its latents (or None when unknown).
DataSource = Callable[[], tuple[Any, Callable[[np.ndarray], np.ndarray] | None]]


@dataclass
class TrainHeadsResult:
    """What one training session gives.

    Attributes
    ----------
    data : HeadData
        The cells the heads learned from.
    runs : DataFrame
        One row per scheme x seed (:func:`~napari_cellstate.core.heads.compare.iter_compare_schemes`).
    summary : DataFrame
        Table 1, our figures beside the paper's (:func:`~napari_cellstate.core.heads.compare.summarise_table1`).
    best : BestHeads
        The best seed's head of each scheme.
    decode : callable or None
        ``decode(z: (M, D)) -> (M, S, S)``: the β-TCVAE decoder of the latents, when known.
    saved : dict of str to Path
        Scheme value to the file its best head was saved to (empty without a project).
    """

    data: Any
    runs: pd.DataFrame
    summary: pd.DataFrame
    best: Any
    decode: Callable[[np.ndarray], np.ndarray] | None = None
    saved: dict[str, Path] = field(default_factory=dict)


def head_file_stem(scheme: HeadScheme | str, seed: int | None = None, tag: str = "") -> str:
    """``scheme3_sparse_seed0`` (or ``scheme3_sparse_optuna``): the file name a session saves a head under.

    >>> head_file_stem("sparse", 2), head_file_stem("sparse", tag="optuna")
    ('scheme3_sparse_seed2', 'scheme3_sparse_optuna')
    """
    scheme = HeadScheme(scheme)
    suffix = f"seed{seed}" if seed is not None else tag
    return f"scheme{scheme.number}_{scheme.value}_{suffix}"


def synthetic_data_source(n: int) -> DataSource:
    """Balanced synthetic crops encoded by the packaged β-TCVAE, which also decodes latents for the figures."""
    return partial(_synthetic_data, n)


def project_data_source(project: os.PathLike | str) -> DataSource:
    """A project's labelled cells; which β-TCVAE encoded them is not recorded as a model, so no decoder."""
    return partial(_project_data, project)


def _synthetic_data(n: int):
    from ..vae.encode import decode_latents
    from ..vae.fit import load_default_vae
    from .data import synthetic_head_data

    vae = load_default_vae()[0]
    return synthetic_head_data(n, seed=0, vae=vae), partial(decode_latents, vae)


def _project_data(project):
    from .data import project_head_data

    return project_head_data(project), None


def iter_train_heads(
    prepare: DataSource,
    schemes: Sequence[str],
    seeds: Sequence[int],
    *,
    head: HeadConfig | None = None,
    rigl: RigLConfig | None = None,
    epochs: int | None = None,
    save_to: os.PathLike | str | None = None,
) -> Generator[Progress, None, TrainHeadsResult]:
    """Prepare the data, train and compare the schemes, and save each scheme's best head.

    Parameters
    ----------
    prepare : callable
        A data source (:func:`synthetic_data_source`, :func:`project_data_source`).
    schemes : sequence of str
        ``"cnn"``, ``"dense"``, ``"sparse"``.
    seeds : sequence of int
        One run per scheme per seed.
    head, rigl : optional
        Passed to :func:`~napari_cellstate.core.heads.compare.iter_compare_schemes`; the head's ``n_inputs`` is
        set to the data's number of latents.
    epochs : int, optional
        Epochs for every scheme; default: each scheme's own.
    save_to : path, optional
        A project folder: the best head of each scheme is saved (weights and card) as
        ``<project>/heads/<head_file_stem>.safetensors``.

    Yields
    ------
    Progress
        Preparation, then the comparison's events on one scale over all schemes.
    """
    from .compare import BestHeads, iter_compare_schemes, summarise_table1

    yield Progress(0, 1, "preparing the data (encoding crops with the β-TCVAE) ...", stage="preparing")
    data, decode = prepare()
    if head is not None and data.n_latents:
        head = head.model_copy(update={"n_inputs": data.n_latents})
    best = BestHeads()
    runs = yield from iter_compare_schemes(data, schemes, seeds, head=head, rigl=rigl, epochs=epochs, on_result=best)
    saved = {}
    if save_to is not None:
        for key, result in best.results.items():
            stem = head_file_stem(key, best.seeds[key])
            saved[key] = _save(save_to, stem, result)
    return TrainHeadsResult(data, runs, summarise_table1(runs), best, decode, saved)


def iter_search_heads(
    prepare: DataSource, storage: os.PathLike | str, n_trials: int, *, save_to: os.PathLike | str | None = None
) -> Generator[Progress, None, Any]:
    """Prepare the data, run (or resume) the Optuna sparsity search, save the chosen head in the project.

    Returns the :class:`~napari_cellstate.core.heads.search.SearchResult`.
    """
    from .search import iter_sparsity_search

    yield Progress(0, 1, "preparing the data (encoding crops with the β-TCVAE) ...", stage="preparing")
    data, _ = prepare()
    result = yield from iter_sparsity_search(data, Path(storage), n_trials=n_trials)
    if save_to is not None:
        _save(save_to, head_file_stem(HeadScheme.SPARSE, tag="optuna"), result.head)
    return result


def _save(project: os.PathLike | str, stem: str, result) -> Path:
    from ._files import save_head

    return save_head(Path(project) / HEADS_FOLDER / stem, result.model, result.card)


def saved_heads(project: os.PathLike | str | None) -> list[Path]:
    """The heads saved in a project (their ``.json`` cards), newest first; empty without a project.

    >>> saved_heads(None)
    []
    """
    folder = Path(project) / HEADS_FOLDER if project else None
    if folder is None or not folder.is_dir():
        return []
    cards = [p for p in folder.glob("*.json") if p.with_suffix(".safetensors").exists()]
    return sorted(cards, key=lambda p: p.stat().st_mtime, reverse=True)
