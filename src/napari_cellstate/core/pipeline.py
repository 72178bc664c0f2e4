"""From a movie to tracked objects and crops: the steps the GUI, API and CLI share.

``iter_track_and_crop`` chains segmentation (or the user's labels), per-object
measurement, btrack tracking and crop extraction, yielding progress between
frames so a caller can show it and stop; it returns a
:class:`TrackAndCropResult` and, given a project folder, stores the crop
dataset there.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import CropConfig, SegmentationConfig, TrackingConfig
from .crops import CropResult, iter_extract_crops
from .movie import check_label_image, check_movie
from .objects import measure_frame, validate_objects
from .progress import Progress, relay, run_to_completion
from .segment import NoCellsFoundError, iter_segment_movie
from .track import track_objects, tracking_radii_px

SEGMENTATION_STORE = "segmentation.zarr"
#: Where a run records the movie it was made from (so a project can bring its movie back).
MOVIE_RECORD = "movie.json"

__all__ = [
    "MOVIE_RECORD",
    "SEGMENTATION_STORE",
    "TrackAndCropResult",
    "iter_track_and_crop",
    "read_movie_record",
    "relabel_unique",
    "track_and_crop",
]


@dataclass
class TrackAndCropResult:
    """What the movie-to-crops step produces.

    Attributes
    ----------
    labels : array of shape (T, Y, X), dtype int32
        Segmentation; each object's value is its ``object_id``. With a
        project folder it is the zarr array ``segmentation.zarr`` of the project's live run.
    objects : DataFrame
        The objects table, with ``track_id`` and ``parent_track_id``.
    graph : dict of int to list of int
        Divisions, ``{daughter_track: [parent_track]}``.
    crops : CropResult or None
        With a project folder its ``crops`` are read lazily from the project (cut frame by frame into the store,
        never held in memory together).
    """

    labels: np.ndarray
    objects: pd.DataFrame
    graph: dict[int, list[int]]
    crops: CropResult | None


def relabel_unique(labels, out=None) -> Generator[Progress, None, np.ndarray]:
    """Give every object of a (T, Y, X) label stack an id unique across frames.

    Tools like cellpose number objects 1..n in every frame; object ids must
    not repeat between frames. ``out`` (e.g. a zarr array) receives the result
    frame by frame; default: a new numpy array.
    """
    out = np.zeros(labels.shape, np.int32) if out is None else out
    offset = 0
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        ids, inverse = np.unique(frame, return_inverse=True)
        has_background = ids[0] == 0
        new_ids = np.arange(len(ids), dtype=np.int32) + offset + (0 if has_background else 1)
        if has_background:
            new_ids[0] = 0
        out[t] = new_ids[inverse.reshape(frame.shape)]
        offset = max(offset, int(new_ids.max(initial=0)))
        yield Progress(t + 1, labels.shape[0], f"relabelling frame {t + 1}")
    return out


def iter_track_and_crop(
    movie,
    *,
    pixel_size_um: float,
    labels=None,
    segmentation: SegmentationConfig | None = None,
    tracking: TrackingConfig | None = None,
    crops: CropConfig | None = None,
    project: os.PathLike | str | None = None,
    source: str = "movie",
    rgb: bool = False,
    replace: bool = False,
    movie_origin: dict | None = None,
) -> Generator[Progress, None, TrackAndCropResult]:
    """Segment (unless ``labels`` are given), measure, track and crop a movie.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr; read one frame at a time.
    pixel_size_um : float
        Pixel size of the movie in micrometres.
    labels : array-like of shape (T, Y, X), optional
        An existing segmentation (cellpose, StarDist, ilastik...); skips segmentation.
    crops : CropConfig, optional
        Crop settings; ``None`` skips crop extraction.
    project : path, optional
        Project folder (created if needed). The segmentation, crops and objects table are written there as one
        run: they become the project's data together when the step ends, and not at all if it fails or is
        cancelled.
    source : str, default="movie"
        Name of the movie in the crop dataset.
    rgb : bool, default=False
        Whether the viewer shows the image as RGB (refused with an explanation).
    replace : bool, default=False
        Allow replacing a project whose cells carry latents, predictions or labels.
    movie_origin : dict, optional
        Where the movie came from, kept in the run's ``movie.json`` with its name and pixel size: ``{"path": ...}``
        for a file, ``{"simulation": {...}}`` for the simulator's settings. A project folder opened later brings
        the movie back from it.
    """
    check_movie(movie, rgb=rgb)
    if project is None:
        return (yield from _track_and_crop(movie, pixel_size_um, labels, segmentation, tracking, crops, None, source))
    from .io import write_json_atomic
    from .project import Project, new_run, open_or_create

    folder = Path(project).expanduser().absolute()
    created = not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
    folder = open_or_create(folder).path
    try:
        with new_run(folder, f"track {source}", replace=replace) as staged:
            result = yield from _track_and_crop(
                movie, pixel_size_um, labels, segmentation, tracking, crops, staged, source
            )
            record = {"name": source, "pixel_size_um": float(pixel_size_um), **(movie_origin or {})}
            write_json_atomic(staged.path / MOVIE_RECORD, record)
    except BaseException:
        if created:
            _remove_new_project(folder)
        raise
    import zarr

    result.labels = zarr.open_array(str(Project.open(folder).segmentation_path), mode="r")
    if crops is not None:
        from .project import load_crop_dataset

        result.crops.crops = load_crop_dataset(folder).crops  # lazy: read from the store chunk by chunk
        yield Progress(1, 1, f"saved {len(result.objects)} cells and their crops to {folder}", stage="saving")
    return result


def _remove_new_project(folder: Path) -> None:
    """Remove a project this step created when the step fails or is cancelled before its first run."""
    from .project import Project
    from .project.folder import PROJECT_FILE
    from .project.lock import LOCK_FILE

    try:
        if Project.open(folder).run_id is not None:
            return
    except ValueError:
        return
    for name in (PROJECT_FILE, LOCK_FILE):
        (folder / name).unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def read_movie_record(project) -> dict | None:
    """What the live run recorded about its movie (name, pixel size, and a file path or simulator settings).

    None when the run recorded nothing (imported crops, or a project made before the record existed).
    """
    import json

    from .project.folder import as_project

    run_path = as_project(project).run_path
    if run_path is None or not (run_path / MOVIE_RECORD).exists():
        return None
    return json.loads((run_path / MOVIE_RECORD).read_text(encoding="utf-8"))


def _track_and_crop(movie, pixel_size_um, labels, segmentation, tracking, crops, staged, source):
    tracking = tracking or TrackingConfig()
    n_frames = movie.shape[0]
    out = None if staged is None else _segmentation_store(staged.path, movie.shape)
    if labels is None:
        cfg = (segmentation or SegmentationConfig()).model_copy(update={"pixel_size_um": pixel_size_um})
        labels = yield from relay(iter_segment_movie(movie, cfg, out=out), "segmenting")
    else:
        if tuple(labels.shape) != tuple(movie.shape):
            raise ValueError(
                f"The labels have shape {tuple(labels.shape)} but the image has {tuple(movie.shape)}: "
                "choose the Labels layer made from this movie (same frames and size)."
            )
        check_label_image(labels, tuple(movie.shape))
        labels = yield from relay(relabel_unique(labels, out=out), "reading labels")

    tables = []
    for t in range(n_frames):
        tables.append(measure_frame(labels[t], np.asarray(movie[t]), t))
        yield Progress(t + 1, n_frames, f"measuring frame {t + 1}/{n_frames}", stage="measuring")
    objects = validate_objects(pd.concat(tables, ignore_index=True))
    if objects.empty:
        raise NoCellsFoundError("The labels contain no objects: every pixel is 0.")

    yield Progress(0, 1, "tracking with btrack", stage="tracking")
    search_px, division_px = tracking_radii_px(objects, pixel_size_um, tracking)
    tracked = track_objects(
        objects,
        tuple(movie.shape[1:]),
        config_path=tracking.config_path,
        max_search_radius_px=search_px,
        division_radius_px=division_px,
        verbose=tracking.verbose,
    )
    objects = tracked.objects
    yield Progress(
        1, 1, f"tracked {objects['track_id'].nunique()} cells, {len(tracked.graph)} daughters", stage="tracking"
    )

    crop_result = None
    if crops is not None:
        writer = None
        if staged is not None:  # crops go to the staged store frame by frame: memory bounded by one frame
            from .project.crop_store import CropStoreWriter

            objects = objects.sort_values("t", kind="stable").reset_index(drop=True)
            writer = CropStoreWriter(staged.path / "crops.zarr", crops.size_px)
        crop_result = yield from relay(
            iter_extract_crops(
                movie, objects, crops, labels=labels, pixel_size_um=pixel_size_um, sink=writer and writer.append
            ),
            "cropping",
        )
        if staged is not None:
            from .project import stage_crop_dataset

            stage_crop_dataset(staged, crop_result, source, pixel_size_um, writer=writer)
    return TrackAndCropResult(labels=labels, objects=objects, graph=tracked.graph, crops=crop_result)


def _segmentation_store(run_folder: Path, shape: tuple[int, ...]):
    """A (T, Y, X) int32 zarr array in the staged run, one chunk per frame (bounded memory)."""
    import zarr

    return zarr.open_array(
        str(run_folder / SEGMENTATION_STORE), mode="w", shape=tuple(shape), chunks=(1, *shape[1:]), dtype="int32"
    )


def track_and_crop(movie, **kwargs) -> TrackAndCropResult:
    """Blocking form of :func:`iter_track_and_crop`."""
    return run_to_completion(iter_track_and_crop(movie, **kwargs))
