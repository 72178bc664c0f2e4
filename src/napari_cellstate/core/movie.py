"""Check a user's movie before any work starts, with messages that say how to fix it."""

from __future__ import annotations

import numpy as np

__all__ = ["MovieError", "check_movie", "max_project_z"]


class MovieError(ValueError):
    """The movie cannot be processed as given; the message names the fix."""


def max_project_z(movie, z_axis: int = 1):
    """Maximum-intensity projection over Z of a (T, Z, Y, X) movie (numpy or dask)."""
    return movie.max(axis=z_axis)


def check_movie(movie, *, rgb: bool = False, sample_frames: int = 8):
    """Return ``movie`` if it is a usable (T, Y, X) single-channel time-lapse, else raise.

    Only a few frames are read to look for NaNs and empty frames, so dask and
    zarr movies larger than memory stay lazy.

    Parameters
    ----------
    movie : array-like of shape (T, Y, X)
        numpy, dask or zarr array.
    rgb : bool, default=False
        Whether the viewer shows it as RGB(A) (napari's ``layer.rgb``).

    Raises
    ------
    MovieError
        For a single 2D frame, RGB data, an extra axis (Z or channels), NaNs,
        or a movie with no signal.
    """
    shape = tuple(getattr(movie, "shape", ()))
    if rgb or (len(shape) in (3, 4) and shape[-1] in (3, 4) and len(shape) >= 3 and shape[-2] > 4):
        raise MovieError(
            f"The image looks like RGB colour data (shape {shape}). Chromatin movies are single-channel: "
            "split the channels (napari: right-click the layer > Split RGB) and choose the H2B channel."
        )
    if len(shape) == 2:
        raise MovieError(
            f"Got a single 2D frame (shape {shape}); a time-lapse (T, Y, X) is needed for tracking. "
            "Open the whole movie, or stack the frames into one (T, Y, X) layer."
        )
    if len(shape) == 4:
        raise MovieError(
            f"Got 4 axes (shape {shape}); expected (T, Y, X). If axis 1 is Z, use a maximum projection "
            "(max_project=True / --max-project); if it is channels, pick the H2B channel first."
        )
    if len(shape) != 3:
        raise MovieError(f"Expected a (T, Y, X) movie, got shape {shape}.")
    if min(shape[1:]) < 16:
        raise MovieError(f"Frames of {shape[1]} x {shape[2]} px are too small to hold cells.")
    dtype = np.dtype(movie.dtype)
    if dtype.kind not in "uif" or dtype.kind == "c":
        raise MovieError(f"Pixel type {dtype} is not an intensity; expected integers or floats.")
    picks = np.unique(np.linspace(0, shape[0] - 1, min(sample_frames, shape[0])).astype(int))
    for t in picks:
        frame = np.asarray(movie[int(t)], dtype=np.float64)
        if dtype.kind == "f" and not np.isfinite(frame).all():
            raise MovieError(
                f"Frame {t} contains NaN or infinite values. Replace them (e.g. with the background value) first."
            )
        if frame.max() == frame.min():
            raise MovieError(
                f"Frame {t} is uniform (every pixel is {frame.min():g}): the movie is empty or all dark. "
                "Check the channel and the exposure."
            )
    return movie
