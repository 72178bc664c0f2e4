"""Cells of a project to attack or audit: their crops, identity, position and crop geometry.

Only the public functions of :mod:`napari_cellstate.core.project` are used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..objects import latent_column_names
from ..states import CellState
from .models import AttackError

__all__ = ["IDENTITY_COLUMNS", "ProjectCells", "project_audit_inputs", "project_cells"]

#: Columns that identify and place an attacked cell.
IDENTITY_COLUMNS = ("object_id", "track_id", "t", "y", "x", "source")


@dataclass
class ProjectCells:
    """Selected cells of a project.

    Attributes
    ----------
    crops : ndarray of shape (N, S, S), float32
    cells : DataFrame
        :data:`IDENTITY_COLUMNS` of each cell.
    geometry : dict
        ``size_px``, ``window_px`` (crop window in movie pixels), ``source_pixel_size_um``: how to lay the
        crops over the movie (:func:`~napari_cellstate.core.attacks.results.crop_placement`).
    rows : ndarray of shape (N,), int
        Rows of the crop dataset.
    """

    crops: np.ndarray
    cells: pd.DataFrame
    geometry: dict
    rows: np.ndarray


def _geometry(metadata: dict, size_px: int) -> dict:
    settings = metadata.get("crop_settings") or {}
    return {
        "size_px": int(settings.get("size_px") or size_px),
        "window_px": int(settings.get("window_px") or size_px),
        "source_pixel_size_um": settings.get("source_pixel_size_um"),
    }


def project_cells(
    project: os.PathLike | str, cell_ids: Sequence[int] | None = None, predicted_class: str | None = None
) -> ProjectCells:
    """Crops and identity of chosen cells: by object id, by the applied head's class, or all.

    Parameters
    ----------
    project : path-like
        A project with a crop dataset.
    cell_ids : sequence of int, optional
        Object ids (the ``object_id`` column); every one must have a crop.
    predicted_class : str, optional
        "interphase" or "metaphase": cells whose ``head_class`` (from Apply head) is that class.

    Raises
    ------
    AttackError
        A cell id without a crop, a class no cell has, a class without applied-head columns.
    """
    from ..project import load_crop_dataset

    dataset = load_crop_dataset(project)
    objects = dataset.objects.reset_index(drop=True)
    if cell_ids is not None and len(cell_ids):
        ids = pd.Index(objects["object_id"])
        missing = [int(c) for c in cell_ids if int(c) not in ids]
        if missing:
            raise AttackError(
                f"Cells {missing[:10]} have no crop in {project}: choose cells of the crop dataset (object_id), "
                "or run Track & crop again."
            )
        rows = np.array([ids.get_loc(int(c)) for c in cell_ids], dtype=np.int64)
    elif predicted_class is not None:
        if "head_class" not in objects:
            raise AttackError(f"No head was applied to {project}: apply one (`napari-cellstate apply-head`) first.")
        rows = np.flatnonzero((objects["head_class"].astype(str) == predicted_class).to_numpy())
        if len(rows) == 0:
            raise AttackError(f"No cell of {project} is classified {predicted_class!r}.")
    else:
        rows = np.arange(len(objects))
    crops = np.asarray(dataset.crops[rows], dtype=np.float32)
    cells = objects.iloc[rows][[c for c in IDENTITY_COLUMNS if c in objects]].reset_index(drop=True)
    return ProjectCells(crops, cells, _geometry(dataset.metadata, crops.shape[-1]), rows)


def project_audit_inputs(project: os.PathLike | str, max_cells: int = 500, seed: int = 0):
    """The test cells of a project for the audit: crops, latent means (or None) and factors for latent roles.

    Returns
    -------
    crops : ndarray of shape (N, S, S)
    latents : ndarray of shape (N, D) or None
        The objects table's ``z*`` columns, when the project is encoded.
    factors : DataFrame
        Nucleus measurements and the neighbourhood measured from the objects table.
    classes : ndarray of shape (N,)
        1 where labelled (or, unlabelled, classified) metaphase.
    """
    from ..project import load_crop_dataset
    from .central import neighbourhood_factors

    dataset = load_crop_dataset(project)
    objects = dataset.objects.reset_index(drop=True)
    rows = np.flatnonzero((objects["split"].astype(str) == "test").to_numpy())
    if len(rows) < 2:
        raise AttackError(f"{project} has fewer than two test cells: the audit measures models on the test split.")
    if len(rows) > max_cells:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_cells, replace=False))
    geometry = _geometry(dataset.metadata, int(dataset.crops.shape[-1]))
    near = neighbourhood_factors(objects, geometry["window_px"]).iloc[rows].reset_index(drop=True)
    chosen = objects.iloc[rows].reset_index(drop=True)
    measured = [c for c in ("area", "eccentricity", "orientation", "intensity_mean") if c in chosen]
    factors = pd.concat([chosen[measured].astype(float), near], axis=1)
    z_columns = latent_column_names(chosen)
    latents = chosen[z_columns].to_numpy(np.float32) if z_columns else None
    state = chosen["label"].fillna("").astype(str)
    if "head_class" in chosen:
        state = state.where(state != "", chosen["head_class"].fillna("").astype(str))
    classes = (state == CellState.METAPHASE.value).to_numpy().astype(np.int8)
    crops = np.asarray(dataset.crops[rows], dtype=np.float32)
    return crops, latents, factors, classes


def iter_attack_project(
    project: os.PathLike | str,
    head: os.PathLike | str,
    *,
    cell_ids: Sequence[int] | None = None,
    predicted_class: str | None = None,
    **attack: object,
):
    """Attack chosen cells of a project with a saved head; returns ``(AttackResult, geometry)``.

    ``attack`` goes to :func:`~napari_cellstate.core.attacks.attack.iter_attack_cells` (space, epsilon, method,
    frozen). Yields its progress.
    """
    from .attack import iter_attack_cells
    from .fgsm import check_epsilon
    from .models import load_scheme

    if attack.get("epsilon") is not None:
        check_epsilon(attack["epsilon"])
    scheme = load_scheme(head)
    chosen = project_cells(project, cell_ids, predicted_class)
    result = yield from iter_attack_cells(scheme, chosen.crops, cells=chosen.cells, **attack)
    return result, chosen.geometry


def iter_audit_heads(
    project: os.PathLike | str,
    heads: Sequence[os.PathLike | str],
    *,
    central: Sequence[int] | None = None,
    max_cells: int = 500,
    n_minimal: int = 100,
    seed: int = 0,
):
    """Audit saved heads on a project's test cells; returns ``(rows, curves, central latents)``.

    ``central`` overrides the central-cell latents found from latent roles. ``curves`` is the image-space flip
    rate against ε of every head (a DataFrame). Yields one progress event per audit step of each head.
    """
    from ..progress import Progress
    from ..vae.encode import encode_crops
    from ..vae.fit import load_default_vae
    from .audit import flip_rate_curve, iter_audit, prepare_audit_cells
    from .central import central_latents
    from .models import load_scheme

    if not heads:
        raise AttackError(
            "No trained head to audit: train heads first (Train heads, or `napari-cellstate train-heads`)."
        )
    crops, latents, factors, classes = project_audit_inputs(project, max_cells=max_cells, seed=seed)
    vae = load_default_vae()[0]
    if central is None:
        central = central_latents(latents if latents is not None else encode_crops(vae, crops)[0], factors, classes)
    yield Progress(0, len(heads), f"editing {len(crops)} test crops (central nucleus, surroundings, turns, noise)")
    cells = prepare_audit_cells(crops, central, seed=seed)
    rows, curves = [], []
    for k, path in enumerate(heads):
        scheme = load_scheme(path, vae)
        steps = iter_audit(scheme, cells, n_minimal=n_minimal)
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                rows.append(stop.value)
                break
            yield Progress(k, len(heads), event.message)
        curves.append(flip_rate_curve(scheme, crops[:n_minimal]))
        yield Progress(k + 1, len(heads), f"audited {scheme.name}")
    rows.sort(key=lambda row: (row["scheme"], row["head"]))
    return rows, pd.concat(curves, ignore_index=True), list(central)
