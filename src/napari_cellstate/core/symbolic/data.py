"""What a formula search reads: inputs, labels, split and (for distillation) a head's score.

Three sources: a :class:`~napari_cellstate.core.heads.data.HeadData` with the sparse head that chose the inputs
(:func:`inputs_from_head_data`), a project folder (:func:`inputs_from_project`), or any CSV table with numeric
input columns and a ``label`` column (:func:`inputs_from_table`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..objects import latent_name_list
from .search import SymbolicDataError

__all__ = ["SymbolicInputs", "default_head_path", "inputs_from_head_data", "inputs_from_project", "inputs_from_table"]

_LABELS = {"interphase": 0, "metaphase": 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1}


@dataclass
class SymbolicInputs:
    """Rows to search on.

    Attributes
    ----------
    x : ndarray of shape (N, D)
        The chosen input columns.
    labels : ndarray of shape (N,), int8
        1 metaphase, 0 interphase.
    names : list of str
        Names of x's columns: the formula's variables.
    split : ndarray of shape (N,), str
        "train" or "test".
    groups : ndarray of shape (N,)
        Cell of each row.
    columns : list of str
        All input columns a saved model takes (all latents for a project), of which ``names`` are a part.
    score : ndarray of shape (N,) or None
        A head's score (distillation target).
    source : str
    """

    x: np.ndarray
    labels: np.ndarray
    names: list[str]
    split: np.ndarray
    groups: np.ndarray
    columns: list[str]
    score: np.ndarray | None
    source: str


def _chosen(all_names: list[str], inputs: list[str] | None, head=None) -> list[str]:
    if inputs:
        unknown = [name for name in inputs if name not in all_names]
        if unknown:
            raise SymbolicDataError(f"Unknown inputs {unknown}; the data has {', '.join(all_names[:40])}.")
        return list(dict.fromkeys(inputs))
    if head is None:
        raise SymbolicDataError(
            "No inputs chosen and no sparse head to take them from: pass the inputs (e.g. --inputs z3 z17 z21 z29) "
            "or train a sparse head (Scheme 3) first (`napari-cellstate train-heads` or the Train heads widget)."
        )
    used = head.used_inputs()
    if not used:
        raise SymbolicDataError("The sparse head reads no input (all its paths were pruned): choose inputs instead.")
    return [all_names[i] for i in used]


def inputs_from_head_data(data, *, inputs: list[str] | None = None, head=None, target: str = "label"):
    """The latents ``inputs`` (default: those ``head`` kept) of a HeadData, with its labels and split.

    ``target="score"`` adds the head's score for distillation (needs ``head``).
    """
    from ..heads.fit import predict

    if data.latents is None:
        raise SymbolicDataError(f"{data.source} has no latents: encode its crops first.")
    columns = latent_name_list(data.n_latents)
    names = _chosen(columns, inputs, head)
    if target not in ("label", "score"):
        raise ValueError(f"target must be 'label' or 'score', not {target!r}.")
    if target == "score" and head is None:
        raise SymbolicDataError("Distillation (target 'score') needs the sparse head whose score is reproduced.")
    index = [columns.index(name) for name in names]
    score = predict(head, data.latents).astype(np.float64) if target == "score" else None
    return SymbolicInputs(
        x=np.asarray(data.latents[:, index], dtype=np.float64),
        labels=np.asarray(data.labels, dtype=np.int8),
        names=names,
        split=np.asarray(data.split).astype(str),
        groups=np.asarray(data.groups),
        columns=columns,
        score=score,
        source=data.source,
    )


def default_head_path(project: os.PathLike | str) -> Path | None:
    """The project's sparse head: ``heads/sparse_head`` (Train heads) or ``heads/sparse_search_head`` (search)."""
    for name in ("sparse_head", "sparse_search_head"):
        path = Path(project) / "heads" / f"{name}.json"
        if path.is_file():
            return path
    return None


def inputs_from_project(
    project: os.PathLike | str, *, head: os.PathLike | str | None = None, inputs=None, target: str = "label"
):
    """A project's labelled cells, with the inputs its sparse head kept (or those chosen)."""
    from ..heads import load_head
    from ..heads.data import project_head_data

    data = project_head_data(project)
    head_path = head or (None if inputs and target == "label" else default_head_path(project))
    model = load_head(head_path)[0] if head_path else None
    return inputs_from_head_data(data, inputs=inputs, head=model, target=target)


def inputs_from_table(
    path: os.PathLike | str, *, inputs: list[str] | None = None, test_fraction: float = 0.2, seed: int = 0
) -> SymbolicInputs:
    """Any CSV with numeric input columns and a ``label`` column (interphase/metaphase or 0/1).

    Input columns: ``inputs``, or every column but ``label``, ``split`` and ``group``. A ``split`` column
    (train/test) is used when present, else ``test_fraction`` of the rows are drawn for testing; a ``group``
    column keeps rows of one cell in one fold.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SymbolicDataError(f"{path} is not a readable CSV table: {err}") from err
    if "label" not in table.columns:
        raise SymbolicDataError(
            f"{path} has no 'label' column (interphase/metaphase or 0/1); its columns: {', '.join(table.columns)}."
        )
    raw = table["label"].astype(str).str.strip().str.lower()
    unknown = sorted(set(raw) - set(_LABELS))
    if unknown:
        raise SymbolicDataError(f"{path}: labels must be interphase/metaphase or 0/1, found {unknown[:5]}.")
    reserved = {"label", "split", "group"}
    names = list(inputs) if inputs else [c for c in table.columns if c not in reserved]
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise SymbolicDataError(f"{path} has no columns {missing}.")
    bad = [n for n in names if not pd.api.types.is_numeric_dtype(table[n]) or not str(n).isidentifier()]
    if bad:
        raise SymbolicDataError(
            f"{path}: input columns must be numeric with plain names (letters, digits, _): {bad} are not. "
            "Choose numeric columns with --inputs."
        )
    if "split" in table.columns:
        split = table["split"].astype(str).to_numpy()
    else:
        split = np.where(np.random.default_rng(seed).random(len(table)) < test_fraction, "test", "train")
    groups = pd.factorize(table["group"])[0] if "group" in table.columns else np.arange(len(table))
    return SymbolicInputs(
        x=table[names].to_numpy(np.float64),
        labels=raw.map(_LABELS).to_numpy().astype(np.int8),
        names=[str(n) for n in names],
        split=split,
        groups=groups,
        columns=[str(n) for n in names],
        score=None,
        source=str(path),
    )
