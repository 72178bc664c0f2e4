"""What the heads train on: latents (or crops), binary labels and a split grouped by cell.

Two sources give a :class:`HeadData`:

* :func:`synthetic_head_data`: balanced crops from the synthetic generator, encoded by a β-TCVAE, with the
  generating factors kept (to name latents and to tell nucleus latents from neighbourhood ones);
* :func:`project_head_data`: a project's crop dataset, its latent columns and the labels a person gave.

The task is binary: metaphase (1) against interphase (0). Cells with other states stay in the project but are
not used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import CropGeneratorConfig, HeadScheme
from ..objects import latent_column_names, latent_name_list
from ..states import CellState

__all__ = ["HeadData", "HeadDataError", "project_head_data", "synthetic_head_data"]

#: Fewest labelled cells of each class worth training on.
MIN_CELLS_PER_CLASS = 10
_CLASSES = (CellState.INTERPHASE.value, CellState.METAPHASE.value)


class HeadDataError(ValueError):
    """The labelled data cannot train a head; the message says what to do."""


@dataclass
class HeadData:
    """Inputs, labels and split of the cells a head learns from.

    Attributes
    ----------
    labels : ndarray of shape (N,), int8
        1 metaphase, 0 interphase.
    split : ndarray of shape (N,), str
        "train" or "test" (grouped by cell: no cell on both sides).
    groups : ndarray of shape (N,), int64
        Cell identity (track) of each row, for further grouped splits.
    latents : ndarray of shape (N, D), float32, or None
        Latent means (Schemes 2-3).
    crops : array of shape (N, S, S) or None
        Standardised crops (Scheme 1), numpy or zarr.
    input_names : list of str
        A readable name per latent ("z11 ↔ area, r = 0.97").
    source : str
        Where the data came from.
    factors : DataFrame or None
        Morphology per row (area, eccentricity, orientation, ..., neighbour_count) used to name latents.
    encoder : dict or None
        The β-TCVAE that made the latents (name and weights hash), recorded in head cards.
    """

    labels: np.ndarray
    split: np.ndarray
    groups: np.ndarray
    latents: np.ndarray | None
    crops: Any
    input_names: list[str]
    source: str
    factors: pd.DataFrame | None = None
    encoder: dict | None = None

    @property
    def n_latents(self) -> int:
        """Latents per cell (0 without latents)."""
        return 0 if self.latents is None else int(self.latents.shape[1])

    @property
    def crop_size(self) -> int:
        """Crop side in px (0 without crops)."""
        return 0 if self.crops is None else int(self.crops.shape[-1])

    def rows(self, part: str) -> np.ndarray:
        """Row indices of the "train" or "test" part."""
        return np.flatnonzero(self.split == part)

    def validation_split(self, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Training rows divided into fitting and validation rows, by cell, about ``fraction`` for validation.

        Cells with and without metaphase rows are drawn separately, so a rare class still reaches both parts.
        """
        train = self.rows("train")
        groups = self.groups[train]
        mitotic = np.unique(groups[self.labels[train] == 1])
        others = np.setdiff1d(np.unique(groups), mitotic)
        rng = np.random.default_rng(seed)
        # at least one cell of each kind when there are two or more, so validation sees both classes
        held = [
            rng.permutation(cells)[: max(round(fraction * len(cells)), int(fraction > 0 and len(cells) > 1))]
            for cells in (mitotic, others)
        ]
        is_val = np.isin(groups, np.concatenate(held))
        return train[~is_val], train[is_val]

    def inputs_for(self, scheme: HeadScheme | str) -> np.ndarray:
        """The scheme's inputs as float32 in memory: crops for Scheme 1, latents otherwise."""
        if HeadScheme(scheme) is HeadScheme.CNN:
            if self.crops is None:
                raise HeadDataError(f"Scheme 1 (CNN) trains on crops, and {self.source} has none loaded.")
            return np.asarray(self.crops, dtype=np.float32)
        if self.latents is None:
            raise HeadDataError(
                f"{self.source} has no latents: encode its crops with the β-TCVAE first (Latent explorer → "
                "Encode, or `napari-cellstate encode PROJECT`)."
            )
        return np.asarray(self.latents, dtype=np.float32)

    def check_trainable(self, min_per_class: int = MIN_CELLS_PER_CLASS) -> None:
        """Refuse data with one class only or too few labelled cells, saying how many are missing."""
        train = self.rows("train")
        counts = {name: int(np.sum(self.labels[train] == code)) for code, name in enumerate(_CLASSES)}
        missing = {name: count for name, count in counts.items() if count == 0}
        if missing:
            raise HeadDataError(
                f"The training set has only one class ({counts}): label some {', '.join(missing)} cells too. "
                "A head learns to tell metaphase from interphase and needs examples of both."
            )
        few = {name: count for name, count in counts.items() if count < min_per_class}
        if few:
            raise HeadDataError(
                f"Too few labelled cells to train on: {few} in the training set; label at least {min_per_class} "
                "cells of each class (propagating a label along a track labels many frames at once)."
            )
        if len(self.rows("test")) == 0:
            raise HeadDataError("No labelled cell is in the test set: label more cells (on more tracks).")

    def describe(self) -> dict:
        """Counts and source, for model cards and reports."""
        return {
            "source": self.source,
            "n_cells": len(self.labels),
            "n_metaphase": int(self.labels.sum()),
            "n_train": len(self.rows("train")),
            "n_test": len(self.rows("test")),
            "n_latents": self.n_latents,
            "encoder": self.encoder,
        }


def _names(latents: np.ndarray, factors: pd.DataFrame | None, labels: np.ndarray) -> list[str]:
    """Latent names from correlations within each class (pooled ones would mirror the label, not the latent)."""
    from ..vae.naming import MORPHOLOGY, LatentNamingError, latent_names, name_latents_within

    plain = latent_name_list(latents.shape[1])
    if factors is None:
        return plain
    columns = [*MORPHOLOGY, *(c for c in ("edge_roughness",) if c in factors.columns)]
    table = factors.replace([np.inf, -np.inf], np.nan)
    try:
        return latent_names(name_latents_within(latents, table, labels, columns))
    except LatentNamingError:
        return plain  # too few measured cells: plain names rather than names drawn from noise


def synthetic_head_data(
    n: int = 6000,
    *,
    seed: int = 0,
    vae=None,
    generator: CropGeneratorConfig | None = None,
    test_fraction: float = 0.1,
    keep_crops: bool = True,
) -> HeadData:
    """Balanced synthetic crops encoded by ``vae`` (default: the packaged β-TCVAE), split at random.

    Each synthetic crop is a cell of its own, so the split is by row. ``generator`` sets the neighbourhood
    shortcut (``neighbour_exclusion_strength``) and the rest of the crop generator.
    """
    from ..provenance import model_provenance
    from ..vae.encode import encode_crops
    from ..vae.fit import load_default_vae, synthetic_training_crops

    crops, factors = synthetic_training_crops(n, seed=seed, cfg=generator)
    model = vae if vae is not None else load_default_vae()[0]
    encoder = model_provenance(model, "packaged β-TCVAE" if vae is None else "β-TCVAE")
    latents, _ = encode_crops(model, crops)
    labels = (factors["state"].astype(str) == CellState.METAPHASE.value).to_numpy().astype(np.int8)
    split = np.where(np.random.default_rng(seed).random(n) < test_fraction, "test", "train")
    return HeadData(
        labels=labels,
        split=split,
        groups=np.arange(n, dtype=np.int64),
        latents=latents.astype(np.float32),
        crops=crops if keep_crops else None,
        input_names=_names(latents, factors, labels),
        source=f"synthetic crops (n={n}, seed={seed})",
        factors=factors.drop(columns="state").reset_index(drop=True),
        encoder=encoder,
    )


def project_head_data(project: os.PathLike | str, *, ignore_unmatched_labels: bool = False) -> HeadData:
    """The labelled interphase and metaphase cells of a project, with their latents and crops.

    Labels come from the crop dataset's ``label`` column, overridden by ``<project>/labels.csv`` (what the
    Label cells widget saves). The train/test split is the dataset's (grouped by track).

    Raises
    ------
    HeadDataError
        Labels on cells that have no crop (unless ``ignore_unmatched_labels``), or no labelled cells.
    """
    from ..labelling import MATCH_DISTANCE_PX, LabelStore
    from ..project import load_crop_dataset

    folder = Path(project)
    dataset = load_crop_dataset(folder)
    objects = dataset.objects.reset_index(drop=True)
    labels = objects["label"].fillna("").astype(str).str.strip().str.lower()
    labels_csv = folder / "labels.csv"
    if labels_csv.exists():
        store = LabelStore(labels_csv)
        unmatched = store.matched_objects(objects) < 0
        if unmatched.any() and not ignore_unmatched_labels:
            raise HeadDataError(
                f"{int(unmatched.sum())} labelled cells in {labels_csv} have no crop in the dataset: no cell of "
                f"their frame lies within {MATCH_DISTANCE_PX:g} px of them (first rows: "
                f"{store.table.loc[unmatched, ['t', 'y', 'x']].head(3).round(1).to_dict('records')}). They were "
                "labelled on another movie or segmentation. Label those cells again, or train without them "
                "(ignore_unmatched_labels=True, CLI --ignore-unmatched-labels)."
            )
        given = store.labels_for(objects)
        labels = labels.where(given == "", given)
    use = labels.isin(_CLASSES).to_numpy()
    if not use.any():
        raise HeadDataError(
            f"No cell of {folder} is labelled interphase or metaphase: label cells with the Label cells widget "
            "(or import a labels CSV) first."
        )
    z_columns = latent_column_names(objects)
    latents = objects.loc[use, z_columns].to_numpy(np.float32) if z_columns else None
    rows = np.flatnonzero(use)
    chosen = objects.iloc[rows]
    group_keys = chosen["source"].astype(str) + "/" + chosen["track_id"].astype(str)
    untracked = chosen["track_id"].to_numpy() == 0
    group_keys = group_keys.where(~untracked, "object/" + chosen["object_id"].astype(str))
    factors = _crop_morphology(objects, dataset.crops, rows)
    binary = (labels.to_numpy()[rows] == CellState.METAPHASE.value).astype(np.int8)
    return HeadData(
        labels=binary,
        split=chosen["split"].astype(str).to_numpy(),
        groups=pd.factorize(group_keys)[0].astype(np.int64),
        latents=latents,
        crops=_RowsOf(dataset.crops, rows),
        input_names=_names(latents, factors.reset_index(drop=True), binary) if latents is not None else [],
        source=str(folder),
        factors=factors,
        encoder=dataset.provenance.get("latents", {}).get("model"),
    )


def _crop_morphology(objects: pd.DataFrame, crops, rows: np.ndarray) -> pd.DataFrame:
    """The chosen rows' nucleus measured on their crops: the stored column group, or measured now if absent."""
    from ..crop_morphology import measure_crops, morphology_table

    stored = morphology_table(objects)
    if stored is not None:
        return stored.iloc[rows].reset_index(drop=True)
    return measure_crops(np.asarray(_RowsOf(crops, rows)))


class _RowsOf:
    """Selected rows of a lazy (zarr) crop array; read when converted to numpy."""

    def __init__(self, array, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])

    def __array__(self, dtype=None, copy=None):
        out = self.array[self.rows] if len(self.rows) else np.zeros(self.shape)
        return np.asarray(out, dtype=dtype)
