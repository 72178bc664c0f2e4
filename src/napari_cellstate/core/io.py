"""Atomic file writes and saving simulation outputs.

Every file is written to a temporary name in the same folder and then renamed,
so a crash or a full disk never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "atomic_path",
    "read_movie",
    "remove_folder",
    "save_simulation",
    "sha256_file",
    "staged_folder",
    "write_json_atomic",
]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, unsafe to flip later in threads


@contextmanager
def atomic_path(path: os.PathLike | str):
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes files private; give the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_folder(folder: os.PathLike | str) -> None:
    """Delete a folder by first renaming it to a hidden name, so it never lies around half-deleted under its name."""
    folder = Path(folder)
    if not folder.exists():
        return
    trash = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.old"
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def staged_folder(target: os.PathLike | str):
    """Yield an empty hidden folder next to ``target``; on success it replaces ``target`` with one rename.

    ``target`` is the old complete folder or the new complete one at every moment except between removing the
    old and renaming the new, where neither is there (readers then see it missing, never half-written).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        yield staging
        remove_folder(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def sha256_file(path: os.PathLike | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (detects damage a format's own checks miss)."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: os.PathLike | str, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return _write_atomic(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def save_simulation(result, folder: os.PathLike | str) -> dict[str, Path]:
    """Save a :class:`~napari_cellstate.core.simulate.SimulationResult` to ``folder``.

    Writes ``movie.tif`` and ``labels.tif`` (TYX, with pixel size and frame
    interval in the metadata), ``ground_truth.csv`` (one row per nucleus per
    frame), ``lineage.csv`` and ``simulation.json`` (the settings, to
    reproduce it).

    Returns
    -------
    dict of str to Path
        What was written.
    """
    import tifffile

    folder = Path(folder)
    cfg = result.config
    resolution = (1.0 / cfg.pixel_size_um, 1.0 / cfg.pixel_size_um)
    metadata = {"axes": "TYX", "spacing": 1.0, "unit": "um", "finterval": cfg.frame_interval_s}

    def tiff_writer(data: np.ndarray):
        if data.dtype.kind in "iu" and data.max(initial=0) <= np.iinfo(np.uint16).max:
            data = data.astype(np.uint16, copy=False)  # ImageJ TIFF holds 8/16-bit integers
        return lambda tmp: tifffile.imwrite(
            tmp, data, imagej=data.dtype != np.int32, resolution=resolution, metadata=metadata
        )

    lineage = [{"track_id": d, "parent_track_id": p} for d, p in sorted(result.lineage.items())]

    return {
        "movie": _write_atomic(folder / "movie.tif", tiff_writer(result.movie)),
        "labels": _write_atomic(folder / "labels.tif", tiff_writer(result.labels)),
        "ground_truth": _write_atomic(folder / "ground_truth.csv", lambda tmp: result.objects.to_csv(tmp, index=False)),
        "lineage": _write_atomic(
            folder / "lineage.csv",
            lambda tmp: pd.DataFrame(lineage, columns=["track_id", "parent_track_id"]).to_csv(tmp, index=False),
        ),
        "settings": write_json_atomic(folder / "simulation.json", cfg.model_dump(mode="json")),
    }


def _check_tiff_complete(path: Path) -> None:
    """Refuse a TIFF cut short (tifffile would show what is left, e.g. a single 2D frame).

    Cut short means: its image data end past the end of the file, or it holds fewer frames than its own metadata
    announce.
    """
    import logging

    import tifffile

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its "invalid page offset" lines: the message below says it better
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the file holds no image")
            size = path.stat().st_size
            series = tif.series[0]
            n_read = int(np.prod(series.shape[:-2], dtype=np.int64))
            announced = (tif.imagej_metadata or {}).get("images")
            shaped = tif.shaped_metadata[0].get("shape") if tif.shaped_metadata else None
            ends = [
                offset + count
                for page in tif.pages
                for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False)
            ]
    finally:
        logger.setLevel(level)
    if series.dataoffset is not None:
        ends.append(series.dataoffset + series.nbytes)
    frames = int(announced) if announced else (int(np.prod(shaped[:-2])) if shaped and len(shaped) > 2 else n_read)
    if max(ends, default=0) > size or frames > n_read:
        raise ValueError(
            f"the file is truncated or damaged: it announces {frames} frame(s) but ends after "
            f"{size:,} bytes, before their data. Copy it again from the source (the copy or save was interrupted)"
        )


def read_movie(path: os.PathLike | str):
    """Open a movie lazily: a TIFF (through its zarr view, so frames load on demand) or a zarr array.

    Raises
    ------
    FileNotFoundError, ValueError
        When the file is missing or not a TIFF/zarr image.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            _check_tiff_complete(path)
            store = tifffile.imread(path, aszarr=True)
        except (tifffile.TiffFileError, ValueError) as err:
            raise ValueError(f"{path} is not a readable TIFF (damaged or truncated?): {err}") from err
        opened = zarr.open(store, mode="r")
        return opened if isinstance(opened, zarr.Array) else opened[next(iter(opened.array_keys()))]
    if path.suffix.lower() == ".zarr" or (path / "zarr.json").exists() or (path / ".zarray").exists():
        return zarr.open_array(str(path), mode="r")
    raise ValueError(f"{path}: expected a .tif/.tiff file or a .zarr folder holding a (T, Y, X) movie.")
