"""Attack results on disk (so a GUI can reload them) and where a crop lies on the movie.

A result folder holds ``attack.json`` (summary: scheme, head, space, method, frozen latents, flip rate, crop
geometry), ``cells.csv`` (one row per attacked cell) and one ``.npy`` per array (``crops``, ``perturbation``,
``perturbed``, ``reconstruction`` and, for latent attacks, ``image_difference``). The folder is built under a
hidden name and swapped in with renames, so a crash leaves the previous result or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_json_atomic
from ..objects import latent_name
from .attack import AttackResult
from .models import AttackError

__all__ = ["ARRAYS", "crop_placement", "load_attack_result", "save_attack_result", "write_table_atomic"]

SUMMARY_FILE = "attack.json"
ARRAYS = ("crops", "perturbation", "perturbed", "reconstruction", "image_difference")
_FORMAT = "napari-cellstate attack"


def crop_placement(y: float, x: float, size_px: int, window_px: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Translate and scale (rows, columns; movie pixels) that lay an (S, S) crop over the movie at its cell.

    Crop extraction (:mod:`napari_cellstate.core.crops`) cuts a window of ``W = window_px`` movie pixels from
    row ``round(y) - W // 2`` and resizes it to ``S = size_px``, so crop pixel ``i`` samples movie row
    ``round(y) - W // 2 + (i + 0.5)·W/S - 0.5``: scale ``W/S``, translate the value at ``i = 0``.

    Examples
    --------
    >>> translate, scale = crop_placement(40.2, 30.0, 64)  # no resize: crop pixel 32 is the cell's pixel
    >>> (translate + 32 * scale).tolist(), scale.tolist()
    ([40.0, 30.0], [1.0, 1.0])
    """
    window = size_px if window_px is None else int(window_px)
    scale = window / size_px
    start = np.array([round(y), round(x)], dtype=float) - window // 2
    return start + 0.5 * scale - 0.5, np.array([scale, scale])


def attack_summary(result: AttackResult) -> dict:
    """What an attack was and did, in a few JSON-ready fields (the CLI prints it; the saved card holds it)."""
    return {
        "scheme": result.scheme,
        "head": result.model_name,
        "space": result.space,
        "method": result.method,
        "frozen": [latent_name(j) for j in result.frozen],
        "n_cells": len(result.cells),
        "flip_rate": result.flip_rate,
    }


def _summary(result: AttackResult, geometry: dict | None) -> dict:
    return {"format": _FORMAT, "version": 1, **attack_summary(result), "geometry": geometry or {}}


def save_attack_result(folder: os.PathLike | str, result: AttackResult, geometry: dict | None = None) -> Path:
    """Write ``result`` to ``folder`` (created or replaced as a whole).

    Parameters
    ----------
    folder : path-like
        A new or empty folder, or one holding an earlier attack result (replaced).
    geometry : dict, optional
        Crop geometry for placing maps on the movie: ``size_px``, ``window_px``, ``source_pixel_size_um``.

    Raises
    ------
    AttackError
        If ``folder`` holds other files (it is never overwritten).
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / SUMMARY_FILE).exists():
        raise AttackError(f"{folder} holds other files: choose a new or empty output folder for the attack.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        for name in ARRAYS:
            array = getattr(result, name)
            if array is not None:
                np.save(staging / f"{name}.npy", np.asarray(array, dtype=np.float32))
        result.cells.to_csv(staging / "cells.csv", index=False)
        write_json_atomic(staging / SUMMARY_FILE, _summary(result, geometry))
        aside = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
        if folder.exists():
            folder.rename(aside)
        staging.rename(folder)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_attack_result(folder: os.PathLike | str) -> tuple[AttackResult, dict]:
    """Read a result written by :func:`save_attack_result`: the result and its summary (with geometry)."""
    folder = Path(folder)
    path = folder / SUMMARY_FILE
    if not path.exists():
        raise AttackError(f"{folder} holds no attack result ({SUMMARY_FILE} is missing).")
    summary = json.loads(path.read_text())
    if summary.get("format") != _FORMAT:
        raise AttackError(f"{path} is not a napari-cellstate attack summary.")
    arrays = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in ARRAYS if (folder / f"{n}.npy").exists()}
    result = AttackResult(
        scheme=int(summary["scheme"]),
        model_name=summary["head"],
        space=summary["space"],
        method=summary["method"],
        frozen=[int(z[1:]) for z in summary["frozen"]],
        cells=pd.read_csv(folder / "cells.csv"),
        image_difference=arrays.pop("image_difference", None),
        **arrays,
    )
    return result, summary


def write_table_atomic(path: os.PathLike | str, table: pd.DataFrame) -> Path:
    """A CSV written to a temporary name and renamed."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)
