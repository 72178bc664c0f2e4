"""Batches streamed from a chunked crop store, for training sets larger than memory.

A :class:`ChunkStream` never holds more than a shuffle buffer of crops (a few chunks) plus one batch.
Each epoch it

1. permutes the store's chunks (a generator seeded with ``(seed, epoch)``, the same in every process),
2. lays the selected rows out chunk after chunk in that order and gives each of the ``world`` processes
   one contiguous share of the sequence (shares differ by at most one row, so they are disjoint, cover
   the set, and every process takes the same number of steps: DDP cannot hang on a missing batch),
3. reads its share a buffer at a time (``buffer_chunks`` chunks' worth of rows, each chunk read and
   checked once), shuffles the buffer and serves batches of ``batch_size / world`` rows, reading the
   next buffer in a background thread meanwhile.

Shuffling is thus at chunk level plus within a buffer: looser than a full permutation, which would read a
chunk per sample. The order depends only on the seed, the epoch, the world size and the rank, so a resumed run
sees the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["DEFAULT_BUFFER_CHUNKS", "STREAM_ABOVE_BYTES", "ChunkStream", "training_rows"]

#: Chunks' worth of rows shuffled together (16 chunks of 256 crops of 64 x 64 float32: 64 MiB).
DEFAULT_BUFFER_CHUNKS = 16
#: Training sets on disk larger than this are streamed, smaller ones read into memory (1 GiB: 65,536 crops of
#: 64 x 64 float32).
STREAM_ABOVE_BYTES = 2**30


def _add_channel(block: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[:, None]


class ChunkStream:
    """Rows of a chunked (N, ...) array served as shuffled batches, one buffer in memory at a time.

    Give it to :func:`~napari_cellstate.core.training.iter_train` in place of a map-style dataset.

    Parameters
    ----------
    crops : array-like of shape (N, ...)
        Read with ``crops[sorted_rows]``; a project's lazy, checked
        :class:`~napari_cellstate.core.project.crop_store.CropArray` reads each chunk once per buffer.
    rows : array of int, optional
        The rows to train on (e.g. the "train" split); default all.
    buffer_chunks : int, default=DEFAULT_BUFFER_CHUNKS
        Shuffle buffer, in chunks' worth of rows: more mixes better and costs memory.
    collate : callable, optional
        Turns a block of rows (numpy) into the batch the task's loss takes; default a float32 tensor with a
        channel axis, (b, 1, S, S).

    Examples
    --------
    >>> stream = ChunkStream(np.zeros((1000, 4, 4), np.float32), chunk=256)
    >>> stream.steps_per_epoch(batch_size=100, world=1)
    10
    >>> a, b = (stream.epoch_rows(epoch=1, seed=0, world=2, rank=r) for r in (0, 1))
    >>> len(a), len(b), len(np.intersect1d(a, b))
    (500, 500, 0)
    """

    def __init__(
        self,
        crops,
        rows: np.ndarray | None = None,
        *,
        buffer_chunks: int = DEFAULT_BUFFER_CHUNKS,
        chunk: int | None = None,
        collate: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        self.crops = crops
        self.chunk = int(chunk or getattr(crops, "chunks", (256,))[0])
        self.rows = np.arange(len(crops)) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        if len(self.rows) and not (self.rows[0] >= 0 and self.rows[-1] < len(crops)):
            raise ValueError(f"Training rows must lie in 0..{len(crops) - 1}; got {self.rows[0]}..{self.rows[-1]}.")
        if buffer_chunks < 1:
            raise ValueError(f"buffer_chunks must be at least 1; got {buffer_chunks}.")
        self.buffer_rows = buffer_chunks * self.chunk
        self.collate = collate or _add_channel
        self.shape = (len(self.rows), *tuple(crops.shape)[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def _shares(self, world: int) -> np.ndarray:
        """Rows per process: ``n // world``, one more for the first ``n % world``."""
        n = len(self.rows)
        return np.array([n // world + (r < n % world) for r in range(world)])

    def _local_sizes(self, batch_size: int, world: int) -> list[np.ndarray]:
        """Rows of each step for each process.

        Full local batches, then a last, partial one if every process has a row left for it (otherwise the
        fewer than ``world`` rows left are skipped this epoch).
        """
        local = batch_size // world
        shares = self._shares(world)
        full = int(shares.min()) // local
        sizes = [np.full(world, local)] * full
        rest = shares - full * local
        if rest.min() >= 1:
            sizes.append(rest)
        return sizes

    def steps_per_epoch(self, batch_size: int, world: int) -> int:
        """Steps each process takes per epoch (the same for all)."""
        return len(self._local_sizes(batch_size, world))

    def epoch_rows(self, epoch: int, seed: int, world: int = 1, rank: int = 0) -> np.ndarray:
        """The rows process ``rank`` of ``world`` serves in ``epoch``, in order (disjoint across ranks)."""
        chunk_of = self.rows // self.chunk
        n_chunks = int(chunk_of[-1]) + 1 if len(chunk_of) else 0
        place = np.empty(n_chunks, np.int64)
        place[np.random.default_rng([seed, epoch]).permutation(n_chunks)] = np.arange(n_chunks)
        sequence = self.rows[np.argsort(place[chunk_of], kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(self._shares(world))])
        own = sequence[bounds[rank] : bounds[rank + 1]].copy()
        shuffle = np.random.default_rng([seed, epoch, world, rank])
        for start in range(0, len(own), self.buffer_rows):
            own[start : start + self.buffer_rows] = shuffle.permutation(own[start : start + self.buffer_rows])
        return own

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """The crops of ``rows`` in that order, reading each chunk once."""
        ordered = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        out[ordered] = np.asarray(self.crops[rows[ordered]], dtype=np.float32)
        return out

    def local_batches(
        self, epoch: int, seed: int, batch_size: int, world: int = 1, rank: int = 0
    ) -> Iterator[tuple[Any, int, int]]:
        """Batches of process ``rank`` in ``epoch``: ``(batch, rows here, rows in the global batch)`` per step."""
        rows = self.epoch_rows(epoch, seed, world, rank)
        buffers = [rows[i : i + self.buffer_rows] for i in range(0, len(rows), self.buffer_rows)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-stream") as reader:
            pending = reader.submit(self._read, buffers[0]) if buffers else None
            carry, used = np.empty((0, *self.shape[1:]), np.float32), 0
            for sizes in self._local_sizes(batch_size, world):
                take = int(sizes[rank])
                while len(carry) < take:
                    block = pending.result()
                    used += 1
                    pending = reader.submit(self._read, buffers[used]) if used < len(buffers) else None
                    carry = np.concatenate([carry, block]) if len(carry) else block
                batch, carry = carry[:take], carry[take:]
                yield self.collate(batch), take, int(sizes.sum())
            if pending is not None:
                pending.cancel()


def training_rows(crops, rows: np.ndarray | None, in_memory: Callable, limit: int | None = None):
    """The training data for ``crops[rows]``: streamed from a lazy store over ``limit`` bytes, else in memory.

    Parameters
    ----------
    crops : array-like of shape (N, ...)
        A numpy array (used as it is) or a lazy, chunked store (a project's crops).
    rows : array of int, optional
        The rows to train on; default all.
    in_memory : callable
        Makes the map-style dataset from an in-memory numpy array.
    limit : int, optional
        Bytes of selected crops above which a lazy store is streamed; default :data:`STREAM_ABOVE_BYTES`.
    """
    limit = STREAM_ABOVE_BYTES if limit is None else limit
    lazy = not isinstance(crops, np.ndarray)
    n = len(crops) if rows is None else len(rows)
    nbytes = n * int(np.prod(tuple(crops.shape)[1:])) * 4
    if lazy and nbytes > limit:
        return ChunkStream(crops, rows)
    if rows is None:
        return in_memory(np.asarray(crops, dtype=np.float32) if lazy else crops)
    return in_memory(np.asarray(crops[np.asarray(rows)], dtype=np.float32))
