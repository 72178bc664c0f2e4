"""The crop store: (N, S, S) float32 crops in a zarr array, written in chunks, read with checks.

Crops are written one chunk (256 crops) at a time, so memory stays bounded
whatever N is. The store records a CRC-32 of every chunk's values; reads
check them, so a chunk that is missing (zarr would read it as zeros),
truncated or overwritten is reported instead of being used.

A sealed store is never written again. A new store that begins with an old
one's crops (appending a movie) takes the old full chunks as hard links (no
data copied; a copy where the file system has no hard links) and writes
only the old partial last chunk and the new crops.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .folder import ProjectError

__all__ = ["CHUNK_CROPS", "CropArray", "CropStoreWriter", "open_crop_store"]

CHUNK_CROPS = 256
CROPS_FORMAT = "napari-cellstate crops"
CROPS_VERSION = 2


def damaged(path: Path, what: str) -> ProjectError:
    """The error for a damaged store: what is wrong and how to get the data back."""
    return ProjectError(
        f"The crop store {path} is damaged ({what}). Run Track & crop again into this project "
        "(napari-cellstate track ... --replace), or restore the project folder from a backup."
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


class CropStoreWriter:
    """Append crops block by block to a new store in ``folder``; :meth:`close` seals it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "crops.zarr"
    >>> writer = CropStoreWriter(folder, size=8)
    >>> writer.append(np.ones((300, 8, 8), np.float32))
    >>> writer.close({"note": "test"})
    >>> open_crop_store(folder).shape
    (300, 8, 8)
    """

    def __init__(self, folder: Path, size: int, *, start_from: CropArray | None = None) -> None:
        import zarr

        self.folder, self.size = Path(folder), int(size)
        self._group = zarr.open_group(self.folder, mode="w-", zarr_format=3)
        self._array = self._group.create_array(
            "crops", shape=(0, self.size, self.size), chunks=(CHUNK_CROPS, self.size, self.size), dtype="float32"
        )
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._n_written = 0
        self._crcs: list[int] = []
        if start_from is not None:
            self._take_over(start_from)

    def _take_over(self, base: CropArray) -> None:
        """Begin with the crops of ``base``: its full chunks linked (nothing copied), its partial last chunk re-read."""
        if base.shape[1:] != (self.size, self.size):
            raise ValueError(f"Crops must be {self.size} x {self.size} px; {base.path} holds {base.shape[1:]}.")
        full = base.shape[0] // CHUNK_CROPS if _same_layout(base._array, self._array) else 0
        if full:
            self._array.resize((full * CHUNK_CROPS, self.size, self.size))
            for index in range(full):
                key = self._array.metadata.encode_chunk_key((index, 0, 0))
                source = base.path / "crops" / key
                if source.is_file():  # zarr writes no file for a chunk of zeros; the checksum tells them apart
                    _link(source, self.folder / "crops" / key)
            self._crcs, self._n_written = list(base._crcs[:full]), full * CHUNK_CROPS
        for start in range(full * CHUNK_CROPS, base.shape[0], CHUNK_CROPS):
            self.append(base[start : start + CHUNK_CROPS])

    @property
    def n_crops(self) -> int:
        """Crops appended so far."""
        return self._n_written + self._n_pending

    def append(self, block: np.ndarray) -> None:
        """Add crops (M, S, S); they are written once a whole chunk is ready."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 3 or block.shape[1:] != (self.size, self.size):
            raise ValueError(f"Crops must be (M, {self.size}, {self.size}); got {block.shape}.")
        self._pending.append(block)
        self._n_pending += len(block)
        while self._n_pending >= CHUNK_CROPS:
            self._flush(CHUNK_CROPS)

    def _flush(self, count: int) -> None:
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        chunk, rest = data[:count], data[count:]
        self._pending, self._n_pending = ([rest] if len(rest) else []), len(rest)
        start = self._n_written
        self._array.resize((start + len(chunk), self.size, self.size))
        self._array[start : start + len(chunk)] = chunk
        self._crcs.append(zlib.crc32(np.ascontiguousarray(chunk).tobytes()))
        self._n_written += len(chunk)

    def close(self, metadata: dict) -> None:
        """Write the last partial chunk and the metadata (format, counts, checksums and ``metadata``)."""
        if self._n_pending:
            self._flush(self._n_pending)
        import zarr

        self._group.attrs.update(
            _jsonable(
                {
                    **metadata,
                    "format": CROPS_FORMAT,
                    "version": CROPS_VERSION,
                    "n_crops": self._n_written,
                    "size_px": self.size,
                    "chunk_crops": CHUNK_CROPS,
                    "chunk_crc32": self._crcs,
                    "zarr": zarr.__version__,
                }
            )
        )


def _same_layout(a, b) -> bool:
    """Whether chunk files of array ``a`` mean the same in array ``b`` (chunking, dtype, codecs, fill value)."""
    keep = ("chunk_grid", "chunk_key_encoding", "data_type", "codecs", "fill_value")
    first, second = a.metadata.to_dict(), b.metadata.to_dict()
    return all(first.get(key) == second.get(key) for key in keep)


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy on file systems without hard links)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_crop_store(folder: Path, blocks: Iterable[np.ndarray], size: int, metadata: dict) -> int:
    """Write every block of crops into a new store; returns the number of crops."""
    writer = CropStoreWriter(folder, size)
    for block in blocks:
        writer.append(block)
    writer.close(metadata)
    return writer.n_crops


class CropArray:
    """Read-only (N, S, S) crops whose every chunk is checked against its recorded CRC-32.

    Indexing takes an int, a slice or an array of row indices (or booleans) and
    returns numpy arrays; ``np.asarray`` reads everything.
    """

    def __init__(self, array, metadata: dict, path: Path) -> None:
        self._array, self._crcs, self.path, self.metadata = array, metadata["chunk_crc32"], path, metadata
        self.shape: tuple[int, int, int] = tuple(array.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3
        self.chunks = (CHUNK_CROPS, *self.shape[1:])
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _chunk(self, index: int) -> np.ndarray:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        start = index * CHUNK_CROPS
        stop = min(start + CHUNK_CROPS, self.shape[0])
        try:
            data = np.asarray(self._array[start:stop], dtype=np.float32)
        except Exception as err:  # codec, file-system or format errors all mean the same to a user
            raise damaged(self.path, f"chunk {index} (crops {start}-{stop - 1}) cannot be read: {err}") from err
        if zlib.crc32(np.ascontiguousarray(data).data) != self._crcs[index]:  # no copy
            raise damaged(self.path, f"chunk {index} (crops {start}-{stop - 1}) is missing or altered")
        self._cached = (index, data)
        return data

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        if len(rows) == 0:
            return out
        chunk_of = rows // CHUNK_CROPS
        for index in np.unique(chunk_of):
            where = np.flatnonzero(chunk_of == index)
            out[where] = self._chunk(int(index))[rows[where] - index * CHUNK_CROPS]
        return out

    def __getitem__(self, key) -> np.ndarray:
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(key, slice):
            rows = np.arange(n)[key]
        elif isinstance(key, (int, np.integer)):
            if not -n <= int(key) < n:
                raise IndexError(f"crop {key} is out of range for {n} crops")
            data = self._rows(np.array([int(key) % n]))[0]
            return data[rest] if rest else data
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            rows = rows.astype(np.int64) % max(n, 1)
        data = self._rows(rows)
        return data[(slice(None), *rest)] if rest else data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype, copy=False)  # float32 already: no second copy


def open_crop_store(path: Path) -> CropArray:
    """Open a sealed store; refuse one whose metadata or layout is damaged."""
    import zarr

    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
        metadata = dict(group.attrs)
        array = group["crops"]
    except Exception as err:
        raise damaged(path, f"its zarr metadata is missing or unreadable: {err}") from err
    if metadata.get("format") != CROPS_FORMAT:
        raise damaged(path, "its metadata does not describe a napari-cellstate crop store")
    version = metadata.get("version")
    if isinstance(version, int) and version > CROPS_VERSION:
        raise ProjectError(
            f"The crop store {path} was written by a newer napari-cellstate (store version {version}; this version "
            f"reads {CROPS_VERSION}): update napari-cellstate (pip install -U napari-cellstate)."
        )
    crcs = metadata.get("chunk_crc32")
    n = metadata.get("n_crops")
    expected_chunks = -(-n // CHUNK_CROPS) if isinstance(n, int) else -1
    if array.ndim != 3 or array.shape[0] != n or not isinstance(crcs, list) or len(crcs) != expected_chunks:
        raise damaged(path, f"its array shape {array.shape}, n_crops={n} and chunk checksums disagree")
    return CropArray(array, metadata, path)
