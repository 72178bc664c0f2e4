"""Apply a head to every cell of a project and keep its predictions under its scheme's own name.

The core stores the latest head's ``head_score`` / ``head_class`` (what the cells layer is filled by); each scheme's
predictions are also kept in a column group of their own (``predictions_<scheme>``: ``<scheme>_score``,
``<scheme>_class``), so reopening the project brings back the predictions of every scheme applied, not only the
last. Runs in a worker (:meth:`~napari_cellstate.gui._workers.RunPanel.start`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING

from ..core.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["iter_apply_and_keep", "scheme_columns"]


def scheme_columns(scheme: str) -> tuple[str, str]:
    """The (score, class) columns that keep one scheme's predictions.

    >>> scheme_columns("sparse")
    ('sparse_score', 'sparse_class')
    """
    return f"{scheme}_score", f"{scheme}_class"


def iter_apply_and_keep(
    project: os.PathLike | str, model, *, scheme: str, card: dict | None = None
) -> Generator[Progress, None, pd.DataFrame]:
    """Score every cell with ``model`` (Scheme ``scheme``: "cnn", "dense", "sparse", "symbolic"), keep the scores.

    Returns the objects table with ``head_score`` / ``head_class`` and the scheme's own columns.
    """
    from ..core.heads.apply import CLASS_COLUMN, SCORE_COLUMN, iter_apply_head
    from ..core.project import set_object_columns

    objects = yield from iter_apply_head(project, model, card=card)
    score, klass = scheme_columns(scheme)
    kept = objects[[SCORE_COLUMN, CLASS_COLUMN]].rename(columns={SCORE_COLUMN: score, CLASS_COLUMN: klass})
    provenance = {"command": "apply head", "head": {"name": scheme}}
    dataset = set_object_columns(
        project, kept.reset_index(drop=True), group=f"predictions_{scheme}", provenance=provenance
    )
    return dataset.objects
