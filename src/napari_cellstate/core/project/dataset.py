"""The crop dataset of a project: its crops and objects table, read and written as one.

Row ``i`` of the objects table describes ``crops[i]``. The table has the
standard columns of :data:`~napari_cellstate.core.objects.OBJECT_COLUMNS`,
then ``source`` (the movie's name), ``crop_at_border`` and ``split``
("train"/"test"), then any extra columns; float columns keep NaN ("unknown",
e.g. the position of an imported crop). Column groups added later (latents,
predictions) come after, each with its provenance in
:attr:`CropDataset.provenance`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..crops import CropResult
from ..objects import OBJECT_COLUMNS, validate_objects
from .crop_store import CHUNK_CROPS, CropArray, CropStoreWriter, open_crop_store, write_crop_store
from .folder import Project, ProjectError, as_project, now, package_version
from .lock import project_lock
from .runs import StagedRun, new_run
from .split import split_by_track
from .table import OBJECTS_FILE, read_objects, write_column_group, write_table

__all__ = [
    "CropDataset",
    "append_crop_dataset",
    "load_crop_dataset",
    "set_object_columns",
    "stage_crop_dataset",
    "stream_crop_dataset",
    "write_crop_dataset",
]

_DATASET_COLUMNS = ("source", "crop_at_border", "split")


@dataclass
class CropDataset:
    """A crop dataset read from a project.

    Attributes
    ----------
    crops : CropArray of shape (N, S, S), float32
        Lazy: slicing reads from disk and checks each chunk.
    objects : DataFrame
        One row per crop (row ``i`` describes ``crops[i]``), with every column group.
    metadata : dict
        Format, sources, crop settings, package versions, times.
    path : Path
        The run folder that was read.
    provenance : dict
        For each column group (e.g. "latents"), what made it: command, model name and hash, time.
    run_id : str
    """

    crops: CropArray
    objects: pd.DataFrame
    metadata: dict[str, Any]
    path: Any
    provenance: dict[str, dict] = field(default_factory=dict)
    run_id: str = ""

    def __len__(self) -> int:
        return len(self.objects)


def _versions() -> dict[str, str]:
    import pyarrow
    import skimage
    import zarr

    return {
        "napari_cellstate": package_version(),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "pyarrow": pyarrow.__version__,
        "scikit-image": skimage.__version__,
        "pandas": pd.__version__,
    }


def standard_table(objects: pd.DataFrame) -> pd.DataFrame:
    """``validate_objects``, but float columns keep NaN (unknown is not 0) and missing ones are NaN.

    Columns come in order: the standard ones, ``source``, ``crop_at_border``, ``split`` (where present), the rest.
    """
    table = validate_objects(objects)
    for name, dtype in OBJECT_COLUMNS.items():
        if dtype.startswith("float"):
            if name in objects.columns:
                table[name] = pd.to_numeric(objects[name]).to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                table[name] = np.nan
    ours = [c for c in _DATASET_COLUMNS if c in table.columns]
    extra = [c for c in table.columns if c not in OBJECT_COLUMNS and c not in _DATASET_COLUMNS]
    table = table[[*OBJECT_COLUMNS, *ours, *extra]]
    return table.astype(
        {c: t for c, t in (("source", "string"), ("split", "string"), ("crop_at_border", bool)) if c in table}
    )


def load_crop_dataset(project: Project | os.PathLike | str) -> CropDataset:
    """Read the crop dataset of a project's live run.

    Returns
    -------
    CropDataset
        ``crops`` is lazy and checked chunk by chunk; ``objects`` (with every column group) and ``metadata`` are
        in memory.

    Raises
    ------
    ProjectError
        The project has no crop dataset, or it is damaged or newer.
    """
    project = as_project(project)
    if project.crops_path is None or not project.crops_path.exists():
        raise ProjectError(
            f"The project {project.path} has no crop dataset yet: run Track & crop on a movie "
            "(napari-cellstate track), or import a folder of crops (import_crop_folder)."
        )
    crops = open_crop_store(project.crops_path)
    objects, provenance = read_objects(project.run_path)
    if len(objects) != crops.shape[0]:
        raise ProjectError(
            f"The project {project.path} is damaged: {crops.shape[0]} crops but {len(objects)} table rows. Run "
            "Track & crop again (napari-cellstate track ... --replace), or restore the project from a backup."
        )
    return CropDataset(crops, objects, dict(crops.metadata), project.run_path, provenance, project.run_id)


def _dataset_objects(result: CropResult, source: str) -> pd.DataFrame:
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"A crop dataset needs a source name for the movie (e.g. its file name), got {source!r}.")
    shape = np.shape(result.crops)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"Crops must be an (N, S, S) array; got shape {shape}.")
    if shape[0] != len(result.objects):
        raise ValueError(f"{shape[0]} crops but {len(result.objects)} object rows; they must match one to one.")
    if shape[0] == 0:
        raise ValueError("There are no crops to write: the objects table is empty.")
    table = standard_table(result.objects)
    if "crop_at_border" not in table.columns:
        table["crop_at_border"] = False
    table["source"] = pd.Series(source, index=table.index, dtype="string")
    table["crop_at_border"] = table["crop_at_border"].fillna(False).astype(bool)
    table["split"] = pd.Series("", index=table.index, dtype="string")
    return standard_table(table).reset_index(drop=True)


def _source_entry(result: CropResult, source: str, pixel_size_um, n: int, test_fraction: float, seed: int) -> dict:
    if pixel_size_um is None:
        pixel_size_um = result.settings.get("source_pixel_size_um")
    return {
        "name": source,
        "pixel_size_um": pixel_size_um,
        "shape": result.settings.get("movie_shape"),
        "n_crops": n,
        "crop_settings": dict(result.settings),
        "split": {"by": ["source", "track_id"], "test_fraction": test_fraction, "seed": seed},
    }


def _blocks(crops, start: int = 0) -> Iterator[np.ndarray]:
    for i in range(start, len(crops), CHUNK_CROPS):
        yield np.asarray(crops[i : i + CHUNK_CROPS], dtype=np.float32)


def _stage(staged: StagedRun, blocks, size: int, table: pd.DataFrame, metadata: dict) -> None:
    """Seal the crops (an open :class:`CropStoreWriter`, or blocks to write) and write the table beside them."""
    if isinstance(blocks, CropStoreWriter):
        blocks.close(metadata)
        n = blocks.n_crops
    else:
        n = write_crop_store(staged.path / "crops.zarr", blocks, size, metadata)
    if n != len(table):
        raise ValueError(f"{n} crops were written for {len(table)} table rows; they must match one to one.")
    write_table(staged.path / OBJECTS_FILE, table, {"n_rows": len(table), "run": staged.run_id})


def stage_crop_dataset(
    staged: StagedRun,
    result: CropResult,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    writer: CropStoreWriter | None = None,
) -> None:
    """Write one movie's crops and objects into a staged run (see :func:`write_crop_dataset`).

    With ``writer`` (a :class:`CropStoreWriter` on ``staged.path / "crops.zarr"`` that received the crops as
    they were cut, e.g. as the ``sink`` of :func:`~napari_cellstate.core.crops.iter_extract_crops`), only the
    table is written and the store sealed: the crops never sit in memory together.
    """
    if writer is None:
        _stage_source(staged, _blocks(result.crops), result, source, pixel_size_um, test_fraction, seed)
        return
    size = int(result.settings["size_px"])
    streamed = CropResult(_Shape(writer.n_crops, size), result.objects, result.settings)
    _stage_source(staged, writer, streamed, source, pixel_size_um, test_fraction, seed)


def _stage_source(staged, blocks, result: CropResult, source, pixel_size_um, test_fraction, seed) -> None:
    table = _dataset_objects(result, source)
    table["split"] = split_by_track(table, test_fraction, seed)
    n, size = len(table), int(np.shape(result.crops)[1])
    created = now()
    metadata = {
        "created": created,
        "modified": created,
        "sources": [_source_entry(result, source, pixel_size_um, n, test_fraction, seed)],
        "crop_settings": dict(result.settings),
        "versions": _versions(),
    }
    _stage(staged, blocks, size, table, metadata)


class _Shape:
    """Stands in for a crop array of which only the shape is known (crops arriving in blocks)."""

    def __init__(self, n: int, size: int) -> None:
        self.shape = (n, size, size)


def stream_crop_dataset(
    project: Project | os.PathLike | str,
    blocks: Iterable[np.ndarray],
    objects: pd.DataFrame,
    settings: dict,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    replace: bool = False,
) -> CropDataset:
    """Like :func:`write_crop_dataset`, for crops that arrive in blocks (memory stays bounded, whatever N).

    Parameters
    ----------
    blocks : iterable of arrays (M, S, S)
        The crops in table order; their total must equal ``len(objects)``.
    objects : DataFrame
        One row per crop.
    settings : dict
        Crop settings (as :attr:`CropResult.settings`), including ``size_px``.
    """
    result = CropResult(_Shape(len(objects), int(settings["size_px"])), objects, settings)
    with new_run(project, "write crop dataset", replace=replace) as staged:
        _stage_source(staged, blocks, result, source, pixel_size_um, test_fraction, seed)
    return load_crop_dataset(staged.previous.path)


def write_crop_dataset(
    project: Project | os.PathLike | str,
    result: CropResult,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    replace: bool = False,
) -> CropDataset:
    """Create or replace the project's crop dataset with the crops of one movie, as a new run.

    Parameters
    ----------
    project : Project or path
    result : CropResult
        From :func:`~napari_cellstate.core.crops.extract_crops`.
    source : str
        The movie's name (e.g. its file name); stored in the ``source`` column.
    pixel_size_um : float, optional
        The movie's pixel size in micrometres; default: the one the crops
        were extracted with, if any.
    test_fraction : float, default=0.1
        Fraction of rows held out as "test", whole tracks at a time
        (:func:`split_by_track`).
    seed : int, default=0
        Seed of the split.
    replace : bool, default=False
        Allow replacing cells that carry latents, predictions or labels.

    Examples
    --------
    >>> import tempfile
    >>> from napari_cellstate.core.config import CropConfig
    >>> from napari_cellstate.core.crops import extract_crops
    >>> movie = np.random.default_rng(0).integers(0, 100, (3, 80, 80)).astype(np.uint16)
    >>> objects = pd.DataFrame({"t": [0, 1, 2], "y": [40.0, 41.0, 42.0], "x": [40.0, 40.0, 40.0], "track_id": 1})
    >>> result = extract_crops(movie, objects, CropConfig(size_px=32))
    >>> project = Project.create(tempfile.mkdtemp())
    >>> dataset = write_crop_dataset(project, result, "movie.tif", 0.33)
    >>> dataset.crops.shape, dataset.metadata["sources"][0]["name"]
    ((3, 32, 32), 'movie.tif')
    """
    with new_run(project, "write crop dataset", replace=replace) as staged:
        stage_crop_dataset(staged, result, source, pixel_size_um, test_fraction=test_fraction, seed=seed)
    return load_crop_dataset(staged.previous.path)


def append_crop_dataset(
    project: Project | os.PathLike | str,
    result: CropResult,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    replace: bool = False,
) -> CropDataset:
    """Add the crops of another movie to the project's crop dataset (or create it), as a new run.

    Existing rows, crops and splits stay as they are. Only the new crops are written: the old crop chunks are
    hard-linked into the new run, so the crops written per append do not grow with the dataset (the objects
    table, a few hundred bytes a row, is rewritten). The new rows are split
    among themselves (their source differs, so no track crosses sources).
    Column groups (latents, predictions) do not cover the new crops, so they
    stay with the old run: encode again afterwards.

    Raises
    ------
    ValueError
        Another crop size or standardisation, or a source already in the dataset.
    """
    current = as_project(project)
    if current.crops_path is None:
        return write_crop_dataset(current, result, source, pixel_size_um, test_fraction=test_fraction, seed=seed)
    existing = load_crop_dataset(current)
    meta = existing.metadata
    new_table = _dataset_objects(result, source)
    size = int(np.shape(result.crops)[1])
    if size != meta["size_px"]:
        raise ValueError(
            f"The new crops are {size} x {size} px but the dataset's are {meta['size_px']} x {meta['size_px']} px: "
            f"extract them with CropConfig(size_px={meta['size_px']}), or write a new dataset."
        )
    for key in ("standardise", "clip"):
        ours, theirs = meta["crop_settings"].get(key), result.settings.get(key)
        if ours != theirs:
            raise ValueError(
                f"The new crops were made with {key}={theirs} but the dataset's with {key}={ours}: extract them "
                "with the dataset's settings so that values are comparable."
            )
    names = [s["name"] for s in meta["sources"]]
    if source in names:
        raise ValueError(
            f"The dataset already holds crops from source {source!r} (sources: {names}): give this movie another "
            "name, or write the dataset anew to replace it."
        )
    new_table["split"] = split_by_track(new_table, test_fraction, seed)
    base_columns = [c for c in existing.objects.columns if not _in_group(c, existing.provenance)]
    table = standard_table(pd.concat([existing.objects[base_columns], new_table], ignore_index=True))
    entry = _source_entry(result, source, pixel_size_um, len(new_table), test_fraction, seed)
    metadata = {
        **{k: meta[k] for k in ("created", "crop_settings") if k in meta},
        "modified": now(),
        "sources": [*meta["sources"], entry],
        "versions": _versions(),
    }

    with new_run(current, f"append crops from {source}", replace=replace) as staged:
        if staged.previous.run_id != existing.run_id:
            raise ProjectError(f"The project {current.path} changed while this step ran: run the step again.")
        writer = CropStoreWriter(staged.path / "crops.zarr", size, start_from=existing.crops)  # old crops: linked
        for block in _blocks(result.crops):
            writer.append(block)
        _stage(staged, writer, size, table, metadata)
    return load_crop_dataset(current.path)


def _in_group(column: str, provenance: dict[str, dict]) -> bool:
    return any(column in info.get("columns", ()) for info in provenance.values())


def set_object_columns(
    project: Project | os.PathLike | str,
    columns: pd.DataFrame,
    *,
    group: str = "extra",
    provenance: dict | None = None,
) -> CropDataset:
    """Add or replace a group of columns of the objects table (e.g. latents), atomically, without touching crops.

    Parameters
    ----------
    columns : DataFrame
        One row per crop, in dataset order. Replaces the group's previous columns.
    group : str, default="extra"
        Name of the column group ("latents", "predictions", ...).
    provenance : dict, optional
        What made the columns: ``command`` and, where a model did, ``model`` (``name``, ``sha256``).
    """
    current = as_project(project)
    with project_lock(current.path, f"write columns {group}"):
        existing = load_crop_dataset(current)
        if existing.run_id != as_project(current.path).run_id:
            raise ProjectError(f"The project {current.path} changed while this step ran: run the step again.")
        others = [c for c in existing.objects.columns if c not in existing.provenance.get(group, {}).get("columns", [])]
        protected = sorted(set(columns.columns) & (set(OBJECT_COLUMNS) | set(_DATASET_COLUMNS)))
        if protected:
            raise ValueError(f"Columns {protected} belong to the objects table and cannot be replaced this way.")
        record = {"command": "set_object_columns", "run": existing.run_id, **(provenance or {})}
        write_column_group(existing.path, group, columns.reset_index(drop=True), len(existing), others, record)
    return load_crop_dataset(current.path)
