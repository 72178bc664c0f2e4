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

__all__ = [
    "SymbolicInputs",
    "default_head_path",
    "informative_inputs",
    "inputs_from_head_data",
    "inputs_from_project",
    "inputs_from_table",
    "table1_inputs",
]

#: Most latents :func:`informative_inputs` adds to a sparse head's.
EXTRA_INPUTS = 4

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


def informative_inputs(
    x: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    kept: list[int],
    *,
    most: int = EXTRA_INPUTS,
    seed: int = 0,
) -> list[int]:
    """``kept`` and up to ``most`` more columns of ``x`` that carry what ``kept`` misses, from training rows only.

    A sparse head keeps few latents and a formula over them cannot beat it; a few more latents let it come near
    the dense head. Candidates come in the order an L1-regularised logistic regression (standardised columns,
    training rows) takes them in as its penalty loosens; each is added when it raises the 5-fold cross-validated
    log-likelihood of a logistic regression on the chosen columns by at least 2 nats in all (a likelihood-ratio
    test's bar for one more parameter, on held-out rows: chance gains of a column of noise stay below it, whether
    there are 100 labelled cells or 10,000). At most twice ``most`` candidates are tried. Test rows are never
    read.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((600, 5))
    >>> labels = (x[:, 0] + x[:, 3] > 0).astype(int)
    >>> informative_inputs(x, labels, np.ones(600, bool), [0])
    [0, 3]
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rows = np.flatnonzero(np.asarray(train, dtype=bool))
    z = x[rows] - x[rows].mean(axis=0)
    z /= np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
    y = np.asarray(labels)[rows]
    order: list[int] = []
    for c in np.logspace(-3.5, 0, 20):  # the L1 path, from one column to most
        model = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear").fit(z, y)
        order += [int(j) for j in np.flatnonzero(model.coef_[0]) if j not in order and j not in kept]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)

    def likelihood(columns: list[int]) -> float:
        """Mean held-out log-likelihood per row."""
        model = LogisticRegression(max_iter=1000)
        return float(cross_val_score(model, z[:, columns], y, cv=folds, scoring="neg_log_loss").mean())

    chosen = list(kept)
    prior = y.mean()
    current = likelihood(chosen) if chosen else float(prior * np.log(prior) + (1 - prior) * np.log1p(-prior))
    for j in order[: 2 * most]:
        if len(chosen) - len(kept) >= most:
            break
        trial = likelihood([*chosen, j])
        if (trial - current) * len(y) >= 2.0:
            chosen, current = [*chosen, j], trial
    return chosen


def inputs_from_head_data(
    data,
    *,
    inputs: list[str] | None = None,
    head=None,
    target: str = "label",
    teacher=None,
    extra_inputs: int = 0,
):
    """The latents ``inputs`` (default: those ``head`` kept) of a HeadData, with its labels and split.

    ``target="score"`` adds a head's score for distillation: ``teacher``'s (e.g. the dense head, which reads every
    latent), else ``head``'s. ``extra_inputs`` > 0 adds up to that many latents the head did not keep
    (:func:`informative_inputs`, chosen on the training rows).
    """
    from ..heads.fit import predict

    if data.latents is None:
        raise SymbolicDataError(f"{data.source} has no latents: encode its crops first.")
    columns = latent_name_list(data.n_latents)
    names = _chosen(columns, inputs, head)
    if target not in ("label", "score"):
        raise ValueError(f"target must be 'label' or 'score', not {target!r}.")
    teacher = teacher if teacher is not None else head
    if target == "score" and teacher is None:
        raise SymbolicDataError("Distillation (target 'score') needs the head whose score is reproduced.")
    index = [columns.index(name) for name in names]
    if extra_inputs > 0:
        train = np.asarray(data.split).astype(str) == "train"
        index = informative_inputs(np.asarray(data.latents), data.labels, train, index, most=extra_inputs)
        names = [columns[i] for i in index]
    score = predict(teacher, data.latents).astype(np.float64) if target == "score" else None
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


def table1_inputs(data, sparse, teacher=None) -> SymbolicInputs:
    """Scheme 4's inputs as Table 1 runs it (``train-heads``, the pipeline).

    The latents ``sparse`` kept plus up to :data:`EXTRA_INPUTS` informative ones; the target is ``teacher``'s score
    (the dense head) where there is one, else the labels.
    """
    target = "label" if teacher is None else "score"
    return inputs_from_head_data(data, head=sparse, target=target, teacher=teacher, extra_inputs=EXTRA_INPUTS)
