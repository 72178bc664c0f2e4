"""The project folder and the crop dataset it holds.

Layout of a project folder::

    <project>/
        project.json        {"format": "napari-cellstate project", "version": 1, "created", "napari_cellstate"}
        crops.zarr/         the crop dataset, a zarr v3 group:
            zarr.json       group attributes = the dataset metadata (see below)
            crops/          array (N, S, S) float32, chunks of 256 crops along N
            objects/        the objects table, one 1-D array per column (N,),
                            group attribute "columns" = [{"name", "dtype"[, "categories", "ordered"]}, ...]

Row ``i`` of the objects table describes ``crops[i]``. The table has the
standard columns of :data:`~napari_cellstate.core.objects.OBJECT_COLUMNS`,
then ``source`` (the movie's name), ``crop_at_border`` and ``split``
("train"/"test"), then any extra columns. Keeping the table as zarr arrays
keeps the store a clean zarr hierarchy that any zarr reader can list and
read; string columns are zarr ``string`` arrays (a missing string is stored
as ""), categorical columns store their codes (-1 = missing) with the
categories in the column's attributes, numbers and booleans are stored as
they are (pandas nullable ones as float with NaN). Float columns keep NaN
("unknown", e.g. the position of an imported crop).

The metadata (group attributes): ``format`` ("napari-cellstate crops"),
``version``, ``created``, ``modified`` (ISO times, UTC), ``n_crops``,
``size_px``, ``sources`` (one entry per movie: ``name``, ``pixel_size_um``,
``shape`` (T, Y, X) or None, ``n_crops``, ``crop_settings``, ``split``),
``crop_settings`` (those of the first source) and ``versions`` of
napari_cellstate, numpy, zarr, scikit-image and pandas.

Writes are atomic: the new store is built in a hidden folder next to
``crops.zarr`` and swapped in with two renames (old aside, new in), then the
old one is deleted; a crash leaves either the old or the new complete dataset
(between the two renames the old one waits aside as ``.crops.zarr.old-*`` and
is used and put back by the next load or write). One writer at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import CropConfig
from .crops import CropResult, standardise_crops
from .io import write_json_atomic
from .objects import OBJECT_COLUMNS, validate_objects

__all__ = [
    "CropDataset",
    "Project",
    "ProjectError",
    "append_crop_dataset",
    "import_crop_folder",
    "load_crop_dataset",
    "open_or_create",
    "read_crop_folder",
    "replace_store",
    "set_object_columns",
    "split_by_track",
    "write_crop_dataset",
]

PROJECT_FILE = "project.json"
PROJECT_FORMAT = "napari-cellstate project"
PROJECT_VERSION = 1
CROPS_STORE = "crops.zarr"
CROPS_FORMAT = "napari-cellstate crops"
CROPS_VERSION = 1
CHUNK_CROPS = 256
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
_IGNORED_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_DATASET_COLUMNS = ("source", "crop_at_border", "split")


class ProjectError(ValueError):
    """A project folder or its crop dataset cannot be used as it is; the message names the fix."""


def _package_version() -> str:
    from .. import __version__

    return __version__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_empty(folder: Path) -> bool:
    return not any(p.name not in _IGNORED_FILES for p in folder.iterdir())


@dataclass(frozen=True)
class Project:
    """A project folder: every result of the pipeline, kept on disk.

    Create one with :meth:`create`, open one with :meth:`open`, or use
    :func:`open_or_create`.

    Attributes
    ----------
    path : Path
        The project folder.
    info : dict
        The contents of ``project.json``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "my project"
    >>> project = Project.create(folder)
    >>> Project.open(folder).info["format"]
    'napari-cellstate project'
    >>> project.crops_path.name
    'crops.zarr'
    """

    path: Path
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def crops_path(self) -> Path:
        """Where the crop dataset lives (``<project>/crops.zarr``)."""
        return self.path / CROPS_STORE

    @classmethod
    def create(cls, path: os.PathLike | str) -> Project:
        """Make a new project in ``path`` (created if missing; it must be empty).

        Raises
        ------
        ProjectError
            ``path`` is a file, already a project, or a folder that is not empty.
        """
        path = Path(path).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ProjectError(f"{path} is a file, not a folder: choose an empty folder for the new project.")
        if (path / PROJECT_FILE).exists():
            raise ProjectError(f"{path} is already a napari-cellstate project: open it with Project.open instead.")
        if path.exists() and not _is_empty(path):
            raise ProjectError(
                f"{path} is not empty, so it cannot become a new project: choose an empty folder "
                "(or a new folder name) or an existing project."
            )
        path.mkdir(parents=True, exist_ok=True)
        info = {
            "format": PROJECT_FORMAT,
            "version": PROJECT_VERSION,
            "created": _now(),
            "napari_cellstate": _package_version(),
        }
        write_json_atomic(path / PROJECT_FILE, info)
        return cls(path, info)

    @classmethod
    def open(cls, path: os.PathLike | str) -> Project:
        """Open an existing project.

        Raises
        ------
        ProjectError
            The folder is missing or is not a project; ``project.json`` is
            unreadable, not JSON, of another program, or of a newer version.
        """
        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise ProjectError(
                f"The project folder {path} does not exist: choose an existing project, or create one "
                "(Project.create or open_or_create)."
            )
        if not path.is_dir():
            raise ProjectError(f"{path} is a file, not a project folder: choose the folder that holds project.json.")
        file = path / PROJECT_FILE
        if not file.exists():
            if _is_empty(path):
                raise ProjectError(
                    f"{path} is an empty folder, not a project yet: create one there with Project.create "
                    "or open_or_create."
                )
            raise ProjectError(
                f"{path} is not a napari-cellstate project (it has no {PROJECT_FILE}): choose an empty folder "
                "or an existing project."
            )
        fresh = json.dumps({"format": PROJECT_FORMAT, "version": PROJECT_VERSION})
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ProjectError(
                f"{file} is damaged or unreadable ({err}). Restore it from a backup, or replace its contents "
                f"with {fresh} to open the project again."
            ) from err
        if not isinstance(info, dict) or info.get("format") != PROJECT_FORMAT:
            found = info.get("format") if isinstance(info, dict) else type(info).__name__
            raise ProjectError(
                f"{path} is not a napari-cellstate project ({PROJECT_FILE} there has format {found!r}, belonging "
                "to another program): choose an empty folder or an existing project."
            )
        version = info.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProjectError(
                f"{file} is damaged (its version is {version!r}, not a whole number). Restore it from a backup, "
                f"or replace its contents with {fresh}."
            )
        if version > PROJECT_VERSION:
            raise ProjectError(
                f"{path} was written by a newer napari-cellstate (project version {version}; this is "
                f"napari-cellstate {_package_version()}, which reads version {PROJECT_VERSION}): update "
                "napari-cellstate (pip install -U napari-cellstate) to open it."
            )
        return cls(path, info)


def open_or_create(path: os.PathLike | str) -> Project:
    """Open the project in ``path``, or create one if ``path`` is missing or an empty folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> open_or_create(folder) == open_or_create(folder)
    True
    """
    path = Path(path).expanduser().absolute()
    if not path.exists() or (path.is_dir() and not (path / PROJECT_FILE).exists() and _is_empty(path)):
        return Project.create(path)
    return Project.open(path)


def _as_project(project: Project | os.PathLike | str) -> Project:
    return project if isinstance(project, Project) else Project.open(project)


# ---------------------------------------------------------------------------------------------------------------------
# Splits


def split_by_track(objects: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0) -> pd.Series:
    """Assign each row to "train" or "test" so that no cell is on both sides.

    Rows are grouped by (``source``, ``track_id``); an untracked row
    (``track_id`` 0) is a group of its own, identified by its ``object_id``.
    Groups are shuffled with ``seed`` and the first ones go to the test set,
    as many as bring the number of test rows closest to ``test_fraction`` of
    all rows.

    Parameters
    ----------
    objects : DataFrame
        Rows to split; ``source``, ``track_id`` and ``object_id`` are used when present.
    test_fraction : float, default=0.1
        Wanted fraction of rows in the test set, in [0, 1].
    seed : int, default=0
        The same seed and table give the same split.

    Returns
    -------
    Series of str
        "train" or "test", indexed like ``objects``.

    Examples
    --------
    >>> table = pd.DataFrame({"track_id": [1, 1, 2, 2, 3, 0, 0, 0], "object_id": range(8)})
    >>> split_by_track(table, test_fraction=0.25, seed=0).tolist()  # track 3 and untracked object 5 held out
    ['train', 'train', 'train', 'train', 'test', 'test', 'train', 'train']
    """
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    n = len(objects)
    if n == 0:
        return pd.Series([], index=objects.index, dtype="string", name="split")
    source = objects["source"].astype(str).to_numpy() if "source" in objects.columns else np.full(n, "")
    track = objects["track_id"].to_numpy(dtype=np.int64) if "track_id" in objects.columns else np.zeros(n, np.int64)
    object_id = objects["object_id"].to_numpy(dtype=np.int64) if "object_id" in objects.columns else np.arange(n)
    untracked = track == 0
    keys = pd.DataFrame({"source": source, "untracked": untracked, "id": np.where(untracked, object_id, track)})
    group = keys.groupby(["source", "untracked", "id"], sort=True).ngroup().to_numpy()
    sizes = np.bincount(group)
    order = np.random.default_rng(seed).permutation(len(sizes))
    taken = np.concatenate([[0], np.cumsum(sizes[order])])
    n_test_groups = int(np.argmin(np.abs(taken - test_fraction * n)))
    is_test = np.zeros(len(sizes), dtype=bool)
    is_test[order[:n_test_groups]] = True
    return pd.Series(np.where(is_test[group], "test", "train"), index=objects.index, dtype="string", name="split")


# ---------------------------------------------------------------------------------------------------------------------
# The objects table as zarr arrays

_ZARR_NAME = re.compile(r"^(?!__)(?!\.+$)[^/]+$")


def _standard_table(objects: pd.DataFrame) -> pd.DataFrame:
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
    return table[[*OBJECT_COLUMNS, *ours, *extra]]


def _write_table(group, table: pd.DataFrame) -> None:
    columns = []
    n = len(table)
    chunk = max(1, min(n, 65536))
    for name in table.columns:
        series = table[name]
        if not isinstance(name, str) or not _ZARR_NAME.match(name):
            raise ValueError(
                f"Column {name!r} cannot be stored: column names must be text without '/', not '.' or '..', "
                "and not starting with '__'. Rename it."
            )
        info: dict[str, Any] = {"name": name, "dtype": str(series.dtype)}
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values = series.cat.codes.to_numpy().astype(np.int32)
            info["categories"] = np.asarray(dtype.categories).tolist()
            info["ordered"] = bool(dtype.ordered)
        elif isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            values = series.to_numpy()
        elif pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "biuf":
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_string_dtype(dtype) and all(isinstance(v, str) for v in series.dropna()):
            values = np.asarray(series.fillna("").to_numpy(dtype=object), dtype=np.dtypes.StringDType())
            info["dtype"] = "object" if dtype == np.dtype(object) else str(dtype)
        else:
            raise ValueError(
                f"Column {name!r} has dtype {dtype}, which the crop dataset cannot store: use numbers, "
                "booleans, text or categories (convert it, e.g. with .astype(str))."
            )
        array = group.create_array(name, shape=(n,), chunks=(chunk,), dtype=values.dtype)
        if n:
            array[:] = values
        columns.append(info)
    group.attrs.update({"columns": columns})


def _read_table(group) -> pd.DataFrame:
    data = {}
    for info in group.attrs["columns"]:
        name, dtype = info["name"], info["dtype"]
        values = group[name][:]
        if "categories" in info:
            cat = pd.CategoricalDtype(info["categories"], ordered=info.get("ordered", False))
            data[name] = pd.Categorical.from_codes(values.astype(np.int64), dtype=cat)
        elif values.dtype.kind == "T" or values.dtype == object:
            data[name] = pd.Series(values.astype(object)).astype(dtype)
        else:
            data[name] = pd.Series(values).astype(dtype)
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------------------------------------------
# The crop store


@dataclass
class CropDataset:
    """A crop dataset read from a project.

    Attributes
    ----------
    crops : zarr.Array of shape (N, S, S), dtype float32
        Lazy: slicing reads from disk. Load the dataset again after writing it.
    objects : DataFrame
        One row per crop (row ``i`` describes ``crops[i]``).
    metadata : dict
        Format, sources, crop settings, package versions, times.
    path : Path
        The store that was read.
    """

    crops: Any
    objects: pd.DataFrame
    metadata: dict[str, Any]
    path: Path

    def __len__(self) -> int:
        return len(self.objects)


def _versions() -> dict[str, str]:
    import skimage
    import zarr

    return {
        "napari_cellstate": _package_version(),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "scikit-image": skimage.__version__,
        "pandas": pd.__version__,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _damaged(path: Path, what: str) -> ProjectError:
    return ProjectError(
        f"The crop dataset {path} is damaged ({what}): extract the crops again and write the dataset anew "
        f"(write_crop_dataset replaces it), or restore {path.name} from a backup."
    )


def _aside(project: Project, kind: str, name: str = CROPS_STORE) -> list[Path]:
    return sorted(project.path.glob(f".{name}.{kind}-*"), key=lambda p: p.stat().st_mtime)


def _live_store(project: Project) -> Path | None:
    """The dataset to read: ``crops.zarr``, or the old one left aside by a write that crashed mid-swap."""
    if project.crops_path.exists():
        return project.crops_path
    old = _aside(project, "old")
    return old[-1] if old else None


def _recover(project: Project, name: str = CROPS_STORE) -> None:
    """Before a write: put back a store left aside by a crash and delete half-built stores."""
    target = project.path / name
    old = _aside(project, "old", name)
    if old and not target.exists():
        os.replace(old.pop(), target)
    for leftover in [*old, *_aside(project, "new", name)]:
        shutil.rmtree(leftover, ignore_errors=True)


def replace_store(project: Project, build, name: str = CROPS_STORE) -> Path:
    """Build a folder with ``build(folder)`` under a hidden name, then swap it in as ``<project>/<name>``.

    A crash at any point leaves either the old or the new complete store.
    """
    _recover(project, name)
    target = project.path / name
    token = uuid.uuid4().hex[:12]
    new = project.path / f".{name}.new-{token}"
    old = project.path / f".{name}.old-{token}"
    try:
        build(new)
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(new, target)
        except BaseException:
            if old.exists() and not target.exists():
                os.replace(old, target)
            raise
    finally:
        shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _build_store(folder: Path, blocks, n: int, size: int, objects: pd.DataFrame, metadata: dict) -> None:
    """Write a complete store into ``folder``; the metadata goes last."""
    import zarr

    group = zarr.open_group(folder, mode="w-", zarr_format=3)
    crops = group.create_array("crops", shape=(n, size, size), chunks=(CHUNK_CROPS, size, size), dtype="float32")
    for start, block in blocks:
        crops[start : start + len(block)] = block
    _write_table(group.create_group("objects"), objects.reset_index(drop=True))
    group.attrs.update(_jsonable(metadata))


def _open_store(path: Path) -> CropDataset:
    import zarr

    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
        metadata = dict(group.attrs)
    except Exception as err:
        raise _damaged(path, f"its zarr metadata is missing or unreadable: {err}") from err
    if metadata.get("format") != CROPS_FORMAT:
        raise _damaged(path, "its metadata does not describe a napari-cellstate crop dataset")
    version = metadata.get("version")
    if isinstance(version, int) and version > CROPS_VERSION:
        raise ProjectError(
            f"The crop dataset {path} was written by a newer napari-cellstate (dataset version {version}; this "
            f"version reads {CROPS_VERSION}): update napari-cellstate (pip install -U napari-cellstate)."
        )
    try:
        crops = group["crops"]
        objects = _read_table(group["objects"])
    except Exception as err:
        raise _damaged(path, f"its crops or objects cannot be read: {err}") from err
    if crops.ndim != 3 or crops.shape[0] != len(objects) or crops.shape[0] != metadata.get("n_crops"):
        raise _damaged(
            path,
            f"{crops.shape[0]} crops, {len(objects)} table rows and n_crops={metadata.get('n_crops')} disagree",
        )
    return CropDataset(crops=crops, objects=objects, metadata=metadata, path=path)


def load_crop_dataset(project: Project | os.PathLike | str) -> CropDataset:
    """Read the crop dataset of a project.

    Parameters
    ----------
    project : Project or path
        The project (a path is opened with :meth:`Project.open`).

    Returns
    -------
    CropDataset
        ``crops`` is a lazy zarr array; ``objects`` and ``metadata`` are in memory.

    Raises
    ------
    ProjectError
        The project has no crop dataset, or it is damaged or newer.
    """
    project = _as_project(project)
    path = _live_store(project)
    if path is None:
        raise ProjectError(
            f"The project {project.path} has no crop dataset yet: extract crops and write them "
            "(write_crop_dataset), or import a folder of crops (import_crop_folder)."
        )
    return _open_store(path)


def _dataset_objects(result: CropResult, source: str) -> pd.DataFrame:
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"A crop dataset needs a source name for the movie (e.g. its file name), got {source!r}.")
    crops = np.asarray(result.crops)
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"Crops must be an (N, S, S) array; got shape {crops.shape}.")
    if len(crops) != len(result.objects):
        raise ValueError(f"{len(crops)} crops but {len(result.objects)} object rows; they must match one to one.")
    if len(crops) == 0:
        raise ValueError("There are no crops to write: the objects table is empty.")
    table = _standard_table(result.objects)
    if "crop_at_border" not in table.columns:
        table["crop_at_border"] = False
    table["source"] = pd.Series(source, index=table.index, dtype="string")
    table["crop_at_border"] = table["crop_at_border"].fillna(False).astype(bool)
    table["split"] = pd.Series("", index=table.index, dtype="string")
    return _standard_table(table).reset_index(drop=True)


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


def write_crop_dataset(
    project: Project | os.PathLike | str,
    result: CropResult,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> CropDataset:
    """Create or replace the project's crop dataset with the crops of one movie.

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

    Returns
    -------
    CropDataset
        The dataset as written.

    Examples
    --------
    >>> import tempfile
    >>> from napari_cellstate.core.crops import extract_crops
    >>> movie = np.random.default_rng(0).integers(0, 100, (3, 80, 80)).astype(np.uint16)
    >>> objects = pd.DataFrame({"t": [0, 1, 2], "y": [40.0, 41.0, 42.0], "x": [40.0, 40.0, 40.0], "track_id": 1})
    >>> result = extract_crops(movie, objects, CropConfig(size_px=32))
    >>> project = Project.create(tempfile.mkdtemp())
    >>> dataset = write_crop_dataset(project, result, "movie.tif", 0.33)
    >>> dataset.crops.shape, dataset.metadata["sources"][0]["name"]
    ((3, 32, 32), 'movie.tif')
    """
    project = _as_project(project)
    table = _dataset_objects(result, source)
    table["split"] = split_by_track(table, test_fraction, seed)
    crops = np.asarray(result.crops, dtype=np.float32)
    now = _now()
    metadata = {
        "format": CROPS_FORMAT,
        "version": CROPS_VERSION,
        "created": now,
        "modified": now,
        "n_crops": len(crops),
        "size_px": int(crops.shape[1]),
        "sources": [_source_entry(result, source, pixel_size_um, len(crops), test_fraction, seed)],
        "crop_settings": dict(result.settings),
        "versions": _versions(),
    }
    blocks = ((start, crops[start : start + CHUNK_CROPS]) for start in range(0, len(crops), CHUNK_CROPS))
    replace_store(project, lambda folder: _build_store(folder, blocks, len(crops), crops.shape[1], table, metadata))
    return load_crop_dataset(project)


def append_crop_dataset(
    project: Project | os.PathLike | str,
    result: CropResult,
    source: str,
    pixel_size_um: float | None = None,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> CropDataset:
    """Add the crops of another movie to the project's crop dataset (or create it).

    Existing rows, crops and splits stay as they are; the new rows are split
    among themselves (their source differs, so no track crosses sources).

    Parameters
    ----------
    project : Project or path
    result : CropResult
        Crops of the same size, standardisation and clipping as the dataset's.
    source : str
        The movie's name; must differ from the sources already there.
    pixel_size_um : float, optional
        The movie's pixel size in micrometres.
    test_fraction : float, default=0.1
    seed : int, default=0

    Returns
    -------
    CropDataset

    Raises
    ------
    ValueError
        Another crop size or standardisation, or a source already in the dataset.
    """
    project = _as_project(project)
    if _live_store(project) is None:
        return write_crop_dataset(project, result, source, pixel_size_um, test_fraction=test_fraction, seed=seed)
    existing = load_crop_dataset(project)
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
    table = _standard_table(pd.concat([existing.objects, new_table], ignore_index=True))
    table = table.astype({"source": "string", "split": "string", "crop_at_border": bool})
    n_old, new_crops = len(existing), np.asarray(result.crops, dtype=np.float32)
    n = n_old + len(new_crops)

    def blocks():
        for start in range(0, n, CHUNK_CROPS):
            stop = min(start + CHUNK_CROPS, n)
            parts = []
            if start < n_old:
                parts.append(np.asarray(existing.crops[start : min(stop, n_old)]))
            if stop > n_old:
                parts.append(new_crops[max(start, n_old) - n_old : stop - n_old])
            yield start, np.concatenate(parts)

    metadata = {
        **meta,
        "modified": _now(),
        "n_crops": n,
        "sources": [
            *meta["sources"],
            _source_entry(result, source, pixel_size_um, len(new_crops), test_fraction, seed),
        ],
        "versions": _versions(),
    }
    replace_store(project, lambda folder: _build_store(folder, blocks(), n, size, table, metadata))
    return load_crop_dataset(project)


# ---------------------------------------------------------------------------------------------------------------------
# Importing a folder of crops


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image)
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return np.asarray(image)


def _to_grey(image: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    """A 2-D float image, and whether it was colour converted to grey."""
    image = np.squeeze(image)
    converted = False
    if image.ndim == 3 and image.shape[-1] in (2, 3, 4):  # grey+alpha, RGB, RGBA: drop alpha
        channels = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
        if all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(1, channels.shape[-1])):
            image = channels[..., 0]  # grey stored as colour
        else:
            weights = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray's luminance
            image = channels.astype(np.float64) @ weights
            converted = True
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(
            f"{path} has shape {image.shape}; a crop must be a single 2-D grey (or RGB) image. Save one plane per file."
        )
    if image.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {image.dtype} pixels, not intensities.")
    return image.astype(np.float32), converted


def _to_size(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    rows, cols = image.shape
    if rows != cols:  # pad to a square about the centre, so resizing keeps the aspect ratio
        side = max(rows, cols)
        pad = (
            ((side - rows) // 2, side - rows - (side - rows) // 2),
            ((side - cols) // 2, side - cols - (side - cols) // 2),
        )
        image = np.pad(image, pad, mode="reflect" if min(rows, cols) > 1 else "edge")
    if image.shape[0] != size:
        image = resize(
            image, (size, size), order=1, mode="reflect", anti_aliasing=image.shape[0] > size, preserve_range=True
        )
    return image.astype(np.float32)


def _read_positions(positions_json: os.PathLike | str, files: list[Path], folder: Path) -> tuple[dict, int]:
    """Map image index -> entry; return it and the number of JSON entries that matched no image."""
    path = Path(positions_json)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read the positions file {path}: {err}.") from err
    if isinstance(raw, list):
        try:
            raw = {str(e.get("file", e.get("filename", e.get("path")))): e for e in raw}
        except AttributeError as err:
            raise ValueError(f"{path}: a list of positions must hold objects with a 'file' key.") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must map image names to {{'t', 'y', 'x'}} objects.")
    by_key: dict[str, list[int]] = {}
    for i, file in enumerate(files):
        relative = file.relative_to(folder).as_posix()
        for key in {relative, file.name, file.stem}:
            by_key.setdefault(key, []).append(i)
    positions: dict[int, dict] = {}
    unmatched = 0
    for key, entry in raw.items():
        key = str(key).replace("\\", "/")
        hits = by_key.get(key, [])
        if not hits:
            unmatched += 1
            continue
        if len(hits) > 1:
            names = [files[i].relative_to(folder).as_posix() for i in hits]
            raise ValueError(f"{path}: the key {key!r} matches several images {names}; use their relative paths.")
        t = entry.get("t", entry.get("frame")) if isinstance(entry, dict) else None
        try:
            values = {"t": int(t), "y": float(entry["y"]), "x": float(entry["x"])}
            if "track_id" in entry:
                values["track_id"] = int(entry["track_id"])
        except (TypeError, KeyError, ValueError) as err:
            raise ValueError(
                f"{path}: the entry for {key!r} is {entry!r}; it needs numbers 't' (or 'frame'), 'y' and 'x'."
            ) from err
        positions[hits[0]] = values
    if raw and unmatched == len(raw):
        raise ValueError(
            f"None of the {len(raw)} entries of {path} matches an image: keys must be an image's path relative to "
            f"{folder} (e.g. 'metaphase/cell_001.png'), its file name or its stem."
        )
    return positions, unmatched


def read_crop_folder(
    folder: os.PathLike | str,
    cfg: CropConfig | None = None,
    *,
    positions_json: os.PathLike | str | None = None,
) -> CropResult:
    """Read single-cell crops sorted into class-named subfolders.

    The layout crop-annotation tools export: ``folder/<class>/<image>``,
    e.g. ``interphase/cell_001.tif`` and ``metaphase/cell_002.png``; TIFF and
    PNG files directly inside each class folder are read (other files and
    deeper folders are ignored). Each image becomes one crop: colour images
    are converted to grey (luminance, as ``skimage.color.rgb2gray``; alpha is
    dropped; grey saved as RGB is kept exactly) and listed in
    ``settings["converted_to_grey"]``; non-square images are reflect-padded to
    a square about their centre; then each is resized to ``cfg.size_px``
    (bilinear, anti-aliased) if needed and standardised and clipped like
    extracted crops. Images are not rescaled to ``cfg.pixel_size_um`` (their
    pixel size is unknown); if set, it is recorded as the crops' pixel size.
    ``cfg.mask_neighbours`` does not apply (there are no labels).

    Parameters
    ----------
    folder : path
        The folder holding one subfolder per class.
    cfg : CropConfig, default=CropConfig()
    positions_json : path, optional
        JSON mapping an image to where it was cut, ``{"metaphase/cell_002.png":
        {"t": 12, "y": 140.5, "x": 88.0}, ...}``; a key may be the path
        relative to ``folder``, the file name or its stem (it must then be
        unique); ``"frame"`` may stand for ``"t"``, and ``"track_id"`` is read
        if given. A list of such objects with a ``"file"`` key works too.
        Images without an entry get ``t`` = -1 and NaN ``y``, ``x``.

    Returns
    -------
    CropResult
        Objects: ``object_id`` 1..N in file order (classes, then files, by
        name), ``label`` = the class folder name, ``file`` = path relative to
        ``folder``, ``track_id`` 0 unless given, ``crop_at_border`` False.

    Raises
    ------
    ValueError
        The folder is missing, has no class subfolders, a class folder has no
        images, an image cannot be read or is not a 2-D image, or the
        positions file is unreadable or matches no image.
    """
    cfg = CropConfig() if cfg is None else cfg
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"The crop folder {folder} does not exist or is not a folder.")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    example = f"{folder / 'interphase'}/cell_001.tif and {folder / 'metaphase'}/cell_002.png"
    if not classes:
        raise ValueError(
            f"{folder} has no class subfolders: put the crops of each class in a subfolder named after the class, "
            f"e.g. {example}."
        )
    files: list[Path] = []
    labels: list[str] = []
    for class_folder in classes:
        images = sorted(
            p
            for p in class_folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not images:
            raise ValueError(
                f"The class folder {class_folder} holds no TIFF or PNG images: add its crops, or remove the folder."
            )
        files += images
        labels += [class_folder.name] * len(images)

    size = cfg.size_px
    crops = np.empty((len(files), size, size), dtype=np.float32)
    converted = []
    for i, file in enumerate(files):
        try:
            raw = _read_image(file)
        except Exception as err:
            raise ValueError(f"Cannot read the image {file} ({err}): replace or remove that file.") from err
        image, was_colour = _to_grey(raw, file)
        if was_colour:
            converted.append(file.relative_to(folder).as_posix())
        crops[i] = _to_size(image, size)
    if cfg.standardise:
        standardise_crops(crops, cfg.clip)

    table = pd.DataFrame(
        {
            "object_id": np.arange(1, len(files) + 1),
            "track_id": 0,
            "t": -1,
            "y": np.nan,
            "x": np.nan,
            "label": labels,
            "file": [f.relative_to(folder).as_posix() for f in files],
        }
    )
    unmatched = 0
    if positions_json is not None:
        positions, unmatched = _read_positions(positions_json, files, folder)
        for i, values in positions.items():
            for name, value in values.items():
                table.loc[i, name] = value
    table = _standard_table(table)
    table["crop_at_border"] = False
    settings = {
        "size_px": size,
        "window_px": None,
        "source_pixel_size_um": None,
        "target_pixel_size_um": cfg.pixel_size_um,
        "pixel_size_um": cfg.pixel_size_um,
        "standardise": cfg.standardise,
        "clip": cfg.clip if cfg.standardise else None,
        "mask_neighbours": False,
        "padding": "reflect to square",
        "resize": "bilinear, anti-aliased (skimage.transform.resize, order=1) where the size differs",
        "movie_shape": None,
        "imported_from": str(folder),
        "classes": {c.name: labels.count(c.name) for c in classes},
        "converted_to_grey": converted,
        "positions_unmatched": unmatched,
    }
    return CropResult(crops=crops, objects=table, settings=settings)


def import_crop_folder(
    folder: os.PathLike | str,
    project: Project | os.PathLike | str,
    cfg: CropConfig | None = None,
    *,
    positions_json: os.PathLike | str | None = None,
    source: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> CropDataset:
    """Make the project's crop dataset from a folder of crops in class-named subfolders.

    Reads the folder with :func:`read_crop_folder` (see there for the layout,
    conversions and the positions file) and writes it with
    :func:`write_crop_dataset`, replacing any crop dataset of the project. To
    add the crops to an existing dataset instead, pass the result of
    :func:`read_crop_folder` to :func:`append_crop_dataset`.

    Parameters
    ----------
    folder : path
        One subfolder per class, named after it.
    project : Project or path
    cfg : CropConfig, default=CropConfig()
    positions_json : path, optional
        Where each crop was cut (frame, row, column).
    source : str, optional
        Name recorded in the ``source`` column; default: the folder's name.
    test_fraction : float, default=0.1
    seed : int, default=0

    Returns
    -------
    CropDataset
        Its ``label`` column holds the class names.
    """
    result = read_crop_folder(folder, cfg, positions_json=positions_json)
    source = Path(folder).expanduser().absolute().name if source is None else source
    return write_crop_dataset(
        project, result, source, result.settings["pixel_size_um"], test_fraction=test_fraction, seed=seed
    )


def set_object_columns(project: Project | os.PathLike | str, columns: pd.DataFrame) -> CropDataset:
    """Add or replace columns of the dataset's objects table (e.g. latents), atomically.

    Parameters
    ----------
    columns : DataFrame
        One row per crop, in dataset order; each column is added, or replaces
        the column of the same name. The standard columns cannot be replaced.
    """
    project = _as_project(project)
    existing = load_crop_dataset(project)
    if len(columns) != len(existing):
        raise ValueError(f"{len(columns)} rows given for a dataset of {len(existing)} crops.")
    protected = sorted(set(columns.columns) & set(OBJECT_COLUMNS) | set(columns.columns) & set(_DATASET_COLUMNS))
    if protected:
        raise ValueError(f"Columns {protected} belong to the objects table and cannot be replaced this way.")
    table = existing.objects.copy()
    for name in columns.columns:
        table[name] = columns[name].to_numpy()
    metadata = {**existing.metadata, "modified": _now()}
    crops, n = existing.crops, existing.crops.shape[0]
    blocks = ((start, np.asarray(crops[start : start + CHUNK_CROPS])) for start in range(0, n, CHUNK_CROPS))
    replace_store(project, lambda folder: _build_store(folder, blocks, n, crops.shape[1], table, metadata))
    return load_crop_dataset(project)
