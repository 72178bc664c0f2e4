"""Where per-movie work and encoding run: in this process, or on a dask.distributed cluster.

Both paths call the same task functions on the same inputs, so the project they make is the same; a cluster
only changes where (and how many at once) they run. Workers must see the project folder (a shared file system
on a cluster); they write only their own movie's folder and return small results (tables, latents).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .config import MovieInput, ScaleStep

__all__ = ["ClusterUnavailableError", "Executor", "encode_rows", "open_executor", "track_movie"]


class ClusterUnavailableError(ValueError):
    """A scheduler or several workers were asked for without dask.distributed installed."""


class Executor:
    """Run one function over many inputs, in order of the inputs, here or on a dask client."""

    def __init__(self, client=None) -> None:
        self.client = client

    @property
    def workers(self) -> int:
        """How many tasks may run at once."""
        return 1 if self.client is None else max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def map(self, function: Callable, items: Sequence[Any], **kwargs) -> Iterator[Any]:
        """``function(item, **kwargs)`` for every item; results come back in the items' order as they finish."""
        if self.client is None:
            for item in items:
                yield function(item, **kwargs)
            return
        futures = [self.client.submit(function, item, pure=False, **kwargs) for item in items]
        for future in futures:
            yield future.result()


@contextmanager
def open_executor(scale: ScaleStep) -> Iterator[Executor]:
    """An executor for ``scale``: a scheduler's client, a ``LocalCluster`` of ``workers``, or this process.

    Raises
    ------
    ClusterUnavailableError
        A scheduler or several workers without ``distributed`` installed.
    """
    if scale.scheduler is None and scale.workers <= 1:
        yield Executor()
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ClusterUnavailableError(
            "Running on a dask cluster needs dask.distributed: `pip install distributed` (or set [scale] "
            "workers = 1 to run in this process)."
        ) from err
    if scale.scheduler is not None:
        with Client(scale.scheduler) as client:
            yield Executor(client)
        return
    with (
        LocalCluster(n_workers=scale.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield Executor(client)


def movie_name(movie: MovieInput) -> str:
    """The movie's name in the crop dataset."""
    return movie.name or Path(movie.path).stem


def track_movie(movie: MovieInput, *, folder: str, settings: dict) -> dict:
    """Segment (or read labels), track and crop one movie into its own project ``folder``; summary back.

    Memory stays bounded by one frame plus the movie's crops; the segmentation goes to zarr frame by frame.
    """
    from ..config import CropConfig, SegmentationConfig, TrackingConfig
    from ..io import read_movie
    from ..pipeline import iter_track_and_crop
    from ..progress import run_to_completion

    frames = read_movie(movie.path)
    labels = read_movie(movie.labels) if movie.labels else None
    result = run_to_completion(
        iter_track_and_crop(
            frames,
            pixel_size_um=movie.pixel_size_um,
            labels=labels,
            segmentation=SegmentationConfig.model_validate(settings["segmentation"]),
            tracking=TrackingConfig.model_validate(settings["tracking"]),
            crops=CropConfig.model_validate(settings["crops"]),
            project=folder,
            source=movie_name(movie),
            replace=True,
        )
    )
    return {
        "name": movie_name(movie),
        "folder": folder,
        "cells": len(result.objects),
        "tracks": int(result.objects["track_id"].nunique()),
        "divisions": len(result.graph),
    }


def encode_rows(rows: tuple[int, int], *, project: str, vae_path: str | None, batch_size: int, device: str):
    """Latent means and log-variances of crops ``rows[0]:rows[1]`` of a project (read from its crop store)."""
    from ..project import load_crop_dataset
    from ..vae import load_vae
    from ..vae.encode import encode_crops
    from ..vae.fit import load_default_vae

    model = _cached_vae(vae_path, load_vae, load_default_vae)
    crops = load_crop_dataset(project).crops
    mu, logvar = encode_crops(model, crops[rows[0] : rows[1]], batch_size=batch_size, device=device)
    return rows, mu.astype(np.float32), logvar.astype(np.float32)


_VAES: dict[str | None, Any] = {}


def _cached_vae(path: str | None, load_vae, load_default_vae):
    """A worker loads each β-TCVAE once, however many blocks it encodes."""
    key = None if path is None else os.path.abspath(path)
    if key not in _VAES:
        _VAES[key] = (load_vae(path) if path else load_default_vae())[0]
    return _VAES[key]
