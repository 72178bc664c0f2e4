"""Opening folders of project version 1: migrated once, atomically, to the run layout.

Version 1 kept the crops and the objects table together in ``crops.zarr``
(the table as one zarr array per column) and the segmentation beside it.
Migration copies them into a staged run (crops re-chunked with checksums,
the table as Parquet, latent and prediction columns as column groups) and
commits it like any run; the old stores are removed only after the commit.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_json_atomic
from .crop_store import CHUNK_CROPS, write_crop_store
from .folder import Project, ProjectError, now
from .lock import project_lock
from .runs import STAGING_PREFIX, commit_run
from .table import OBJECTS_FILE, write_column_group, write_table

__all__ = ["migrate_v1"]

_LATENT_COLUMN = r"^z\d+(_logvar)?$"
_PREDICTION_COLUMNS = ("head_score", "head_class")
_UNKNOWN_ORIGIN = {"command": "migrated from project version 1 (the model that made these columns is not recorded)"}


def _read_v1_table(group) -> pd.DataFrame:
    data = {}
    for info in group.attrs["columns"]:
        name, dtype = info["name"], info["dtype"]
        values = group[name][:]
        if "categories" in info:
            categories = pd.CategoricalDtype(info["categories"], ordered=info.get("ordered", False))
            data[name] = pd.Categorical.from_codes(values.astype(np.int64), dtype=categories)
        elif values.dtype.kind == "T" or values.dtype == object:
            data[name] = pd.Series(values.astype(object)).astype(dtype)
        else:
            data[name] = pd.Series(values).astype(dtype)
    return pd.DataFrame(data)


def _v1_store(folder: Path) -> Path | None:
    if (folder / "crops.zarr").exists():
        return folder / "crops.zarr"
    aside = sorted(folder.glob(".crops.zarr.old-*"), key=lambda p: p.stat().st_mtime)  # a v1 write cut mid-swap
    return aside[-1] if aside else None


def _stage_v1(folder: Path, staging: Path, run_id: str) -> None:
    import zarr

    store = _v1_store(folder)
    if store is not None:
        try:
            group = zarr.open_group(store, mode="r", zarr_format=3)
            metadata = dict(group.attrs)
            crops = group["crops"]
            table = _read_v1_table(group["objects"])
        except Exception as err:
            raise ProjectError(
                f"The project {folder} is of an older version and its crop store {store} cannot be read to "
                f"migrate it ({err}). Run Track & crop again into a new project folder."
            ) from err
        if crops.shape[0] != len(table):
            raise ProjectError(
                f"{store} is damaged ({crops.shape[0]} crops, {len(table)} rows): track the movie again."
            )
        kept = {
            k: v for k, v in metadata.items() if k in ("created", "modified", "sources", "crop_settings", "versions")
        }
        blocks = (np.asarray(crops[i : i + CHUNK_CROPS]) for i in range(0, crops.shape[0], CHUNK_CROPS))
        write_crop_store(staging / "crops.zarr", blocks, int(crops.shape[1]), kept)
        latents = [c for c in table.columns if re.match(_LATENT_COLUMN, c)]
        predictions = [c for c in _PREDICTION_COLUMNS if c in table.columns]
        base = table.drop(columns=[*latents, *predictions])
        write_table(staging / OBJECTS_FILE, base, {"n_rows": len(table), "run": run_id})
        for name, columns in (("latents", latents), ("predictions", predictions)):
            if columns:
                others = [c for c in table.columns if c not in columns]
                write_column_group(staging, name, table[columns], len(table), others, _UNKNOWN_ORIGIN)
    if (folder / "segmentation.zarr").exists():
        shutil.copytree(folder / "segmentation.zarr", staging / "segmentation.zarr")


def migrate_v1(folder: Path, info: dict) -> dict:
    """Migrate a version-1 project in ``folder`` (``info``: its ``project.json``); returns the new ``project.json``."""
    from .folder import _read_info

    with project_lock(folder, "migrate project to version 2"):
        info = _read_info(folder)  # another process may have migrated it meanwhile
        if info["version"] >= 2:
            return info
        run_id = uuid.uuid4().hex[:16]
        staging = folder / f"{STAGING_PREFIX}{run_id}"
        for leftover in folder.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging.mkdir()
        try:
            _stage_v1(folder, staging, run_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if not any(staging.iterdir()):  # nothing to migrate: an empty project
            staging.rmdir()
            new_info = {**info, "version": 2, "run": None, "migrated": now()}
            write_json_atomic(folder / "project.json", new_info)
            return new_info
        old = Project(folder, {**info, "run": None})
        commit_run(old, staging, run_id, "migrate project to version 2", {**info, "migrated": now()})
        for legacy in ("crops.zarr", "segmentation.zarr", *(p.name for p in folder.glob(".*.zarr.*-*"))):
            shutil.rmtree(folder / legacy, ignore_errors=True)
        return _read_info(folder)
