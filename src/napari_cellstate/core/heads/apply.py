"""Run a trained head on every cell of a project: a score and a class per row of the objects table.

The results go into the crop dataset's objects table as ``head_score`` (f(x), float) and ``head_class``
("metaphase" where f(x) >= 0, else "interphase"), so the Points layer, the CLI and the API all see them.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import numpy as np
import pandas as pd

from ..model_files import check_finite
from ..objects import latent_column_names
from ..progress import Progress, run_to_completion
from ..states import CellState
from ._files import check_head_inputs
from ._model import CNNClassifier

__all__ = ["CLASS_COLUMN", "SCORE_COLUMN", "apply_head", "classes_from_scores", "iter_apply_head"]

SCORE_COLUMN = "head_score"
CLASS_COLUMN = "head_class"


def classes_from_scores(scores: np.ndarray) -> np.ndarray:
    """Class names from scores: f(x) >= 0 is metaphase (the paper's eq. 2).

    >>> classes_from_scores(np.array([-0.5, 0.0, 2.0])).tolist()
    ['interphase', 'metaphase', 'metaphase']
    """
    return np.where(np.asarray(scores) >= 0, CellState.METAPHASE.value, CellState.INTERPHASE.value)


def _latents(objects: pd.DataFrame) -> np.ndarray:
    columns = latent_column_names(objects)
    if not columns:
        raise ValueError(
            "The project's cells have no latents: encode the crops with the β-TCVAE first (Latent explorer → "
            "Encode, or `napari-cellstate encode PROJECT`)."
        )
    return objects[columns].to_numpy(np.float32)


def iter_apply_head(
    project: os.PathLike | str, model, *, card: dict | None = None, batch_size: int = 1024
) -> Generator[Progress, None, pd.DataFrame]:
    """Score every cell of ``project`` with ``model`` and store score and class in its objects table.

    Parameters
    ----------
    project : path
        A project with a crop dataset (and latent columns for Schemes 2-3).
    model : MLPHead, CNNClassifier or ExpressionModule
        From :func:`~napari_cellstate.core.heads.load_head`, a training result, or a Scheme 4 formula
        (:func:`~napari_cellstate.core.symbolic.files.load_expression_module`).
    card : dict, optional
        The head's card: a head trained on latents of another β-TCVAE than the project's is refused.

    Returns
    -------
    DataFrame
        The updated objects table.
    """
    from ..project import load_crop_dataset, set_object_columns
    from ..provenance import check_same_encoder
    from .fit import predict

    dataset = load_crop_dataset(project)
    n = len(dataset)
    if isinstance(model, CNNClassifier):
        inputs = dataset.crops
    else:
        if hasattr(model, "columns"):  # a Scheme 4 formula (ExpressionModule): its named input columns
            missing = [c for c in model.columns if c not in dataset.objects.columns]
            if missing:
                raise ValueError(
                    f"The formula takes columns {missing} that the project's cells lack: encode them first."
                )
            inputs = dataset.objects[model.columns].to_numpy(np.float32)
        else:
            inputs = _latents(dataset.objects)
            check_head_inputs(model, inputs.shape[1])
        check_finite(inputs, "The cells' latents", "Encode the crops again (napari-cellstate encode PROJECT).")
        trained_on = ((card or {}).get("data") or {}).get("encoder")
        check_same_encoder(trained_on, dataset.provenance.get("latents", {}).get("model"), head="This head")
    scores = []
    for start in range(0, n, batch_size):
        chunk = np.asarray(inputs[start : start + batch_size], dtype=np.float32)
        scores.append(predict(model, chunk, batch_size=batch_size))
        done = min(start + batch_size, n)
        yield Progress(done, n, f"scored {done}/{n} cells")
    score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    check_finite(score, "The head's scores", "The head is damaged or diverged: retrain it, or load another head.")
    columns = pd.DataFrame(
        {SCORE_COLUMN: score.astype(np.float64), CLASS_COLUMN: pd.array(classes_from_scores(score), dtype="string")}
    )
    head = {"name": (card or {}).get("scheme", type(model).__name__)}
    return set_object_columns(
        project, columns, group="predictions", provenance={"command": "apply head", "head": head}
    ).objects


def apply_head(project: os.PathLike | str, model, **kwargs) -> pd.DataFrame:
    """Blocking :func:`iter_apply_head`."""
    return run_to_completion(iter_apply_head(project, model, **kwargs))
